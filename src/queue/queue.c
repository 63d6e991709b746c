/*
 * The API side of the queue and the result backend: submit (accepted record, then a Celery
 * message), queue length, status from celery-task-meta-<id>, and writing result records the way
 * Celery's Redis backend does, so Python's AsyncResult reads them.
 */
#include "queue/queue.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "queue/celery.h"
#include "queue/queue_int.h"
#include "util/json_text.h"

struct queue *queue_new(const struct config *cfg)
{
    struct queue *q = xcalloc(1, sizeof(*q));
    queue_conn_init(&q->broker, "broker", cfg->broker_url, cfg->broker_master_name);
    queue_conn_init(&q->backend, "backend", cfg->backend_url, cfg->backend_master_name);
    q->result_ttl_s = cfg->result_ttl_s > 0 ? cfg->result_ttl_s : 86400;
    q->max_queued = cfg->max_queued > 0 ? cfg->max_queued : 0;
    queue_scripts_init(q);
    return q;
}

void queue_set_lost_events(struct queue *q, queue_event_fn fn, void *ctx)
{
    q->lost_event = fn;
    q->lost_event_ctx = ctx;
}

void queue_free(struct queue *q)
{
    if (!q)
        return;
    queue_conn_cleanup(&q->broker);
    queue_conn_cleanup(&q->backend);
    free(q);
}

static bool ping_one(struct queue_conn *qc)
{
    redisReply *r = queue_conn_cmd(qc, "PING");
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok;
}

bool queue_ping(struct queue *q)
{
    bool broker = ping_one(&q->broker);
    return ping_one(&q->backend) && broker;
}

bool queue_task_id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > CELERY_MAX_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (id[i] <= ' ' || id[i] > '~')
            return false;
    return true;
}

char *queue_accepted_text(const char *video_url, const json_t *kwargs)
{
    char when[40];
    celery_isoformat(queue_wall_now(), when, sizeof(when));
    const char *callback = json_string_value(json_object_get(kwargs, "callback_url"));
    struct json_text t;
    json_text_init(&t, 256);
    json_text_raw(&t, "{", 1);
    bool ok = json_text_member(&t, "video_url", video_url, true) &&
              json_text_member(&t, "submitted_at", when, false) &&
              (!callback || json_text_member(&t, "callback_url", callback, false));
    json_text_raw(&t, "}", 1);
    if (!ok) {
        json_text_cleanup(&t);
        return NULL;
    }
    return json_text_take(&t);
}

char *queue_task_message(const char *task_id, const char *video_url, const json_t *kwargs)
{
    json_t *args = json_pack("[s]", video_url);
    struct celery_msg_opts opts = {.kwargs = kwargs};
    char *msg = args ? celery_message_encode(task_id, QUEUE_TASK_NAME, args, &opts) : NULL;
    json_decref(args);
    return msg;
}

/*
 * Writes the accepted record (queue_accepted_text()) with the result TTL; with keep, only when
 * there is none (a task submitted again keeps its first submitted_at). *created says whether
 * this call wrote it.
 */
static enum ia_err record_accepted(struct queue *q, const char *task_id, const char *video_url,
                                   const json_t *kwargs, bool keep, bool *created)
{
    *created = false;
    char *text = queue_accepted_text(video_url, kwargs);
    if (!text)
        return IA_ERR_INVALID; /* video_url is not UTF-8 */
    char key[sizeof(QUEUE_ACCEPTED_PREFIX) + CELERY_MAX_ID_LEN + 1], ttl[24];
    snprintf(key, sizeof(key), "%s%s", QUEUE_ACCEPTED_PREFIX, task_id);
    snprintf(ttl, sizeof(ttl), "%lld", q->result_ttl_s);
    const char *argv[] = {"SET", key, text, "EX", ttl, "NX"};
    redisReply *r = queue_conn_argv(&q->backend, keep ? 6 : 5, argv, NULL);
    free(text);
    enum ia_err rc = queue_reply_failed(&q->backend, r, "SET accepted") ? IA_ERR_BROKER : IA_OK;
    *created = rc == IA_OK && r->type == REDIS_REPLY_STATUS; /* NX: nil when it was there */
    freeReplyObject(r);
    return rc;
}

