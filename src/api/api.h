/*
 * The REST API: one handler per endpoint, a route table, and the one place that maps errors to
 * HTTP statuses. Plugged into http/ as its request handler.
 */
#ifndef IA_API_API_H
#define IA_API_API_H

struct config;
struct store;
struct http_request;
struct api_auth;
struct netpolicy;

/* What every request handler may read; shared by all threads, read-only after start. */
struct app {
    const struct config *cfg;
    struct store *store;
    struct api_auth *auth;
    const struct netpolicy *policy; /* the fetcher's, for callback URLs at submission */
    struct status_cache *status_cache; /* finished tasks for GET /status, shared by the threads */
};

/*
 * The largest request body the HTTP layer takes in (one tus chunk, or a POST /upload file):
 * libevent 2.1 holds a whole body in memory before the handler runs, so this bounds the memory
 * of one request (and BODY_BUDGET_BYTES that of all of them). Each route has a smaller limit of
 * its own, applied from the request's head (api_handle_head).
 */
#define API_BODY_MAX (16 * 1024 * 1024)

/*
 * Per-thread state (its own Redis connections); pass as http thread_init/thread_free, and as
 * offload_thread_init/offload_thread_free (each offload thread has its own too).
 */
void *api_thread_new(void *app);
void api_thread_free(void *thread_ctx);
/* The http handler: routes and answers one request. */
void api_handle(struct http_request *req, void *thread_ctx);
/* The handler of the routes that run on the offload pool (the route table says which). */
void api_handle_offloaded(struct http_request *req, void *thread_ctx);
/*
 * The http head handler, for a request with a body before the body is read: answers 404/405
 * for no route, 413 for a Content-Length over the route's limit, 401/403 for a client the route
 * does not admit; otherwise lets the body be read up to the route's limit.
 */
void api_handle_head(struct http_request *req, void *thread_ctx);

/*
 * Retention (retention.c): when RETENTION_DAYS > 0, a thread that deletes older videos every
 * RETENTION_SWEEP_S; NULL when it is off. app must outlive it. Start it with the signals the
 * program waits for blocked (the thread inherits the mask).
 */
struct api_retention;
struct api_retention *api_retention_start(const struct app *app);
/* Stops the thread (a sweep in progress ends after its current batch) and frees it; NULL is fine. */
void api_retention_stop(struct api_retention *r);

#endif
