/* Worker process: slots, heartbeat, the webhook sender, signals and orderly shutdown. */
#include "worker/worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "analysis/analysis.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "media/media.h"
#include "metrics/metrics.h"
#include "queue/queue.h"
#include "store/store.h"
#include "util/netpolicy.h"
#include "util/os.h"
#include "webhook/webhook.h"
#include "worker/task.h"

#define CLAIM_WAIT_MS 1000
#define SWEEP_AGE_S (24 * 3600)

struct slot {
    struct worker *w;
    int index;
    pthread_t thread;
    atomic_bool cancel;
    pthread_mutex_t lock; /* guards current, read by the heartbeat */
    struct claimed_task *current;
};

struct worker {
    const struct config *cfg;
    struct store *store;
    struct netpolicy *policy;
    atomic_bool draining; /* stop claiming */
    atomic_bool stopped;  /* all slots have exited */
    atomic_int running;   /* slot threads still running */
    int nslots;
    struct slot *slots;
};

static void slot_set_current(struct slot *s, struct claimed_task *t)
{
    pthread_mutex_lock(&s->lock);
    s->current = t;
    pthread_mutex_unlock(&s->lock);
}

/* Acknowledges or returns the message; retries while Redis is down so nothing is lost. */
static void slot_finish(struct queue *q, const struct claimed_task *t,
                        enum task_outcome outcome)
{
    for (int tries = 0; tries < 30; tries++) {
        enum ia_err err = outcome == TASK_OUTCOME_ACK ? queue_ack(q, t) : queue_requeue(q, t);
        if (err == IA_OK || err == IA_ERR_NOT_FOUND)
            return;
        sleep(1);
    }
    log_msg(LOG_WARN, "worker", "task=%s could not be settled; its lease will expire", t->task_id);
}

static void slot_run_one(struct slot *s, struct queue *q, struct claimed_task *t)
{
    struct task_env env = {s->w->cfg, s->w->store, s->w->policy, q, &s->cancel,
                           &s->w->draining};
    atomic_store(&s->cancel, false);
    slot_set_current(s, t);
    metrics_worker_busy_add(1);
    enum task_outcome outcome = task_run(&env, t);
    metrics_worker_busy_add(-1);
    slot_set_current(s, NULL);
    slot_finish(q, t, outcome);
}

static void *slot_main(void *arg)
{
    struct slot *s = arg;
    const struct config *cfg = s->w->cfg;
    struct queue *q = queue_new(cfg);
    int backoff_ms = 100;
    while (!atomic_load(&s->w->draining)) {
        struct claimed_task *t = NULL;
        enum ia_err err =
            queue_claim(q, (int)cfg->task_lease_s, CLAIM_WAIT_MS, &s->w->draining, &t);
        if (err == IA_ERR_BROKER) {
            usleep((useconds_t)backoff_ms * 1000);
            backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
            continue;
        }
        backoff_ms = 100;
        if (t && atomic_load(&s->w->draining))
            slot_finish(q, t, TASK_OUTCOME_REQUEUE); /* claimed while the drain began */
        else if (t)
            slot_run_one(s, q, t);
        claimed_task_free(t);
    }
    queue_free(q);
    atomic_fetch_sub(&s->w->running, 1);
    return NULL;
}

/* Renews the lease of every running task; a lost lease cancels that task. */
static void heartbeat_renew(struct worker *w, struct queue *q)
{
    for (int i = 0; i < w->nslots; i++) {
        struct slot *s = &w->slots[i];
        pthread_mutex_lock(&s->lock);
        if (s->current &&
            queue_lease_renew(q, s->current, (int)w->cfg->task_lease_s) == IA_ERR_NOT_FOUND) {
            log_msg(LOG_WARN, "worker", "task=%s lease lost; stopping it", s->current->task_id);
            atomic_store(&s->cancel, true);
        }
        pthread_mutex_unlock(&s->lock);
    }
}

static void cancel_all(struct worker *w)
{
    for (int i = 0; i < w->nslots; i++)
        atomic_store(&w->slots[i].cancel, true);
}

/* Restores expired leases of dead workers and fails accepted tasks whose message vanished. */
static void heartbeat_sweep(struct worker *w, struct queue *q)
{
    long long n = queue_restore_expired(q);
    if (n > 0)
        log_msg(LOG_WARN, "worker", "restored %lld task(s) whose worker stopped", n);
    queue_fail_lost(q, (int)w->cfg->task_lost_after_s);
}

/* The heartbeat loop: renews leases every lease/3 and sweeps as often. */
static void *heartbeat_main(void *arg)
{
    struct worker *w = arg;
    struct queue *q = queue_new(w->cfg);
    if (w->cfg->webhook_secret[0]) /* a task_lost failure sends its webhook too */
        queue_set_lost_events(q, webhook_lost_event, NULL);
    long period_ms = w->cfg->task_lease_s * 1000 / 3;
    int64_t next_sweep = 0;
    while (!atomic_load(&w->stopped)) {
        heartbeat_renew(w, q);
        int64_t now = os_monotonic_ms();
        if (now >= next_sweep) {
            heartbeat_sweep(w, q);
            next_sweep = now + period_ms;
        }
        for (long slept = 0; slept < period_ms && !atomic_load(&w->stopped); slept += 100)
            usleep(100 * 1000);
    }
    queue_free(q);
    return NULL;
}

