/*
 * Resumable uploads, tus 1.0 core with the creation extension: OPTIONS /uploads, POST /uploads
 * (Upload-Length, Upload-Metadata) -> 201 Location, HEAD /uploads/{id} -> Upload-Offset, and
 * PATCH /uploads/{id} (application/offset+octet-stream at Upload-Offset) -> 204. The PATCH that
 * brings the last byte makes the task, exactly as /submit would, and names it in Upload-Task-Id;
 * an Upload-Metadata key "analysis" with the base64 of "false" turns the task's analysis off, and
 * a key "callback_url" with the base64 of a URL asks for webhooks (checked at creation).
 * A request that breaks off leaves nothing: libevent hands us only complete bodies.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/internal.h"
#include "api/ratelimit.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "http/http.h"
#include "queue/queue.h"
#include "store/store.h"
#include "store/store_upload.h"
#include "util/uuid.h"

#define TUS_VERSION "1.0.0"
#define TUS_CONTENT_TYPE "application/offset+octet-stream"
#define SWEEP_INTERVAL_S 60

static atomic_llong last_sweep;

static void add_number(struct http_request *req, const char *name, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof(num), "%" PRIu64, v);
    http_reply_header(req, name, num);
}

/* Every tus answer carries Tus-Resumable; a request without the version we speak gets 412. */
static bool tus_accepts(struct http_request *req)
{
    const char *v = http_request_header(req, "Tus-Resumable");
    http_reply_header(req, "Tus-Resumable", TUS_VERSION);
    if (v && strcmp(v, TUS_VERSION) == 0)
        return true;
    http_reply_header(req, "Tus-Version", TUS_VERSION);
    api_reply_error(req, 412, "tus_version", "Tus-Resumable must be 1.0.0");
    return false;
}

void api_tus_options(struct api_call *call)
{
    struct http_request *req = call->req;
    http_reply_header(req, "Tus-Resumable", TUS_VERSION);
    http_reply_header(req, "Tus-Version", TUS_VERSION);
    http_reply_header(req, "Tus-Extension", "creation");
    add_number(req, "Tus-Max-Size", (uint64_t)call->t->app->cfg->max_download_bytes);
    http_reply_body(req, 204, NULL, NULL, 0);
}

/* Removes stale uploads, at most once a SWEEP_INTERVAL_S (or UPLOAD_EXPIRE_S) per process. */
static void maybe_sweep(const struct app *app)
{
    long long now = (long long)time(NULL), prev = atomic_load(&last_sweep);
    long long every =
        app->cfg->upload_expire_s < SWEEP_INTERVAL_S ? app->cfg->upload_expire_s : SWEEP_INTERVAL_S;
    if (now - prev < every || !atomic_compare_exchange_strong(&last_sweep, &prev, now))
        return;
    long long done_s = app->cfg->result_ttl_s > app->cfg->upload_expire_s
                           ? app->cfg->result_ttl_s
                           : app->cfg->upload_expire_s;
    int n = store_upload_sweep(app->store, app->cfg->upload_expire_s, done_s);
    if (n > 0)
        log_msg(LOG_INFO, "api", "removed %d stale upload(s)", n);
}

