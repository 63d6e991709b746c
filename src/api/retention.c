/*
 * Retention (RETENTION_DAYS): a thread of `serve` that deletes, every RETENTION_SWEEP_S, the
 * complete videos whose metadata was published more than RETENTION_DAYS ago, as
 * DELETE /videos/{video_id} does (videos.c). Of all the serve processes that share Redis, one
 * sweeps per period (queue_periodic_turn). It runs beside the event loops, never on them: a
 * sweep reads the whole directory (or lists the bucket: the LastModified of each metadata
 * object).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "api/internal.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "queue/queue.h"
#include "store/store.h"

#define RETENTION_BATCH 256 /* videos listed and deleted per step of a sweep */
#define RETENTION_JOB "retention"

struct api_retention {
    const struct app *app;
    struct queue *queue;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop; /* guarded by lock */
};

static bool stopping(struct api_retention *r)
{
    pthread_mutex_lock(&r->lock);
    bool stop = r->stop;
    pthread_mutex_unlock(&r->lock);
    return stop;
}

/* One sweep: batches of the oldest-listed videos until none is left (or Redis fails). */
static void retention_sweep(struct api_retention *r)
{
    const struct config *cfg = r->app->cfg;
    time_t before = time(NULL) - (time_t)(cfg->retention_days * 86400);
    size_t n = RETENTION_BATCH;
    while (n == RETENTION_BATCH && !stopping(r)) {
        struct store_video_id *ids = NULL;
        if (store_list_older(r->app->store, before, RETENTION_BATCH, &ids, &n)) {
            log_msg(LOG_WARN, "retention", "cannot list the videos of %s",
                    store_is_remote(r->app->store) ? "the bucket" : store_dir(r->app->store));
            return;
        }
        size_t done = api_videos_expire(r->app, r->queue, ids, n, cfg->retention_days);
        free(ids);
        if (done < n)
            return; /* Redis failed: the rest waits for the next sweep */
    }
}

/* Waits up to seconds on the monotonic clock, or until api_retention_stop(). */
static void retention_wait(struct api_retention *r, long long seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)seconds;
    pthread_mutex_lock(&r->lock);
    while (!r->stop && pthread_cond_timedwait(&r->wake, &r->lock, &until) == 0) {
    }
    pthread_mutex_unlock(&r->lock);
}

static void *retention_main(void *arg)
{
    struct api_retention *r = arg;
    long long period = r->app->cfg->retention_sweep_s;
    while (!stopping(r)) {
        bool mine = false;
        if (queue_periodic_turn(r->queue, RETENTION_JOB, period * 900, &mine) == IA_OK && mine)
            retention_sweep(r);
        retention_wait(r, period);
    }
    return NULL;
}

struct api_retention *api_retention_start(const struct app *app)
{
    const struct config *cfg = app->cfg;
    if (cfg->retention_days <= 0)
        return NULL;
    struct api_retention *r = xcalloc(1, sizeof(*r));
    r->app = app;
    r->queue = queue_new(cfg);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&r->lock, NULL);
    if (pthread_create(&r->thread, NULL, retention_main, r))
        abort();
    log_msg(LOG_INFO, "retention", "deleting videos older than %lld day(s), sweeping every %lld s",
            cfg->retention_days, cfg->retention_sweep_s);
    return r;
}

void api_retention_stop(struct api_retention *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    queue_free(r->queue);
    free(r);
}
