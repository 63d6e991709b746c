/*
 * Webhook events in the backend: the envelope queued with a task's final state (set_result_src),
 * claims of due events under a lease and their settlement, fenced by the attempt number
 * (webhook_claim_src, webhook_settle_src). Times are Redis's TIME, so clocks do not matter.
 */
#include "queue/queue.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "queue/queue_int.h"

#define WEBHOOK_CLAIM_MAX 64

char *queue_webhook_envelope(const char *task_id, const struct queue_webhook_event *ev)
{
    if (!queue_task_id_ok(ev->event_id) || !ev->url || !ev->body)
        return NULL;
    json_t *env =
        json_pack("{s:s, s:s, s:s}", "url", ev->url, "task_id", task_id, "body", ev->body);
    char *text = env ? json_dumps(env, JSON_COMPACT) : NULL;
    json_decref(env);
    return text;
}

void queue_webhooks_free(struct queue_webhook *ws, size_t n)
{
    for (size_t i = 0; ws && i < n; i++) {
        free(ws[i].url);
        free(ws[i].body);
    }
    free(ws);
}

static double reply_double(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING ? strtod(r->str, NULL) : 0;
}

/* Fills w from one {id, envelope, attempt, queued_at} entry; false when it is not one. */
static bool webhook_from(const redisReply *e, double now, struct queue_webhook *w)
{
    memset(w, 0, sizeof(*w));
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 4)
        return false;
    for (size_t i = 0; i < 4; i++)
        if (e->element[i]->type != REDIS_REPLY_STRING)
            return false;
    snprintf(w->event_id, sizeof(w->event_id), "%s", e->element[0]->str);
    w->attempt = strtoll(e->element[2]->str, NULL, 10);
    w->queued_at = reply_double(e->element[3]);
    w->now = now;
    json_t *env = json_loadb(e->element[1]->str, e->element[1]->len, 0, NULL);
    const char *url = json_string_value(json_object_get(env, "url"));
    const char *body = json_string_value(json_object_get(env, "body"));
    const char *task = json_string_value(json_object_get(env, "task_id"));
    bool ok = url && body && task && queue_task_id_ok(task);
    if (ok) {
        w->url = xstrdup(url);
        w->body = xstrdup(body);
        snprintf(w->task_id, sizeof(w->task_id), "%s", task);
    }
    json_decref(env);
    return ok;
}

/* Removes an event whose envelope is not ours (written by someone else, or corrupt). */
static void drop_bad(struct queue *q, const redisReply *e)
{
    struct queue_webhook w = {0};
    char esc[96];
    const redisReply *id = e->type == REDIS_REPLY_ARRAY && e->elements == 4 ? e->element[0] : NULL;
    const redisReply *n = id ? e->element[2] : NULL;
    if (!id || id->type != REDIS_REPLY_STRING || n->type != REDIS_REPLY_STRING)
        return;
    snprintf(w.event_id, sizeof(w.event_id), "%s", id->str);
    w.attempt = strtoll(n->str, NULL, 10);
    log_msg(LOG_WARN, "webhook", "event=%s envelope unreadable; removed",
            log_escape(esc, sizeof(esc), id->str, id->len));
    queue_webhook_settle(q, &w, -1);
}

enum ia_err queue_webhook_claim(struct queue *q, int lease_s, int max, struct queue_webhook **out,
                                size_t *n)
{
    char lease[16], limit[16];
    *out = NULL;
    *n = 0;
    snprintf(lease, sizeof(lease), "%d", lease_s > 0 ? lease_s : 1);
    snprintf(limit, sizeof(limit), "%d",
             max > 0 && max < WEBHOOK_CLAIM_MAX ? max : WEBHOOK_CLAIM_MAX);
    const char *argv[] = {QUEUE_WEBHOOKS_KEY, QUEUE_WEBHOOKS_DUE_KEY, lease, limit};
    redisReply *r = queue_eval(q, &q->backend, SCRIPT_WEBHOOK_CLAIM, 2, 4, argv, NULL);
    if (queue_reply_failed(&q->backend, r, "webhook claim") || r->type != REDIS_REPLY_ARRAY ||
        r->elements != 2 || r->element[1]->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return IA_ERR_BROKER;
    }
    double now = reply_double(r->element[0]);
    const redisReply *list = r->element[1];
    struct queue_webhook *ws = list->elements ? xcalloc(list->elements, sizeof(*ws)) : NULL;
    size_t got = 0;
    for (size_t i = 0; i < list->elements; i++) {
        if (webhook_from(list->element[i], now, &ws[got]))
            got++;
        else
            drop_bad(q, list->element[i]);
    }
    freeReplyObject(r);
    *out = ws;
    *n = got;
    return IA_OK;
}

enum ia_err queue_webhook_settle(struct queue *q, const struct queue_webhook *w, double retry_in_s)
{
    char attempt[24], delay[32];
    snprintf(attempt, sizeof(attempt), "%lld", w->attempt);
    snprintf(delay, sizeof(delay), "%.3f", retry_in_s < 0 ? -1.0 : retry_in_s);
    const char *argv[] = {QUEUE_WEBHOOKS_KEY, QUEUE_WEBHOOKS_DUE_KEY, w->event_id, attempt, delay};
    redisReply *r = queue_eval(q, &q->backend, SCRIPT_WEBHOOK_SETTLE, 2, 5, argv, NULL);
    enum ia_err rc = IA_OK;
    if (queue_reply_failed(&q->backend, r, "webhook settle") || r->type != REDIS_REPLY_INTEGER)
        rc = IA_ERR_BROKER;
    else if (r->integer == 0)
        rc = IA_ERR_NOT_FOUND;
    freeReplyObject(r);
    return rc;
}
