/*
 * The HTTP server as the rest of the project sees it: requests in, responses out.
 * Only http/ includes the HTTP library's headers; everything else uses these calls.
 */
#ifndef IA_HTTP_HTTP_H
#define IA_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct http_server;
struct http_request;

enum http_method {
    HTTP_GET = 1 << 0,
    HTTP_HEAD = 1 << 1,
    HTTP_POST = 1 << 2,
    HTTP_PUT = 1 << 3,
    HTTP_PATCH = 1 << 4,
    HTTP_DELETE = 1 << 5,
    HTTP_OPTIONS = 1 << 6,
    HTTP_OTHER = 1 << 7,
};

/* Called once per event-loop thread; its result is that thread's context for handlers. */
typedef void *(*http_thread_init_fn)(void *app);
typedef void (*http_thread_free_fn)(void *thread_ctx);
/* Called for every request; must answer it exactly once (http_reply_*), now. */
typedef void (*http_handler_fn)(struct http_request *req, void *thread_ctx);

struct http_server_opts {
    const char *host;
    int port;                    /* 0 picks a free port; see http_server_port() */
    int threads;                 /* event loops, one thread each */
    int offload_threads;         /* threads of each offload pool (http_pool_kind), shared by
                                    the loops; 0: HTTP_OFFLOAD_THREADS_DEFAULT */
    size_t max_body_bytes;       /* the largest request body (head_handler may accept less);
                                    0: no limit. libevent 2.1 holds a whole body in memory
                                    before the handler runs, so this is the most memory a
                                    request may take */
    size_t body_budget_bytes;    /* request bodies in memory at once, all loops together: a
                                    head announcing more than what is left gets 503 with
                                    Retry-After before its body is read (a chunked body is
                                    counted as it arrives, and its connection closed when it
                                    goes over); 0: no cap */
    size_t max_header_bytes;     /* larger request headers get 400; 0: no limit */
    size_t max_uri_bytes;        /* longer request targets get 414; 0: no limit */
    int max_header_count;        /* more request header fields get 431; 0: no limit */
    int max_connections;         /* open at once, all loops together; more are closed; 0: no cap */
    int idle_timeout_s;          /* closes connections idle this long between reads or writes:
                                    a pause in a request body (nginx's client_body_timeout),
                                    in a response, or between kept-alive requests */
    int request_timeout_s;       /* a request's head (request line and headers) must arrive
                                    within this long of the connection (or of the previous
                                    response, plus idle_timeout_s); its body may take longer,
                                    pausing at most idle_timeout_s at a time; 0: no deadline */
    http_handler_fn handler;
    /* Called with a head request (see http_request_accept_body) for each request that has a
     * body, when its head has arrived and before any of the body is read; may be NULL. */
    http_handler_fn head_handler;
    http_thread_init_fn thread_init; /* may be NULL */
    http_thread_free_fn thread_free; /* may be NULL */
    /* The same for each offload thread: the context of the handlers it runs
     * (http_request_offload_handler); may be NULL. */
    http_thread_init_fn offload_thread_init;
    http_thread_free_fn offload_thread_free;
    void *app;                   /* passed to thread_init */
};

/* Binds and prepares the loops; returns NULL with a message in err. */
struct http_server *http_server_new(const struct http_server_opts *opts, char *err, size_t errlen);
/* The bound port (useful when opts->port was 0). */
int http_server_port(const struct http_server *srv);
/* Runs the loops until http_server_stop(); returns when all have exited. */
void http_server_run(struct http_server *srv);
/* Asks the loops to stop; safe to call from a signal-handling thread or another loop. */
void http_server_stop(struct http_server *srv);
void http_server_free(struct http_server *srv);

struct event_base;
/*
 * The libevent loop of the calling thread while it runs one of the server's loops (inside
 * thread_init, handlers and thread_free), e.g. for hiredis's libevent adapter; NULL elsewhere.
 */
struct event_base *http_thread_event_base(void);

