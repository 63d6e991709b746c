/*
 * Tasks for uploaded files: the same process_video message as for a URL, whose one argument is
 * "upload:<upload_id>" instead of an http(s) URL, so that the message stays a valid Celery call
 * and Python clients keep sending plain URLs.
 */
#include "queue/queue.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "queue/queue_int.h"
#include "util/uuid.h"

enum ia_err queue_submit_upload(struct queue *q, const char *task_id, const char *upload_id,
                                const json_t *kwargs)
{
    if (!upload_id || !uuid_is_canonical(upload_id, strlen(upload_id)))
        return IA_ERR_INVALID;
    char arg[sizeof(QUEUE_UPLOAD_PREFIX) + UUID_STR_LEN];
    snprintf(arg, sizeof(arg), "%s%s", QUEUE_UPLOAD_PREFIX, upload_id);
    return queue_submit(q, task_id, arg, kwargs);
}

const char *queue_upload_id(const char *video_arg)
{
    size_t n = sizeof(QUEUE_UPLOAD_PREFIX) - 1;
    if (!video_arg || strncmp(video_arg, QUEUE_UPLOAD_PREFIX, n) != 0)
        return NULL;
    const char *id = video_arg + n;
    return uuid_is_canonical(id, strlen(id)) ? id : NULL;
}

/*
 * The state of uploads staged in an object store (queue.h). The scripts run with EVAL, as in
 * queue_delete.c: one per append, which is rare next to the bytes it moves.
 */

/* KEYS: state, index. ARGV: id, length, metadata, ttl_s. 0 when the upload exists. */
static const char upload_create_src[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "local t = redis.call('TIME')\n"
    "redis.call('HSET', KEYS[1], 'length', ARGV[2], 'meta', ARGV[3], 'offset', '0', "
    "'parts', '0', 'task', '')\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
    "redis.call('ZADD', KEYS[2], t[1], ARGV[1])\n"
    "return 1\n";

/* KEYS: state, lock, index. ARGV: token, from, to, ttl_s, id. -1 lock lost or offset moved, -2
 * no state, 1 done. */
static const char upload_advance_src[] =
    "if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end\n"
    "local off = redis.call('HGET', KEYS[1], 'offset')\n"
    "if not off then return -2 end\n"
    "if off ~= ARGV[2] then return -1 end\n"
    "redis.call('HSET', KEYS[1], 'offset', ARGV[3])\n"
    "redis.call('HINCRBY', KEYS[1], 'parts', 1)\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
    "local t = redis.call('TIME')\n"
    "redis.call('ZADD', KEYS[3], t[1], ARGV[5])\n"
    "return 1\n";

/* KEYS: state, lock, index. ARGV: token, task ("" forgets it), ttl_s, id. -1 lock lost, -2 no
 * state, 0 a task is there already, 1 done. */
static const char upload_task_src[] =
    "if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end\n"
    "local cur = redis.call('HGET', KEYS[1], 'task')\n"
    "if not cur then return -2 end\n"
    "if ARGV[2] ~= '' and cur ~= '' then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'task', ARGV[2])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
    "local t = redis.call('TIME')\n"
    "redis.call('ZADD', KEYS[3], t[1], ARGV[4])\n"
    "return 1\n";

/* KEYS: state, index. ARGV: id. */
static const char upload_forget_src[] = "redis.call('DEL', KEYS[1])\n"
                                        "return redis.call('ZREM', KEYS[2], ARGV[1])\n";

/* KEYS: index. ARGV: state key prefix, idle_s, done_s, max. The stale ids (see queue.h). */
static const char upload_stale_src[] =
    "local now = tonumber(redis.call('TIME')[1])\n"
    "local max = tonumber(ARGV[4])\n"
    "local rows = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]), "
    "'WITHSCORES', 'LIMIT', 0, 1000)\n"
    "local out = {}\n"
    "for i = 1, #rows, 2 do\n"
    "  local task = redis.call('HGET', ARGV[1] .. rows[i], 'task')\n"
    "  if not task or task == '' or now - tonumber(rows[i + 1]) > tonumber(ARGV[3]) then\n"
    "    out[#out + 1] = rows[i]\n"
    "    if #out >= max then break end\n"
    "  end\n"
    "end\n"
    "return out\n";

struct upload_keys {
    char state[64], lock[64];
};

static bool upload_keys_of(const char *id, struct upload_keys *k)
{
    if (!id || !uuid_is_canonical(id, strlen(id)))
        return false;
    snprintf(k->state, sizeof(k->state), "%s%s", QUEUE_UPLOAD_PREFIX_KEY, id);
    snprintf(k->lock, sizeof(k->lock), "%s%s", QUEUE_UPLOAD_LOCK_PREFIX, id);
    return true;
}

/* Runs an EVAL whose answer is an integer. */
static enum ia_err upload_eval(struct queue *q, int argc, const char **argv, const char *what,
                               long long *out)
{
    redisReply *r = queue_conn_argv(&q->backend, argc, argv, NULL);
    enum ia_err rc = IA_ERR_BROKER;
    if (!queue_reply_failed(&q->backend, r, what) && r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        rc = IA_OK;
    }
    freeReplyObject(r);
    return rc;
}

enum ia_err queue_upload_create(struct queue *q, const char *id, uint64_t length,
                                const char *metadata, long long ttl_s)
{
    struct upload_keys k;
    if (!upload_keys_of(id, &k))
        return IA_ERR_INVALID;
    char len[24], ttl[24];
    snprintf(len, sizeof(len), "%" PRIu64, length);
    snprintf(ttl, sizeof(ttl), "%lld", ttl_s);
    const char *argv[] = {"EVAL", upload_create_src,        "2", k.state, QUEUE_UPLOADS_KEY, id,
                          len,    metadata ? metadata : "", ttl};
    long long n = 0;
    enum ia_err rc = upload_eval(q, 9, argv, "create upload", &n);
    return rc ? rc : n == 1 ? IA_OK : IA_ERR_INVALID;
}

/* A decimal field of the state; false when it does not parse. */
static bool field_u64(const redisReply *r, uint64_t *out)
{
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20)
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(r->str, &end, 10);
    if (errno || *end || r->str[0] == '-')
        return false;
    *out = v;
    return true;
}

