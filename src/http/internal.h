/* What the http/ files share: the request wrapper around libevent's request. Private to http/. */
#ifndef IA_HTTP_INTERNAL_H
#define IA_HTTP_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "http/http.h"

struct http_conn;

/* A request head parsed before its body is read (head.c). */
struct http_head {
    enum http_method method;
    char *target;             /* the request target as sent */
    bool body_possible;       /* evhttp reads a body for this method (not HEAD, TRACE) */
    bool chunked;             /* Transfer-Encoding: chunked */
    long long content_length; /* 0 when absent or chunked */
};

/*
 * Parses the head [p, p+len) (request line and fields, up to the empty line) into out and its
 * fields into headers, as evhttp 2.1 will read it. False when evhttp would refuse it (or this
 * parser cannot tell what it means); out->target may then be set: http_head_cleanup() frees it.
 */
bool http_head_parse(const char *p, size_t len, struct http_head *out, struct evkeyvalq *headers);
void http_head_cleanup(struct http_head *h);
/*
 * What the head [p, p+len) says of its body, from one look at its fields, without parsing it:
 * NONE when it has neither a Content-Length nor a Transfer-Encoding field (evhttp reads no
 * body); LENGTH when its one Content-Length field is a number, stored in *length, and nothing
 * else bears on the body (no Transfer-Encoding, no folded line); UNCLEAR otherwise, for
 * http_head_parse() to tell.
 */
enum http_head_body { HTTP_HEAD_BODY_NONE, HTTP_HEAD_BODY_LENGTH, HTTP_HEAD_BODY_UNCLEAR };
enum http_head_body http_head_body(const char *p, size_t len, uint64_t *length);

/*
 * Lives on the loop thread's stack for one handler call; handlers must reply before returning.
 * A head request (conn set) has no body yet: ev is a request of our own holding its headers and
 * the reply, which conn.c sends before closing the connection.
 */
struct http_request {
    struct evhttp_request *ev;
    struct evhttp_connection *evcon;
    struct http_conn *conn;       /* a head request's connection; NULL for a whole request */
    const struct evhttp_uri *uri; /* borrowed from ev, or uri_owned */
    struct evhttp_uri *uri_owned;
    long long body_declared;      /* Content-Length, or -1 when chunked */
    size_t body_max;              /* what the head handler accepted (http_request_accept_body) */
    bool body_accepted;
    enum http_method method;
    char *path;             /* percent-decoded path, or NULL when it does not decode */
    struct evkeyvalq query; /* decoded query parameters, parsed on first use */
    bool query_parsed;
    bool query_ok;
    bool replied;
    bool offloaded;      /* handed to the offload pool (offload.c): its body is the job's */
    bool deferred;       /* a handler on the pool answers it: the loop sends the reply */
    int deferred_status; /* what that handler answered (0: a stream took the request) */
    int route_id;      /* metrics_route_id() of the route that took it; 0: none */
    struct http_held *held; /* the holder's copy of a held request (held.c) */
    size_t held_reserved;   /* the body budget bytes a held request's body holds */
    int64_t start_ns;  /* monotonic, when the handler was called */
    char id[HTTP_REQUEST_ID_LEN + 1];
};

/*
 * Prepares req for ev (decodes the path, starts its clock, names it id); http_request_cleanup()
 * releases it.
 */
void http_request_init(struct http_request *req, struct evhttp_request *ev, const char *id);
/*
 * Prepares a head request from the head [p, p+len) read on conn. False when the head does not
 * parse (req is still usable for a reply); *head receives what was parsed (the caller cleans it).
 */
bool http_request_init_head(struct http_request *req, const char *p, size_t len,
                            struct http_conn *conn, struct evhttp_connection *evcon,
                            struct http_head *head);
/* The reason phrase of an HTTP status ("Status" for one not in the table). */
const char *http_reason_phrase(int status);
/* Answers with {"detail": detail, "code": code} and Connection: close; literals only. */
void http_reply_refusal(struct http_request *req, int status, const char *code,
                        const char *detail);
/*
 * Sends the reply of a head request (status, ev's output headers and buffer, Connection: close),
 * then closes the connection without reading the body: what arrives meanwhile is dropped.
 */
void http_conn_refuse(struct http_conn *conn, struct evhttp_request *ev, int status);
void http_request_cleanup(struct http_request *req);

/*
 * Sends the reply: status, the output headers added so far with X-Request-Id, and the output
 * buffer (which libevent does not send for HEAD). Marks req replied; a second reply is logged
 * and dropped. Counts the request in the metrics and writes its log line.
 */
