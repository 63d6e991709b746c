/*
 * The HTTP server: one listening socket shared by opts.threads libevent loops, each with its own
 * event_base and evhttp in its own thread. The kernel hands each new connection to whichever
 * loop accepts it first; a connection then stays on that loop.
 */
#include "http/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "core/alloc.h"
#include "core/log.h"

#define HTTP_LISTEN_BACKLOG 1024
#define HTTP_MAX_THREADS 256
#define HTTP_FD_RESERVE 256 /* descriptors kept for files, Redis, logs beyond the connections */

struct http_loop {
    struct http_server *srv;
    struct event_base *base;
    struct evhttp *http;
    struct event *stop_ev;
    struct evhttp_bound_socket *listener;
    struct http_conns *conns;
    pthread_t thread;
    bool started;
    void *ctx;
};

struct http_server {
    struct http_server_opts opts;
    int listen_fd;
    int stop_pipe[2]; /* a byte written to [1] makes every loop leave */
    int port;
    int nloops;
    struct http_loop *loops;
    atomic_int open_conns; /* connections open on all loops */
    uint32_t id_prefix;    /* random: request ids of two processes differ */
    atomic_uint next_id;
    struct http_budget budget; /* request bodies in memory, all loops */
    struct http_pool *pools[HTTP_POOLS]; /* offload threads, shared by the loops */
};

static _Thread_local struct http_loop *current_loop;

struct event_base *http_thread_event_base(void) { return current_loop ? current_loop->base : NULL; }

struct http_pool *http_loop_pool(enum http_pool_kind kind)
{
    return current_loop && kind >= 0 && kind < HTTP_POOLS ? current_loop->srv->pools[kind] : NULL;
}

struct http_budget *http_loop_budget(void)
{
    return current_loop ? &current_loop->srv->budget : NULL;
}

size_t http_loop_hand_over(struct evhttp_request *ev)
{
    return current_loop ? http_conns_request_hand_over(current_loop->conns, ev) : 0;
}

void http_reply_refusal(struct http_request *req, int status, const char *code,
                        const char *detail)
{
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"detail\":\"%s\",\"code\":\"%s\"}", detail, code);
    http_reply_header(req, "Connection", "close");
    http_reply_body(req, status, "application/json", body, (size_t)n);
}

static int header_count(struct evhttp_request *ev)
{
    int n = 0;
    const struct evkeyval *h;
    TAILQ_FOREACH(h, evhttp_request_get_input_headers(ev), next)
    n++;
    return n;
}

/* Replies 414 or 431 and returns false when the request exceeds a limit evhttp does not check. */
static bool request_within_limits(const struct http_server_opts *o, struct http_request *req)
{
    const char *uri = evhttp_request_get_uri(req->ev);
    if (o->max_uri_bytes && uri && strlen(uri) > o->max_uri_bytes) {
        http_reply_refusal(req, 414, "uri_too_long", "the request target is too long");
        return false;
    }
    if (o->max_header_count && header_count(req->ev) > o->max_header_count) {
        http_reply_refusal(req, 431, "headers_too_large", "too many request header fields");
        return false;
    }
    return true;
}

/* Wraps ev, runs the handler, and answers 500 if the handler did not answer. */
static void on_request(struct evhttp_request *ev, void *arg)
{
    struct http_loop *loop = arg;
    struct http_request req;
    char id[HTTP_REQUEST_ID_LEN + 1];
    snprintf(id, sizeof(id), "%08" PRIx32 "%08x", loop->srv->id_prefix,
             atomic_fetch_add_explicit(&loop->srv->next_id, 1, memory_order_relaxed));
    http_conns_request_started(loop->conns, ev);
    http_request_init(&req, ev, id);
    if (request_within_limits(&loop->srv->opts, &req))
        loop->srv->opts.handler(&req, loop->ctx);
    if (!req.replied) {
        log_msg(LOG_ERROR, "http", "handler returned without a reply; sending 500");
        http_reply_body(&req, 500, "text/plain", "internal error\n", 15);
    }
    bool offloaded = req.offloaded; /* then ev and its body are the job's */
    http_request_cleanup(&req);
    if (!offloaded)
        http_conns_request_answered(loop->conns, ev); /* the body is not needed any more */
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_loop *loop = arg;
    event_base_loopbreak(loop->base);
}

