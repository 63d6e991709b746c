/* GET /status/{task_id}: the task's state in the seed's three values, plus stage and progress. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/internal.h"
#include "api/status_cache.h"
#include "core/media_url.h"
#include "http/http.h"
#include "queue/queue.h"
#include "store/store.h"
#include "util/os.h"
#include "util/uuid.h"

static json_t *status_success(const struct app *app, const char *video_id, enum ia_err *err)
{
    if (!uuid_is_canonical(video_id, strlen(video_id)))
        return json_pack("{s:s, s:s, s:s}", "status", "failed", "error",
                         "the task's result is malformed", "code", "internal_error");
    char *video_url = media_url_public(app->cfg, "/stream/", video_id, "");
    char *metadata_url = media_url_public(app->cfg, "/metadata/", video_id, "");
    json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "status", "success", "video_id", video_id,
                             "video_url", video_url, "metadata_url", metadata_url);
    free(video_url);
    free(metadata_url);
    *err = api_add_analysis_urls(app, video_id, body);
    if (*err) {
        json_decref(body);
        return NULL;
    }
    return body;
}

/* The body of a known task; NULL with *err when the bucket cannot be asked about its files. */
static json_t *status_body(const struct app *app, const struct task_status *st,
                           const char *video_id, enum ia_err *err)
{
    switch (st->state) {
    case TASK_SUCCEEDED:
        return status_success(app, video_id, err);
    case TASK_FAILED:
        return json_pack("{s:s, s:s, s:s}", "status", "failed", "error", st->error_message,
                         "code", st->error_code);
    case TASK_RETRYING:
        return json_pack("{s:s, s:s, s:f}", "status", "processing", "stage", "retrying",
                         "progress", st->progress);
    default:
        return json_pack("{s:s, s:s, s:f}", "status", "processing", "stage",
                         st->stage[0] ? st->stage : "queued", "progress", st->progress);
    }
}

/* Reads the state from Redis, remembering finished tasks; video_id is filled on success. */
static enum ia_err status_lookup(struct api_call *call, struct task_status *st, char *video_id,
                                 size_t len)
{
    const char *id = call->param;
    int64_t now = os_monotonic_ms();
    if (status_cache_get(call->t->app->status_cache, id, now, st, video_id, len))
        return IA_OK;
    enum ia_err err = queue_status(call->t->queue, id, st);
    if (err || (st->state != TASK_SUCCEEDED && st->state != TASK_FAILED))
        return err;
    const char *vid = json_string_value(json_object_get(st->result, "video_id"));
    snprintf(video_id, len, "%s", vid ? vid : "");
    status_cache_put(call->t->app->status_cache, id, st, video_id, now);
    return IA_OK;
}

/*
 * IA_ERR_NOT_FOUND for a success whose video is gone (DELETE /videos, retention) while this
 * process's cache still remembers it: the metadata is published before SUCCESS is written, so a
 * success without it was deleted. IA_ERR_STORAGE_UNAVAILABLE when the bucket cannot tell.
 */
static enum ia_err check_video(const struct api_call *call, const struct task_status *st,
                               const char *video_id)
{
    if (st->state != TASK_SUCCEEDED || !uuid_is_canonical(video_id, strlen(video_id)))
        return IA_OK;
    return store_lookup(call->t->app->store, video_id, "json");
}

void api_status(struct api_call *call)
{
    if (!uuid_is_canonical(call->param, strlen(call->param))) {
        api_reply_error(call->req, 404, "task_not_found", "no such task");
        return;
    }
    struct task_status st;
    char video_id[UUID_STR_LEN + 1] = "";
    memset(&st, 0, sizeof(st));
    /* A finished task in the cache is answered on the loop (its files are stat'ed, as nginx
     * would); Redis and the bucket are asked on the quick pool. */
    const struct app *app = call->t->app;
    bool cached = status_cache_get(app->status_cache, call->param, os_monotonic_ms(), &st,
                                   video_id, sizeof(video_id));
    if ((!cached || store_is_remote(app->store)) && api_offload(call, HTTP_POOL_QUICK))
        return;
    enum ia_err err = cached ? IA_OK : status_lookup(call, &st, video_id, sizeof(video_id));
    if (!err && st.state == TASK_UNKNOWN)
        err = IA_ERR_NOT_FOUND;
    if (!err)
        err = check_video(call, &st, video_id);
    json_t *body = err ? NULL : status_body(call->t->app, &st, video_id, &err);
    if (err == IA_ERR_NOT_FOUND)
        api_reply_error(call->req, 404, "task_not_found", "no such task");
    else if (err)
        api_reply_ia_error(call->req, err);
    else
        api_reply_json(call->req, 200, body);
    task_status_cleanup(&st);
}
