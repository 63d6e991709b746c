/*
 * Connection admission and head deadlines for one event loop. libevent 2.1 has neither a
 * connection cap nor a deadline for a request's head (its timeout restarts at every byte, so a
 * client sending one byte at a time holds a connection forever). Every new connection's
 * bufferevent is made here (evhttp_set_bevcb); right after evhttp has wrapped it, an active event
 * finds the evhttp_connection through the bufferevent's callback argument, counts it, refuses it
 * when the process is at its cap, and arms its deadline: the client must deliver a request's head
 * (request line and headers) within request_timeout_s of connecting, or within idle_timeout_s +
 * request_timeout_s of the previous response on a kept-alive connection. The body is not under
 * that deadline: like nginx's client_body_timeout, only the gaps between its reads are timed, by
 * evhttp's own timeout (idle_timeout_s, which restarts at every read).
 *
 * libevent 2.1 tells nobody when a server request's head is complete (evhttp_request_set_header_cb
 * needs the request before it is read; evhttp_set_newreqcb, which would give it, came in 2.2), so
 * a callback on the connection's input buffer watches the bytes as they are read and ends the
 * deadline at the first empty line, the end of the head as evhttp parses it (lines end in "\n" or
 * "\r\n"). After a response the bytes already buffered (a pipelined request) are looked at too.
 */
#include "http/internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/event.h>

#include "core/alloc.h"
#include "core/log.h"
#include "metrics/metrics.h"

struct http_conn {
    struct http_conns *owner;
    struct evhttp_connection *evcon;
    struct event *deadline;
    struct evbuffer *input;          /* the connection's input buffer, watched while in_head */
    struct evbuffer_cb_entry *watch; /* our callback on it */
    struct evbuffer *output;         /* the connection's output buffer: what leaves it was sent */
    struct evbuffer_cb_entry *sent;  /* our callback on it */
    bool in_head;                    /* a head is arriving: its end stops the deadline */
    unsigned char eol;               /* head scan: 0 in a line, 1 after "\n", 2 after "\n\r" */
    int fd;
};

struct http_conns {
    struct event_base *base;
    atomic_int *open; /* shared by all loops of the server */
    int max_open;
    int request_timeout_s;
    int keepalive_s; /* added to the deadline after a response */
    struct event *adopt_ev;
    struct bufferevent **pending; /* made by bevcb, not yet adopted; each holds a reference */
    size_t npending, pending_cap;
    struct http_conn **by_fd; /* this loop's connections, indexed by socket */
    size_t by_fd_cap;
    time_t last_refusal_log;
};

static void by_fd_set(struct http_conns *c, int fd, struct http_conn *conn)
{
    if (fd < 0)
        return;
    if ((size_t)fd >= c->by_fd_cap) {
        size_t cap = c->by_fd_cap ? c->by_fd_cap : 256;
        while (cap <= (size_t)fd)
            cap *= 2;
        c->by_fd = xrealloc(c->by_fd, cap * sizeof(*c->by_fd));
        memset(c->by_fd + c->by_fd_cap, 0, (cap - c->by_fd_cap) * sizeof(*c->by_fd));
        c->by_fd_cap = cap;
    }
    c->by_fd[fd] = conn;
}

static struct http_conn *by_fd_get(const struct http_conns *c, int fd)
{
    return fd >= 0 && (size_t)fd < c->by_fd_cap ? c->by_fd[fd] : NULL;
}

static void deadline_arm(struct http_conn *conn, int extra_s)
{
    if (conn->owner->request_timeout_s <= 0)
        return;
    struct timeval tv = {conn->owner->request_timeout_s + extra_s, 0};
    event_add(conn->deadline, &tv);
}

/* The client took too long to send a request's head: drop the connection without an answer. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct http_conn *conn = arg;
    log_msg(LOG_DEBUG, "http", "closing a connection that sent no complete request head in %d s",
            conn->owner->request_timeout_s);
    evhttp_connection_free(conn->evcon); /* calls on_close, which frees conn */
}

/* Feeds n bytes to the head scan; true at the empty line that ends a head. */
static bool head_scan(struct http_conn *conn, const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end) {
        if (conn->eol == 0) {
            p = memchr(p, '\n', (size_t)(end - p));
            if (!p)
                return false;
            conn->eol = 1;
            p++;
            continue;
        }
        char ch = *p++;
        if (ch == '\n')
            return true;
        conn->eol = ch == '\r' && conn->eol == 1 ? 2 : 0;
    }
    return false;
}

/* Looks for the end of the head in the input from offset on; ends the deadline there. */
static void head_scan_input(struct http_conn *conn, size_t offset)
{
    struct evbuffer_ptr pos;
    struct evbuffer_iovec v[8];
    if (evbuffer_ptr_set(conn->input, &pos, offset, EVBUFFER_PTR_SET) < 0)
        return;
    while (conn->in_head) {
        int n = evbuffer_peek(conn->input, -1, &pos, v, 8);
        size_t seen = 0;
        for (int i = 0; i < n && i < 8 && conn->in_head; i++) {
            if (head_scan(conn, v[i].iov_base, v[i].iov_len)) {
                conn->in_head = false;
                event_del(conn->deadline); /* the body's gaps are evhttp's timeout */
            }
            seen += v[i].iov_len;
        }
        if (n <= 8 || evbuffer_ptr_set(conn->input, &pos, seen, EVBUFFER_PTR_ADD) < 0)
            return;
    }
}

/* The input buffer changed: bytes read while a head arrives are scanned for its end. */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct http_conn *conn = arg;
    size_t len = evbuffer_get_length(buf);
    if (conn->in_head && info->n_added > 0)
        head_scan_input(conn, info->n_added < len ? len - info->n_added : 0);
}

