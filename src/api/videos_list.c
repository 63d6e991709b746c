/*
 * GET /videos: the complete interviews, newest first or highest score first, filtered by review
 * status and alert level, a page at a time with a cursor (the sort keys of the last one shown,
 * so that videos published meanwhile neither repeat nor shift a page). The facts come from the
 * per-thread video index (video_index.h), itself from the files.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "api/video_index.h"
#include "core/alloc.h"
#include "core/media_url.h"
#include "http/http.h"

/* The sort keys of a video, as a cursor holds them. */
static void keys_of(const struct video_summary *v, struct api_list_cursor *k)
{
    k->score = v->score;
    k->completed_us = v->completed_us;
    memcpy(k->id, v->files.id, sizeof(k->id));
}

/* <0 when a comes first in the list, >0 when b does (both orders are descending). */
static int keys_cmp(enum api_list_sort sort, const struct api_list_cursor *a,
                    const struct api_list_cursor *b)
{
    if (sort == LIST_SCORE && a->score != b->score)
        return a->score > b->score ? -1 : 1;
    if (a->completed_us != b->completed_us)
        return a->completed_us > b->completed_us ? -1 : 1;
    return -strcmp(a->id, b->id);
}

/* qsort_r's comparator; ctx points to the sort. */
static int summary_order(const void *pa, const void *pb, void *ctx)
{
    struct api_list_cursor a, b;
    keys_of(*(const struct video_summary *const *)pa, &a);
    keys_of(*(const struct video_summary *const *)pb, &b);
    return keys_cmp(*(const enum api_list_sort *)ctx, &a, &b);
}

static bool matches(const struct api_list_query *q, const struct video_summary *v)
{
    if (q->status != REVIEW_ANY && video_summary_status(v) != q->status)
        return false;
    if (q->level >= 0 && v->level != q->level)
        return false;
    if (q->has_cursor) {
        struct api_list_cursor k;
        keys_of(v, &k);
        return keys_cmp(q->sort, &k, &q->cursor) > 0;
    }
    return true;
}

static json_t *item_json(const struct app *app, const struct video_summary *v)
{
    char *thumb = media_url_public(app->cfg, "/thumbnail/", v->files.id, "");
    json_t *o = json_pack(
        "{s:s, s:s?, s:f, s:s, s:s, s:s?, s:o, s:I, s:I, s:I, s:s}", "video_id", v->files.id,
        "completed_at", v->completed_at[0] ? v->completed_at : NULL, "duration", v->duration,
        "source", v->source, "status", api_review_status_name(video_summary_status(v)),
        "alert_level", v->level >= 0 && v->level < 3 ? api_level_name(v->level) : NULL, "score",
        v->score >= 0 ? json_integer(v->score) : json_null(), "events",
        (json_int_t)json_object_size(v->events), "confirmed", (json_int_t)v->confirmed, "dismissed",
        (json_int_t)v->dismissed, "thumbnail_url", thumb);
    free(thumb);
    return o;
}

void api_videos_list(struct api_call *call)
{
    struct http_request *req = call->req;
    struct api_list_query q;
    const char *why = api_parse_list_query(
        http_request_query_param(req, "status"), http_request_query_param(req, "level"),
        http_request_query_param(req, "sort"), http_request_query_param(req, "limit"),
        http_request_query_param(req, "cursor"), &q);
    if (why) {
        api_reply_error(req, 422, "invalid_input", why);
        return;
    }
    struct video_index *ix = call->t->video_index;
    enum ia_err err = video_index_refresh(ix, call->t->app->store);
    if (err) {
        api_reply_ia_error(req, err);
        return;
    }
    size_t n = video_index_count(ix), total = 0;
    const struct video_summary **hits = n ? xmalloc(n * sizeof(*hits)) : NULL;
    for (size_t i = 0; i < n; i++)
        if (matches(&q, video_index_at(ix, i)))
            hits[total++] = video_index_at(ix, i);
    if (total)
        qsort_r(hits, total, sizeof(*hits), summary_order, &q.sort);
    json_t *videos = json_array();
    size_t shown = total < (size_t)q.limit ? total : (size_t)q.limit;
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(videos, item_json(call->t->app, hits[i]));
    char cursor[128] = "";
    if (shown < total) {
        struct api_list_cursor last;
        keys_of(hits[shown - 1], &last);
        api_list_cursor(q.sort, &last, cursor, sizeof(cursor));
    }
    free(hits);
    api_reply_json(req, 200,
                   json_pack("{s:o, s:s?, s:I}", "videos", videos, "next_cursor",
                             cursor[0] ? cursor : NULL, "remaining", (json_int_t)(total - shown)));
}
