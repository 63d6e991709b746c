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
 *
 * The same watch bounds request bodies before they are read. The callback runs as bytes are
 * added, before evhttp parses them, so a copy of the head is kept as it arrives, and at its end,
 * when the request has a body, the head handler (the API's route, access and body limit) and the
 * process-wide body budget decide on it while none of the body has been parsed: a refused request
 * is answered from here and its connection taken away from evhttp (its bufferevent callbacks
 * replaced), which then drops whatever arrives and closes after the answer, or after
 * HTTP_LINGER_S (closing with unread input would reset the connection and could lose the
 * answer). An accepted body holds its Content-Length (a chunked one: its bytes as they arrive)
 * of the budget until its handler has answered (the body is freed then), and evhttp is told to
 * read no more than the limit. A body that came whole in the same read as its head (a small
 * JSON body, usually) is in memory already: it only takes its share of the budget, and its
 * request goes to the handler unparsed here.
 */
#include "http/internal.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/event.h>

#include "core/alloc.h"
#include "core/log.h"
#include "metrics/metrics.h"
#include "util/os.h"

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
    struct bufferevent *bev;
    struct event *rescan;            /* scans buffered bytes once evhttp reads again */
    char *head;                      /* a copy of the head arriving */
    size_t head_len, head_cap;
    bool head_overflow;              /* the head outgrew HTTP_HEAD_COPY_MAX */
    bool counting;                   /* a chunked body arrives: its bytes count against the budget */
    bool refused;                    /* answered from its head: input is dropped until the close */
    size_t reserved;                 /* bytes of the budget this request's body holds */
};

struct http_conns {
    struct event_base *base;
    atomic_int *open; /* shared by all loops of the server */
    int max_open;
    int request_timeout_s;
    int keepalive_s; /* added to the deadline after a response */
    struct event *adopt_ev;
    struct event *trim_tick; /* with a budget: on_trim_tick() every second */
    struct bufferevent **pending; /* made by bevcb, not yet adopted; each holds a reference */
    size_t npending, pending_cap;
    struct http_conn **by_fd; /* this loop's connections, indexed by socket */
    size_t by_fd_cap;
    time_t last_refusal_log;
    time_t last_busy_log;
    struct http_budget *budget;
    size_t max_body;
    http_handler_fn head_fn;
    void *head_ctx;
};

/* Longer than any head evhttp accepts (HEADER_MAX for the fields, as much for the request line). */
#define HTTP_HEAD_COPY_MAX (64 * 1024)
/* Bodies freed since the last malloc_trim() above which an idle server trims again. */
#define HTTP_TRIM_AFTER_BYTES (8u * 1024 * 1024)
/* How long a refused connection may keep sending before it is closed. */
#define HTTP_LINGER_S 5

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
    if (conn->refused)
        log_msg(LOG_DEBUG, "http", "closing a refused connection still sending after %d s",
                HTTP_LINGER_S);
    else
        log_msg(LOG_DEBUG, "http",
                "closing a connection that sent no complete request head in %d s",
                conn->owner->request_timeout_s);
    evhttp_connection_free(conn->evcon); /* calls on_close, which frees conn */
}

/*
 * Feeds n bytes to the head scan; sets *done at the empty line that ends a head. Returns how many
 * of the bytes belong to the head (all of them unless it ended).
 */
static size_t head_scan(struct http_conn *conn, const char *p, size_t n, bool *done)
{
    const char *start = p, *end = p + n;
    *done = false;
    while (p < end) {
        if (conn->eol == 0) {
            p = memchr(p, '\n', (size_t)(end - p));
            if (!p)
                return n;
            conn->eol = 1;
            p++;
            continue;
        }
        char ch = *p++;
        if (ch == '\n') {
            *done = true;
            return (size_t)(p - start);
        }
        conn->eol = ch == '\r' && conn->eol == 1 ? 2 : 0;
    }
    return n;
}

static void head_copy(struct http_conn *conn, const char *p, size_t n)
{
    if (conn->head_overflow || n == 0)
        return;
    if (conn->head_len + n > HTTP_HEAD_COPY_MAX) {
        conn->head_overflow = true;
        return;
    }
    if (conn->head_len + n > conn->head_cap) {
        size_t cap = conn->head_cap ? conn->head_cap : 1024;
        while (cap < conn->head_len + n)
            cap *= 2;
        conn->head = xrealloc(conn->head, cap);
        conn->head_cap = cap;
    }
    memcpy(conn->head + conn->head_len, p, n);
    conn->head_len += n;
}

static void head_copy_reset(struct http_conn *conn)
{
    free(conn->head);
    conn->head = NULL;
    conn->head_len = conn->head_cap = 0;
    conn->head_overflow = false;
}