/*
 * LPUSHes an encoded message (kombu's _put) and records the task as pending, in one step, unless
 * MAX_QUEUED messages already wait (IA_ERR_TOO_LARGE); declares kombu's binding once per
 * connection. IA_ERR_BROKER_UNSURE when the script was sent but no answer came. once_ttl_s > 0:
 * publishes once (publish_src's marker, kept that long); IA_OK when it was published before.
 */
static enum ia_err publish(struct queue *q, const char *task_id, const char *msg,
                           long long once_ttl_s)
{
    if (!q->broker.bound) {
        redisReply *b =
            queue_conn_cmd(&q->broker, "SADD %s %s", QUEUE_BINDING_KEY, QUEUE_BINDING_VALUE);
        q->broker.bound = b && b->type == REDIS_REPLY_INTEGER;
        freeReplyObject(b);
    }
    char max[24], ttl[24], marker[sizeof(QUEUE_PUBLISHED_PREFIX) + CELERY_MAX_ID_LEN + 1];
    snprintf(max, sizeof(max), "%lld", q->max_queued);
    snprintf(ttl, sizeof(ttl), "%lld", once_ttl_s);
    snprintf(marker, sizeof(marker), "%s%s", QUEUE_PUBLISHED_PREFIX, task_id);
    const char *argv[] = {QUEUE_NAME, QUEUE_PENDING_LOG_KEY, marker, msg, task_id, max, ttl};
    const char *plain[] = {QUEUE_NAME, QUEUE_PENDING_LOG_KEY, msg, task_id, max};
    redisReply *r = once_ttl_s > 0 ? queue_eval(q, &q->broker, SCRIPT_PUBLISH, 3, 7, argv, NULL)
                                   : queue_eval(q, &q->broker, SCRIPT_PUBLISH, 2, 5, plain, NULL);
    enum ia_err rc = queue_reply_failed(&q->broker, r, "publish") ? IA_ERR_BROKER : IA_OK;
    if (!r && q->broker.unsure)
        rc = IA_ERR_BROKER_UNSURE;
    if (rc == IA_OK && r->type == REDIS_REPLY_INTEGER && r->integer == 0)
        rc = IA_ERR_TOO_LARGE;
    if (rc == IA_OK && r->type == REDIS_REPLY_INTEGER && r->integer == 2)
        log_msg(LOG_INFO, "queue", "task=%s was published before; not again", task_id);
    freeReplyObject(r);
    return rc;
}

/* queue_submit() and queue_submit_once(): once_ttl_s as for publish(). */
static enum ia_err submit(struct queue *q, const char *task_id, const char *video_url,
                          const json_t *kwargs, long long once_ttl_s)
{
    if (!queue_task_id_ok(task_id) || !video_url)
        return IA_ERR_INVALID;
    char *msg = queue_task_message(task_id, video_url, kwargs);
    if (!msg)
        return IA_ERR_INVALID;
    bool created;
    enum ia_err rc = record_accepted(q, task_id, video_url, kwargs, once_ttl_s > 0, &created);
    if (!rc) {
        rc = publish(q, task_id, msg, once_ttl_s);
        if (rc == IA_ERR_BROKER_UNSURE) { /* it may run: /status must know it */
            log_msg(LOG_WARN, "queue", "task=%s publish unanswered; its record is kept", task_id);
        } else if (rc && !created) { /* submitted again by a replay, maybe under way now */
            log_msg(LOG_WARN, "queue", "task=%s not published; its record is kept", task_id);
        } else if (rc) { /* not published: forget the record so /status does not say queued */
            redisReply *r = queue_conn_cmd(&q->backend, "DEL %s%s", QUEUE_ACCEPTED_PREFIX, task_id);
            freeReplyObject(r);
        }
    }
    free(msg);
    if (!rc)
        log_msg(LOG_INFO, "queue", "task=%s submitted", task_id);
    return rc;
}

enum ia_err queue_submit(struct queue *q, const char *task_id, const char *video_url,
                         const json_t *kwargs)
{
    return submit(q, task_id, video_url, kwargs, 0);
}

enum ia_err queue_submit_once(struct queue *q, const char *task_id, const char *video_url,
                              const json_t *kwargs, long long once_ttl_s)
{
    return once_ttl_s > 0 ? submit(q, task_id, video_url, kwargs, once_ttl_s) : IA_ERR_INVALID;
}

long long queue_length(struct queue *q)
{
    redisReply *r = queue_conn_cmd(&q->broker, "LLEN %s", QUEUE_NAME);
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return n;
}

