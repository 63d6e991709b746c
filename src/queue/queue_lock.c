/*
 * Locks shared through the backend by every process (queue.h, queue_lock_take): SET NX PX with
 * the owner's token, and scripts that renew or release only when the key still holds it, so a
 * holder whose lock expired can neither extend nor remove the next owner's. Redis keeps the
 * time: clocks of the hosts do not matter. The scripts run with EVAL (locks are rare).
 */
#include "queue/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "queue/queue_int.h"

/* KEYS: lock. ARGV: token, ttl_ms. 1 when renewed, 0 when the lock is not the token's. */
static const char renew_src[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                "end\n"
                                "return 0\n";
/* KEYS: lock. ARGV: token. 1 when removed, 0 when it was not the token's. */
static const char release_src[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                  "  return redis.call('DEL', KEYS[1])\n"
                                  "end\n"
                                  "return 0\n";

static bool lock_args_ok(const char *name, const char *token)
{
    return queue_task_id_ok(name) && queue_task_id_ok(token);
}

enum ia_err queue_lock_key_take(struct queue *q, const char *key, const char *token,
                                long long ttl_ms, bool *got)
{
    *got = false;
    redisReply *r = queue_conn_cmd(&q->backend, "SET %s %s NX PX %lld", key, token,
                                   ttl_ms > 0 ? ttl_ms : 1);
    enum ia_err rc = queue_reply_failed(&q->backend, r, "SET lock") ? IA_ERR_BROKER : IA_OK;
    if (!rc)
        *got = r->type == REDIS_REPLY_STATUS; /* OK when set; nil when another owner has it */
    freeReplyObject(r);
    return rc;
}

/* Runs one of the token scripts on key; *done is true when it answered 1. */
static enum ia_err key_script(struct queue *q, const char *src, const char *what, const char *key,
                              const char *token, const char *ttl, bool *done)
{
    *done = false;
    const char *argv[] = {"EVAL", src, "1", key, token, ttl};
    redisReply *r = queue_conn_argv(&q->backend, ttl ? 6 : 5, argv, NULL);
    enum ia_err rc = IA_ERR_BROKER;
    if (!queue_reply_failed(&q->backend, r, what) && r->type == REDIS_REPLY_INTEGER) {
        *done = r->integer == 1;
        rc = IA_OK;
    }
    freeReplyObject(r);
    return rc;
}

enum ia_err queue_lock_key_release(struct queue *q, const char *key, const char *token,
                                   bool *released)
{
    return key_script(q, release_src, "release lock", key, token, NULL, released);
}

enum ia_err queue_lock_take(struct queue *q, const char *name, const char *token, long long ttl_ms,
                            bool *got)
{
    *got = false;
    if (!lock_args_ok(name, token))
        return IA_ERR_INVALID;
    char *key = xasprintf("%s%s", QUEUE_LOCK_PREFIX, name);
    enum ia_err rc = queue_lock_key_take(q, key, token, ttl_ms, got);
    free(key);
    return rc;
}

/* Runs one of the token scripts on interview-lock-<name>. */
static enum ia_err lock_script(struct queue *q, const char *src, const char *what, const char *name,
                               const char *token, const char *ttl, bool *done)
{
    *done = false;
    if (!lock_args_ok(name, token))
        return IA_ERR_INVALID;
    char *key = xasprintf("%s%s", QUEUE_LOCK_PREFIX, name);
    enum ia_err rc = key_script(q, src, what, key, token, ttl, done);
    free(key);
    return rc;
}

enum ia_err queue_lock_renew(struct queue *q, const char *name, const char *token, long long ttl_ms,
                             bool *held)
{
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", ttl_ms > 0 ? ttl_ms : 1);
    return lock_script(q, renew_src, "renew lock", name, token, ttl, held);
}

enum ia_err queue_lock_release(struct queue *q, const char *name, const char *token)
{
    bool released;
    return lock_script(q, release_src, "release lock", name, token, NULL, &released);
}