/* Waits for a signal for at most timeout_s (forever when < 0); returns it, or 0 on timeout. */
static int wait_signal(const sigset_t *set, int timeout_s)
{
    if (timeout_s < 0)
        return sigwaitinfo(set, NULL);
    struct timespec ts = {timeout_s, 0};
    int sig = sigtimedwait(set, NULL, &ts);
    return sig < 0 ? 0 : sig;
}

/* First SIGTERM/SIGINT: stop claiming, let tasks finish for the grace period, then return
 * them to the queue. A second SIGINT (or SIGTERM) stops running tasks at once. */
static void worker_wait_shutdown(struct worker *w, const sigset_t *set)
{
    int sig;
    while ((sig = wait_signal(set, -1)) < 0 && errno == EINTR)
        ;
    long long grace_s = w->cfg->worker_shutdown_grace_s;
    atomic_store(&w->draining, true); /* before the line: once it is logged, nothing is claimed */
    log_msg(LOG_INFO, "worker", "signal %d: finishing running tasks (up to %lld s)", sig, grace_s);
    int64_t deadline = os_monotonic_ms() + grace_s * 1000;
    while (atomic_load(&w->running) > 0) {
        if (os_monotonic_ms() >= deadline || wait_signal(set, 1) > 0) {
            log_msg(LOG_INFO, "worker", "stopping running tasks now; they return to the queue");
            cancel_all(w);
            break;
        }
    }
}

static int worker_start(struct worker *w, pthread_t *heartbeat)
{
    w->slots = xcalloc((size_t)w->nslots, sizeof(*w->slots));
    atomic_store(&w->running, w->nslots);
    for (int i = 0; i < w->nslots; i++) {
        struct slot *s = &w->slots[i];
        s->w = w;
        s->index = i;
        pthread_mutex_init(&s->lock, NULL);
        if (pthread_create(&s->thread, NULL, slot_main, s))
            abort();
    }
    if (pthread_create(heartbeat, NULL, heartbeat_main, w))
        abort();
    return 0;
}

static void worker_join(struct worker *w, pthread_t heartbeat)
{
    for (int i = 0; i < w->nslots; i++) {
        pthread_join(w->slots[i].thread, NULL);
        pthread_mutex_destroy(&w->slots[i].lock);
    }
    atomic_store(&w->stopped, true);
    pthread_join(heartbeat, NULL);
    free(w->slots);
}

int worker_main(const struct config *cfg)
{
    char err[256];
    struct worker w = {.cfg = cfg, .nslots = (int)cfg->worker_concurrency};
    w.policy = netpolicy_new(cfg->fetch_allow_cidrs, cfg->allowed_ports, err, sizeof(err));
    w.store = w.policy ? store_new(cfg->processed_dir, err, sizeof(err)) : NULL;
    if (w.store && media_global_init() != IA_OK) { /* libcurl loaded before threads start */
        store_free(w.store);
        w.store = NULL;
        snprintf(err, sizeof(err), "cannot fetch anything without libcurl");
    }
    if (w.store && store_use_s3(w.store, cfg, err, sizeof(err))) {
        store_free(w.store);
        w.store = NULL;
    }
    if (!w.store) {
        log_msg(LOG_ERROR, "worker", "%s", err);
        netpolicy_free(w.policy);
        return 1;
    }
    if (netpolicy_has_exceptions(w.policy))
        log_msg(LOG_WARN, "worker", "FETCH_ALLOW_CIDRS=%s: the fetcher MAY REACH THESE PRIVATE "
                "NETWORKS; use this only for development and tests", cfg->fetch_allow_cidrs);
    store_sweep_work(w.store, SWEEP_AGE_S);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct worker_metrics *metrics = NULL;
    if (!worker_metrics_start(cfg, &metrics)) {
        store_free(w.store);
        netpolicy_free(w.policy);
        return 1;
    }
    metrics_worker_slots_set(w.nslots);
    pthread_t heartbeat;
    worker_start(&w, &heartbeat);
    struct webhook_sender *sender = webhook_sender_start(cfg, w.policy);
    log_msg(LOG_INFO, "worker", "ready: %d slot(s), lease %lld s", w.nslots, cfg->task_lease_s);
    worker_wait_shutdown(&w, &set);
    worker_join(&w, heartbeat);
    worker_metrics_stop(metrics);
    webhook_sender_stop(sender);
    analysis_global_cleanup();
    store_free(w.store);
    netpolicy_free(w.policy);
    log_msg(LOG_INFO, "worker", "stopped");
    return 0;
}