/* Request accessors. Returned strings are borrowed and live until the reply. */
enum http_method http_request_method(const struct http_request *req);
/* The path, percent-decoded, without the query string; NULL if it does not decode. */
const char *http_request_path(const struct http_request *req);
/* The raw query string or NULL. */
const char *http_request_query(const struct http_request *req);
/* The value of a query parameter (decoded) or NULL. */
const char *http_request_query_param(struct http_request *req, const char *name);
/* The first value of a request header (case-insensitive name) or NULL. */
const char *http_request_header(const struct http_request *req, const char *name);
/* The whole request body (may be empty); *len receives its length. */
const unsigned char *http_request_body(struct http_request *req, size_t *len);
/* The length of the request body. */
size_t http_request_body_length(struct http_request *req);
/*
 * Writes the whole request body to fd without copying it into one block. The body stays as it is,
 * to be freed with the request on its loop (not by an offload thread: see http/body.c). False with
 * errno on a write error.
 */
bool http_request_body_to_fd(struct http_request *req, int fd);
/* The body length the head announces (Content-Length), -1 when it is chunked (unknown). */
long long http_request_body_declared(const struct http_request *req);
/*
 * Head handlers only: the body of this request may be read, up to max_bytes. A head request
 * gets only the accessors above (no body) and replies; a head handler that replies refuses the
 * request, and the connection is closed without reading its body. One that neither replies nor
 * accepts lets the body be read up to max_body_bytes.
 */
void http_request_accept_body(struct http_request *req, size_t max_bytes);
/* The peer's address as text. */
const char *http_request_peer(const struct http_request *req);
/* The request's id: "req=" in its log line, X-Request-Id in its response. */
#define HTTP_REQUEST_ID_LEN 16
const char *http_request_id(const struct http_request *req);
/*
 * Names the route that took the request, by its metrics_route_id() (a route table's pattern,
 * never the path): its log line and metrics show that label. Before the reply.
 */
void http_request_set_route(struct http_request *req, int route_id);

/* Response. Headers added before the reply are sent with it. */
void http_reply_header(struct http_request *req, const char *name, const char *value);
/* Sends a complete body with the given status and content type (HEAD sends no body). */
void http_reply_body(struct http_request *req, int status, const char *content_type,
                     const void *body, size_t len);
/*
 * Sends a regular file the way nginx does: ETag, Last-Modified, Accept-Ranges, Range (206/416),
 * If-Range, If-None-Match/If-Modified-Since (304), If-Match/If-Unmodified-Since (412), HEAD, and a
 * zero-copy body. Takes ownership of fd. st describes fd.
 */
void http_reply_file(struct http_request *req, int fd, const struct stat *st,
                     const char *content_type);

/*
 * For a body delivered from elsewhere (an object of a bucket) with size bytes, its ETag (quoted)
 * and Last-Modified (an HTTP date, may be NULL): decides from the request's Range, If-Range and
 * If-None-Match alone as http_reply_file() does for a file (nginx's answers). Answers 304, 412
 * and 416 itself and returns 0; else returns 200 or 206 and the bytes to send, *len from
 * *start, without replying.
 */
int http_reply_decide(struct http_request *req, uint64_t size, const char *etag,
                      const char *last_modified, uint64_t *start, uint64_t *len);

/*
 * Offloaded requests: a handler whose answer needs blocking work (disk, a bucket) hands req over
 * with http_request_offload() and returns without a reply. work(job, ctx) then runs on one of
 * the server's offload threads, where it may block, and done(req, ctx) runs afterwards on req's
 * loop thread, which answers req as a handler would (a done that does not answer gets a 500).
 * done runs exactly once and owns ctx: req is NULL when nobody waits for the answer any more (the
 * client left while the work ran, or the server is stopping), for done's bookkeeping only. At
 * SIGTERM the loop cancels the jobs not started yet (done(NULL) without work) and waits for the
 * running ones. The request body moves to the job: work reads it with the http_offload_body*
 * calls, done's req has none. work must touch neither req nor the loop's state (its thread
 * context); what it needs goes into ctx, and what it finds comes back in ctx.
 * False when req was answered already: then neither function runs.
 */
#define HTTP_OFFLOAD_THREADS_DEFAULT 4
/*
 * Two pools, so that short work never queues behind long work: HTTP_POOL_QUICK for calls that
 * answer in microseconds unless something is down (Redis, with its 1 s timeouts), and
 * HTTP_POOL_FILES for work that may take long when the machine is busy (writing and syncing
 * files, scanning directories, asking a bucket).
 */