/* Fills out from an HMGET of length, meta, offset, parts, task. */
static enum ia_err upload_parse(const redisReply *r, struct queue_upload *out)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 5)
        return IA_ERR_BROKER;
    if (r->element[0]->type == REDIS_REPLY_NIL)
        return IA_ERR_NOT_FOUND;
    uint64_t parts = 0;
    for (size_t i = 1; i < 5; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING)
            return IA_ERR_BROKER;
    if (!field_u64(r->element[0], &out->length) || !field_u64(r->element[2], &out->offset) ||
        !field_u64(r->element[3], &parts) || parts > UINT32_MAX)
        return IA_ERR_BROKER;
    out->parts = (unsigned)parts;
    snprintf(out->metadata, sizeof(out->metadata), "%s", r->element[1]->str);
    snprintf(out->task_id, sizeof(out->task_id), "%s", r->element[4]->str);
    return IA_OK;
}

enum ia_err queue_upload_get(struct queue *q, const char *id, struct queue_upload *out)
{
    memset(out, 0, sizeof(*out));
    struct upload_keys k;
    if (!upload_keys_of(id, &k))
        return IA_ERR_NOT_FOUND;
    redisReply *r = queue_conn_cmd(&q->backend, "HMGET %s length meta offset parts task", k.state);
    enum ia_err rc =
        queue_reply_failed(&q->backend, r, "HMGET upload") ? IA_ERR_BROKER : upload_parse(r, out);
    freeReplyObject(r);
    return rc;
}

enum ia_err queue_upload_lock(struct queue *q, const char *id, const char *token,
                              long long lease_ms)
{
    struct upload_keys k;
    if (!upload_keys_of(id, &k))
        return IA_ERR_NOT_FOUND;
    bool got;
    enum ia_err rc = queue_lock_key_take(q, k.lock, token, lease_ms, &got);
    return rc ? rc : got ? IA_OK : IA_ERR_INVALID;
}