/* Takes n bytes of the budget for conn's request; false when they are not left. */
static bool budget_take(struct http_conn *conn, size_t n)
{
    struct http_budget *b = conn->owner->budget;
    if (!b)
        return true;
    size_t used = atomic_load(&b->used);
    do {
        if (b->max && n > b->max - used)
            return false;
    } while (!atomic_compare_exchange_weak(&b->used, &used, used + n));
    conn->reserved += n;
    return true;
}

void http_budget_give_back(struct http_budget *b, size_t n)
{
    if (n) {
        atomic_fetch_sub(&b->used, n);
        atomic_fetch_add(&b->freed, n);
    }
}

static void budget_release(struct http_conn *conn)
{
    http_budget_give_back(conn->owner->budget, conn->reserved);
    conn->reserved = 0;
    conn->counting = false;
}

static void log_busy(struct http_conns *c, size_t want)
{
    time_t now = time(NULL);
    if (now == c->last_busy_log)
        return;
    c->last_busy_log = now;
    log_msg(LOG_WARN, "http",
            "request bodies in memory at the budget (%zu of %zu bytes in use): refusing one of "
            "%zu bytes",
            atomic_load(&c->budget->used), c->budget->max, want);
}

/* The most body bytes evhttp reads for the connection's request (0: no limit). */
static void limit_body(struct http_conn *conn, size_t max)
{
    evhttp_connection_set_max_body_size(conn->evcon, max ? (ev_ssize_t)max : -1);
}

static void refuse_busy(struct http_request *req, size_t want)
{
    log_busy(req->conn->owner, want);
    http_reply_header(req, "Retry-After", "1");
    http_reply_refusal(req, 503, "server_busy",
                       "too many request bodies are arriving; try again later");
}

/*
 * A head with a body: the head handler decides, then the limit, then the budget. buffered is how
 * much of the body was read with the head.
 */
static void body_admit(struct http_conn *conn, struct http_request *req, size_t buffered)
{
    struct http_conns *c = conn->owner;
    if (c->head_fn)
        c->head_fn(req, c->head_ctx);
    if (req->replied)
        return;
    size_t max = req->body_accepted ? req->body_max : c->max_body;
    if (max && c->max_body && max > c->max_body)
        max = c->max_body;
    long long declared = http_request_body_declared(req);
    if (max && declared > 0 && (unsigned long long)declared > max) {
        http_reply_refusal(req, 413, "too_large", "the request body is too large");
        return;
    }
    struct http_budget *b = c->budget;
    if (b && b->max && declared > 0 && (unsigned long long)declared > b->max) {
        http_reply_refusal(req, 413, "too_large",
                           "the request body is larger than this server holds at once");
        return;
    }
    if (declared > 0 && !budget_take(conn, (size_t)declared)) {
        refuse_busy(req, (size_t)declared);
        return;
    }
    if (declared < 0 && !budget_take(conn, buffered)) {
        refuse_busy(req, buffered);
        return;
    }
    conn->counting = declared < 0; /* what arrives next, on_input counts */
    limit_body(conn, max);
}

/*
 * A body of length bytes that came whole with its head is in memory already: deciding on it
 * before evhttp parses the request saves nothing, so the request goes straight to the handler,
 * which checks again what the head handler checks (api_handle does). The body still counts
 * against the budget (a full budget refuses it on the head's path), and the connection's limit
 * is the server's. False when the body must be decided on at its head.
 */
static bool body_came_whole(struct http_conn *conn, uint64_t length, size_t buffered)
{
    size_t max = conn->owner->max_body;
    if (length > buffered || (max && length > max) || !budget_take(conn, (size_t)length))
        return false;
    limit_body(conn, max);
    return true;
}

/*
 * The head is complete, none of its body parsed yet: decide on the request. buffered bytes
 * after the head were read with it.
 */
static void head_end(struct http_conn *conn, size_t buffered)
{
    uint64_t length = 0;
    enum http_head_body body =
        conn->head_overflow ? HTTP_HEAD_BODY_UNCLEAR
                            : http_head_body(conn->head ? conn->head : "", conn->head_len, &length);
    if (body == HTTP_HEAD_BODY_NONE ||
        (body == HTTP_HEAD_BODY_LENGTH && body_came_whole(conn, length, buffered))) {
        head_copy_reset(conn); /* most requests: nothing to decide before evhttp reads them */
        return;
    }
    struct http_request req;
    struct http_head head;
    bool parsed = http_request_init_head(&req, conn->head ? conn->head : "", conn->head_len,
                                         conn, conn->evcon, &head);
    bool overflow = conn->head_overflow;
    head_copy_reset(conn);
    if (overflow)
        http_reply_refusal(&req, 431, "headers_too_large", "the request head is too large");
    else if (!parsed)
        http_reply_refusal(&req, 400, "bad_request", "the request head is malformed");
    else if (head.chunked || head.content_length > 0)
        body_admit(conn, &req, buffered);
    http_head_cleanup(&head);
    http_request_cleanup(&req);
}