/*
 * Bytes leave the output buffer when they are written to the socket (sendfile included); evhttp
 * drains it otherwise only in a reset, which a server connection never goes through (it is
 * freed, after on_close removed this callback).
 */
static void on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf, (void)arg;
    if (info->n_deleted > 0)
        metrics_http_sent(info->n_deleted);
}

/* evhttp frees a connection: uncount it and release its state. */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct http_conn *conn = arg;
    evbuffer_remove_cb_entry(conn->input, conn->watch);
    evbuffer_remove_cb_entry(conn->output, conn->sent);
    atomic_fetch_sub(conn->owner->open, 1);
    if (by_fd_get(conn->owner, conn->fd) == conn)
        by_fd_set(conn->owner, conn->fd, NULL);
    event_free(conn->deadline);
    free(conn);
}

static void log_refusal(struct http_conns *c, int open)
{
    time_t now = time(NULL);
    if (now == c->last_refusal_log)
        return;
    c->last_refusal_log = now;
    log_msg(LOG_WARN, "http", "%d connections open (MAX_CONNECTIONS %d): closing new ones", open,
            c->max_open);
}

/* Counts a new connection, closes it when over the cap, and arms its deadline. */
static void admit(struct http_conns *c, struct evhttp_connection *evcon, struct bufferevent *bev)
{
    int open = atomic_fetch_add(c->open, 1) + 1;
    struct http_conn *conn = xcalloc(1, sizeof(*conn));
    conn->owner = c;
    conn->evcon = evcon;
    conn->fd = (int)bufferevent_getfd(bev);
    /* Headers and a sendfile body go out as two writes: without this, Nagle's algorithm holds
     * the second until the client's delayed ACK (40 ms a small response). */
    int one = 1;
    (void)setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn->deadline = event_new(c->base, -1, 0, on_deadline, conn);
    conn->input = bufferevent_get_input(bev);
    conn->watch = evbuffer_add_cb(conn->input, on_input, conn);
    conn->output = bufferevent_get_output(bev);
    conn->sent = evbuffer_add_cb(conn->output, on_output, conn);
    if (!conn->deadline || !conn->watch || !conn->sent)
        abort();
    by_fd_set(c, conn->fd, conn);
    evhttp_connection_set_closecb(evcon, on_close, conn);
    if (c->max_open > 0 && open > c->max_open) {
        log_refusal(c, open - 1);
        evhttp_connection_free(evcon);
        return;
    }
    deadline_arm(conn, 0);
    conn->in_head = true;
    head_scan_input(conn, 0);
}

/* Runs right after evhttp wrapped the bufferevents made by http_conns_bevcb(). */
static void on_adopt(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct http_conns *c = arg;
    for (size_t i = 0; i < c->npending; i++) {
        struct bufferevent *bev = c->pending[i];
        void *cbarg = NULL;
        bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
        /* NULL when evhttp already freed the connection (its callbacks are cleared then). */
        if (cbarg && evhttp_connection_get_bufferevent(cbarg) == bev)
            admit(c, cbarg, bev);
        bufferevent_decref(bev);
    }
    c->npending = 0;
}

#define HTTP_MAX_SINGLE_WRITE (2 * 1024 * 1024)

struct bufferevent *http_conns_bevcb(struct event_base *base, void *arg)
{
    struct http_conns *c = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return NULL; /* evhttp then tries its own; that one goes uncounted */
    /* libevent writes at most 16 KiB a call by default; file bodies go out by sendfile in
     * pieces this large instead (nginx's sendfile_max_chunk is 2 MiB too). */
    bufferevent_set_max_single_write(bev, HTTP_MAX_SINGLE_WRITE);
    if (c->npending == c->pending_cap) {
        c->pending_cap = c->pending_cap ? c->pending_cap * 2 : 16;
        c->pending = xrealloc(c->pending, c->pending_cap * sizeof(*c->pending));
    }
    bufferevent_incref(bev);
    c->pending[c->npending++] = bev;
    event_active(c->adopt_ev, EV_READ, 0);
    return bev;
}

struct http_conns *http_conns_new(struct event_base *base, atomic_int *open, int max_open,
                                  int request_timeout_s, int keepalive_s)
{
    struct http_conns *c = xcalloc(1, sizeof(*c));
    c->base = base;
    c->open = open;
    c->max_open = max_open;
    c->request_timeout_s = request_timeout_s;
    c->keepalive_s = keepalive_s > 0 ? keepalive_s : 0;
    c->adopt_ev = event_new(base, -1, 0, on_adopt, c);
    if (!c->adopt_ev) {
        free(c);
        return NULL;
    }
    return c;
}

void http_conns_free(struct http_conns *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->npending; i++)
        bufferevent_decref(c->pending[i]);
    event_free(c->adopt_ev);
    free(c->pending);
    free(c->by_fd);
    free(c);
}

/*
 * The response has been sent: the next head is under the deadline again, allowing for keep-alive
 * idleness. What is already buffered is the start of that next request (pipelined).
 */
static void on_complete(struct evhttp_request *ev, void *arg)
{
    (void)ev;
    struct http_conn *conn = arg;
    deadline_arm(conn, conn->owner->keepalive_s);
    conn->in_head = true;
    conn->eol = 0;
    head_scan_input(conn, 0);
}

void http_conns_request_started(struct http_conns *c, struct evhttp_request *ev)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    struct http_conn *conn = bev ? by_fd_get(c, (int)bufferevent_getfd(bev)) : NULL;
    if (!conn || conn->evcon != evcon)
        return;
    conn->in_head = false;
    event_del(conn->deadline);
    evhttp_request_set_on_complete_cb(ev, on_complete, conn);
}
