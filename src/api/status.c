/* GET /status/{task_id}: the task's state in the seed's three values, plus stage and progress. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "http/http.h"
#include "queue/queue.h"
#include "util/uuid.h"

static json_t *status_success(const struct app *app, const struct task_status *st)
{
    const char *video_id = json_string_value(json_object_get(st->result, "video_id"));
    if (!video_id || !uuid_is_canonical(video_id, strlen(video_id)))
        return json_pack("{s:s, s:s, s:s}", "status", "failed", "error",
                         "the task's result is malformed", "code", "internal_error");
    char *video_url = api_public_url(app, "/stream/", video_id, "");
    char *metadata_url = api_public_url(app, "/metadata/", video_id, "");
    json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "status", "success", "video_id", video_id,
                             "video_url", video_url, "metadata_url", metadata_url);
    free(video_url);
    free(metadata_url);
    return body;
}

static json_t *status_body(const struct app *app, const struct task_status *st)
{
    switch (st->state) {
    case TASK_SUCCEEDED:
        return status_success(app, st);
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

void api_status(struct api_call *call)
{
    if (!uuid_is_canonical(call->param, strlen(call->param))) {
        api_reply_error(call->req, 404, "task_not_found", "no such task");
        return;
    }
    struct task_status st;
    memset(&st, 0, sizeof(st));
    enum ia_err err = queue_status(call->t->queue, call->param, &st);
    if (err)
        api_reply_ia_error(call->req, err);
    else if (st.state == TASK_UNKNOWN)
        api_reply_error(call->req, 404, "task_not_found", "no such task");
    else
        api_reply_json(call->req, 200, status_body(call->t->app, &st));
    task_status_cleanup(&st);
}