/* Looks for the end of the head in the input from offset on; ends the deadline there. */
static void head_scan_input(struct http_conn *conn, size_t offset)
{
    struct evbuffer_ptr pos;
    struct evbuffer_iovec v[8];
    if (evbuffer_ptr_set(conn->input, &pos, offset, EVBUFFER_PTR_SET) < 0)
        return;
    size_t scanned = offset; /* where v[0] starts */
    while (conn->in_head) {
        int n = evbuffer_peek(conn->input, -1, &pos, v, 8);
        size_t seen = 0;
        for (int i = 0; i < n && i < 8 && conn->in_head; i++) {
            bool done;
            size_t used = head_scan(conn, v[i].iov_base, v[i].iov_len, &done);
            head_copy(conn, v[i].iov_base, used);
            if (done) {
                conn->in_head = false;
                event_del(conn->deadline); /* the body's gaps are evhttp's timeout */
                head_end(conn, evbuffer_get_length(conn->input) - (scanned + seen + used));
                return;
            }
            seen += v[i].iov_len;
        }
        if (n <= 8 || evbuffer_ptr_set(conn->input, &pos, seen, EVBUFFER_PTR_ADD) < 0)
            return;
        scanned += seen;
    }
}

/* The input buffer changed: bytes read while a head arrives are scanned for its end. */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct http_conn *conn = arg;
    size_t len = evbuffer_get_length(buf);
    if (conn->in_head && info->n_added > 0) {
        head_scan_input(conn, info->n_added < len ? len - info->n_added : 0);
    } else if (conn->counting && info->n_added > 0 && !budget_take(conn, info->n_added)) {
        struct http_request req = {
            .ev = evhttp_request_new(NULL, NULL), .conn = conn, .start_ns = os_monotonic_ns()};
        if (!req.ev)
            abort();
        refuse_busy(&req, info->n_added);
        evhttp_request_free(req.ev);
    }
}

/* A refused connection: what arrives is dropped. arg may be evhttp's; it is not used. */
static void refused_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
}

/* The answer is out: end the connection's sending side, so that the client sees its end. */
static void refused_write(struct bufferevent *bev, void *arg)
{
    (void)arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        shutdown((int)bufferevent_getfd(bev), SHUT_WR);
}

/* The client closed, an error, or evhttp's idle timeout: the connection ends. */
static void refused_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev, (void)what;
    struct http_conn *conn = arg;
    evhttp_connection_free(conn->evcon); /* calls on_close, which frees conn */
}

void http_conn_refuse(struct http_conn *conn, struct evhttp_request *ev, int status)
{
    struct evbuffer *out = bufferevent_get_output(conn->bev);
    struct evbuffer *body = evhttp_request_get_output_buffer(ev);
    const struct evkeyval *h;
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, http_reason_phrase(status));
    TAILQ_FOREACH(h, evhttp_request_get_output_headers(ev), next)
    if (strcasecmp(h->key, "Connection") != 0 && strcasecmp(h->key, "Content-Length") != 0)
        evbuffer_add_printf(out, "%s: %s\r\n", h->key, h->value);
    evbuffer_add_printf(out, "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                        evbuffer_get_length(body));
    evbuffer_add_buffer(out, body);
    conn->refused = true;
    conn->in_head = false;
    budget_release(conn);
    bufferevent_setcb(conn->bev, refused_read, refused_write, refused_event, conn);
    bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    struct timeval tv = {HTTP_LINGER_S, 0};
    event_add(conn->deadline, &tv);
}