/* Reads Upload-Length and Upload-Metadata (with its analysis flag); false when answered. */
static bool read_creation(struct api_call *call, uint64_t *length, const char **metadata)
{
    struct http_request *req = call->req;
    const char *len = http_request_header(req, "Upload-Length");
    *metadata = http_request_header(req, "Upload-Metadata");
    if (!len || !upload_parse_u64(len, length)) {
        api_reply_error(req, 400, "invalid_input",
                        "Upload-Length must be the whole file's size in bytes");
        return false;
    }
    if (*length > (uint64_t)call->t->app->cfg->max_download_bytes) {
        api_reply_error(req, 413, "too_large", "the file is larger than the service accepts");
        return false;
    }
    if (*metadata && !upload_metadata_valid(*metadata)) {
        api_reply_error(req, 400, "invalid_input", "Upload-Metadata is not valid");
        return false;
    }
    bool off;
    if (*metadata && !upload_metadata_analysis(*metadata, &off)) {
        api_reply_error(req, 400, "invalid_input",
                        "Upload-Metadata: analysis must be the base64 of true or false");
        return false;
    }
    char *callback = NULL;
    if (*metadata && !upload_metadata_callback(*metadata, &callback)) {
        api_reply_error(req, 400, "invalid_input",
                        "Upload-Metadata: callback_url must be the base64 of a URL");
        return false;
    }
    bool admitted = api_callback_admit(call, callback);
    free(callback);
    if (!admitted)
        return false;
    if (http_request_body_length(req) > 0) {
        api_reply_error(req, 400, "invalid_input",
                        "POST /uploads takes no body; send the bytes with PATCH");
        return false;
    }
    return true;
}

/* True when the (checked) Upload-Metadata of an upload turns the analysis off. */
static bool metadata_analysis_off(const char *metadata)
{
    bool off = false;
    return metadata && upload_metadata_analysis(metadata, &off) && off;
}

/* api_upload_finish() with the analysis flag and callback URL of the (checked) metadata. */
static enum ia_err finish_with(struct api_call *call, struct store_upload *u, const char *id,
                               const char *metadata, char *task_id, size_t cap)
{
    char *callback = NULL;
    if (metadata && metadata[0])
        upload_metadata_callback(metadata, &callback);
    enum ia_err err =
        api_upload_finish(call, u, id, metadata_analysis_off(metadata), callback, task_id, cap);
    free(callback);
    return err;
}

/* An empty file is complete as soon as it exists: make its task now. */
static enum ia_err finish_empty(struct api_call *call, const char *id, const char *metadata,
                                char *task_id, size_t cap)
{
    struct store_upload *u;
    enum ia_err err = store_upload_begin(call->t->app->store, id, 0, 0, &u);
    if (!err)
        err = finish_with(call, u, id, metadata, task_id, cap);
    store_upload_close(u);
    return err;
}

static void reply_task_headers(struct http_request *req, const char *task_id)
{
    char location[96];
    snprintf(location, sizeof(location), "/status/%s", task_id);
    http_reply_header(req, "Upload-Task-Id", task_id);
    http_reply_header(req, "Upload-Task-Location", location);
}

void api_tus_create(struct api_call *call)
{
    struct http_request *req = call->req;
    const struct app *app = call->t->app;
    uint64_t length;
    const char *metadata;
    if (!tus_accepts(req) || !read_creation(call, &length, &metadata) || !api_ratelimit_admit(call))
        return;
    maybe_sweep(app);
    char id[UUID_STR_LEN + 1], task_id[STORE_UPLOAD_TASK_ID_MAX] = "";
    uuid_v4_new(id);
    enum ia_err err = store_upload_create(app->store, id, length, metadata);
    if (!err && length == 0)
        err = finish_empty(call, id, metadata, task_id, sizeof(task_id));
    if (err) {
        log_msg(LOG_WARN, "api", "upload=%s cannot be created: %s", id, ia_err_code(err));
        store_upload_remove(app->store, id);
        api_upload_reply_finish_error(req, err);
        return;
    }
    log_msg(LOG_INFO, "api", "upload=%s created: %" PRIu64 " bytes", id, length);
    char *location = xasprintf("%s/uploads/%s", app->cfg->public_base_url, id);
    http_reply_header(req, "Location", location);
    free(location);
    http_reply_header(req, "Upload-Offset", "0");
    if (task_id[0])
        reply_task_headers(req, task_id);
    http_reply_body(req, 201, NULL, NULL, 0);
}

