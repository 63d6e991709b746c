/*
 * Held requests: a handler that waits for an event of its own loop (a Redis reply read by the
 * loop) takes the request over and answers it later on the same thread, without a pool thread
 * in between. The loop keeps a list of what it holds, so that a stopping loop lets go of the
 * clients before it frees their connections, and the holder finds out when it comes back.
 */
#include "http/internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"

struct http_held {
    struct http_request req;    /* a copy, as an offloaded job keeps one */
    struct http_budget *budget; /* the body budget, given back when the request ends */
    bool gone;                  /* the client left, or the loop stopped: nobody to answer */
    struct http_held *next, **prevp; /* the loop's list of held requests */
};

static _Thread_local struct http_held *loop_held;

struct http_held *http_request_hold(struct http_request *req)
{
    if (http_request_check_replied(req) || req->conn || !http_thread_event_base())
        return NULL;
    struct http_held *h = xcalloc(1, sizeof(*h));
    h->req = *req;
    h->req.path = req->path ? xstrdup(req->path) : NULL;
    h->req.query_parsed = false; /* the original's parameters are freed with it */
    TAILQ_INIT(&h->req.query);
    h->req.held = h;
    h->budget = http_loop_budget();
    h->req.held_reserved = http_loop_hand_over(req->ev);
    req->replied = true; /* answered by the holder from now on */
    req->offloaded = true; /* the body stays with ev: the holder may still read it */
    h->next = loop_held;
    if (loop_held)
        loop_held->prevp = &h->next;
    h->prevp = &loop_held;
    loop_held = h;
    return h;
}

/* Lets go of the client of h without an answer (it left, or the loop stops): 499 in the log. */
static void held_drop(struct http_held *h)
{
    log_msg(LOG_INFO, "http", "req=%s answer dropped: the client left or the server stops",
            h->req.id);
    http_request_account(&h->req, 499, 0);
    struct evhttp_connection *evcon = evhttp_request_get_connection(h->req.ev);
    if (evcon)
        evhttp_connection_free(evcon); /* frees ev with it */
    else
        evhttp_request_free(h->req.ev);
    h->req.ev = NULL;
    h->req.replied = true;
    h->gone = true;
}

/*
 * No look at the socket (an offloaded job's answer peeks): a held request
 * waits for one reply of its loop, a system call more per request would cost more than the
 * answer to a client that left in that time, which the send finds out.
 */
struct http_request *http_held_request(struct http_held *h)
{
    return h->gone || h->req.replied ? NULL : &h->req;
}

void http_held_end(struct http_held *h)
{
    if (!h->gone && !h->req.replied) {
        log_msg(LOG_ERROR, "http", "held request ended without a reply; sending 500");
        http_reply_body(&h->req, 500, "text/plain", "internal error\n", 15);
    }
    if (h->req.held_reserved)
        atomic_fetch_sub(&h->budget->used, h->req.held_reserved);
    *h->prevp = h->next;
    if (h->next)
        h->next->prevp = h->prevp;
    h->req.ev = NULL; /* evhttp's, or freed by held_drop */
    http_request_cleanup(&h->req);
    free(h);
}

bool http_held_waiting(void)
{
    for (struct http_held *h = loop_held; h; h = h->next)
        if (!h->gone && !h->req.replied)
            return true;
    return false;
}

void http_held_drain(void)
{
    for (struct http_held *h = loop_held; h; h = h->next)
        if (!h->gone && !h->req.replied)
            held_drop(h);
}