void task_status_cleanup(struct task_status *st)
{
    json_decref(st->result);
    st->result = NULL;
}

/* Copies s into out (cap bytes), cutting at a UTF-8 character boundary. */
static void copy_text(char *out, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

/* Copies a stage name if it is a short lower-case word; otherwise keeps fallback. */
static void copy_stage(char *out, size_t cap, const json_t *v, const char *fallback)
{
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;
    bool ok = n > 0 && n < cap;
    for (size_t i = 0; ok && i < n; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || s[i] == '_' || (s[i] >= '0' && s[i] <= '9');
    copy_text(out, cap, ok ? s : fallback);
}

/* Fills error_code and error_message from an exception record we wrote (with "code"). */
static void status_error(struct task_status *out, const json_t *exc, const char *fallback)
{
    const json_t *code = json_object_get(exc, "code");
    const json_t *msg = json_array_get(json_object_get(exc, "exc_message"), 0);
    char tmp[sizeof(out->error_code)];
    copy_stage(tmp, sizeof(tmp), code, "");
    if (tmp[0] && json_is_string(msg)) {
        copy_text(out->error_code, sizeof(out->error_code), tmp);
        copy_text(out->error_message, sizeof(out->error_message), json_string_value(msg));
    } else { /* written by someone else: its text may hold paths, so show a generic one */
        copy_text(out->error_code, sizeof(out->error_code), fallback);
        copy_text(out->error_message, sizeof(out->error_message), ia_strerror(IA_ERR_INTERNAL));
    }
}

/* Maps a Celery status and its result to our task_state. */
static void status_from_meta(const char *status, json_t *result, struct task_status *out)
{
    if (!strcmp(status, "STARTED")) {
        out->state = TASK_RUNNING;
        copy_text(out->stage, sizeof(out->stage), "starting");
    } else if (!strcmp(status, "PROGRESS")) {
        out->state = TASK_RUNNING;
        copy_stage(out->stage, sizeof(out->stage), json_object_get(result, "stage"), "processing");
        double p = json_number_value(json_object_get(result, "progress"));
        out->progress = p > 0 ? (p < 1 ? p : 1) : 0;
    } else if (!strcmp(status, "RETRY")) {
        out->state = TASK_RETRYING;
        copy_text(out->stage, sizeof(out->stage), "retrying");
        status_error(out, result, "internal_error");
    } else if (!strcmp(status, "SUCCESS")) {
        out->state = TASK_SUCCEEDED;
        copy_text(out->stage, sizeof(out->stage), "success");
        out->progress = 1;
        out->result = json_incref(result);
    } else if (!strcmp(status, "FAILURE") || !strcmp(status, "REVOKED")) {
        out->state = TASK_FAILED;
        copy_text(out->stage, sizeof(out->stage), "failed");
        status_error(out, result, !strcmp(status, "REVOKED") ? "revoked" : "internal_error");
    } else { /* PENDING, RECEIVED, or a custom state of a Python worker */
        out->state =
            strcmp(status, "PENDING") && strcmp(status, "RECEIVED") ? TASK_RUNNING : TASK_QUEUED;
        copy_text(out->stage, sizeof(out->stage),
                  out->state == TASK_QUEUED ? "queued" : "processing");
    }
}

/* Parses a celery-task-meta value; IA_ERR_INTERNAL when it is not a result record. */
static enum ia_err parse_meta(const redisReply *meta, const char *task_id, struct task_status *out)
{
    json_t *m = json_loadb(meta->str, meta->len, 0, NULL);
    const char *status = json_string_value(json_object_get(m, "status"));
    if (!status) {
        char esc[64];
        log_msg(LOG_WARN, "queue", "task=%s result record is not valid",
                log_escape(esc, sizeof(esc), task_id, strlen(task_id)));
        json_decref(m);
        return IA_ERR_INTERNAL;
    }
    status_from_meta(status, json_object_get(m, "result"), out);
    json_decref(m);
    return IA_OK;
}

enum ia_err queue_status(struct queue *q, const char *task_id, struct task_status *out)
{
    memset(out, 0, sizeof(*out));
    if (!queue_task_id_ok(task_id))
        return IA_ERR_INVALID;
    redisReply *r = queue_conn_cmd(&q->backend, "MGET %s%s %s%s", QUEUE_META_PREFIX, task_id,
                                   QUEUE_ACCEPTED_PREFIX, task_id);
    if (queue_reply_failed(&q->backend, r, "MGET") || r->type != REDIS_REPLY_ARRAY ||
        r->elements != 2) {
        freeReplyObject(r);
        return IA_ERR_BROKER;
    }
    enum ia_err rc = IA_OK;
    if (r->element[0]->type == REDIS_REPLY_STRING) {
        rc = parse_meta(r->element[0], task_id, out);
    } else if (r->element[1]->type == REDIS_REPLY_STRING) {
        out->state = TASK_QUEUED;
        copy_text(out->stage, sizeof(out->stage), "queued");
    } else {
        out->state = TASK_UNKNOWN;
    }
    freeReplyObject(r);
    return rc;
}

/*
 * Writes an encoded record with the set-result script. fence is "" for a write by no delivery
 * (task_lost), else the writer's: IA_ERR_NOT_FOUND when it no longer holds the task. ev (may be
 * NULL) is a webhook event queued in the same step when the record is written.
 */
static enum ia_err store_meta(struct queue *q, const char *task_id, const char *fence, bool final,
                              const char *value, const struct queue_webhook_event *ev)
{
    char key[sizeof(QUEUE_META_PREFIX) + CELERY_MAX_ID_LEN + 1], ttl[24];
    char fence_key[sizeof(QUEUE_FENCE_PREFIX) + CELERY_MAX_ID_LEN + 1];
    char accepted_key[sizeof(QUEUE_ACCEPTED_PREFIX) + CELERY_MAX_ID_LEN + 1];
    snprintf(key, sizeof(key), "%s%s", QUEUE_META_PREFIX, task_id);
    snprintf(fence_key, sizeof(fence_key), "%s%s", QUEUE_FENCE_PREFIX, task_id);
    snprintf(accepted_key, sizeof(accepted_key), "%s%s", QUEUE_ACCEPTED_PREFIX, task_id);
    snprintf(ttl, sizeof(ttl), "%lld", q->result_ttl_s);
    char *envelope = ev ? queue_webhook_envelope(task_id, ev) : NULL;
    const char *argv[] = {key, fence_key, QUEUE_WEBHOOKS_KEY, QUEUE_WEBHOOKS_DUE_KEY, accepted_key,
                          value, ttl, fence, final ? "1" : "0",
                          envelope ? ev->event_id : "", envelope ? envelope : ""};
    redisReply *r = queue_eval(q, &q->backend, SCRIPT_SET_RESULT, 5, 11, argv, NULL);
    free(envelope);
    enum ia_err rc = queue_reply_failed(&q->backend, r, "set result") ? IA_ERR_BROKER : IA_OK;
    if (!rc && r->type == REDIS_REPLY_INTEGER && r->integer == 0)
        log_msg(LOG_INFO, "queue", "task=%s already final; record kept", task_id);
    if (!rc && r->type == REDIS_REPLY_INTEGER && r->integer < 0)
        rc = IA_ERR_NOT_FOUND;
    freeReplyObject(r);
    return rc;
}

static bool status_known(const char *status)
{
    static const char *const known[] = {"STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (!strcmp(status, known[i]))
            return true;
    return false;
}

/*
 * Celery rebuilds an exception from RETRY/FAILURE results, so a plain dict is wrapped in one:
 * its "code" and "message" become ours, its other keys (stage, retries...) are kept beside.
 */
static json_t *exception_from(const char *status, json_t *meta)
{
    bool retry = !strcmp(status, "RETRY");
    const char *code = json_string_value(json_object_get(meta, "code"));
    const char *msg = json_string_value(json_object_get(meta, "message"));
    if (!code)
        code = retry ? "retrying" : "internal_error";
    if (!msg)
        msg = retry ? "retrying after a transient error" : ia_strerror(IA_ERR_INTERNAL);
    json_t *exc = celery_exception_new(code, msg);
    const char *key;
    json_t *v;
    json_object_foreach(meta, key, v)
    {
        if (!json_object_get(exc, key) && strcmp(key, "message") != 0)
            json_object_set(exc, key, v); /* "set" adds a reference */
    }
    return exc;
}

/* Writes a record for task_id; fence and ev as for store_meta(). */
static enum ia_err set_state_ev(struct queue *q, const char *task_id, const char *fence,
                                const char *status, json_t *result,
                                const struct queue_webhook_event *ev)
{
    if (!queue_task_id_ok(task_id) || !status || !status_known(status))
        return IA_ERR_INVALID;
    json_t *own = NULL;
    if (celery_status_is_exception(status) && !json_object_get(result, "exc_type")) {
        own = exception_from(status, result);
        result = own;
    }
    char *value = celery_result_encode(task_id, status, result, NULL, queue_wall_now());
    json_decref(own);
    if (!value)
        return IA_ERR_INVALID;
    bool final = !strcmp(status, "SUCCESS") || !strcmp(status, "FAILURE");
    enum ia_err rc = store_meta(q, task_id, fence, final, value, final ? ev : NULL);
    free(value);
    return rc;
}

static enum ia_err set_state(struct queue *q, const char *task_id, const char *fence,
                             const char *status, json_t *result)
{
    return set_state_ev(q, task_id, fence, status, result, NULL);
}

enum ia_err queue_set_state(struct queue *q, const char *task_id, const char *status,
                            json_t *result)
{
    return set_state(q, task_id, "", status, result);
}

enum ia_err queue_task_set_state(struct queue *q, const struct claimed_task *t,
                                 const char *status, json_t *result)
{
    return set_state(q, t->task_id, t->fence, status, result);
}

/* Writes a FAILURE or RETRY record: Celery's exception shape, carrying our code. */
static enum ia_err set_exception_ev(struct queue *q, const char *task_id, const char *fence,
                                    const char *status, const char *code, const char *message,
                                    const struct queue_webhook_event *ev)
{
    json_t *exc = celery_exception_new(code, message);
    if (!exc)
        return IA_ERR_INVALID;
    enum ia_err rc = set_state_ev(q, task_id, fence, status, exc, ev);
    json_decref(exc);
    return rc;
}

enum ia_err queue_set_failure_event(struct queue *q, const char *task_id, const char *code,
                                    const char *message, const struct queue_webhook_event *ev)
{
    return set_exception_ev(q, task_id, "", "FAILURE", code, message, ev);
}

static enum ia_err set_exception(struct queue *q, const char *task_id, const char *fence,
                                 const char *status, const char *code, const char *message)
{
    return set_exception_ev(q, task_id, fence, status, code, message, NULL);
}

enum ia_err queue_set_failure(struct queue *q, const char *task_id, const char *code,
                              const char *message)
{
    return set_exception(q, task_id, "", "FAILURE", code, message);
}

enum ia_err queue_set_retry(struct queue *q, const char *task_id, const char *code,
                            const char *message)
{
    return set_exception(q, task_id, "", "RETRY", code, message);
}

enum ia_err queue_task_set_failure(struct queue *q, const struct claimed_task *t,
                                   const char *code, const char *message)
{
    return set_exception(q, t->task_id, t->fence, "FAILURE", code, message);
}

enum ia_err queue_task_set_retry(struct queue *q, const struct claimed_task *t, const char *code,
                                 const char *message)
{
    return set_exception(q, t->task_id, t->fence, "RETRY", code, message);
}

enum ia_err queue_task_succeed(struct queue *q, const struct claimed_task *t, json_t *result,
                               const struct queue_webhook_event *ev)
{
    return set_state_ev(q, t->task_id, t->fence, "SUCCESS", result, ev);
}

enum ia_err queue_task_fail(struct queue *q, const struct claimed_task *t, const char *code,
                            const char *message, const struct queue_webhook_event *ev)
{
    return set_exception_ev(q, t->task_id, t->fence, "FAILURE", code, message, ev);
}

enum ia_err queue_get_celery_status(struct queue *q, const char *task_id, char *buf, size_t buflen)
{
    if (buflen)
        buf[0] = '\0';
    if (!queue_task_id_ok(task_id))
        return IA_ERR_INVALID;
    redisReply *r = queue_conn_cmd(&q->backend, "GET %s%s", QUEUE_META_PREFIX, task_id);
    if (queue_reply_failed(&q->backend, r, "GET")) {
        freeReplyObject(r);
        return IA_ERR_BROKER;
    }
    if (r->type == REDIS_REPLY_STRING && buflen) {
        json_t *m = json_loadb(r->str, r->len, 0, NULL);
        const char *s = json_string_value(json_object_get(m, "status"));
        snprintf(buf, buflen, "%s", s ? s : "");
        json_decref(m);
    }
    freeReplyObject(r);
    return IA_OK;
}
