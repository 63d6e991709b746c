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

/* Lives on the loop thread's stack for one handler call; handlers must reply before returning. */
struct http_request {
    struct evhttp_request *ev;
    enum http_method method;
    char *path;             /* percent-decoded path, or NULL when it does not decode */
    struct evkeyvalq query; /* decoded query parameters, parsed on first use */
    bool query_parsed;
    bool query_ok;
    bool replied;
    int route_id;      /* metrics_route_id() of the route that took it; 0: none */
    int64_t start_ns;  /* monotonic, when the handler was called */
    char id[HTTP_REQUEST_ID_LEN + 1];
};

/* Prepares req for ev (decodes the path, starts its clock, names it id); http_request_cleanup()
 * releases it. */
void http_request_init(struct http_request *req, struct evhttp_request *ev, const char *id);
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
struct http_conns *http_conns_new(struct event_base *base, atomic_int *open, int max_open,
                                  int request_timeout_s, int keepalive_s);
/* After evhttp_free() of the loop's evhttp (whose connections call back into c). */
void http_conns_free(struct http_conns *c);
/* The evhttp_set_bevcb() callback; arg is the http_conns. */
struct bufferevent *http_conns_bevcb(struct event_base *base, void *arg);
/* A whole request arrived: its connection's head deadline waits until the response is sent. */
void http_conns_request_started(struct http_conns *c, struct evhttp_request *ev);

#endif
