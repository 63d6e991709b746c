/*
 * MEDIA_DELIVERY=proxy: a file of the bucket streamed through serve, for clients that cannot
 * reach the bucket. The handler has the object's size, ETag and Last-Modified from its HEAD and
 * decides from the client's Range, If-Range and If-None-Match exactly as for a local file
 * (http_reply_decide(): nginx's answers, 304 and 416 at once). For a body, one thread per
 * request GETs the decided bytes from the bucket (a canonical Range of ours and If-Match with
 * the ETag seen, so that a replaced object is never spliced; no header of the client goes to
 * the bucket) and hands them to the request's loop in bounded pieces (http_stream_*).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "core/alloc.h"
#include "core/log.h"
#include "http/http.h"
#include "store/store.h"
#include "util/uuid.h"

struct proxy_job {
    const struct store *store;
    struct http_stream *stream;
    char id[UUID_STR_LEN + 1];
    char *ext, *content_type, *disposition;
    struct store_object_head obj; /* from the handler's HEAD */
    int status;                   /* 200 or 206, decided by the handler */
    unsigned long long start, len;
    unsigned long long sent;
    bool started;
};

static void job_free(struct proxy_job *j)
{
    free(j->ext);
    free(j->content_type);
    free(j->disposition);
    free(j);
}

/* Our head for the decided status and bytes, like http_reply_file() for a local file. */
static bool start_reply(struct proxy_job *j)
{
    struct http_header hs[8];
    size_t n = 0;
    char length[24], range[96];
    hs[n++] = (struct http_header){"Content-Type", j->content_type};
    if (j->disposition)
        hs[n++] = (struct http_header){"Content-Disposition", j->disposition};
    snprintf(length, sizeof length, "%llu", j->len);
    hs[n++] = (struct http_header){"Content-Length", length};
    if (j->obj.last_modified[0])
        hs[n++] = (struct http_header){"Last-Modified", j->obj.last_modified};
    hs[n++] = (struct http_header){"ETag", j->obj.etag};
    if (j->status == 206) {
        snprintf(range, sizeof range, "bytes %llu-%llu/%llu", j->start, j->start + j->len - 1,
                 j->obj.length);
        hs[n++] = (struct http_header){"Content-Range", range};
    } else {
        hs[n++] = (struct http_header){"Accept-Ranges", "bytes"};
    }
    j->started = true;
    return http_stream_start(j->stream, j->status, hs, n);
}

static bool on_body(void *ctx, const struct store_object_head *h, const char *p, size_t n)
{
    struct proxy_job *j = ctx;
    if (n == 0)
        return !j->started || http_stream_flush(j->stream);
    /* The store must send what was asked: else nothing goes out (and an error is answered). */
    if (h->status != (j->status == 206 ? 206 : 200) || j->sent + n > j->len)
        return false;
    if (!j->started && !start_reply(j))
        return false;
    j->sent += n;
    return http_stream_write(j->stream, p, n);
}

/* An error before any byte was sent: our JSON body. */
static void reply_error(struct proxy_job *j, enum ia_err e)
{
    bool missing = e == IA_ERR_NOT_FOUND;
    int status = missing ? 404 : 503;
    json_t *body = missing ? json_pack("{s:s, s:s}", "detail", "no such video", "code",
                                       "video_not_found")
                           : json_pack("{s:s, s:s}", "detail", ia_strerror(e), "code",
                                       ia_err_code(IA_ERR_STORAGE_UNAVAILABLE));
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text)
        abort();
    char length[24];
    snprintf(length, sizeof length, "%zu", strlen(text));
    struct http_header hs[3] = {{"Content-Type", "application/json"}, {"Content-Length", length},
                                {"Retry-After", "1"}};
    if (http_stream_start(j->stream, status, hs, missing ? 2 : 3))
        http_stream_write(j->stream, text, strlen(text));
    free(text);
    json_decref(body);
}

static void *proxy_main(void *arg)
{
    struct proxy_job *j = arg;
    char range[64];
    snprintf(range, sizeof range, "bytes=%llu-%llu", j->start, j->start + j->len - 1);
    /* The whole object needs no Range: a 200 answer, as for any GET. */
    struct store_conditions c = {j->status == 206 ? range : NULL,
                                 j->obj.etag[0] ? j->obj.etag : NULL};
    struct store_object_head h;
    enum ia_err e =
        store_get_stream(j->store, j->id, j->ext, "GET", &c, on_body, j, &h);
    bool complete = e == IA_OK && j->sent == j->len;
    if (!j->started) {
        /* Nothing went out: the object vanished (404), changed since the HEAD (412 from
         * If-Match) or the bucket failed; a whole answer that the client may retry. */
        if (e == IA_OK || e == IA_ERR_IO)
            e = IA_ERR_STORAGE_UNAVAILABLE;
        log_msg(LOG_WARN, "api", "proxy of video=%s .%s: nothing to send (%s, status %d)", j->id,
                j->ext, ia_err_code(e), h.status);
        reply_error(j, e);
        complete = true;
    }
    struct http_stream *stream = j->stream;
    job_free(j);
    http_stream_end(stream, complete); /* the last use of the stream */
    return NULL;
}

void api_proxy_object(struct api_call *call, const char *ext, const char *content_type,
                      const char *disposition, const struct store_object_head *obj)
{
    struct http_request *req = call->req;
    uint64_t start, len;
    int status = http_reply_decide(req, obj->length, obj->etag, obj->last_modified, &start, &len);
    if (!status)
        return; /* 304 or 416, answered */
    struct proxy_job *j = xcalloc(1, sizeof *j);
    j->store = call->t->app->store;
    snprintf(j->id, sizeof j->id, "%s", call->param);
    j->ext = xstrdup(ext);
    j->content_type = xstrdup(content_type);
    j->disposition = disposition ? xstrdup(disposition) : NULL;
    j->obj = *obj;
    j->status = status;
    j->start = start;
    j->len = len;
    j->stream = http_stream_take(req);
    if (!j->stream) {
        job_free(j);
        return;
    }
    if (http_request_method(req) == HTTP_HEAD || len == 0) {
        start_reply(j); /* the head says it all: no request to the bucket */
        struct http_stream *stream = j->stream;
        job_free(j);
        http_stream_end(stream, true);
        return;
    }
    if (!http_stream_run(j->stream, proxy_main, j)) {
        log_msg(LOG_ERROR, "api", "cannot start a proxy thread");
        struct http_stream *stream = j->stream;
        reply_error(j, IA_ERR_STORAGE_UNAVAILABLE);
        job_free(j);
        http_stream_end(stream, true);
    }
}