void http_request_send(struct http_request *req, int status);
/* Counts a request in the metrics and writes its log line (http_request_send() does it). */
void http_request_account(const struct http_request *req, int status, uint64_t bytes);
/*
 * Ends every stream of this loop (http_stream_take()) before its connections are freed: tells
 * their producers to stop, waits for them, and cuts what they had not sent. On the loop thread.
 */
void http_streams_drain(struct event_base *base);
/* Writes all of in to fd, leaving in as it is; false with errno on a write error. */
bool http_evbuffer_to_fd(struct evbuffer *in, int fd);

/* The offload pool (offload.c): threads shared by the loops for the blocking part of requests. */
struct http_pool;
struct http_pool *http_pool_new(int nthreads, http_thread_init_fn init, http_thread_free_fn free_fn,
                               void *app);
/* Starts its threads; false when none could be made. */
bool http_pool_start(struct http_pool *p);
/* Lets the threads finish the queued work and joins them (after every loop has drained). */
void http_pool_stop(struct http_pool *p);
void http_pool_free(struct http_pool *p);
/*
 * On the loop thread, when its loop has stopped: cancels this loop's queued jobs, waits for its
 * running ones, and finishes each (done with a NULL request), before its connections are freed.
 */
void http_offloads_drain(struct http_pool *p, struct event_base *base);
/* The calling loop thread's pool of that kind and the server's body budget; NULL off the loops. */
struct http_pool *http_loop_pool(enum http_pool_kind kind);
struct http_budget *http_loop_budget(void);
/*
 * The calling loop thread's part of http_conns_request_hand_over(): the bytes of the body
 * budget that ev's body holds pass to the caller, which gives them back (0 when none).
 */
size_t http_loop_hand_over(struct evhttp_request *ev);

/* True when the calling loop holds a request (http_request_hold()) not answered yet. */
bool http_held_waiting(void);
/*
 * On a stopping loop, before its connections are freed: drops the clients of the requests it
 * still holds; their holders find no request when they come back.
 */
void http_held_drain(void);

/* True when req was already answered; logs the misuse. */
bool http_request_check_replied(const struct http_request *req);

/* Percent-decodes [in, in+len) into a new string; NULL on a bad escape or a NUL byte. */
char *http_path_decode(const char *in, size_t len);

/* One loop's connections: admission against a process-wide cap, and head deadlines. */
struct http_conns;
struct bufferevent;
struct event_base;
/*
 * open is the server's count of open connections (shared by its loops); max_open 0 means no cap;
 * request_timeout_s bounds the arrival of each request's head, 0 means no deadline; keepalive_s
 * is added to it after a response (the idle time a kept-alive connection may wait). NULL when
 * libevent cannot make an event.
 */
/*
 * The bytes of request bodies in flight, all loops together, against a cap; and the bytes of
 * bodies freed since memory was last handed back to the system (each loop checks every second:
 * once no body is in flight and more than HTTP_TRIM_AFTER_BYTES were freed, it calls
 * malloc_trim(), else a burst of large bodies stays in serve's RSS for good).
 */
struct http_budget {
    atomic_size_t used;
    atomic_size_t freed;
    size_t max; /* 0: no cap (bodies are still counted) */
};
/* n bytes of bodies are no longer in memory. */
void http_budget_give_back(struct http_budget *b, size_t n);
struct http_conns *http_conns_new(struct event_base *base, atomic_int *open, int max_open,
                                  int request_timeout_s, int keepalive_s,
                                  struct http_budget *budget, size_t max_body);
/*
 * The head handler and its context (the loop thread's), called at the end of the head of each
 * request that has a body; NULL accepts every body up to max_body.
 */
void http_conns_set_head_handler(struct http_conns *c, http_handler_fn fn, void *ctx);
/* True when a connection of the loop has response bytes not yet written to its socket. */
bool http_conns_sending(const struct http_conns *c);
/* After evhttp_free() of the loop's evhttp (whose connections call back into c). */
void http_conns_free(struct http_conns *c);
/* The evhttp_set_bevcb() callback; arg is the http_conns. */
struct bufferevent *http_conns_bevcb(struct event_base *base, void *arg);
/* A whole request arrived: its connection's head deadline waits until the response is sent. */
void http_conns_request_started(struct http_conns *c, struct evhttp_request *ev);
/*
 * ev's body leaves the connection (an offloaded request): returns the budget bytes it holds,
 * which the caller now owns and gives back itself; the connection forgets them.
 */
size_t http_conns_request_hand_over(struct http_conns *c, struct evhttp_request *ev);
/* The handler answered ev: its body is freed now, and what it took from the budget given back. */
void http_conns_request_answered(struct http_conns *c, struct evhttp_request *ev);

#endif
