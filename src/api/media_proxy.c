/*
 * MEDIA_DELIVERY=proxy: a file of the bucket streamed through serve, for clients that cannot
 * reach the bucket. One thread per proxied request runs the store's GET (or HEAD) with the
 * client's Range, If-Range and If-None-Match (no other header of the client is forwarded) and
 * hands the body to the request's loop in bounded pieces (http_stream_*); the store's status
 * (200, 206, 304, 412, 416) and validators are passed back, with our Content-Type.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "core/alloc.h"
#include "core/log.h"
#include "http/http.h"
#include "store/store.h"
#include "util/uuid.h"

/* The longest value of a forwarded header; longer ones are not forwarded. */
#define PROXY_HEADER_MAX 256

struct proxy_job {
    const struct store *store;
    struct http_stream *stream;
    char id[UUID_STR_LEN + 1];
    char *ext, *content_type, *disposition;
    char *range, *if_range, *if_none_match;
    bool head;
    bool started;
};

/* A copy of the request header when it is short printable ASCII (nothing to smuggle), else NULL. */
static char *forwardable(struct http_request *req, const char *name)
{
    const char *v = http_request_header(req, name);
    if (!v)
        return NULL;
    size_t n = strlen(v);
    if (n == 0 || n > PROXY_HEADER_MAX)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x20 || v[i] > 0x7E)
            return NULL;
    return xstrdup(v);
}

static void job_free(struct proxy_job *j)
{
    free(j->ext);
    free(j->content_type);
    free(j->disposition);
    free(j->range);
    free(j->if_range);
    free(j->if_none_match);
    free(j);
}

/* The store's head as the client sees it, like nginx for a local file. */
static bool start_reply(struct proxy_job *j, const struct store_object_head *h)
{
    struct http_header hs[8];
    size_t n = 0;
    char length[24];
    int status = h->status;
    bool content = status == 200 || status == 206;
    if (content) {
        hs[n++] = (struct http_header){"Content-Type", j->content_type};
        if (j->disposition)
            hs[n++] = (struct http_header){"Content-Disposition", j->disposition};
        if (status == 200)
            hs[n++] = (struct http_header){"Accept-Ranges", "bytes"};
    }
    if (content || status == 304) {
        if (h->etag[0])
            hs[n++] = (struct http_header){"ETag", h->etag};
        if (h->last_modified[0])
            hs[n++] = (struct http_header){"Last-Modified", h->last_modified};
    }
    if ((status == 206 || status == 416) && h->content_range[0])
        hs[n++] = (struct http_header){"Content-Range", h->content_range};
    if (content && h->has_length)
        snprintf(length, sizeof length, "%llu", h->length);
    else
        snprintf(length, sizeof length, "0");
    if (status != 304)
        hs[n++] = (struct http_header){"Content-Length", length};
    j->started = true;
    return http_stream_start(j->stream, status, hs, n);
}

static bool on_body(void *ctx, const struct store_object_head *h, const char *p, size_t n)
{
    struct proxy_job *j = ctx;
    if (!j->started && !start_reply(j, h))
        return false;
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
    if (http_stream_start(j->stream, status, hs, missing ? 2 : 3) && !j->head)
        http_stream_write(j->stream, text, strlen(text));
    free(text);
    json_decref(body);
}

static void *proxy_main(void *arg)
{
    struct proxy_job *j = arg;
    struct store_conditions c = {j->range, j->if_range, j->if_none_match};
    struct store_object_head h;
    enum ia_err e = store_get_stream(j->store, j->id, j->ext, j->head ? "HEAD" : "GET", &c,
                                     on_body, j, &h);
    bool complete = e == IA_OK;
    if (!e && !j->started) {
        start_reply(j, &h); /* no body: HEAD, 304, 412, 416, an empty object */
    } else if (e && !j->started) {
        reply_error(j, e); /* nothing sent yet: a whole answer */
        complete = true;
    }
    struct http_stream *stream = j->stream;
    job_free(j);
    http_stream_end(stream, complete); /* the last use of the stream */
    return NULL;
}

void api_proxy_object(struct api_call *call, const char *ext, const char *content_type,
                      const char *disposition)
{
    struct http_request *req = call->req;
    struct proxy_job *j = xcalloc(1, sizeof *j);
    j->store = call->t->app->store;
    snprintf(j->id, sizeof j->id, "%s", call->param);
    j->ext = xstrdup(ext);
    j->content_type = xstrdup(content_type);
    j->disposition = disposition ? xstrdup(disposition) : NULL;
    j->range = forwardable(req, "Range");
    j->if_range = forwardable(req, "If-Range");
    j->if_none_match = forwardable(req, "If-None-Match");
    j->head = http_request_method(req) == HTTP_HEAD;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    j->stream = http_stream_take(req);
    pthread_t tid;
    if (!j->stream || pthread_create(&tid, &attr, proxy_main, j) != 0) {
        log_msg(LOG_ERROR, "api", "cannot start a proxy thread");
        struct http_stream *stream = j->stream;
        if (stream)
            reply_error(j, IA_ERR_STORAGE_UNAVAILABLE);
        job_free(j);
        if (stream)
            http_stream_end(stream, true);
    }
    pthread_attr_destroy(&attr);
}
