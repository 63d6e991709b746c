/* The route table and dispatch: 404 for unknown paths, 405 with Allow for wrong methods. */
#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "api/internal.h"
#include "api/video_index.h"
#include "core/alloc.h"
#include "http/http.h"
#include "metrics/metrics.h"
#include "queue/queue.h"
#include "queue/queue_async.h"
#include "store/store.h"
#include "util/uuid.h"

/*
 * Where a handler runs, so that its loop keeps answering the others while it blocks
 * (http_request_offload_handler). ON_LOOP: it answers from memory or opens a local file
 * (sendfile sends it), as nginx, or decides itself (api_offload: /status answers a cached
 * finished task on the loop). REDIS: it talks to Redis (and at most stats a file): the quick
 * pool. FILES: it writes, syncs or scans the disk, or asks the bucket: the files pool.
 * REMOTE: on the loop with local storage, on the files pool with a bucket (a HEAD first).
 */
enum route_offload { ON_LOOP, REDIS, FILES, REMOTE };

struct route {
    /* Segments as docs/openapi.yaml writes them: "{name}" (or "*") captures one segment,
     * "{name}.ext" one without ".ext". Also the route's label in logs and metrics. */
    const char *pattern;
    unsigned methods;
    enum route_access access;
    api_handler_fn fn;
    size_t max_body;            /* larger request bodies are refused with 413 */
    enum route_offload offload; /* where the handler runs: it may block on Redis, disk, bucket */
};

#define GET_HEAD (HTTP_GET | HTTP_HEAD)
/* The largest body of every route but the uploads. */
#define JSON_BODY_MAX (64 * 1024)
/* A reviewer's decision: a note of at most 500 characters, with room for JSON escapes. */
#define DECISION_BODY_MAX (16 * 1024)

static const struct route routes[] = {
    {"/submit", HTTP_POST, ACCESS_API, api_submit, JSON_BODY_MAX, ON_LOOP},
    {"/upload", HTTP_POST, ACCESS_API, api_upload_simple, API_BODY_MAX, FILES},
    {"/uploads", HTTP_OPTIONS, ACCESS_PUBLIC, api_tus_options, JSON_BODY_MAX, ON_LOOP},
    {"/uploads", HTTP_POST, ACCESS_API, api_tus_create, JSON_BODY_MAX, FILES},
    {"/uploads/{upload_id}", HTTP_OPTIONS, ACCESS_PUBLIC, api_tus_options, JSON_BODY_MAX, ON_LOOP},
    {"/uploads/{upload_id}", HTTP_HEAD, ACCESS_API, api_tus_head, JSON_BODY_MAX, REDIS},
    {"/uploads/{upload_id}", HTTP_PATCH, ACCESS_API, api_tus_patch, API_BODY_MAX, FILES},
    {"/status/{task_id}", GET_HEAD, ACCESS_API, api_status, JSON_BODY_MAX, ON_LOOP},
    {"/processed/{video_id}", GET_HEAD, ACCESS_API, api_processed, JSON_BODY_MAX, FILES},
    {"/stream/{video_id}", GET_HEAD, ACCESS_MEDIA, api_stream, JSON_BODY_MAX, REMOTE},
    {"/download/{video_id}", GET_HEAD, ACCESS_MEDIA, api_download, JSON_BODY_MAX, REMOTE},
    {"/download/{video_id}/metadata", GET_HEAD, ACCESS_MEDIA, api_download_metadata, JSON_BODY_MAX,
     REMOTE},
    {"/metadata/{video_id}", GET_HEAD, ACCESS_MEDIA, api_metadata, JSON_BODY_MAX, REMOTE},
    {"/thumbnail/{video_id}", GET_HEAD, ACCESS_MEDIA, api_thumbnail, JSON_BODY_MAX, REMOTE},
    {"/events/{video_id}.vtt", GET_HEAD, ACCESS_MEDIA, api_events, JSON_BODY_MAX, REMOTE},
    {"/review/{video_id}", GET_HEAD, ACCESS_MEDIA, api_review, JSON_BODY_MAX, REMOTE},
    {"/evidence/{video_id}/{event_id}.jpg", GET_HEAD, ACCESS_MEDIA, api_evidence, JSON_BODY_MAX,
     REMOTE},
    {"/healthz", GET_HEAD, ACCESS_PUBLIC, api_healthz, JSON_BODY_MAX, ON_LOOP},
    {"/readyz", GET_HEAD, ACCESS_PUBLIC, api_readyz, JSON_BODY_MAX, REDIS},
    {"/", GET_HEAD, ACCESS_PUBLIC, api_web_index, JSON_BODY_MAX, ON_LOOP},
    {"/web/{asset}", GET_HEAD, ACCESS_PUBLIC, api_web_asset, JSON_BODY_MAX, ON_LOOP},
    {"/videos/{video_id}", HTTP_DELETE, ACCESS_API, api_video_delete, JSON_BODY_MAX, FILES},
    {"/videos", GET_HEAD, ACCESS_API, api_videos_list, JSON_BODY_MAX, FILES},
    {"/videos/{video_id}/decisions", GET_HEAD, ACCESS_API, api_decisions_get, JSON_BODY_MAX, FILES},
    {"/videos/{video_id}/events/{event_id}", HTTP_PATCH, ACCESS_API, api_decision_patch,
     DECISION_BODY_MAX, FILES},
    {"/openapi.json", GET_HEAD, ACCESS_PUBLIC, api_openapi, JSON_BODY_MAX, ON_LOOP},
    {"/docs", GET_HEAD, ACCESS_PUBLIC, api_docs_page, JSON_BODY_MAX, ON_LOOP},
    {"/docs/{asset}", GET_HEAD, ACCESS_PUBLIC, api_docs_asset, JSON_BODY_MAX, ON_LOOP},
    {"/metrics", GET_HEAD, ACCESS_API, api_metrics, JSON_BODY_MAX, REDIS},
};

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))
#define MAX_PARAM 128
#define MAX_PARAMS 2

