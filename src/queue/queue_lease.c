/*
 * The worker side of the queue: claim a message under a lease (atomically, in kombu's unacked
 * bookkeeping, counting deliveries), take and keep the task's fence in the backend with the
 * lease, ack, requeue, retry, and restore expired leases. The Lua that makes each step atomic,
 * and how our leases coexist with kombu's, is in queue_scripts.c.
 */
#include "queue/queue.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "queue/celery.h"
#include "queue/queue_int.h"
#include "util/os.h"
#include "util/uuid.h"

#define CLAIM_SLEEP_MIN_MS 20
#define CLAIM_SLEEP_MAX_MS 100

void claimed_task_free(struct claimed_task *t)
{
    if (!t)
        return;
    free(t->task_name);
    json_decref(t->args);
    json_decref(t->kwargs);
    free(t->raw);
    free(t);
}

/*
 * Ends the lease on tag and pushes msg (len bytes) by mode ("head", "dead", "none");
 * task_id ("" when unknown) names the delivery counts to update.
 */
static enum ia_err release(struct queue *q, const char *tag, const char *token, const char *mode,
                           const char *msg, size_t len, const char *task_id)
{
    const char *argv[] = {QUEUE_NAME,
                          QUEUE_UNACKED_KEY,
                          QUEUE_UNACKED_INDEX_KEY,
                          QUEUE_LEASES_KEY,
                          QUEUE_DEAD_KEY,
                          QUEUE_DELIVERIES_KEY,
                          tag,
                          token,
                          mode,
                          msg ? msg : "",
                          task_id};
    enum { NARGS = sizeof(argv) / sizeof(argv[0]), MSG_ARG = 9 };
    size_t lens[NARGS];
    for (int i = 0; i < NARGS; i++)
        lens[i] = strlen(argv[i]);
    lens[MSG_ARG] = msg ? len : 0;
    redisReply *r = queue_eval(q, &q->broker, SCRIPT_RELEASE, 6, NARGS, argv, lens);
    enum ia_err rc = IA_OK;
    if (queue_reply_failed(&q->broker, r, "release") || r->type != REDIS_REPLY_INTEGER)
        rc = IA_ERR_BROKER;
    else if (r->integer == 0)
        rc = IA_ERR_NOT_FOUND;
    freeReplyObject(r);
    return rc;
}

/*
 * Builds the claimed task from a decoded message and the claim's counts (claims of the task,
 * earlier deliveries lost); takes m's strings.
 */
static struct claimed_task *task_from(struct celery_message *m, const char *raw, size_t len,
                                      const char *token, long long claims, long long lost)
{
    struct claimed_task *t = xcalloc(1, sizeof(*t));
    snprintf(t->task_id, sizeof(t->task_id), "%s", m->task_id);
    snprintf(t->delivery_tag, sizeof(t->delivery_tag), "%s", m->delivery_tag);
    snprintf(t->lease_token, sizeof(t->lease_token), "%s", token);
    t->task_name = m->task_name;
    t->args = m->args;
    t->kwargs = m->kwargs;
    t->retries = m->retries;
    t->raw = xstrndup(raw, len);
    t->deliveries = lost < INT_MAX ? (int)lost + 1 : INT_MAX;
    snprintf(t->fence, sizeof(t->fence), "%lld %s", claims, token);
    m->task_name = NULL;
    m->args = NULL;
    m->kwargs = NULL;
    celery_message_cleanup(m);
    return t;
}

/* Logs a refused message with an escaped excerpt. */
static void log_refused(const char *raw, size_t len, const char *why)
{
    char esc[160];
    log_msg(LOG_WARN, "queue", "message moved to %s: %s: %s", QUEUE_DEAD_KEY, why,
            log_escape(esc, sizeof(esc), raw, len < 120 ? len : 120));
}

/* Moves a claimed message we cannot read to the dead list, ending its delivery counts. */
static enum ia_err bury(struct queue *q, const redisReply *m, const redisReply *tag,
                        const char *token)
{
    json_t *env = json_loadb(m->str, m->len, 0, NULL);
    const char *id = json_string_value(json_object_get(json_object_get(env, "headers"), "id"));
    enum ia_err rc = release(q, tag->str, token, "dead", m->str, m->len, id ? id : "");
    json_decref(env);
    return rc;
}