/* After a response, once evhttp has set up the connection for its next request. */
static void on_rescan(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct http_conn *conn = arg;
    if (conn->in_head)
        head_scan_input(conn, 0);
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
    budget_release(conn);
    if (by_fd_get(conn->owner, conn->fd) == conn)
        by_fd_set(conn->owner, conn->fd, NULL);
    event_free(conn->deadline);
    event_free(conn->rescan);
    free(conn->head);
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
    conn->rescan = event_new(c->base, -1, 0, on_rescan, conn);
    conn->bev = bev;
    conn->input = bufferevent_get_input(bev);
    conn->watch = evbuffer_add_cb(conn->input, on_input, conn);
    conn->output = bufferevent_get_output(bev);
    conn->sent = evbuffer_add_cb(conn->output, on_output, conn);
    if (!conn->deadline || !conn->rescan || !conn->watch || !conn->sent)
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

/* Every second: large bodies were freed and none is in flight: memory back to the system. */
static void on_trim_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct http_budget *b = ((struct http_conns *)arg)->budget;
    if (atomic_load(&b->used) > 0 || atomic_load(&b->freed) < HTTP_TRIM_AFTER_BYTES)
        return;
    size_t freed = atomic_exchange(&b->freed, 0); /* one loop trims, the others see 0 */
    if (freed >= HTTP_TRIM_AFTER_BYTES)
        malloc_trim(0);
}

struct http_conns *http_conns_new(struct event_base *base, atomic_int *open, int max_open,
                                  int request_timeout_s, int keepalive_s,
                                  struct http_budget *budget, size_t max_body)
{
    struct http_conns *c = xcalloc(1, sizeof(*c));
    c->budget = budget;
    c->max_body = max_body;
    c->base = base;
    c->open = open;
    c->max_open = max_open;
    c->request_timeout_s = request_timeout_s;
    c->keepalive_s = keepalive_s > 0 ? keepalive_s : 0;
    c->adopt_ev = event_new(base, -1, 0, on_adopt, c);
    c->trim_tick = budget ? event_new(base, -1, EV_PERSIST, on_trim_tick, c) : NULL;
    struct timeval second = {1, 0};
    if (!c->adopt_ev || (budget && (!c->trim_tick || event_add(c->trim_tick, &second) != 0))) {
        if (c->adopt_ev)
            event_free(c->adopt_ev);
        if (c->trim_tick)
            event_free(c->trim_tick);
        free(c);
        return NULL;
    }
    return c;
}

void http_conns_set_head_handler(struct http_conns *c, http_handler_fn fn, void *ctx)
{
    c->head_fn = fn;
    c->head_ctx = ctx;
}

void http_conns_free(struct http_conns *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->npending; i++)
        bufferevent_decref(c->pending[i]);
    event_free(c->adopt_ev);
    if (c->trim_tick)
        event_free(c->trim_tick);
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
    budget_release(conn); /* if not done yet (the body was freed when it was answered) */
    deadline_arm(conn, conn->owner->keepalive_s);
    conn->in_head = true;
    conn->eol = 0;
    head_copy_reset(conn);
    /*
     * The buffered bytes are scanned in a moment, not now: evhttp resets the bufferevent's
     * callbacks after this (a refusal replaces them), then reads on. Until the scan, nothing may
     * reach evhttp: a read already due in this turn of the loop (the input is watched while a
     * response is written) would hand it the head unseen. Disabling reading drops that read
     * event; evhttp enables reading again, and the scan runs before its deferred read.
     */
    bufferevent_disable(conn->bev, EV_READ);
    event_active(conn->rescan, EV_READ, 0);
}

bool http_conns_sending(const struct http_conns *c)
{
    for (size_t fd = 0; fd < c->by_fd_cap; fd++)
        if (c->by_fd[fd] && evbuffer_get_length(c->by_fd[fd]->output) > 0)
            return true;
    return false;
}

/* The connection state of ev's connection, or NULL (a connection evhttp made without us). */
static struct http_conn *conn_of(struct http_conns *c, struct evhttp_request *ev)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    struct http_conn *conn = bev ? by_fd_get(c, (int)bufferevent_getfd(bev)) : NULL;
    return conn && conn->evcon == evcon ? conn : NULL;
}

void http_conns_request_answered(struct http_conns *c, struct evhttp_request *ev)
{
    struct evbuffer *body = evhttp_request_get_input_buffer(ev);
    evbuffer_drain(body, evbuffer_get_length(body));
    struct http_conn *conn = conn_of(c, ev);
    if (conn)
        budget_release(conn);
}

size_t http_conns_request_hand_over(struct http_conns *c, struct evhttp_request *ev)
{
    struct http_conn *conn = conn_of(c, ev);
    if (!conn)
        return 0;
    size_t n = conn->reserved;
    conn->reserved = 0;
    conn->counting = false;
    return n;
}

void http_conns_request_started(struct http_conns *c, struct evhttp_request *ev)
{
    struct http_conn *conn = conn_of(c, ev);
    if (!conn)
        return;
    conn->in_head = false;
    conn->counting = false; /* the body is complete */
    head_copy_reset(conn);
    event_del(conn->deadline);
    evhttp_request_set_on_complete_cb(ev, on_complete, conn);
}
