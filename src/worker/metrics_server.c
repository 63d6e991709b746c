/*
 * A worker's GET /metrics on WORKER_METRICS_ADDR:WORKER_METRICS_PORT: one event loop of http/
 * (so the same defences as serve: bounded heads, no bodies, head deadlines, a connection cap)
 * answering that one path, with the same access rule as serve's /metrics (a bearer key when
 * API_KEYS is set, through api/auth).
 */
#include "worker/worker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "http/http.h"
#include "metrics/metrics.h"
#include "queue/queue.h"

/* Scrapers send small requests: everything else is refused early. */
#define METRICS_MAX_HEADER_BYTES (8 * 1024)
#define METRICS_MAX_URI_BYTES 1024
#define METRICS_MAX_HEADER_COUNT 50
#define METRICS_MAX_BODY_BYTES 1024
#define METRICS_MAX_CONNECTIONS 64
#define METRICS_IDLE_TIMEOUT_S 10
#define METRICS_REQUEST_TIMEOUT_S 5

struct worker_metrics {
    const struct config *cfg;
    struct api_auth *auth;
    struct http_server *srv;
    pthread_t thread;
    int route_id;
};

/* The loop thread's context: its own Redis connection. */
struct metrics_loop {
    const struct worker_metrics *wm;
    struct queue *queue;
};

static void *loop_thread_new(void *app)
{
    struct metrics_loop *l = xcalloc(1, sizeof(*l));
    l->wm = app;
    l->queue = queue_new(l->wm->cfg);
    return l;
}

static void loop_thread_free(void *ctx)
{
    struct metrics_loop *l = ctx;
    queue_free(l->queue);
    free(l);
}

static void reply_text(struct http_request *req, int status, const char *text)
{
    http_reply_body(req, status, "text/plain; charset=utf-8", text, strlen(text));
}

static void on_request(struct http_request *req, void *ctx)
{
    const struct metrics_loop *l = ctx;
    const struct worker_metrics *wm = l->wm;
    const char *path = http_request_path(req);
    if (!path || strcmp(path, "/metrics") != 0) {
        reply_text(req, 404, "not found\n");
        return;
    }
    http_request_set_route(req, wm->route_id);
    enum http_method m = http_request_method(req);
    if (m != HTTP_GET && m != HTTP_HEAD) {
        http_reply_header(req, "Allow", "GET, HEAD");
        reply_text(req, 405, "method not allowed\n");
        return;
    }
    if (!api_auth_check(wm->auth, req, ACCESS_API))
        return;
    struct metrics_scrape scrape = {METRICS_ROLE_WORKER, queue_length(l->queue)};
    size_t len = 0;
    char *text = metrics_render(&scrape, &len);
    http_reply_header(req, "Cache-Control", "no-store");
    http_reply_body(req, 200, METRICS_CONTENT_TYPE, text, len);
    free(text);
}

static void *serve_thread(void *arg)
{
    http_server_run(arg);
    return NULL;
}

bool worker_metrics_start(const struct config *cfg, struct worker_metrics **out)
{
    *out = NULL;
    if (cfg->worker_metrics_port == 0)
        return true;
    char err[256];
    struct worker_metrics *wm = xcalloc(1, sizeof(*wm));
    wm->cfg = cfg;
    wm->route_id = metrics_route_id("/metrics");
    wm->auth = api_auth_new(cfg, err, sizeof(err));
    struct http_server_opts opts = {
        .host = cfg->worker_metrics_addr,
        .port = (int)cfg->worker_metrics_port,
        .threads = 1,
        .offload_threads = 1, /* unused: its handler answers on the loop */
        .max_body_bytes = METRICS_MAX_BODY_BYTES,
        .max_header_bytes = METRICS_MAX_HEADER_BYTES,
        .max_uri_bytes = METRICS_MAX_URI_BYTES,
        .max_header_count = METRICS_MAX_HEADER_COUNT,
        .max_connections = METRICS_MAX_CONNECTIONS,
        .idle_timeout_s = METRICS_IDLE_TIMEOUT_S,
        .request_timeout_s = METRICS_REQUEST_TIMEOUT_S,
        .handler = on_request,
        .thread_init = loop_thread_new,
        .thread_free = loop_thread_free,
        .app = wm,
    };
    if (wm->auth)
        wm->srv = http_server_new(&opts, err, sizeof(err));
    if (!wm->srv) {
        log_msg(LOG_ERROR, "worker", "metrics endpoint: %s", err);
        api_auth_free(wm->auth);
        free(wm);
        return false;
    }
    if (pthread_create(&wm->thread, NULL, serve_thread, wm->srv) != 0)
        abort();
    log_msg(LOG_INFO, "worker", "metrics on http://%s:%d/metrics", cfg->worker_metrics_addr,
            http_server_port(wm->srv));
    *out = wm;
    return true;
}

void worker_metrics_stop(struct worker_metrics *wm)
{
    if (!wm)
        return;
    http_server_stop(wm->srv);
    pthread_join(wm->thread, NULL);
    http_server_free(wm->srv);
    api_auth_free(wm->auth);
    free(wm);
}