/* Validates a message the script claimed; buries it when it is not a task we can read. */
static enum ia_err accept_claimed(struct queue *q, const redisReply *r, const char *token,
                                  struct claimed_task **out)
{
    const redisReply *m = r->element[1], *tag = r->element[2];
    struct celery_message msg;
    char why[128];
    if (celery_message_decode(m->str, m->len, &msg, why, sizeof(why)) == IA_OK) {
        if (strlen(msg.delivery_tag) == tag->len && !memcmp(msg.delivery_tag, tag->str, tag->len)) {
            *out = task_from(&msg, m->str, m->len, token, r->element[3]->integer,
                             r->element[4]->integer);
            return IA_OK;
        }
        snprintf(why, sizeof(why), "delivery tag changed while decoding");
        celery_message_cleanup(&msg);
    }
    log_refused(m->str, m->len, why);
    enum ia_err rc = bury(q, m, tag, token);
    return rc == IA_ERR_BROKER ? rc : IA_ERR_INVALID;
}

static bool reply_is_claim(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_STRING)
        return false;
    return r->element[0]->integer == 0 ||
           (r->elements == 5 && r->element[2]->type == REDIS_REPLY_STRING &&
            r->element[3]->type == REDIS_REPLY_INTEGER &&
            r->element[4]->type == REDIS_REPLY_INTEGER);
}

/*
 * Takes ("take") or extends ("keep") t's fence in the backend for lease_s seconds.
 * IA_ERR_NOT_FOUND when another delivery holds it (or, for keep, it ran out).
 */
static enum ia_err fence(struct queue *q, const struct claimed_task *t, const char *mode,
                         int lease_s)
{
    char key[sizeof(QUEUE_FENCE_PREFIX) + sizeof(t->task_id)], ttl[24];
    snprintf(key, sizeof(key), "%s%s", QUEUE_FENCE_PREFIX, t->task_id);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)lease_s * 1000);
    const char *argv[] = {key, t->fence, ttl, mode};
    redisReply *r = queue_eval(q, &q->backend, SCRIPT_FENCE, 1, 4, argv, NULL);
    enum ia_err rc = IA_OK;
    if (queue_reply_failed(&q->backend, r, "fence") || r->type != REDIS_REPLY_INTEGER)
        rc = IA_ERR_BROKER;
    else if (r->integer == 0)
        rc = IA_ERR_NOT_FOUND;
    freeReplyObject(r);
    return rc;
}

/*
 * Takes the fence of a task just claimed. When that fails the task goes back (in order: it
 * does not count as lost) and *out is NULL; IA_OK unless Redis failed.
 */
static enum ia_err claim_fence(struct queue *q, int lease_s, struct claimed_task **out)
{
    struct claimed_task *t = *out;
    enum ia_err rc = fence(q, t, "take", lease_s);
    if (rc == IA_OK)
        return IA_OK;
    log_msg(LOG_WARN, "queue", "task=%s fence not taken (%s); handing the task back",
            t->task_id, rc == IA_ERR_NOT_FOUND ? "a later delivery holds it" : "Redis failed");
    release(q, t->delivery_tag, t->lease_token, "head", t->raw, strlen(t->raw), t->task_id);
    claimed_task_free(t);
    *out = NULL;
    return rc == IA_ERR_NOT_FOUND ? IA_OK : rc;
}