/* Binds and listens on host:port (non-blocking, SO_REUSEADDR); returns the fd or -1. */
static int listen_on(const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    int rc = getaddrinfo(host && *host ? host : NULL, service, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host ? host : "", gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, HTTP_LISTEN_BACKLOG) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host ? host : "*", port,
                 strerror(saved));
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Creates one loop's base and evhttp, accepting on a duplicate of the shared socket. */
static bool loop_setup(struct http_server *srv, struct http_loop *loop, char *err, size_t errlen)
{
    const struct http_server_opts *o = &srv->opts;
    loop->srv = srv;
    /* The changelist folds the read/write toggles of one turn into one epoll_ctl each. */
    struct event_config *ec = event_config_new();
    if (ec)
        event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    loop->base = ec ? event_base_new_with_config(ec) : NULL;
    event_config_free(ec);
    loop->http = loop->base ? evhttp_new(loop->base) : NULL;
    loop->conns = loop->http ? http_conns_new(loop->base, &srv->open_conns, o->max_connections,
                                              o->request_timeout_s, o->idle_timeout_s,
                                              &srv->budget, o->max_body_bytes)
                             : NULL;
    if (!loop->conns) {
        snprintf(err, errlen, "cannot create an event loop");
        return false;
    }
    evhttp_set_bevcb(loop->http, http_conns_bevcb, loop->conns);
    evhttp_set_allowed_methods(loop->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                               EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH |
                                               EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS);
    if (o->max_body_bytes > 0) /* 0 keeps libevent's default: no limit */
        evhttp_set_max_body_size(loop->http, (ev_ssize_t)o->max_body_bytes);
    if (o->max_header_bytes > 0)
        evhttp_set_max_headers_size(loop->http, (ev_ssize_t)o->max_header_bytes);
    if (o->idle_timeout_s > 0)
        evhttp_set_timeout(loop->http, o->idle_timeout_s);
    evhttp_set_default_content_type(loop->http, NULL);
    evhttp_set_gencb(loop->http, on_request, loop);
    int fd = fcntl(srv->listen_fd, F_DUPFD_CLOEXEC, 0); /* each evhttp closes its own copy */
    loop->listener = fd >= 0 ? evhttp_accept_socket_with_handle(loop->http, fd) : NULL;
    if (!loop->listener) {
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "cannot accept on the listening socket: %s", strerror(errno));
        return false;
    }
    loop->stop_ev = event_new(loop->base, srv->stop_pipe[0], EV_READ | EV_PERSIST, on_stop, loop);
    if (!loop->stop_ev || event_add(loop->stop_ev, NULL) != 0) {
        snprintf(err, errlen, "cannot watch the stop pipe");
        return false;
    }
    return true;
}

/* Raises the soft descriptor limit so that max_connections can be reached (up to the hard one). */
static void raise_fd_limit(int max_connections)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_connections + HTTP_FD_RESERVE;
    if (max_connections <= 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
        log_msg(LOG_WARN, "http", "open files limited to %llu: fewer than MAX_CONNECTIONS %d",
                (unsigned long long)rl.rlim_cur, max_connections);
}

static bool check_opts(const struct http_server_opts *o, char *err, size_t errlen)
{
    if (!o->handler || o->threads < 1 || o->threads > HTTP_MAX_THREADS || o->port < 0 ||
        o->port > 65535 || o->max_connections < 0 || o->max_header_count < 0 ||
        o->request_timeout_s < 0 || o->offload_threads < 0 ||
        o->offload_threads > HTTP_MAX_THREADS) {
        snprintf(err, errlen,
                 "bad server options (handler, threads 1-%d, offload threads 0-%d, port "
                 "0-65535, negative limits)",
                 HTTP_MAX_THREADS, HTTP_MAX_THREADS);
        return false;
    }
    return true;
}

