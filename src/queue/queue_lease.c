/*
 * The worker side of the queue: claim a message under a lease (atomically, in kombu's unacked
 * bookkeeping), renew the lease, ack, requeue, retry, and restore expired leases. The Lua that
 * makes each step atomic, and how our leases coexist with kombu's, is in queue_scripts.c.
 */
#include "queue/queue.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "queue/celery.h"
#include "queue/queue_int.h"
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

/* Ends the lease on tag and pushes msg (len bytes) by mode ("head", "tail", "dead", "none"). */
static enum ia_err release(struct queue *q, const char *tag, const char *token, const char *mode,
                           const char *msg, size_t len)
{
    const char *argv[] = {QUEUE_NAME,
                          QUEUE_UNACKED_KEY,
                          QUEUE_UNACKED_INDEX_KEY,
                          QUEUE_LEASES_KEY,
                          QUEUE_DEAD_KEY,
                          tag,
                          token,
                          mode,
                          msg ? msg : ""};
    size_t lens[9];
    for (int i = 0; i < 8; i++)
        lens[i] = strlen(argv[i]);
    lens[8] = msg ? len : 0;
    redisReply *r = queue_eval(q, &q->broker, SCRIPT_RELEASE, 5, 9, argv, lens);
    enum ia_err rc = IA_OK;
    if (queue_reply_failed(&q->broker, r, "release") || r->type != REDIS_REPLY_INTEGER)
        rc = IA_ERR_BROKER;
    else if (r->integer == 0)
        rc = IA_ERR_NOT_FOUND;
    freeReplyObject(r);
    return rc;
}

/* Builds the claimed task from a decoded message; takes m's strings. */
static struct claimed_task *task_from(struct celery_message *m, const char *raw, size_t len,
                                      const char *token)
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

/* Validates a message the script claimed; buries it when it is not a task we can read. */
static enum ia_err accept_claimed(struct queue *q, const redisReply *r, const char *token,
                                  struct claimed_task **out)
{
    const redisReply *m = r->element[1], *tag = r->element[2];
    struct celery_message msg;
    char why[128];
    if (celery_message_decode(m->str, m->len, &msg, why, sizeof(why)) == IA_OK) {
        if (strlen(msg.delivery_tag) == tag->len && !memcmp(msg.delivery_tag, tag->str, tag->len)) {
            *out = task_from(&msg, m->str, m->len, token);
            return IA_OK;
        }
        snprintf(why, sizeof(why), "delivery tag changed while decoding");
        celery_message_cleanup(&msg);
    }
    log_refused(m->str, m->len, why);
    enum ia_err rc = release(q, tag->str, token, "dead", m->str, m->len);
    return rc == IA_ERR_BROKER ? rc : IA_ERR_INVALID;
}

static bool reply_is_claim(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_STRING)
        return false;
    return r->element[0]->integer == 0 ||
           (r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING);
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
                          QUEUE_PENDING_KEY,
                          QUEUE_PENDING_MSG_KEY,
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
    return rc;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

enum ia_err queue_claim(struct queue *q, int lease_s, int wait_ms, struct claimed_task **out)
{
    *out = NULL;
    if (lease_s <= 0)
        return IA_ERR_INVALID;
    /* Lua cannot block, so an empty queue is polled, 20 ms apart growing to 100 ms. */
    double deadline = queue_mono_now() + (wait_ms > 0 ? wait_ms : 0) / 1000.0;
    int pause = CLAIM_SLEEP_MIN_MS;
    for (;;) {
        enum ia_err rc = claim_once(q, lease_s, out);
        if (rc || *out)
            return rc;
        int left = (int)((deadline - queue_mono_now()) * 1000);
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
    return rc;
}

enum ia_err queue_ack(struct queue *q, const struct claimed_task *t)
{
    return release(q, t->delivery_tag, t->lease_token, "none", NULL, 0);
}

enum ia_err queue_requeue(struct queue *q, const struct claimed_task *t)
{
    return release(q, t->delivery_tag, t->lease_token, "head", t->raw, strlen(t->raw));
}

enum ia_err queue_retry(struct queue *q, const struct claimed_task *t)
{
    struct celery_msg_opts opts = {.retries = t->retries + 1, .kwargs = t->kwargs};
    char *msg = celery_message_encode(t->task_id, t->task_name, t->args, &opts);
    if (!msg)
        return IA_ERR_INVALID;
    enum ia_err rc = release(q, t->delivery_tag, t->lease_token, "tail", msg, strlen(msg));
    free(msg);
    return rc;
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
