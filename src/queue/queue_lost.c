/*
 * Honest state for accepted tasks whose message vanished (a purged queue, a lost Redis write):
 * such a task would say "queued" for ever, so it is failed with the code task_lost instead.
 * Every published task is pending until a worker claims it; the lost script (queue_scripts.c)
 * finds the old ones whose message is neither on the queue nor delivered, and this file writes
 * their FAILURE record.
 */
#include "queue/queue.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "queue/celery.h"
#include "queue/queue_int.h"

#define LOST_BATCH 20 /* pending tasks looked at per call: bounds the cost of one call */
#define LOST_LOOK_MAX 1000 /* log entries read per call (those of claimed tasks only dropped) */
#define LOST_MESSAGE "the task was lost by the queue before it ran; submit it again"

/*
 * A task that has a result keeps its accepted record as long as the result, no longer: a record
 * written without a TTL (submit_src) gets one with the final state that our workers write, but a
 * task run by another Celery worker gets its result from Celery's own backend code.
 */
static void lost_record_follows_meta(struct queue *q, const char *task_id, long long meta_ms)
{
    if (meta_ms <= 0) /* the result has no TTL either */
        return;
    redisReply *r =
        queue_conn_cmd(&q->backend, "PEXPIRE %s%s %lld", QUEUE_ACCEPTED_PREFIX, task_id, meta_ms);
    freeReplyObject(r);
}

/*
 * True when the task was accepted (record alive) and nothing has written a result for it; then
 * *callback is the record's callback_url (a heap string) or NULL.
 */
static bool lost_unanswered(struct queue *q, const char *task_id, char **callback)
{
    *callback = NULL;
    redisReply *r = queue_conn_cmd(&q->backend, "PTTL %s%s", QUEUE_META_PREFIX, task_id);
    bool no_meta = r && r->type == REDIS_REPLY_INTEGER && r->integer == -2; /* no such key */
    if (r && r->type == REDIS_REPLY_INTEGER && !no_meta)
        lost_record_follows_meta(q, task_id, r->integer);
    freeReplyObject(r);
    if (!no_meta)
        return false;
    r = queue_conn_cmd(&q->backend, "GET %s%s", QUEUE_ACCEPTED_PREFIX, task_id);
    bool accepted = r && r->type == REDIS_REPLY_STRING;
    if (accepted) {
        json_t *rec = json_loadb(r->str, r->len, 0, NULL);
        const char *url = json_string_value(json_object_get(rec, "callback_url"));
        *callback = url ? xstrdup(url) : NULL;
        json_decref(rec);
    }
    freeReplyObject(r);
    return accepted;
}

/* Writes FAILURE task_lost, with its webhook event when the task has a callback URL. */
static enum ia_err lost_write(struct queue *q, const char *task_id, const char *callback)
{
    struct queue_webhook_event ev;
    char id[64];
    char *body = callback && q->lost_event ? q->lost_event(q->lost_event_ctx, task_id, callback,
                                                           "task_lost", LOST_MESSAGE, &ev, id)
                                           : NULL;
    enum ia_err rc =
        queue_set_failure_event(q, task_id, "task_lost", LOST_MESSAGE, body ? &ev : NULL);
    free(body);
    return rc;
}

/* Writes FAILURE task_lost for one id the script returned; true when written. */
static bool lost_fail_one(struct queue *q, const redisReply *id)
{
    if (id->type != REDIS_REPLY_STRING || id->len == 0 || id->len > CELERY_MAX_ID_LEN)
        return false;
    char task_id[CELERY_MAX_ID_LEN + 1];
    memcpy(task_id, id->str, id->len);
    task_id[id->len] = '\0';
    char *callback;
    if (!lost_unanswered(q, task_id, &callback))
        return false;
    enum ia_err rc = lost_write(q, task_id, callback);
    free(callback);
    if (rc != IA_OK)
        return false;
    log_msg(LOG_WARN, "queue", "task=%s lost: its message is gone; marked failed", task_id);
    return true;
}

long long queue_fail_lost(struct queue *q, int age_s)
{
    char age[16], limit[16], look_max[16];
    snprintf(age, sizeof(age), "%d", age_s > 0 ? age_s : 1);
    snprintf(limit, sizeof(limit), "%d", LOST_BATCH);
    snprintf(look_max, sizeof(look_max), "%d", LOST_LOOK_MAX);
    const char *argv[] = {QUEUE_PENDING_LOG_KEY, QUEUE_NAME, QUEUE_UNACKED_KEY,
                          QUEUE_DELIVERIES_KEY, age, limit, look_max};
    redisReply *r = queue_eval(q, &q->broker, SCRIPT_LOST, 4, 7, argv, NULL);
    if (queue_reply_failed(&q->broker, r, "lost check") || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -1;
    }
    long long failed = 0;
    for (size_t i = 0; i < r->elements; i++)
        failed += lost_fail_one(q, r->element[i]);
    freeReplyObject(r);
    return failed;
}
