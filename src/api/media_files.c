/*
 * The endpoints that deliver stored files: stream, download, metadata, thumbnail, processed, and
 * what the analysis adds beside a video: its events as WebVTT, the review rendition, and one
 * evidence frame per event.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/internal.h"
#include "api/video_index.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/media_url.h"
#include "http/http.h"
#include "store/store.h"
#include "util/uuid.h"

/* A file the analysis adds: a video that exists may lack it (analysis or REVIEW_VIDEO off). */
struct media_part {
    const char *code; /* of the 404 when the video exists but the part does not */
    const char *detail;
};

static const struct media_part events_part = {
    "analysis_not_found", "this video has no analysis (it was turned off for it)"};
static const struct media_part review_part = {
    "review_not_found", "this video has no review rendition (REVIEW_VIDEO off, or no analysis)"};
static const struct media_part evidence_part = {"event_not_found", "this video has no such event"};

/* 404 for a missing file: the part's own code when the video itself exists; 503 when the bucket
 * cannot tell. */
static void reply_missing(struct api_call *call, const struct media_part *part)
{
    const struct store *store = call->t->app->store;
    enum ia_err e = part ? store_lookup(store, call->param, "json") : IA_ERR_NOT_FOUND;
    if (e == IA_OK)
        api_reply_error(call->req, 404, part->code, part->detail);
    else if (e == IA_ERR_NOT_FOUND)
        api_reply_error(call->req, 404, "video_not_found", "no such video");
    else
        api_reply_ia_error(call->req, e);
}

/*
 * A file in the bucket: checked with a HEAD first (a missing object answers our 404 with its
 * stable code, an unreachable bucket 503, never S3's XML), then a 302 to a presigned URL for
 * the request's own method, or streamed through serve (MEDIA_DELIVERY=proxy).
 */
static void deliver_remote(struct api_call *call, const char *ext, const char *content_type,
                           const char *disposition, const struct media_part *part)
{
    const struct app *app = call->t->app;
    struct store_object_head obj;
    enum ia_err e = store_lookup_head(app->store, call->param, ext, &obj);
    if (e == IA_ERR_NOT_FOUND) {
        reply_missing(call, part);
        return;
    }
    if (e) {
        api_reply_ia_error(call->req, e);
        return;
    }
    if (strcmp(app->cfg->media_delivery, "proxy") == 0) {
        api_proxy_object(call, ext, content_type, disposition, &obj);
        return;
    }
    bool head = http_request_method(call->req) == HTTP_HEAD;
    char *url = store_presign(app->store, head ? "HEAD" : "GET", call->param, ext,
                              app->cfg->signed_url_ttl_s, disposition, content_type);
    if (!url) {
        api_reply_ia_error(call->req, IA_ERR_INTERNAL);
        return;
    }
    http_reply_header(call->req, "Location", url);
    http_reply_header(call->req, "Cache-Control", "no-store");
    http_reply_body(call->req, 302, NULL, NULL, 0);
    free(url);
}

/*
 * Answers 404 unless the id is canonical and the file processed_<id>.<ext> exists; then delivers
 * it (Range, conditional requests, HEAD). part is NULL for the files every video has.
 */
static void deliver(struct api_call *call, const char *ext, const char *content_type,
                    const char *disposition, const struct media_part *part)
{
    char value[160];
    if (disposition)
        snprintf(value, sizeof(value), "%s; filename=\"processed_%s.%s\"", disposition,
                 call->param, ext);
    if (store_is_remote(call->t->app->store)) {
        deliver_remote(call, ext, content_type, disposition ? value : NULL, part);
        return;
    }
    struct stat st;
    int fd = store_open(call->t->app->store, call->param, ext, &st);
    if (fd < 0) {
        reply_missing(call, part);
        return;
    }
    if (disposition)
        http_reply_header(call->req, "Content-Disposition", value);
    http_reply_file(call->req, fd, &st, content_type);
}

void api_stream(struct api_call *call)
{
    deliver(call, "mp4", "video/mp4", "inline", NULL);
}

void api_download(struct api_call *call)
{
    deliver(call, "mp4", "video/mp4", "attachment", NULL);
}

void api_download_metadata(struct api_call *call)
{
    deliver(call, "json", "application/json", "attachment", NULL);
}

void api_metadata(struct api_call *call)
{
    deliver(call, "json", "application/json", NULL, NULL);
}

void api_thumbnail(struct api_call *call)
{
    deliver(call, "jpg", "image/jpeg", NULL, NULL);
}

void api_events(struct api_call *call)
{
    deliver(call, "vtt", "text/vtt; charset=utf-8", NULL, &events_part);
}

void api_review(struct api_call *call)
{
    deliver(call, "review.mp4", "video/mp4", "inline", &review_part);
}

/* An event id as the worker names them: "e1" to "e999999", no leading zero. */
static bool event_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n < 2 || n > 7 || id[0] != 'e' || id[1] < '1' || id[1] > '9')
        return false;
    for (size_t i = 2; i < n; i++)
        if (id[i] < '0' || id[i] > '9')
            return false;
    return true;
}

