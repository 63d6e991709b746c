/*
 * Reviewer decisions: PATCH /videos/{video_id}/events/{event_id} confirms or dismisses one event
 * with a short note, GET /videos/{video_id}/decisions shows them all. They are kept beside the
 * video (processed_<id>.decisions.json, store_list.c), changed under a lock on its metadata so
 * that two reviewers' writes never lose one another, and removed with the video.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/auth.h"
#include "api/internal.h"
#include "api/video_index.h"
#include "core/log.h"
#include "http/http.h"
#include "store/store.h"

#define DECISIONS_READ_MAX (4 * 1024 * 1024)

/* The current decisions document of a locked video, or NULL when it has none (or a bad one). */
static json_t *decisions_read(const struct store *s, const char *video_id)
{
    struct stat st;
    int fd = store_open(s, video_id, STORE_DECISIONS_EXT, &st);
    if (fd < 0)
        return NULL;
    json_error_t jerr;
    json_t *doc = st.st_size <= DECISIONS_READ_MAX ? json_loadfd(fd, 0, &jerr) : NULL;
    close(fd);
    return doc;
}

/* Writes the decision under the video's lock; IA_ERR_NOT_FOUND when the video went away. */
static enum ia_err decision_store(const struct store *s, const char *video_id, const char *event_id,
                                  const struct api_decision *d, const char *who, const char *when)
{
    int lock = store_video_lock(s, video_id);
    if (lock < 0)
        return IA_ERR_NOT_FOUND;
    json_t *old = decisions_read(s, video_id);
    json_t *doc = api_decisions_apply(old, video_id, event_id, d, who, when);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    enum ia_err err = store_publish_small(s, video_id, STORE_DECISIONS_EXT, text, strlen(text));
    store_video_unlock(lock);
    free(text);
    json_decref(doc);
    json_decref(old);
    return err;
}

void api_decision_patch(struct api_call *call)
{
    const struct app *app = call->t->app;
    const struct video_summary *v = video_index_get(call->t->video_index, app->store, call->param);
    if (!v) {
        api_reply_error(call->req, 404, "video_not_found", "no such video");
        return;
    }
    if (!json_object_get(v->events, call->param2)) {
        api_reply_error(call->req, 404, "event_not_found", "this video has no such event");
        return;
    }
    size_t len;
    const unsigned char *body = http_request_body(call->req, &len);
    struct api_decision d;
    const char *why;
    if (api_parse_decision_body(body, len, &d, &why)) {
        api_reply_error(call->req, 422, "invalid_input", why);
        return;
    }
    char who[128], when[40];
    bool named = api_auth_request_name(app->auth, call->req, who, sizeof(who));
    log_iso_now(when, sizeof(when));
    enum ia_err err =
        decision_store(app->store, call->param, call->param2, &d, named ? who : NULL, when);
    if (err == IA_ERR_NOT_FOUND) {
        api_reply_error(call->req, 404, "video_not_found", "no such video");
        return;
    }
    if (err) {
        api_reply_ia_error(call->req, err);
        return;
    }
    log_msg(LOG_INFO, "api", "video=%s event=%s %s by %s", call->param, call->param2, d.decision,
            named ? who : "-");
    api_reply_json(call->req, 200,
                   json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s}", "video_id", call->param, "event_id",
                             call->param2, "decision", d.decision, "note", d.note, "decided_by",
                             named ? who : NULL, "decided_at", when));
}

void api_decisions_get(struct api_call *call)
{
    const struct video_summary *v =
        video_index_get(call->t->video_index, call->t->app->store, call->param);
    if (!v) {
        api_reply_error(call->req, 404, "video_not_found", "no such video");
        return;
    }
    api_reply_json(call->req, 200,
                   json_pack("{s:s, s:O, s:s, s:{s:I, s:I, s:I}}", "video_id", call->param,
                             "decisions", v->decisions, "status",
                             api_review_status_name(video_summary_status(v)), "counts", "events",
                             (json_int_t)json_object_size(v->events), "confirmed",
                             (json_int_t)v->confirmed, "dismissed", (json_int_t)v->dismissed));
}