/* Ids are UUIDs in lower case (uuid_v4_new); one written in upper case names the same thing. */
static void id_normalize(char *param, size_t len)
{
    if (!uuid_is_canonical(param, len))
        return;
    for (size_t i = 0; i < len; i++)
        if (param[i] >= 'A' && param[i] <= 'F')
            param[i] = (char)(param[i] - 'A' + 'a');
}

/* The end of a capture at pattern ("{name}" or "*"): where the literal text after it starts. */
static const char *capture_end(const char *pattern)
{
    if (*pattern == '*')
        return pattern + 1;
    const char *close = strchr(pattern, '}');
    assert(close); /* the table's patterns are well formed */
    return close + 1;
}

/*
 * Matches path against pattern; on a match copies what each capture ("{name}" or "*") took into
 * params, in order (the others are ""), with ids in lower case. A capture takes a whole
 * non-empty segment, or, when literal text follows it in the pattern ("{video_id}.vtt"), the
 * non-empty part of the segment before that text, which must end it.
 */
static bool route_match(const char *pattern, const char *path, char params[MAX_PARAMS][MAX_PARAM])
{
    size_t n_params = 0;
    for (size_t i = 0; i < MAX_PARAMS; i++)
        params[i][0] = '\0';
    while (*pattern && *path) {
        if (*pattern == '*' || *pattern == '{') {
            const char *after = capture_end(pattern);
            size_t seg = strcspn(path, "/"), lit = strcspn(after, "/");
            if (n_params == MAX_PARAMS || seg <= lit || seg - lit >= MAX_PARAM ||
                memcmp(path + seg - lit, after, lit) != 0)
                return false;
            memcpy(params[n_params], path, seg - lit);
            params[n_params][seg - lit] = '\0';
            id_normalize(params[n_params++], seg - lit);
            path += seg;
            pattern = after + lit;
        } else if (*pattern++ != *path++) {
            return false;
        }
    }
    return *pattern == '\0' && *path == '\0';
}

/* Each row's metrics_route_id(), registered once per process. */
static int route_ids[N_ROUTES];
static pthread_once_t route_ids_once = PTHREAD_ONCE_INIT;

static void route_ids_init(void)
{
    for (size_t i = 0; i < N_ROUTES; i++)
        route_ids[i] = metrics_route_id(routes[i].pattern);
}

static void reply_not_allowed(struct http_request *req, unsigned allowed)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{HTTP_GET, "GET"},        {HTTP_HEAD, "HEAD"},   {HTTP_POST, "POST"},
                 {HTTP_PUT, "PUT"},        {HTTP_PATCH, "PATCH"}, {HTTP_DELETE, "DELETE"},
                 {HTTP_OPTIONS, "OPTIONS"}};
    char allow[64] = "";
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!(allowed & names[i].bit))
            continue;
        if (allow[0])
            strncat(allow, ", ", sizeof(allow) - strlen(allow) - 1);
        strncat(allow, names[i].name, sizeof(allow) - strlen(allow) - 1);
    }
    http_reply_header(req, "Allow", allow);
    api_reply_error(req, 405, "method_not_allowed", "method not allowed");
}

