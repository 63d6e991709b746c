/*
 * Deleting videos: DELETE /videos/{video_id}, and the deletions of retention (retention.c).
 * The order is the same for both: the tombstone and the task's records first
 * (queue_video_forget: a task still running can then write nothing, stops at its next lease
 * renewal, and removes what it publishes), then every file of the video. Each deletion is
 * logged with the video id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "core/alloc.h"
#include "core/log.h"
#include "http/http.h"
#include "queue/queue.h"
#include "store/store.h"
#include "util/uuid.h"

/* The records of one video: tombstone, result, accepted record, fence, idempotency keys. */
static enum ia_err forget_records(struct queue *q, const char *id, bool *existed, long long *idem)
{
    enum ia_err err = queue_video_forget(q, id, existed);
    if (!err)
        err = queue_idempotency_forget_task(q, id, idem);
    if (err)
        log_msg(LOG_WARN, "api", "video=%s deletion stopped: %s", id, ia_err_code(err));
    return err;
}

void api_video_delete(struct api_call *call)
{
    const char *id = call->param;
    if (!uuid_is_canonical(id, strlen(id))) {
        api_reply_error(call->req, 404, "video_not_found", "no such video");
        return;
    }
    struct store_video_id v;
    snprintf(v.id, sizeof(v.id), "%s", id);
    bool existed;
    long long idem = 0;
    size_t files = 0;
    enum ia_err err = forget_records(call->t->queue, id, &existed, &idem);
    if (!err)
        err = store_remove_videos(call->t->app->store, &v, 1, &files);
    if (err) {
        api_reply_ia_error(call->req, err);
        return;
    }
    if (!existed && files == 0) { /* nothing to stop: leave no tombstone behind */
        queue_video_unforget(call->t->queue, id);
        api_reply_error(call->req, 404, "video_not_found", "no such video");
        return;
    }
    log_msg(LOG_INFO, "api",
            "video=%s deleted by DELETE: %zu file(s), task records %s, "
            "%lld idempotency key(s)",
            id, files, existed ? "removed" : "none", idem);
    http_reply_body(call->req, 204, NULL, NULL, 0);
}

size_t api_videos_expire(const struct app *app, struct queue *q, const struct store_video_id *ids,
                         size_t n, long long days)
{
    size_t forgotten = 0, *removed = xcalloc(n ? n : 1, sizeof(*removed));
    bool existed;
    while (forgotten < n && !queue_video_forget(q, ids[forgotten].id, &existed))
        forgotten++;
    enum ia_err err = store_remove_videos(app->store, ids, forgotten, removed);
    for (size_t i = 0; i < forgotten; i++)
        log_msg(LOG_INFO, "retention",
                "video=%s deleted by retention (older than %lld day(s)): "
                "%zu file(s)%s",
                ids[i].id, days, removed[i], err ? " (some remain)" : "");
    free(removed);
    return forgotten;
}
