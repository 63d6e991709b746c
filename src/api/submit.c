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
#include "util/uuid.h"

void api_submit(struct api_call *call)
{
    if (!api_ratelimit_admit(call))
        return;
    size_t len;
    const unsigned char *raw = http_request_body(call->req, &len);
    char *url;
    bool analysis_off;
    const char *why;
    char *callback = NULL;
    if (api_parse_submit_body(raw, len, &url, &analysis_off, &why) ||
        (why = api_parse_submit_callback(raw, len, &callback)) != NULL) {
        free(url);
        api_reply_error(call->req, 422, "invalid_input", why);
        return;
    }
    char task_id[UUID_STR_LEN + 1];
    uuid_v4_new(task_id);
    bool keyed;
    if (!api_callback_admit(call, callback) ||
        api_idempotency_begin(call, raw, len, task_id, &keyed)) {
        free(url);
        free(callback);
        return;
    }
    json_t *kwargs = api_task_kwargs_with_callback(analysis_off, callback);
    enum ia_err err = queue_submit(call->t->queue, task_id, url, kwargs);
    json_decref(kwargs);
    free(url);
    bool has_callback = callback != NULL;
    free(callback);
    if (err && err != IA_ERR_BROKER_UNSURE && keyed) /* unsure: the task may run; keep the key */
        api_idempotency_abandon(call);
    if (err == IA_ERR_TOO_LARGE) {
        http_reply_header(call->req, "Retry-After", "30");
        api_reply_error(call->req, 503, "queue_full", "too many tasks are waiting; retry later");
        return;
    }
    if (err) {
        log_msg(LOG_WARN, "api", "task=%s submit failed: %s", task_id, ia_err_code(err));
        api_reply_ia_error(call->req, err);
        return;
    }
    log_msg(LOG_INFO, "api", "task=%s accepted%s%s", task_id, analysis_off ? " (analysis off)" : "",
            has_callback ? " (with a callback)" : "");
    char location[64];
    snprintf(location, sizeof(location), "/status/%s", task_id);
    http_reply_header(call->req, "Location", location);
    api_reply_json(call->req, 200, json_pack("{s:s}", "task_id", task_id));
}
