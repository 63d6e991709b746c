/* `interview-api serve`: the HTTP API on SERVE_THREADS event loops. */
#include "app/app.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/status_cache.h"
#include "core/config.h"
#include "core/log.h"
#include "http/http.h"
#include "store/store.h"
#include "util/netpolicy.h"

#define HEADER_MAX (16 * 1024)
#define URI_MAX (8 * 1024)
#define HEADER_COUNT_MAX 100

static void *signal_thread(void *arg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    sigwait(&set, &sig);
    log_msg(LOG_INFO, "serve", "signal %d: stopping", sig);
    http_server_stop(arg);
    return NULL;
}

int serve_main(const struct config *cfg)
{
    char err[256];
    struct app app = {cfg, store_new(cfg->processed_dir, err, sizeof(err)), NULL, NULL, NULL};
    struct netpolicy *policy = NULL;
    if (app.store && !store_use_s3(app.store, cfg, err, sizeof(err)))
        policy = netpolicy_new(cfg->fetch_allow_cidrs, cfg->allowed_ports, err, sizeof(err));
    app.policy = policy;
    if (policy)
        app.auth = api_auth_new(cfg, err, sizeof(err));
    if (!app.auth) {
        log_msg(LOG_ERROR, "serve", "%s", err);
        netpolicy_free(policy);
        store_free(app.store);
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct http_server_opts opts = {
        .host = cfg->host,
        .port = (int)cfg->port,
        .threads = (int)cfg->serve_threads,
        .offload_threads = (int)cfg->offload_threads,
        .max_body_bytes = API_BODY_MAX,
        .body_budget_bytes = (size_t)cfg->body_budget_bytes,
        .max_header_bytes = HEADER_MAX,
        .max_uri_bytes = URI_MAX,
        .max_header_count = HEADER_COUNT_MAX,
        .max_connections = (int)cfg->max_connections,
        .idle_timeout_s = (int)cfg->idle_timeout_s,
        .request_timeout_s = (int)cfg->request_timeout_s,
        .handler = api_handle,
        .head_handler = api_handle_head,
        .thread_init = api_thread_new,
        .thread_free = api_thread_free,
        .offload_thread_init = api_thread_new,
        .offload_thread_free = api_thread_free,
        .app = &app,
    };
    app.status_cache = status_cache_new();
    struct http_server *srv = http_server_new(&opts, err, sizeof(err));
    if (!srv) {
        log_msg(LOG_ERROR, "serve", "%s", err);
        status_cache_free(app.status_cache);
        api_auth_free(app.auth);
        netpolicy_free(policy);
        store_free(app.store);
        return 1;
    }
    log_msg(LOG_INFO, "serve", "listening on %s:%d with %lld loop(s)", cfg->host,
            http_server_port(srv), cfg->serve_threads);
    struct api_retention *retention = api_retention_start(&app);
    pthread_t sig;
    pthread_create(&sig, NULL, signal_thread, srv);
    http_server_run(srv);
    pthread_cancel(sig);
    pthread_join(sig, NULL);
    api_retention_stop(retention);
    http_server_free(srv);
    status_cache_free(app.status_cache);
    api_auth_free(app.auth);
    netpolicy_free(policy);
    store_free(app.store);
    return 0;
}
