/* POST /submit: validate {"video_url": ...}, record the task and queue it. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"
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

/* Extracts and checks video_url; on failure replies 422 and returns NULL. */
static const char *submit_video_url(struct http_request *req, json_t *body)
{
    json_t *url = json_is_object(body) ? json_object_get(body, "video_url") : NULL;
    if (!json_is_object(body)) {
        api_reply_error(req, 422, "invalid_input", "the body must be a JSON object");
        return NULL;
    }
    if (!json_is_string(url)) {
        api_reply_error(req, 422, "invalid_input", "video_url must be a string");
        return NULL;
    }
    size_t len = json_string_length(url);
    if (len > VIDEO_URL_MAX) {
        api_reply_error(req, 422, "invalid_input", "video_url is longer than 2048 bytes");
        return NULL;
    }
    if (!video_url_valid(json_string_value(url), len)) {
        api_reply_error(req, 422, "invalid_input", "video_url must be an http or https URL");
        return NULL;
    }
    return json_string_value(url);
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
    size_t len;
    const unsigned char *raw = http_request_body(call->req, &len);
    json_error_t jerr;
    json_t *body = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) {
        api_reply_error(call->req, 422, "invalid_input", "the body is not valid JSON");
        return;
    }
    const char *url = submit_video_url(call->req, body);
    if (!url) {
        json_decref(body);
        return;
    }
    enum ia_err err = submit_check_capacity(call);
    char task_id[UUID_STR_LEN + 1];
    uuid_v4_new(task_id);
    if (err == IA_OK)
        err = queue_submit(call->t->queue, task_id, url);
    json_decref(body);
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
