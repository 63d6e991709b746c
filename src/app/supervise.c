/*
 * `interview-api run`: API, worker and (when needed) a private redis-server, stopped together.
 * The children run in process groups of their own, so a terminal's Ctrl-C reaches only this
 * supervisor, which passes each Ctrl-C on once: the first drains the worker, a second stops it.
 */
#include "app/app.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "media/proc.h"
#include "queue/queue.h"
#include "store/store.h"

#define CHILDREN_MAX 3

struct child {
    const char *name;
    pid_t pid;
    bool last; /* stopped after the others: the private redis-server they need to stop well */
};

/* Starts a service child (media/proc.c); -1, logged, when it cannot be started. */
static pid_t spawn(const char *const argv[])
{
    char detail[256];
    pid_t pid = proc_spawn_service(argv, detail, sizeof(detail));
    if (pid < 0)
        log_msg(LOG_ERROR, "run", "cannot start %s: %s", argv[0], detail);
    return pid;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, len) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Starts redis-server on a free loopback port with its data under PROCESSED_DIR/.redis. */
static pid_t start_private_redis(const struct config *cfg, int *port)
{
    *port = free_port();
    char err[256];
    struct store *store = store_new(cfg->processed_dir, err, sizeof(err));
    if (!store) {
        log_msg(LOG_ERROR, "run", "%s", err);
        return -1;
    }
    store_free(store);
    char *dir = xasprintf("%s/.redis", cfg->processed_dir);
    char *port_s = xasprintf("%d", *port);
    mkdir(dir, 0700);
    const char *argv[] = {"redis-server", "--bind", "127.0.0.1",
                    "--port", port_s, "--dir", dir,
                    "--appendonly", "yes", "--save", "",
                    "--loglevel", "warning", NULL};
    pid_t pid = spawn(argv);
    free(dir);
    free(port_s);
    return pid;
}

/* Waits until Redis answers, trying up to tries times 100 ms apart. */
static int redis_answers(const struct config *cfg, int tries)
{
    struct queue *q = queue_new(cfg);
    int ok = 0;
    for (int i = 0; i < tries && !ok; i++) {
        ok = queue_ping(q);
        if (!ok)
            usleep(100 * 1000);
    }
    queue_free(q);
    return ok;
}

static void signal_children(const struct child *kids, int n, bool last, int sig)
{
    for (int i = 0; i < n; i++)
        if (kids[i].pid > 0 && kids[i].last == last)
            kill(kids[i].pid, sig);
}

/* Reaps the children of one kind (last or not) that exited; true when none is left. */
static bool reap_children(struct child *kids, int n, bool last)
{
    bool left = false;
    for (int i = 0; i < n; i++) {
        if (kids[i].pid <= 0 || kids[i].last != last)
            continue;
        if (waitpid(kids[i].pid, NULL, WNOHANG) == 0)
            left = true;
        else
            kids[i].pid = 0;
    }
    return !left;
}

/*
 * SIGTERM to the children of one kind, then waits for them. A Ctrl-C or SIGTERM meanwhile is
 * passed on: the worker's second signal stops its running tasks at once.
 */
static void stop_kind(struct child *kids, int n, bool last, const sigset_t *set)
{
    signal_children(kids, n, last, SIGTERM);
    while (!reap_children(kids, n, last)) {
        int sig = sigwaitinfo(set, NULL); /* SIGCHLD, or a signal to pass on */
        if (sig == SIGINT || sig == SIGTERM) {
            log_msg(LOG_INFO, "run", "signal %d again: stopping running tasks now", sig);
            signal_children(kids, n, last, sig);
        }
    }
}

/* Stops the API and the worker (which drains), then the private redis-server. */
static void stop_children(struct child *kids, int n, const sigset_t *set)
{
    stop_kind(kids, n, false, set);
    stop_kind(kids, n, true, set);
}

static int use_private_redis(struct config *cfg, struct child *redis)
{
    int port;
    redis->name = "redis-server";
    redis->last = true;
    redis->pid = start_private_redis(cfg, &port);
    if (redis->pid < 0)
        return -1;
    free(cfg->broker_url);
    free(cfg->backend_url);
    cfg->broker_url = xasprintf("redis://127.0.0.1:%d/0", port);
    cfg->backend_url = xasprintf("redis://127.0.0.1:%d/1", port);
    setenv("CELERY_BROKER_URL", cfg->broker_url, 1);
    setenv("CELERY_BACKEND_URL", cfg->backend_url, 1);
    if (!redis_answers(cfg, 50)) {
        log_msg(LOG_ERROR, "run", "the private redis-server did not start");
        return -1;
    }
    log_msg(LOG_INFO, "run", "started a private redis-server on 127.0.0.1:%d", port);
    return 0;
}

/* Waits for Ctrl-C/SIGTERM or the exit of any child; returns the exit status. */
static int supervise(struct child *kids, int n)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    for (;;) {
        int sig = sigwaitinfo(&set, NULL);
        if (sig == SIGINT || sig == SIGTERM) {
            log_msg(LOG_INFO, "run",
                    "stopping: running tasks may finish (WORKER_SHUTDOWN_GRACE_S);"
                    " Ctrl-C again stops them now");
            return 0;
        }
        for (int i = 0; i < n; i++) {
            int status;
            if (kids[i].pid > 0 && waitpid(kids[i].pid, &status, WNOHANG) == kids[i].pid) {
                log_msg(LOG_ERROR, "run", "%s exited; stopping everything", kids[i].name);
                kids[i].pid = 0;
                return 1;
            }
        }
    }
}

int supervise_main(struct config *cfg, const char *self_exe, int broker_configured)
{
    struct child kids[CHILDREN_MAX];
    int n = 0, rc = 1;
    memset(kids, 0, sizeof(kids));
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (!broker_configured && !redis_answers(cfg, 1) && use_private_redis(cfg, &kids[n++]))
        goto out;
    const char *serve_argv[] = {self_exe, "serve", NULL};
    const char *worker_argv[] = {self_exe, "worker", NULL};
    kids[n++] = (struct child){"worker", spawn(worker_argv), false};
    kids[n++] = (struct child){"serve", spawn(serve_argv), false};
    if (kids[n - 2].pid < 0 || kids[n - 1].pid < 0)
        goto out;
    printf("interview-api is running: %s  (review page; API docs at %s/docs; Ctrl-C stops "
           "it)\n",
           cfg->public_base_url, cfg->public_base_url);
    fflush(stdout);
    rc = supervise(kids, n);
out:
    stop_children(kids, n, &set);
    return rc;
}
