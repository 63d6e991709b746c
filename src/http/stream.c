/*
 * Streamed replies: a body produced by another thread (an object proxied from the bucket) and
 * sent by the request's loop thread, with backpressure. The producer gathers its writes in a
 * staging buffer of its own (no lock) and hands them over at a flush or once
 * HTTP_STREAM_HANDOVER bytes have gathered; the shared window holds at most HTTP_STREAM_WINDOW
 * bytes, and the loop hands them to the connection once less than a window of its previous
 * piece is left to write, so a stream holds at most about 1 MiB, whatever the speed of either
 * side.
 * The producer blocks while the window is full; the loop never waits for it.
 */
#include "http/internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/alloc.h"
#include "core/log.h"

#define HTTP_STREAM_WINDOW (256u * 1024u)
/* A handover takes the lock and may wake the loop: once per network read, not per 16 KiB. */
#define HTTP_STREAM_HANDOVER (128u * 1024u)

struct http_stream {
    pthread_mutex_t lock; /* guards the fields marked (L) */
    pthread_cond_t cond;  /* the window drained, or the stream ended */
    struct event_base *base;
    struct event *wake; /* made active by the producer */
    struct event *tick; /* each second: is the client still there? */
    struct evhttp_request *ev;
    struct http_request req; /* a copy for the log line: id, route, method, start, path */
    /* (L) */
    int status;
    char **names, **values;
    size_t nheaders;
    bool head_ready, producer_done, complete, gone;
    pthread_t thread; /* the producer, when http_stream_run() made it; joined at the end */
    bool has_thread;
    struct evbuffer *pending;
    /* producer thread only */
    struct evbuffer *staged;
    /* loop thread only */
    bool started, inflight;
    uint64_t bytes;
    struct http_stream *next; /* in the registry */
};

/* Every live stream, so that a stopping loop can end its own before its connections go. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct http_stream *registry;

static void registry_remove(struct http_stream *s)
{
    pthread_mutex_lock(&registry_lock);
    for (struct http_stream **p = &registry; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

static void stream_free(struct http_stream *s)
{
    registry_remove(s);
    event_free(s->wake);
    event_free(s->tick);
    for (size_t i = 0; i < s->nheaders; i++) {
        free(s->names[i]);
        free(s->values[i]);
    }
    free(s->names);
    free(s->values);
    evbuffer_free(s->pending);
    evbuffer_free(s->staged);
    free(s->req.path);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* A piece is handed to the connection while the one before is still being written. */
static void stream_set_low_water(struct http_stream *s, size_t low)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(s->ev);
    if (evcon)
        bufferevent_setwatermark(evhttp_connection_get_bufferevent(evcon), EV_WRITE, low, 0);
}

/* On the loop: the last step, once the producer has ended. Sends what remains and frees s. */
static void stream_finish(struct http_stream *s, bool complete)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(s->ev);
    int status = s->started ? s->status : 500;
    if (!complete && s->started)
        log_msg(LOG_INFO, "http", "req=%s streamed reply cut after %llu bytes", s->req.id,
                (unsigned long long)s->bytes);
    /* Before the send: libevent frees ev at once when the connection is gone. */
    http_request_account(&s->req, status, s->bytes);
    /* The producer has ended the stream: this waits only for its thread to exit (and free
     * its thread-local state, such as libcrypto's). */
    if (s->has_thread)
        pthread_join(s->thread, NULL);
    if (!s->started) {
        /* evhttp frees ev itself when the client is gone. */
        evhttp_send_reply(s->ev, 500, "Internal Server Error", NULL);
    } else {
        if (!complete && evcon)
            evhttp_connection_free_on_completion(evcon); /* a short body: close, no reuse */
        stream_set_low_water(s, 0); /* evhttp's end of a reply waits for an empty buffer */
        evhttp_send_reply_end(s->ev);
    }
    stream_free(s);
}

static void on_written(struct evhttp_connection *evcon, void *arg);

/* On the loop: the head when it is ready, then the next piece when the last one went out. */
static void stream_pump(struct http_stream *s)
{
    bool send_head = false, finish = false, complete = false;
    struct evbuffer *piece = NULL;
    pthread_mutex_lock(&s->lock);
    if (!s->gone && !evhttp_request_get_connection(s->ev)) {
        s->gone = true; /* evhttp let go of the request: the client left */
        pthread_cond_broadcast(&s->cond);
    }
    if (s->head_ready && !s->started && !s->gone) {
        struct evkeyvalq *out = evhttp_request_get_output_headers(s->ev);
        for (size_t i = 0; i < s->nheaders; i++)
            evhttp_add_header(out, s->names[i], s->values[i]);
        evhttp_add_header(out, "X-Request-Id", s->req.id);
        send_head = true;
    }
    if ((s->started || send_head) && !s->inflight && !s->gone &&
        evbuffer_get_length(s->pending) > 0) {
        piece = evbuffer_new();
        if (!piece)
            abort();
        evbuffer_add_buffer(piece, s->pending);
        s->inflight = true;
        pthread_cond_broadcast(&s->cond); /* the window is free again */
    }
    /* Gone: no write callback will come for a piece in flight. */
    if (s->producer_done &&
        (s->gone || (!s->inflight && !piece && evbuffer_get_length(s->pending) == 0))) {
        finish = true;
        complete = s->complete && !s->gone;
    }
    pthread_mutex_unlock(&s->lock);
    if (send_head) {
        evhttp_send_reply_start(s->ev, s->status, NULL);
        s->started = true;
        stream_set_low_water(s, HTTP_STREAM_WINDOW);
    }
    if (piece) {
        s->bytes += evbuffer_get_length(piece);
        evhttp_send_reply_chunk_with_cb(s->ev, piece, on_written, s);
        evbuffer_free(piece);
    }
    if (finish)
        stream_finish(s, complete);
}