void api_evidence(struct api_call *call)
{
    if (!event_id_valid(call->param2)) {
        reply_missing(call, &evidence_part);
        return;
    }
    char ext[32];
    snprintf(ext, sizeof(ext), "evidence-%s.jpg", call->param2);
    deliver(call, ext, "image/jpeg", NULL, &evidence_part);
}

/* The URLs of the files the analysis adds, listed only when the file exists. */
static const struct {
    const char *name, *ext, *prefix, *suffix;
} analysis_urls[] = {
    {"events_url", "vtt", "/events/", ".vtt"},
    {"review_url", "review.mp4", "/review/", ""},
};

enum ia_err api_add_analysis_urls(const struct app *app, const char *video_id, json_t *obj)
{
    for (size_t i = 0; i < sizeof(analysis_urls) / sizeof(analysis_urls[0]); i++) {
        enum ia_err e = store_lookup(app->store, video_id, analysis_urls[i].ext);
        if (e == IA_ERR_NOT_FOUND)
            continue;
        if (e)
            return e;
        char *url = media_url_public(app->cfg, analysis_urls[i].prefix, video_id, analysis_urls[i].suffix);
        json_object_set_new(obj, analysis_urls[i].name, json_string(url));
        free(url);
    }
    return IA_OK;
}

static void ext_into_set(void *ctx, const char *ext)
{
    json_object_set_new(ctx, ext, json_true());
}

/*
 * Whether the evidence frame ext of the video exists: in the set listed from the bucket when
 * there is one, else a stat of the file. IA_OK, IA_ERR_NOT_FOUND, or the store's error.
 */
static enum ia_err evidence_present(const struct app *app, const char *video_id, const char *ext,
                                    const json_t *listed)
{
    if (listed)
        return json_object_get(listed, ext) ? IA_OK : IA_ERR_NOT_FOUND;
    return store_lookup(app->store, video_id, ext);
}

/* evidence_urls: {event_id: URL} of the events whose evidence frame exists (signed like the rest). */
static enum ia_err add_evidence_urls(struct api_call *call, const char *video_id, json_t *obj)
{
    const struct app *app = call->t->app;
    const struct video_summary *v;
    enum ia_err e = video_index_get(call->t->video_index, app->store, video_id, &v);
    if (e == IA_ERR_NOT_FOUND) /* deleted since /processed looked: no evidence to show */
        return IA_OK;
    if (e || json_object_size(v->events) == 0)
        return e;
    json_t *listed = NULL; /* on a bucket: one listing instead of a HEAD per event */
    if (store_is_remote(app->store)) {
        listed = json_object();
        e = store_list_exts(app->store, video_id, "evidence-", ext_into_set, listed);
    }
    json_t *urls = json_object();
    const char *event_id;
    json_t *kind;
    json_object_foreach(e ? NULL : v->events, event_id, kind)
    {
        char ext[32];
        if (!event_id_valid(event_id))
            continue;
        snprintf(ext, sizeof(ext), "evidence-%s.jpg", event_id);
        e = evidence_present(app, video_id, ext, listed);
        if (e == IA_ERR_NOT_FOUND) {
            e = IA_OK;
            continue;
        }
        if (e)
            break;
        char *suffix = xasprintf("/%s.jpg", event_id);
        char *url = media_url_public(app->cfg, "/evidence/", video_id, suffix);
        json_object_set_new(urls, event_id, json_string(url));
        free(url);
        free(suffix);
    }
    json_decref(listed);
    if (json_object_size(urls))
        json_object_set_new(obj, "evidence_urls", urls);
    else
        json_decref(urls);
    return e;
}

void api_processed(struct api_call *call)
{
    const struct app *app = call->t->app;
    const char *id = call->param;
    enum ia_err e = store_lookup(app->store, id, "json");
    if (e == IA_ERR_NOT_FOUND) {
        api_reply_error(call->req, 404, "video_not_found", "no such video");
        return;
    }
    if (e) {
        api_reply_ia_error(call->req, e);
        return;
    }
    char *video_url = media_url_public(app->cfg, "/stream/", id, "");
    char *download_url = media_url_public(app->cfg, "/download/", id, "");
    char *metadata_url = media_url_public(app->cfg, "/metadata/", id, "");
    char *thumbnail_url = media_url_public(app->cfg, "/thumbnail/", id, "");
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s}", "video_id", id, "video_url", video_url,
                             "download_video_url", download_url, "metadata_url", metadata_url,
                             "thumbnail_url", thumbnail_url);
    free(video_url);
    free(download_url);
    free(metadata_url);
    free(thumbnail_url);
    e = api_add_analysis_urls(app, id, body);
    if (!e)
        e = add_evidence_urls(call, id, body);
    if (e) {
        json_decref(body);
        api_reply_ia_error(call->req, e);
        return;
    }
    api_reply_json(call->req, 200, body);
}