void api_tus_head(struct api_call *call)
{
    struct http_request *req = call->req;
    http_reply_header(req, "Cache-Control", "no-store");
    if (!tus_accepts(req))
        return;
    struct store_upload_info info;
    if (store_upload_stat(call->t->app->store, call->param, &info)) {
        http_reply_body(req, 404, NULL, NULL, 0);
        return;
    }
    add_number(req, "Upload-Offset", info.offset);
    add_number(req, "Upload-Length", info.length);
    if (info.metadata[0])
        http_reply_header(req, "Upload-Metadata", info.metadata);
    if (info.task_id[0])
        reply_task_headers(req, info.task_id);
    http_reply_body(req, 200, NULL, NULL, 0);
}

/* Checks the PATCH headers; false when answered (415, 400). */
static bool read_patch(struct http_request *req, uint64_t *offset)
{
    const char *ct = http_request_header(req, "Content-Type");
    if (!ct || strcasecmp(ct, TUS_CONTENT_TYPE) != 0) {
        api_reply_error(req, 415, "unsupported_media_type",
                        "PATCH bodies must be application/offset+octet-stream");
        return false;
    }
    if (!upload_parse_u64(http_request_header(req, "Upload-Offset"), offset)) {
        api_reply_error(req, 400, "invalid_input", "Upload-Offset must be a byte count");
        return false;
    }
    if (http_request_body_length(req) > UPLOAD_CHUNK_MAX) {
        api_reply_error(req, 413, "too_large", "send at most 16 MiB per PATCH");
        return false;
    }
    return true;
}

/* Answers a refused store_upload_begin(): 404, 409 (offset or a concurrent PATCH), 413. */
static void reply_begin_error(struct api_call *call, enum ia_err err)
{
    struct http_request *req = call->req;
    struct store_upload_info info;
    if (err == IA_ERR_NOT_FOUND) {
        api_reply_error(req, 404, "not_found", "no such upload (finished long ago, or expired)");
    } else if (err == IA_ERR_INVALID) {
        if (store_upload_stat(call->t->app->store, call->param, &info) == IA_OK)
            add_number(req, "Upload-Offset", info.offset);
        api_reply_error(req, 409, "offset_mismatch",
                        "Upload-Offset is not the upload's offset (or another PATCH is running); "
                        "ask HEAD for the offset");
    } else {
        api_reply_error(req, 413, "too_large", "the chunk goes past Upload-Length");
    }
}

/* Appends the body under the lock and makes the task when the upload is complete. */
static enum ia_err patch_locked(struct api_call *call, struct store_upload *u,
                                struct store_upload_info *info, char *task_id, size_t cap)
{
    bool wrote = http_request_body_to_fd(call->req, store_upload_fd(u));
    enum ia_err err = store_upload_commit(u, wrote, info);
    if (err) {
        log_msg(LOG_ERROR, "api", "upload=%s append failed: %s", call->param, ia_err_code(err));
        return err;
    }
    if (info->offset == info->length)
        err = finish_with(call, u, call->param, info->metadata, task_id, cap);
    return err;
}

void api_tus_patch(struct api_call *call)
{
    struct http_request *req = call->req;
    uint64_t offset;
    if (!tus_accepts(req) || !read_patch(req, &offset))
        return;
    struct store_upload *u;
    size_t len = http_request_body_length(req);
    enum ia_err err = store_upload_begin(call->t->app->store, call->param, offset, len, &u);
    if (err) {
        reply_begin_error(call, err);
        return;
    }
    struct store_upload_info info;
    char task_id[STORE_UPLOAD_TASK_ID_MAX] = "";
    err = patch_locked(call, u, &info, task_id, sizeof(task_id));
    store_upload_close(u);
    log_msg(LOG_DEBUG, "api", "upload=%s offset %" PRIu64 " -> %" PRIu64 " of %" PRIu64,
            call->param, offset, info.offset, info.length);
    add_number(req, "Upload-Offset", info.offset);
    if (err) {
        api_upload_reply_finish_error(req, err);
        return;
    }
    if (task_id[0])
        reply_task_headers(req, task_id);
    http_reply_body(req, 204, NULL, NULL, 0);
}