/* One attempt: IA_OK with *out NULL when the queue is empty. */
static enum ia_err claim_once(struct queue *q, int lease_s, struct claimed_task **out)
{
    char lease[16], token[UUID_STR_LEN + 1];
    snprintf(lease, sizeof(lease), "%d", lease_s);
    uuid_v4_new(token);
    const char *argv[] = {QUEUE_NAME,
                          QUEUE_UNACKED_KEY,
                          QUEUE_UNACKED_INDEX_KEY,
                          QUEUE_DEAD_KEY,
                          QUEUE_LEASES_KEY,
                          QUEUE_PENDING_LOG_KEY,
                          QUEUE_DELIVERIES_KEY,
                          lease,
                          token};
    redisReply *r = queue_eval(q, &q->broker, SCRIPT_CLAIM, 7, 9, argv, NULL);
    enum ia_err rc = IA_OK;
    if (queue_reply_failed(&q->broker, r, "claim")) {
        rc = IA_ERR_BROKER;
    } else if (r->type == REDIS_REPLY_NIL) {
        rc = IA_OK;
    } else if (!reply_is_claim(r)) {
        rc = IA_ERR_BROKER;
    } else if (r->element[0]->integer == 0) {
        log_refused(r->element[1]->str, r->element[1]->len, "no usable delivery tag");
        rc = IA_ERR_INVALID;
    } else {
        rc = accept_claimed(q, r, token, out);
    }
    freeReplyObject(r);
    if (rc == IA_OK && *out)
        rc = claim_fence(q, lease_s, out);
    return rc;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

enum ia_err queue_claim(struct queue *q, int lease_s, int wait_ms, const atomic_bool *stop,
                        struct claimed_task **out)
{
    *out = NULL;
    if (lease_s <= 0)
        return IA_ERR_INVALID;
    /* Lua cannot block, so an empty queue is polled, 20 ms apart growing to 100 ms. */
    int64_t deadline = os_monotonic_ms() + (wait_ms > 0 ? wait_ms : 0);
    int pause = CLAIM_SLEEP_MIN_MS;
    for (;;) {
        if (stop && atomic_load(stop))
            return IA_OK;
        enum ia_err rc = claim_once(q, lease_s, out);
        if (rc || *out)
            return rc;
        int left = (int)(deadline - os_monotonic_ms());
        if (left <= 0)
            return IA_OK;
        sleep_ms(pause < left ? pause : left);
        pause = pause * 2 < CLAIM_SLEEP_MAX_MS ? pause * 2 : CLAIM_SLEEP_MAX_MS;
    }
}

enum ia_err queue_lease_renew(struct queue *q, const struct claimed_task *t, int lease_s)
{
    char lease[16];
    snprintf(lease, sizeof(lease), "%d", lease_s > 0 ? lease_s : 1);
    const char *argv[] = {QUEUE_UNACKED_KEY, QUEUE_UNACKED_INDEX_KEY, QUEUE_LEASES_KEY,
                          t->delivery_tag,   t->lease_token,          lease};
    redisReply *r = queue_eval(q, &q->broker, SCRIPT_RENEW, 3, 6, argv, NULL);
    enum ia_err rc = IA_OK;
    if (queue_reply_failed(&q->broker, r, "renew") || r->type != REDIS_REPLY_INTEGER)
        rc = IA_ERR_BROKER;
    else if (r->integer == 0)
        rc = IA_ERR_NOT_FOUND;
    freeReplyObject(r);
    return rc ? rc : fence(q, t, "keep", lease_s > 0 ? lease_s : 1);
}

enum ia_err queue_ack(struct queue *q, const struct claimed_task *t)
{
    return release(q, t->delivery_tag, t->lease_token, "none", NULL, 0, t->task_id);
}

enum ia_err queue_requeue(struct queue *q, const struct claimed_task *t)
{
    return release(q, t->delivery_tag, t->lease_token, "head", t->raw, strlen(t->raw),
                   t->task_id);
}

long long queue_restore_expired(struct queue *q)
{
    const char *argv[] = {QUEUE_NAME, QUEUE_UNACKED_KEY, QUEUE_UNACKED_INDEX_KEY, QUEUE_LEASES_KEY,
                          QUEUE_DEAD_KEY};
    redisReply *r = queue_eval(q, &q->broker, SCRIPT_RESTORE, 5, 5, argv, NULL);
    long long n = -1;
    if (!queue_reply_failed(&q->broker, r, "restore") && r->type == REDIS_REPLY_INTEGER)
        n = r->integer;
    if (n > 0)
        log_msg(LOG_INFO, "queue", "restored %lld message(s) whose lease ran out", n);
    freeReplyObject(r);
    return n;
}