enum http_pool_kind { HTTP_POOL_QUICK, HTTP_POOL_FILES, HTTP_POOLS };
struct http_offload;
typedef void (*http_offload_work_fn)(struct http_offload *job, void *ctx);
typedef void (*http_offload_done_fn)(struct http_request *req, void *ctx);
bool http_request_offload(struct http_request *req, enum http_pool_kind pool,
                          http_offload_work_fn work, http_offload_done_fn done, void *ctx);
/*
 * Runs the whole handler fn on a thread of pool, with that thread's context (the server's
 * offload_thread_init): for handlers that block (Redis, a bucket, the disk) from start to end.
 * fn uses req as any handler does (body included); its reply is sent by req's loop, or dropped
 * when the client has left meanwhile (fn's other effects stay). fn may take req over with
 * http_stream_take(). False when req was answered already.
 */
bool http_request_offload_handler(struct http_request *req, enum http_pool_kind pool,
                                  http_handler_fn fn);
/* In work: the length of the request body. */
size_t http_offload_body_length(const struct http_offload *job);
/* In work: the whole request body in one block (may be empty); *len receives its length. */
const unsigned char *http_offload_body(struct http_offload *job, size_t *len);
/* In work: http_request_body_to_fd() for the job's body. */
bool http_offload_body_to_fd(struct http_offload *job, int fd);
/* In work: true once the server is stopping (a long work may end early). */
bool http_offload_cancelled(const struct http_offload *job);

/*
 * Held requests, for a handler that waits for an event of its own loop (a reply that the loop
 * reads, as hiredis's libevent adapter does): http_request_hold() takes req over (the handler
 * then returns without a reply) and gives a handle; later, on the same loop thread,
 * http_held_request() gives the request to answer (or to hand to a pool with
 * http_request_offload_handler()), NULL when nobody waits any more (the server stopped: its log
 * line says 499), and http_held_end() releases the handle (a request not
 * answered gets a 500). The body stays readable until the end. A stopping loop stops accepting
 * and runs on until what it holds is answered, for a few seconds at most (the holder's own
 * timeouts must be shorter), then drops the clients of what is left; the holder still ends each
 * handle, from its thread's http_thread_free_fn at the latest. NULL when req was answered
 * already or off a loop.
 */
struct http_held;
struct http_held *http_request_hold(struct http_request *req);
struct http_request *http_held_request(struct http_held *h);
void http_held_end(struct http_held *h);

/*
 * Streamed replies, for a body that another thread produces (an object proxied from a bucket).
 * http_stream_take() takes req over in its handler (which then returns without a reply); one
 * producer thread then calls http_stream_start() once, http_stream_write() any number of times
 * and http_stream_end() exactly once, which releases the stream (do not touch it after). The
 * loop thread sends the pieces with backpressure: a stream holds at most about 1 MiB.
 */
struct http_stream;
struct http_header {
    const char *name, *value;
};
/* NULL when req was answered already. */
struct http_stream *http_stream_take(struct http_request *req);
/*
 * Runs fn(arg) on a new thread, the stream's producer; the stream joins it once it has ended,
 * so that no producer outlives its stream (nor the server). False when no thread could be made:
 * then the caller produces (or ends) the stream itself.
 */
bool http_stream_run(struct http_stream *s, void *(*fn)(void *), void *arg);
/* The status and headers (copied; add Content-Length for a body of known size); false when
 * the client is gone. */
bool http_stream_start(struct http_stream *s, int status, const struct http_header *h, size_t n);
/*
 * Queues n bytes. They are gathered and go to the loop at http_stream_flush() (or
 * http_stream_end()) or once enough have gathered, which blocks while the window is full; false
 * when the client is gone (stop).
 */
bool http_stream_write(struct http_stream *s, const void *p, size_t n);
/* Hands what was written to the loop now: call it when the producer may wait for its source. */
bool http_stream_flush(struct http_stream *s);
/* complete false after http_stream_start() closes the connection once what was queued went out
 * (the body is short); without http_stream_start() the client gets a 500. */
void http_stream_end(struct http_stream *s, bool complete);

#endif
