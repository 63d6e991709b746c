/*
 * POST /submit: validate {"video_url": ..., "analysis": ..., "callback_url": ...}, record the task
 * and queue it.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/idempotency.h"
#include "api/internal.h"
#include "api/ratelimit.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "http/http.h"
#include "queue/queue.h"
#include "queue/queue_async.h"
#include "util/uuid.h"

/* What a submit's answer needs once Redis has answered. */
struct submit_wait {
    struct http_held *held;
    struct api_thread *t;
    char task_id[UUID_STR_LEN + 1];
    bool analysis_off, has_callback;
};

/*
 * Answers a submit from what the queue said. replay: the task was bound to the request's
 * Idempotency-Key by an earlier request. A key stays bound when the submit failed: a retry with
 * it submits the same task again.
 */
static void submit_answer(struct api_call *call, enum ia_err err, const struct submit_wait *w,
                          bool replay)
{
    if (err == IA_ERR_TOO_LARGE) {
        http_reply_header(call->req, "Retry-After", "30");
        api_reply_error(call->req, 503, "queue_full", "too many tasks are waiting; retry later");
        return;
    }
    if (err) {
        log_msg(LOG_WARN, "api", "task=%s submit failed: %s", w->task_id, ia_err_code(err));
        api_reply_ia_error(call->req, err);
        return;
    }
    log_msg(LOG_INFO, "api", "task=%s accepted%s%s", w->task_id,
            w->analysis_off ? " (analysis off)" : "", w->has_callback ? " (with a callback)" : "");
    if (replay)
        api_idempotency_replayed(call, w->task_id);
    char location[64];
    snprintf(location, sizeof(location), "/status/%s", w->task_id);
    http_reply_header(call->req, "Location", location);
    char body[64]; /* the id is a UUID: nothing to escape */
    int n = snprintf(body, sizeof(body), "{\"task_id\":\"%s\"}", w->task_id);
    http_reply_body(call->req, 200, "application/json", body, (size_t)n);
}

/* On the loop, when the loop's connections have answered (queue_async_submit()). */
static void on_submitted(enum ia_err err, bool again, void *arg)
{
    struct submit_wait *w = arg;
    struct http_request *req = http_held_request(w->held);
    struct api_call call = {req, w->t, "", ""};
    if (req && again) /* nothing queued: the pool's connections reconnect and try again */
        api_offload(&call, HTTP_POOL_QUICK);
    else if (req)
        submit_answer(&call, err, w, false);
    http_held_end(w->held);
    free(w);
}

/*
 * On the loop, when its own connections are up and no Idempotency-Key is bound (that takes
 * Redis before the submit): true when the submit went, to be answered by on_submitted().
 */
static bool submit_on_loop(struct api_call *call, struct submit_wait *w, const char *url,
                           const json_t *kwargs)
{
    if (!http_thread_event_base()) /* on the loop, api_submit() sent a keyed request away */
        return false;
    if (!queue_async_submit(call->t->queue_async, w->task_id, url, kwargs, on_submitted, w))
        return false;
    w->held = http_request_hold(call->req); /* not NULL: the request is not answered yet */
    return true;
}

void api_submit(struct api_call *call)
{
    if (http_thread_event_base() && (!queue_async_ready(call->t->queue_async) ||
                                     http_request_header(call->req, "Idempotency-Key"))) {
        api_offload(call, HTTP_POOL_QUICK); /* the blocking connections of the pool */
        return;
    }
    if (!api_ratelimit_admit(call))
        return;
    size_t len;
    const unsigned char *raw = http_request_body(call->req, &len);
    struct submit_fields f;
    const char *why = api_parse_submit(raw, len, &f);
    if (why) {
        api_reply_error(call->req, 422, "invalid_input", why);
        return;
    }
    struct submit_wait *w = xcalloc(1, sizeof(*w));
    w->t = call->t;
    w->analysis_off = f.analysis_off;
    w->has_callback = f.callback_url != NULL;
    uuid_v4_new(w->task_id);
    enum api_idem idem = API_IDEM_NONE;
    json_t *kwargs = NULL;
    if (!api_callback_admit(call, f.callback_url) ||
        (idem = api_idempotency_begin(call, raw, len, w->task_id)) == API_IDEM_ANSWERED)
        goto out;
    kwargs = api_task_kwargs_with_callback(f.analysis_off, f.callback_url);
    /* A keyed submit never goes on the loop: it needs queue_submit_once(), on the pool. */
    if (idem == API_IDEM_NONE && submit_on_loop(call, w, f.video_url, kwargs)) {
        w = NULL; /* on_submitted's */
    } else if (http_thread_event_base()) {
        api_offload(call, HTTP_POOL_QUICK); /* the loop never blocks: the pool's path says why */
    } else {
        struct queue *q = call->t->queue;
        enum ia_err err = idem == API_IDEM_NONE ? queue_submit(q, w->task_id, f.video_url, kwargs)
                                                : queue_submit_once(q, w->task_id, f.video_url,
                                                                    kwargs, IDEMPOTENCY_TTL_S);
        submit_answer(call, err, w, idem == API_IDEM_REPLAY);
    }
out:
    json_decref(kwargs);
    free(f.video_url);
    free(f.callback_url);
    free(w);
}
