/*
 * Reviewer decisions: PATCH /videos/{video_id}/events/{event_id} confirms or dismisses one event
 * with a short note, GET /videos/{video_id}/decisions shows them all. They are kept beside the
 * video (processed_<id>.decisions.json, store_list.c), changed under a lock (a flock on its
 * metadata; on a bucket, which has no conditional PUT on every store, a lock in Redis shared by
 * every API host) so that two reviewers' writes never lose one another, and removed with the
 * video.
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
#include "queue/queue.h"
#include "store/store.h"
#include "util/os.h"
#include "util/uuid.h"

#define DECISIONS_READ_MAX (4 * 1024 * 1024)
/*
 * On a bucket the writers of one video's decisions, on any host, take a lock in Redis first.
 * It expires after DECISIONS_LOCK_MS (a holder that died blocks the others no longer), and is
 * renewed just before the PUT, which lasts at most STORE_SMALL_TIMEOUT_S: a renewal that
 * succeeds proves the lock was held since the read, and the write ends before it can expire.
 * A writer waits for it at most DECISIONS_WAIT_MS, then answers 503 with Retry-After.
 */
#define DECISIONS_LOCK_MS (3LL * STORE_SMALL_TIMEOUT_S * 1000)
#define DECISIONS_WAIT_MS 10000
#define DECISIONS_POLL_MS 20

/* The current decisions document into *doc, NULL when it has none (or a bad or too large one,
 * which the write replaces); an error only when it cannot be read (a bucket that fails). */
static enum ia_err decisions_read(const struct store *s, const char *video_id, json_t **doc)
{
    *doc = NULL;
    char *text;
    size_t len;
    enum ia_err err =
        store_read_small(s, video_id, STORE_DECISIONS_EXT, DECISIONS_READ_MAX, &text, &len, NULL);
    if (err == IA_ERR_NOT_FOUND || err == IA_ERR_TOO_LARGE)
        return IA_OK; /* a new document (a too large one is replaced, as before) */
    if (err)
        return err;
    json_error_t jerr;
    *doc = json_loadb(text, len, 0, &jerr);
    free(text);
    return IA_OK;
}

/* Reads, changes and publishes the document of a video whose writers are serialized. */
static enum ia_err decision_write(const struct store *s, const char *video_id, const char *event_id,
                                  const struct api_decision *d, const char *who, const char *when,
                                  struct queue *q, const char *lock_name, const char *token)
{
    json_t *old;
    enum ia_err err = decisions_read(s, video_id, &old);
    if (err)
        return err;
    json_t *doc = api_decisions_apply(old, video_id, event_id, d, who, when);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    bool held = true;
    if (q && queue_lock_renew(q, lock_name, token, DECISIONS_LOCK_MS, &held)) {
        err = IA_ERR_BROKER;
    } else if (!held) { /* expired: another writer may have read meanwhile, so retry */
        log_msg(LOG_WARN, "api", "video=%s decisions lock lost before the write", video_id);
        err = IA_ERR_STORAGE_UNAVAILABLE;
    }
    if (!err)
        err = store_publish_small(s, video_id, STORE_DECISIONS_EXT, text, strlen(text));
    free(text);
    json_decref(doc);
    json_decref(old);
    return err;
}

/* Takes the video's decisions lock in Redis (waiting up to DECISIONS_WAIT_MS). */
static enum ia_err decisions_lock(struct queue *q, const char *lock_name, const char *token)
{
    int64_t until = os_monotonic_ms() + DECISIONS_WAIT_MS;
    for (;;) {
        bool got = false;
        if (queue_lock_take(q, lock_name, token, DECISIONS_LOCK_MS, &got))
            return IA_ERR_BROKER;
        if (got)
            return IA_OK;
        if (os_monotonic_ms() >= until)
            return IA_ERR_STORAGE_UNAVAILABLE;
        struct timespec pause = {0, DECISIONS_POLL_MS * 1000000L};
        nanosleep(&pause, NULL);
    }
}

/*
 * Writes the decision under the video's lock (a flock on its metadata locally, a lock in Redis
 * on a bucket); IA_ERR_NOT_FOUND when the video went away.
 */
static enum ia_err decision_store(struct api_call *call, const char *video_id, const char *event_id,
                                  const struct api_decision *d, const char *who, const char *when)
{
    const struct store *s = call->t->app->store;
    if (!store_is_remote(s)) {
        int lock = store_video_lock(s, video_id);
        if (lock < 0)
            return IA_ERR_NOT_FOUND;
        enum ia_err err = decision_write(s, video_id, event_id, d, who, when, NULL, NULL, NULL);
        store_video_unlock(lock);
        return err;
    }
    char lock_name[64], token[UUID_STR_LEN + 1];
    snprintf(lock_name, sizeof(lock_name), "decisions-%s", video_id);
    uuid_v4_new(token);
    struct queue *q = call->t->queue;
    enum ia_err err = decisions_lock(q, lock_name, token);
    if (err) {
        log_msg(LOG_WARN, "api", "video=%s decisions lock not taken: %s", video_id,
                ia_err_code(err));
        return err;
    }
    err = store_lookup(s, video_id, "json"); /* deleted while we waited? */
    if (!err)
        err = decision_write(s, video_id, event_id, d, who, when, q, lock_name, token);
    queue_lock_release(q, lock_name, token); /* an expired one is left to its new owner */
    return err;
}

/* 404 video_not_found, or the error that kept the store from telling (503 for a bucket). */
static void reply_lookup_error(struct api_call *call, enum ia_err err)
{
    if (err == IA_ERR_NOT_FOUND)
        api_reply_error(call->req, 404, "video_not_found", "no such video");
    else
        api_reply_ia_error(call->req, err);
}

void api_decision_patch(struct api_call *call)
{
    const struct app *app = call->t->app;
    const struct video_summary *v;
    enum ia_err err = video_index_get(call->t->video_index, app->store, call->param, &v);
    if (err) {
        reply_lookup_error(call, err);
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
    err = decision_store(call, call->param, call->param2, &d, named ? who : NULL, when);
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
    const struct video_summary *v;
    enum ia_err err = video_index_get(call->t->video_index, call->t->app->store, call->param, &v);
    if (err) {
        reply_lookup_error(call, err);
        return;
    }
    api_reply_json(call->req, 200,
                   json_pack("{s:s, s:O, s:s, s:{s:I, s:I, s:I}}", "video_id", call->param,
                             "decisions", v->decisions, "status",
                             api_review_status_name(video_summary_status(v)), "counts", "events",
                             (json_int_t)json_object_size(v->events), "confirmed",
                             (json_int_t)v->confirmed, "dismissed", (json_int_t)v->dismissed));
}