/*
 * The route of method and path, with its captures in params; NULL when there is none, with the
 * methods the path allows (0: an unknown path) in *allowed. *route_id gets the metrics id of the
 * row found, else of the first row whose pattern matched (a 405), else -1.
 */
static const struct route *route_find(const char *path, enum http_method method,
                                      char params[MAX_PARAMS][MAX_PARAM], unsigned *allowed,
                                      int *route_id)
{
    *allowed = 0;
    *route_id = -1;
    for (size_t i = 0; path && i < N_ROUTES; i++) {
        if (!route_match(routes[i].pattern, path, params))
            continue;
        if (*route_id < 0) /* the first row of the pattern names it, also for a 405 */
            *route_id = route_ids[i];
        if (routes[i].methods & method) {
            *route_id = route_ids[i];
            return &routes[i];
        }
        *allowed |= routes[i].methods;
    }
    return NULL;
}

static void reply_no_route(struct http_request *req, unsigned allowed)
{
    if (allowed)
        reply_not_allowed(req, allowed);
    else
        api_reply_error(req, 404, "not_found", "not found");
}

static void reply_too_large(struct http_request *req)
{
    http_reply_header(req, "Connection", "close"); /* the rest of the body is not read */
    api_reply_error(req, 413, "too_large", "the request body is too large");
}

/*
 * The route of req, with its captures in params, named on req for the metrics (a 405 by its
 * path's first row); NULL when there is none, and req has been answered 404 or 405.
 */
static const struct route *route_of(struct http_request *req, char params[MAX_PARAMS][MAX_PARAM])
{
    unsigned allowed;
    int route_id;
    const struct route *r =
        route_find(http_request_path(req), http_request_method(req), params, &allowed, &route_id);
    if (route_id >= 0)
        http_request_set_route(req, route_id);
    if (!r)
        reply_no_route(req, allowed);
    return r;
}

void api_handle_head(struct http_request *req, void *thread_ctx)
{
    struct api_thread *t = thread_ctx;
    char params[MAX_PARAMS][MAX_PARAM];
    const struct route *r = route_of(req, params);
    if (!r)
        return;
    long long declared = http_request_body_declared(req);
    if (declared > 0 && (unsigned long long)declared > r->max_body) {
        reply_too_large(req);
        return;
    }
    if (api_auth_check(t->app->auth, req, r->access))
        http_request_accept_body(req, r->max_body);
}

void api_handle(struct http_request *req, void *thread_ctx)
{
    char params[MAX_PARAMS][MAX_PARAM];
    const struct route *r = route_of(req, params);
    if (!r)
        return;
    struct api_call call = {req, thread_ctx, params[0], params[1]};
    /* A chunked body (its length unknown at its head) is checked here, once read. */
    if (http_request_body_length(req) > r->max_body) {
        reply_too_large(req);
        return;
    }
    if (!api_auth_check(call.t->app->auth, req, r->access))
        return;
    if (r->offload == REDIS)
        http_request_offload_handler(req, HTTP_POOL_QUICK, api_handle_offloaded);
    else if (r->offload == FILES || (r->offload == REMOTE && store_is_remote(call.t->app->store)))
        http_request_offload_handler(req, HTTP_POOL_FILES, api_handle_offloaded);
    else
        r->fn(&call);
}

bool api_offload(struct api_call *call, int pool)
{
    if (!http_thread_event_base())
        return false; /* on the pool already */
    /* false only when the request was answered already: nothing is left to do either way */
    http_request_offload_handler(call->req, (enum http_pool_kind)pool, api_handle_offloaded);
    return true;
}

void api_handle_offloaded(struct http_request *req, void *thread_ctx)
{
    char params[MAX_PARAMS][MAX_PARAM];
    const struct route *r = route_of(req, params); /* found on the loop: found again */
    if (!r)
        return;
    struct api_call call = {req, thread_ctx, params[0], params[1]};
    r->fn(&call);
}

void *api_thread_new(void *app)
{
    const struct app *a = app;
    struct api_thread *t = xcalloc(1, sizeof(*t));
    pthread_once(&route_ids_once, route_ids_init);
    t->app = a;
    t->queue = queue_new(a->cfg);
    t->queue_async = queue_async_new(t->queue, http_thread_event_base());
    t->video_index = video_index_new();
    return t;
}

void api_thread_free(void *thread_ctx)
{
    struct api_thread *t = thread_ctx;
    if (!t)
        return;
    queue_async_free(t->queue_async); /* before its queue, and before t goes */
    queue_free(t->queue);
    video_index_free(t->video_index);
    free(t);
}
