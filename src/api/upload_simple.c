/*
 * POST /upload: a whole file in one request, as a raw body (application/octet-stream or a video
 * type) or as the file part of a multipart/form-data form, up to UPLOAD_SIMPLE_MAX, with an
 * optional ?analysis=false and ?callback_url=<URL, percent-encoded>. The file is staged like a
 * tus upload and answered like /submit.
 * Also the task-making step both uploads share.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/internal.h"
#include "api/ratelimit.h"
#include "core/config.h"
#include "core/log.h"
#include "http/http.h"
#include "queue/queue.h"
#include "store/store_upload.h"
#include "util/os.h"
#include "util/uuid.h"

enum ia_err api_upload_finish(struct api_call *call, struct store_upload *u, const char *upload_id,
                              bool analysis_off, const char *callback_url, char *task_id,
                              size_t cap)
{
    char fresh[UUID_STR_LEN + 1];
    uuid_v4_new(fresh);
    enum ia_err err = store_upload_set_task(u, fresh);
    if (err == IA_ERR_INVALID) { /* an earlier request made it */
        struct store_upload_info info;
        err = store_upload_stat(call->t->app->store, upload_id, &info);
        snprintf(task_id, cap, "%s", info.task_id);
        return err;
    }
    if (err)
        return err;
    json_t *kwargs = api_task_kwargs_with_callback(analysis_off, callback_url);
    err = queue_submit_upload(call->t->queue, fresh, upload_id, kwargs);
    json_decref(kwargs);
    if (err) {
        if (err != IA_ERR_BROKER_UNSURE) /* unsure: the task may run; a retry answers it */
            store_upload_clear_task(u);
        log_msg(LOG_WARN, "api", "upload=%s task not queued: %s", upload_id, ia_err_code(err));
        return err;
    }
    log_msg(LOG_INFO, "api", "task=%s accepted for upload=%s%s", fresh, upload_id,
            analysis_off ? " (analysis off)" : "");
    snprintf(task_id, cap, "%s", fresh);
    return IA_OK;
}

void api_upload_reply_finish_error(struct http_request *req, enum ia_err err)
{
    if (err == IA_ERR_TOO_LARGE) {
        http_reply_header(req, "Retry-After", "30");
        api_reply_error(req, 503, "queue_full", "too many tasks are waiting; retry later");
        return;
    }
    api_reply_ia_error(req, err);
}

/* Where the file is in the body: all of it, or a multipart file part. 0, or the status to
 * refuse it with (415, 422) and why. */
static int locate_file(struct http_request *req, size_t *offset, size_t *length, const char **why)
{
    const char *ct = http_request_header(req, "Content-Type");
    char boundary[80];
    *offset = 0;
    *length = http_request_body_length(req);
    if (ct &&
        (strncasecmp(ct, "application/octet-stream", 24) == 0 || strncasecmp(ct, "video/", 6) == 0))
        return 0;
    if (!upload_multipart_boundary(ct, boundary, sizeof(boundary))) {
        *why = "send the file as application/octet-stream, video/* or multipart/form-data";
        return 415;
    }
    size_t len;
    const unsigned char *body = http_request_body(req, &len);
    struct upload_file_part part;
    *why = upload_multipart_parse(body, len, boundary, &part);
    *offset = part.offset;
    *length = part.length;
    return *why ? 422 : 0;
}

/* Writes [offset, offset+length) of the body to fd (all of a raw body without copying it). */
static bool write_file(struct http_request *req, int fd, size_t offset, size_t length)
{
    if (offset == 0 && length == http_request_body_length(req))
        return http_request_body_to_fd(req, fd);
    size_t len;
    return os_write_all(fd, http_request_body(req, &len) + offset, length);
}

/* Stages the file as upload id and makes its task. */
static enum ia_err stage(struct api_call *call, const char *id, size_t offset, size_t length,
                         bool analysis_off, const char *callback_url, char *task_id, size_t cap)
{
    struct store *store = call->t->app->store;
    struct store_upload *u = NULL;
    enum ia_err err = store_upload_create(store, id, length, NULL);
    if (!err)
        err = store_upload_begin(store, id, 0, length, &u);
    if (!err)
        err =
            store_upload_commit(u, write_file(call->req, store_upload_fd(u), offset, length), NULL);
    if (!err)
        err = api_upload_finish(call, u, id, analysis_off, callback_url, task_id, cap);
    store_upload_close(u);
    if (err)
        store_upload_remove(store, id);
    return err;
}

/* Refuses bodies over UPLOAD_SIMPLE_MAX (413) and empty files (422); false when answered. */
static bool size_ok(struct api_call *call, size_t length)
{
    const struct config *cfg = call->t->app->cfg;
    if (http_request_body_length(call->req) > (size_t)cfg->upload_simple_max) {
        api_reply_error(call->req, 413, "too_large",
                        "the body is larger than UPLOAD_SIMPLE_MAX; upload larger files in "
                        "pieces with tus (POST /uploads)");
        return false;
    }
    if (length == 0) {
        api_reply_error(call->req, 422, "invalid_input", "the file is empty");
        return false;
    }
    return true;
}

/* Reads ?analysis=true|false; false when answered (400). */
static bool read_analysis(struct http_request *req, bool *off)
{
    const char *v = http_request_query_param(req, "analysis");
    const char *query = http_request_query(req);
    *off = false;
    if (v ? upload_parse_flag(v, off) : !query || !strstr(query, "analysis"))
        return true; /* (a query that does not parse names no value) */
    api_reply_error(req, 400, "invalid_input", "the analysis parameter must be true or false");
    return false;
}

void api_upload_simple(struct api_call *call)
{
    struct http_request *req = call->req;
    size_t offset, length;
    bool analysis_off;
    const char *callback = http_request_query_param(req, "callback_url");
    if (!size_ok(call, 1) || !read_analysis(req, &analysis_off) ||
        !api_callback_admit(call, callback) || !api_ratelimit_admit(call))
        return;
    const char *why = NULL;
    int refused = locate_file(req, &offset, &length, &why);
    if (refused) {
        api_reply_error(req, refused, refused == 415 ? "unsupported_media_type" : "invalid_input",
                        why);
        return;
    }
    if (!size_ok(call, length))
        return;
    char id[UUID_STR_LEN + 1], task_id[STORE_UPLOAD_TASK_ID_MAX];
    uuid_v4_new(id);
    enum ia_err err =
        stage(call, id, offset, length, analysis_off, callback, task_id, sizeof(task_id));
    if (err) {
        api_upload_reply_finish_error(req, err);
        return;
    }
    char location[96];
    snprintf(location, sizeof(location), "/status/%s", task_id);
    http_reply_header(req, "Location", location);
    api_reply_json(req, 200, json_pack("{s:s}", "task_id", task_id));
}
