/* POST /submit: validate {"video_url": ...}, record the task and queue it. */
#include <ctype.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/idempotency.h"
#include "api/internal.h"
#include "api/ratelimit.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "http/http.h"
#include "queue/queue.h"
#include "util/uuid.h"

#define VIDEO_URL_MAX 2048

/* True for an absolute http(s) URL with a host and no spaces or control bytes. */
static bool video_url_valid(const char *url, size_t len)
{
    size_t scheme;
    if (len > 7 && strncasecmp(url, "http://", 7) == 0)
        scheme = 7;
    else if (len > 8 && strncasecmp(url, "https://", 8) == 0)
        scheme = 8;
    else
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    char first = url[scheme];
    return first != '/' && first != '?' && first != '#';
}

/* Checks the video_url member of a parsed body; NULL when it is good, else why it is not. */
static const char *submit_url_problem(const json_t *body)
{
    const json_t *url = json_is_object(body) ? json_object_get(body, "video_url") : NULL;
    if (!json_is_object(body))
        return "the body must be a JSON object";
    if (!json_is_string(url))
        return "video_url must be a string";
    size_t len = json_string_length(url);
    if (len > VIDEO_URL_MAX)
        return "video_url is longer than 2048 bytes";
    if (!video_url_valid(json_string_value(url), len))
        return "video_url must be an http or https URL";
    return NULL;
}

enum ia_err api_parse_submit_body(const unsigned char *body, size_t len, char **url_out,
                                  const char **why_out)
{
    json_error_t jerr;
    *url_out = NULL;
    *why_out = NULL;
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *why = root ? submit_url_problem(root) : "the body is not valid JSON";
    if (!why)
        *url_out = xstrdup(json_string_value(json_object_get(root, "video_url")));
    json_decref(root);
    *why_out = why;
    return why ? IA_ERR_INVALID : IA_OK;
}

/* IA_ERR_TOO_LARGE when more than MAX_QUEUED tasks wait, IA_ERR_BROKER when Redis is down. */
static enum ia_err submit_check_capacity(struct api_call *call)
{
    long long queued = queue_length(call->t->queue);
    if (queued < 0)
        return IA_ERR_BROKER;
    return queued >= call->t->app->cfg->max_queued ? IA_ERR_TOO_LARGE : IA_OK;
}

void api_submit(struct api_call *call)
{
    if (!api_ratelimit_admit(call))
        return;
    size_t len;
    const unsigned char *raw = http_request_body(call->req, &len);
    char *url;
    const char *why;
    if (api_parse_submit_body(raw, len, &url, &why)) {
        api_reply_error(call->req, 422, "invalid_input", why);
        return;
    }
    char task_id[UUID_STR_LEN + 1];
    uuid_v4_new(task_id);
    bool keyed;
    if (api_idempotency_begin(call, raw, len, task_id, &keyed)) {
        free(url);
        return;
    }
    enum ia_err err = submit_check_capacity(call);
    if (err == IA_OK)
        err = queue_submit(call->t->queue, task_id, url);
    free(url);
    if (err && keyed)
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
    log_msg(LOG_INFO, "api", "task=%s accepted", task_id);
    char location[64];
    snprintf(location, sizeof(location), "/status/%s", task_id);
    http_reply_header(call->req, "Location", location);
    api_reply_json(call->req, 200, json_pack("{s:s}", "task_id", task_id));
}