struct http_server *http_server_new(const struct http_server_opts *opts, char *err, size_t errlen)
{
    if (!check_opts(opts, err, errlen))
        return NULL;
    if (evthread_use_pthreads() != 0) {
        snprintf(err, errlen, "libevent thread support is unavailable");
        return NULL;
    }
    struct http_server *srv = xcalloc(1, sizeof(*srv));
    srv->opts = *opts;
    atomic_init(&srv->open_conns, 0);
    atomic_init(&srv->next_id, 1);
    if (getrandom(&srv->id_prefix, sizeof(srv->id_prefix), GRND_NONBLOCK) !=
        (ssize_t)sizeof(srv->id_prefix))
        srv->id_prefix = (uint32_t)getpid() ^ (uint32_t)time(NULL);
    atomic_init(&srv->budget.used, 0);
    srv->budget.max = opts->body_budget_bytes;
    srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
    for (int i = 0; i < HTTP_POOLS; i++)
        srv->pools[i] = http_pool_new(opts->offload_threads ? opts->offload_threads
                                                            : HTTP_OFFLOAD_THREADS_DEFAULT,
                                      opts->offload_thread_init, opts->offload_thread_free,
                                      opts->app);
    srv->listen_fd = listen_on(opts->host, opts->port, err, errlen);
    if (srv->listen_fd < 0)
        goto fail;
    srv->port = bound_port(srv->listen_fd);
    raise_fd_limit(opts->max_connections);
    if (pipe2(srv->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    srv->loops = xcalloc((size_t)opts->threads, sizeof(*srv->loops));
    for (srv->nloops = 0; srv->nloops < opts->threads; srv->nloops++)
        if (!loop_setup(srv, &srv->loops[srv->nloops], err, errlen)) {
            srv->nloops++; /* free the partly built loop too */
            goto fail;
        }
    return srv;
fail:
    http_server_free(srv);
    return NULL;
}

int http_server_port(const struct http_server *srv) { return srv->port; }

/* How long a stopping loop waits for its held requests (their holders time out sooner). */
#define HTTP_SETTLE_MS 3000

static void on_settle_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    *(bool *)arg = true;
}

/*
 * A stopping loop (no longer accepting) runs on until its held requests are answered and their
 * answers, with any others being written, have left, for HTTP_SETTLE_MS at most.
 */
static void loop_settle(struct http_loop *loop)
{
    bool late = false;
    struct event *deadline = evtimer_new(loop->base, on_settle_deadline, &late);
    struct timeval tv = {HTTP_SETTLE_MS / 1000, (HTTP_SETTLE_MS % 1000) * 1000};
    if (!deadline || evtimer_add(deadline, &tv) != 0)
        abort();
    while ((http_held_waiting() || http_conns_sending(loop->conns)) && !late)
        event_base_loop(loop->base, EVLOOP_ONCE);
    event_free(deadline);
}

/* One loop thread: its context, its loop until stopped, then its connections and context. */
static void *loop_main(void *arg)
{
    struct http_loop *loop = arg;
    current_loop = loop;
    if (loop->srv->opts.thread_init)
        loop->ctx = loop->srv->opts.thread_init(loop->srv->opts.app);
    http_conns_set_head_handler(loop->conns, loop->srv->opts.head_handler, loop->ctx);
    event_base_dispatch(loop->base);
    /* Held requests wait for an answer already asked for (bounded by their holders' timeouts):
     * let it come, without taking new connections. */
    event_del(loop->stop_ev);
    evhttp_del_accept_socket(loop->http, loop->listener);
    loop_settle(loop);
    http_streams_drain(loop->base);
    for (int i = 0; i < HTTP_POOLS; i++)
        http_offloads_drain(loop->srv->pools[i], loop->base);
    http_held_drain();
    evhttp_free(loop->http); /* closes this loop's connections */
    loop->http = NULL;
    http_conns_free(loop->conns);
    loop->conns = NULL;
    if (loop->srv->opts.thread_free)
        loop->srv->opts.thread_free(loop->ctx);
    loop->ctx = NULL;
    current_loop = NULL;
    return NULL;
}

void http_server_run(struct http_server *srv)
{
    for (int i = 0; i < HTTP_POOLS; i++)
        if (!http_pool_start(srv->pools[i])) {
            while (i-- > 0)
                http_pool_stop(srv->pools[i]);
            return;
        }
    for (int i = 0; i < srv->nloops; i++) {
        int rc = pthread_create(&srv->loops[i].thread, NULL, loop_main, &srv->loops[i]);
        if (rc != 0) {
            log_msg(LOG_ERROR, "http", "cannot start loop thread %d: %s", i, strerror(rc));
            http_server_stop(srv);
            break;
        }
        srv->loops[i].started = true;
    }
    for (int i = 0; i < srv->nloops; i++) {
        if (srv->loops[i].started)
            pthread_join(srv->loops[i].thread, NULL);
        srv->loops[i].started = false;
    }
    for (int i = 0; i < HTTP_POOLS; i++)
        http_pool_stop(srv->pools[i]); /* every loop has drained its jobs */
}

void http_server_stop(struct http_server *srv)
{
    /* write() is async-signal-safe; the pipe stays readable, so every loop sees it. */
    ssize_t n = write(srv->stop_pipe[1], "x", 1);
    (void)n;
}

void http_server_free(struct http_server *srv)
{
    if (!srv)
        return;
    for (int i = 0; i < srv->nloops; i++) {
        struct http_loop *loop = &srv->loops[i];
        if (loop->http)
            evhttp_free(loop->http);
        http_conns_free(loop->conns);
        if (loop->stop_ev)
            event_free(loop->stop_ev);
        if (loop->base)
            event_base_free(loop->base);
    }
    free(srv->loops);
    for (int i = 0; i < HTTP_POOLS; i++)
        http_pool_free(srv->pools[i]);
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    for (int i = 0; i < 2; i++)
        if (srv->stop_pipe[i] >= 0)
            close(srv->stop_pipe[i]);
    free(srv);
}