static void on_written(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct http_stream *s = arg;
    pthread_mutex_lock(&s->lock);
    s->inflight = false;
    pthread_mutex_unlock(&s->lock);
    stream_pump(s);
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    stream_pump(arg);
}

struct http_stream *http_stream_take(struct http_request *req)
{
    if (http_request_check_replied(req))
        return NULL;
    struct http_stream *s = xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->base = evhttp_connection_get_base(evhttp_request_get_connection(req->ev));
    s->wake = event_new(s->base, -1, 0, on_event, s);
    s->tick = event_new(s->base, -1, EV_PERSIST, on_event, s);
    s->pending = evbuffer_new();
    s->staged = evbuffer_new();
    if (!s->wake || !s->tick || !s->pending || !s->staged)
        abort();
    struct timeval second = {1, 0};
    event_add(s->tick, &second);
    s->ev = req->ev;
    s->req = *req;
    s->req.path = req->path ? xstrdup(req->path) : NULL;
    s->req.query_parsed = false; /* the original's parameters are freed with it */
    TAILQ_INIT(&s->req.query);
    req->replied = true; /* answered by the stream from now on */
    pthread_mutex_lock(&registry_lock);
    s->next = registry;
    registry = s;
    pthread_mutex_unlock(&registry_lock);
    return s;
}

bool http_stream_run(struct http_stream *s, void *(*fn)(void *), void *arg)
{
    s->has_thread = pthread_create(&s->thread, NULL, fn, arg) == 0;
    return s->has_thread;
}

bool http_stream_start(struct http_stream *s, int status, const struct http_header *h, size_t n)
{
    pthread_mutex_lock(&s->lock);
    s->status = status;
    s->names = xcalloc(n ? n : 1, sizeof *s->names);
    s->values = xcalloc(n ? n : 1, sizeof *s->values);
    for (size_t i = 0; i < n; i++) {
        s->names[i] = xstrdup(h[i].name);
        s->values[i] = xstrdup(h[i].value);
    }
    s->nheaders = n;
    s->head_ready = true;
    bool ok = !s->gone;
    event_active(s->wake, EV_READ, 0);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

/* Moves the staged bytes into the window, blocking while it is full; false when the client is
 * gone (the staged bytes are dropped). */
static bool stream_hand_over(struct http_stream *s)
{
    pthread_mutex_lock(&s->lock);
    while (!s->gone && evbuffer_get_length(s->pending) >= HTTP_STREAM_WINDOW)
        pthread_cond_wait(&s->cond, &s->lock);
    bool ok = !s->gone;
    if (ok) {
        /* The loop is woken only when it has nothing to send: a piece in flight pumps the
         * window again when it is written, and a window that was not empty already woke it. */
        bool wake = !s->inflight && evbuffer_get_length(s->pending) == 0;
        evbuffer_add_buffer(s->pending, s->staged);
        if (wake)
            event_active(s->wake, EV_READ, 0);
    }
    pthread_mutex_unlock(&s->lock);
    if (!ok)
        evbuffer_drain(s->staged, evbuffer_get_length(s->staged));
    return ok;
}

bool http_stream_write(struct http_stream *s, const void *p, size_t n)
{
    if (evbuffer_add(s->staged, p, n) != 0)
        abort();
    return evbuffer_get_length(s->staged) < HTTP_STREAM_HANDOVER || stream_hand_over(s);
}

bool http_stream_flush(struct http_stream *s)
{
    return evbuffer_get_length(s->staged) == 0 || stream_hand_over(s);
}

void http_stream_end(struct http_stream *s, bool complete)
{
    http_stream_flush(s);
    pthread_mutex_lock(&s->lock);
    s->producer_done = true;
    s->complete = complete;
    pthread_cond_broadcast(&s->cond);
    /* Under the lock: the loop frees s only after it has seen producer_done. */
    event_active(s->wake, EV_READ, 0);
    pthread_mutex_unlock(&s->lock);
}

void http_streams_drain(struct event_base *base)
{
    for (;;) {
        struct http_stream *s = NULL;
        pthread_mutex_lock(&registry_lock);
        for (struct http_stream *p = registry; p && !s; p = p->next)
            if (p->base == base)
                s = p;
        pthread_mutex_unlock(&registry_lock);
        if (!s)
            return;
        pthread_mutex_lock(&s->lock);
        s->gone = true;
        pthread_cond_broadcast(&s->cond);
        while (!s->producer_done)
            pthread_cond_wait(&s->cond, &s->lock);
        pthread_mutex_unlock(&s->lock);
        stream_finish(s, false);
    }
}