void queue_upload_unlock(struct queue *q, const char *id, const char *token)
{
    struct upload_keys k;
    if (!upload_keys_of(id, &k))
        return;
    bool released;
    if (queue_lock_key_release(q, k.lock, token, &released))
        log_msg(LOG_WARN, "queue", "upload=%s lock not released (it expires by itself)", id);
}

enum ia_err queue_upload_advance(struct queue *q, const char *id, const char *token, uint64_t from,
                                 uint64_t to, long long ttl_s)
{
    struct upload_keys k;
    if (!upload_keys_of(id, &k))
        return IA_ERR_NOT_FOUND;
    char f[24], t[24], ttl[24];
    snprintf(f, sizeof(f), "%" PRIu64, from);
    snprintf(t, sizeof(t), "%" PRIu64, to);
    snprintf(ttl, sizeof(ttl), "%lld", ttl_s);
    const char *argv[] = {
        "EVAL", upload_advance_src, "3", k.state, k.lock, QUEUE_UPLOADS_KEY, token, f, t, ttl, id};
    long long n = 0;
    enum ia_err rc = upload_eval(q, 11, argv, "advance upload", &n);
    return rc ? rc : n == 1 ? IA_OK : n == -2 ? IA_ERR_NOT_FOUND : IA_ERR_INVALID;
}

enum ia_err queue_upload_set_task(struct queue *q, const char *id, const char *token,
                                  const char *task_id, long long ttl_s)
{
    struct upload_keys k;
    if (!upload_keys_of(id, &k))
        return IA_ERR_NOT_FOUND;
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", ttl_s);
    const char *argv[] = {"EVAL", upload_task_src, "3", k.state, k.lock, QUEUE_UPLOADS_KEY,
                          token,  task_id,         ttl, id};
    long long n = 0;
    enum ia_err rc = upload_eval(q, 10, argv, "set upload task", &n);
    if (rc)
        return rc;
    if (n == -1)
        log_msg(LOG_WARN, "queue", "upload=%s lost its lock before its task was recorded", id);
    return n == 1 ? IA_OK : n == 0 ? IA_ERR_INVALID : n == -2 ? IA_ERR_NOT_FOUND : IA_ERR_BROKER;
}

enum ia_err queue_upload_forget(struct queue *q, const char *id)
{
    struct upload_keys k;
    if (!upload_keys_of(id, &k))
        return IA_ERR_INVALID;
    const char *argv[] = {"EVAL", upload_forget_src, "2", k.state, QUEUE_UPLOADS_KEY, id};
    long long n = 0;
    return upload_eval(q, 6, argv, "forget upload", &n);
}

enum ia_err queue_upload_stale(struct queue *q, long long idle_s, long long done_s, size_t max,
                               char (*ids)[37], size_t *n)
{
    *n = 0;
    char idle[24], done[24], cap[24];
    snprintf(idle, sizeof(idle), "%lld", idle_s);
    snprintf(done, sizeof(done), "%lld", done_s);
    snprintf(cap, sizeof(cap), "%zu", max);
    const char *argv[] = {
        "EVAL", upload_stale_src, "1", QUEUE_UPLOADS_KEY, QUEUE_UPLOAD_PREFIX_KEY, idle, done, cap};
    redisReply *r = queue_conn_argv(&q->backend, 8, argv, NULL);
    enum ia_err rc = IA_ERR_BROKER;
    if (!queue_reply_failed(&q->backend, r, "stale uploads") && r->type == REDIS_REPLY_ARRAY) {
        rc = IA_OK;
        for (size_t i = 0; i < r->elements && *n < max; i++) {
            const redisReply *e = r->element[i];
            if (e->type == REDIS_REPLY_STRING && uuid_is_canonical(e->str, e->len))
                memcpy(ids[(*n)++], e->str, UUID_STR_LEN + 1);
        }
    }
    freeReplyObject(r);
    return rc;
}
