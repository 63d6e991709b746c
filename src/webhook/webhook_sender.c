/*
 * The sender threads of a worker process (two, so that one silent receiver does not hold up every
 * other): each claims one due webhook event at a time under a lease, POSTs it
 * (signed, through the fetcher's gate, no redirects, WEBHOOK_TIMEOUT_S per attempt), and removes
 * it on a 2xx answer, schedules the next attempt with backoff and jitter, or drops it once
 * WEBHOOK_MAX_AGE_S has passed since the task ended.
 */
#include "webhook/webhook.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "media/media.h"
#include "queue/queue.h"
#include "metrics/metrics.h"

#define SENDER_THREADS 2      /* so that one silent receiver does not hold up the others */
#define SENDER_IDLE_MS 500    /* pause when none is due */
#define SENDER_OUTAGE_MS 2000 /* pause after Redis failed */

struct webhook_sender {
    const struct config *cfg;
    const struct netpolicy *policy;
    pthread_t threads[SENDER_THREADS];
    atomic_bool stop;
};

/* The host of url for a log line (escaped), never its path, query or user-info. */
static void url_host(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    log_escape(out, cap, p, n);
}

void webhook_attempt_outcome(const struct queue_webhook *w, enum webhook_outcome outcome,
                             long status, const char *detail, double next_s)
{
    static const char *const names[] = {[WEBHOOK_DELIVERED] = "delivered",
                                        [WEBHOOK_RETRY] = "failed; retrying",
                                        [WEBHOOK_DROPPED] = "failed; dropped",
                                        [WEBHOOK_REFUSED] = "refused; dropped"};
    char host[128], why[256];
    url_host(w->url, host, sizeof(host));
    log_escape(why, sizeof(why), detail ? detail : "", detail ? strlen(detail) : 0);
    enum log_level level = outcome == WEBHOOK_DELIVERED ? LOG_INFO : LOG_WARN;
    metrics_webhook_attempt(outcome == WEBHOOK_DELIVERED ? METRICS_WEBHOOK_DELIVERED
                            : outcome == WEBHOOK_RETRY   ? METRICS_WEBHOOK_RETRY
                                                         : METRICS_WEBHOOK_FAILED);
    if (outcome == WEBHOOK_RETRY)
        log_msg(level, "webhook",
                "task=%s event=%s attempt=%lld host=%s status=%ld %s in %.1f s: %s", w->task_id,
                w->event_id, w->attempt, host, status, names[outcome], next_s, why);
    else
        log_msg(level, "webhook", "task=%s event=%s attempt=%lld host=%s status=%ld %s%s%s",
                w->task_id, w->event_id, w->attempt, host, status, names[outcome],
                why[0] ? ": " : "", why);
}

/* A uniform number in [0, 1] for the jitter. */
static double jitter01(void)
{
    unsigned int r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r)
        r = (unsigned int)time(NULL);
    return (double)r / (double)UINT32_MAX;
}

/* One POST of w, signed now. */
static enum ia_err deliver(struct webhook_sender *s, const struct queue_webhook *w, long *status,
                           char *detail, size_t len)
{
    char sig[WEBHOOK_SIGNATURE_MAX];
    size_t body_len = strlen(w->body);
    webhook_signature(s->cfg->webhook_secret, (long long)time(NULL), w->body, body_len, sig);
    char *h_sig = xasprintf("%s: %s", WEBHOOK_SIGNATURE_HEADER, sig);
    char *h_id = xasprintf("%s: %s", WEBHOOK_EVENT_ID_HEADER, w->event_id);
    char *h_n = xasprintf("%s: %lld", WEBHOOK_ATTEMPT_HEADER, w->attempt);
    const char *headers[] = {h_sig, h_id, h_n, NULL};
    struct media_post req = {.policy = s->policy,
                             .url = w->url,
                             .headers = headers,
                             .body = w->body,
                             .body_len = body_len,
                             .timeout_s = (long)s->cfg->webhook_timeout_s,
                             .cancel = &s->stop};
    enum ia_err err = media_post(&req, status, detail, len);
    free(h_sig);
    free(h_id);
    free(h_n);
    return err;
}

/* Settles one claimed event after its attempt (or without one, when it expired). */
static void handle(struct webhook_sender *s, struct queue *q, const struct queue_webhook *w)
{
    const struct config *cfg = s->cfg;
    double age = w->now - w->queued_at, max_age = (double)cfg->webhook_max_age_s;
    long status = 0;
    char detail[256] = "";
    double next = -1;
    enum webhook_outcome outcome;
    if (age > max_age) {
        snprintf(detail, sizeof detail, "older than WEBHOOK_MAX_AGE_S (%.0f s)", age);
        outcome = WEBHOOK_DROPPED;
    } else {
        enum ia_err err = deliver(s, w, &status, detail, sizeof detail);
        if (err == IA_OK) {
            outcome = WEBHOOK_DELIVERED;
        } else if (err == IA_ERR_URL_NOT_ALLOWED) {
            outcome = WEBHOOK_REFUSED;
        } else if (atomic_load(&s->stop)) {
            outcome = WEBHOOK_RETRY; /* cut short by shutdown: due again at once */
            next = 0;
        } else {
            next =
                (double)webhook_backoff_ms(cfg->webhook_retry_base_s, cfg->webhook_retry_max_s,
                                           (int)(w->attempt < 64 ? w->attempt : 64), jitter01()) /
                1000.0;
            outcome = age + next > max_age ? WEBHOOK_DROPPED : WEBHOOK_RETRY;
        }
    }
    if (outcome != WEBHOOK_RETRY)
        next = -1;
    webhook_attempt_outcome(w, outcome, status, detail, next);
    enum ia_err err = queue_webhook_settle(q, w, next);
    if (err == IA_ERR_NOT_FOUND)
        log_msg(LOG_WARN, "webhook", "task=%s event=%s attempt=%lld claimed again meanwhile",
                w->task_id, w->event_id, w->attempt);
    else if (err)
        log_msg(LOG_WARN, "webhook", "task=%s event=%s not settled (Redis); due again later",
                w->task_id, w->event_id);
}

static void pause_ms(struct webhook_sender *s, int ms)
{
    for (int slept = 0; slept < ms && !atomic_load(&s->stop); slept += 100)
        usleep(100 * 1000);
}

static void *sender_main(void *arg)
{
    struct webhook_sender *s = arg;
    struct queue *q = queue_new(s->cfg);
    /*
     * One event at a time, leased for two attempts' time: a sender that dies mid-attempt leaves
     * it to the others when the lease ends, and a live one settles it well before.
     */
    int lease_s = (int)s->cfg->webhook_timeout_s * 2 + 5;
    while (!atomic_load(&s->stop)) {
        struct queue_webhook *ws = NULL;
        size_t n = 0;
        enum ia_err err = queue_webhook_claim(q, lease_s, 1, &ws, &n);
        for (size_t i = 0; i < n; i++)
            handle(s, q, &ws[i]);
        queue_webhooks_free(ws, n);
        if (err || n == 0)
            pause_ms(s, err ? SENDER_OUTAGE_MS : SENDER_IDLE_MS);
    }
    queue_free(q);
    return NULL;
}

struct webhook_sender *webhook_sender_start(const struct config *cfg,
                                            const struct netpolicy *policy)
{
    if (!cfg->webhook_secret || !cfg->webhook_secret[0]) {
        log_msg(LOG_INFO, "webhook", "WEBHOOK_SECRET is not set: no webhook is sent");
        return NULL;
    }
    struct webhook_sender *s = xcalloc(1, sizeof(*s));
    s->cfg = cfg;
    s->policy = policy;
    for (int i = 0; i < SENDER_THREADS; i++)
        if (pthread_create(&s->threads[i], NULL, sender_main, s))
            abort();
    return s;
}

void webhook_sender_stop(struct webhook_sender *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, true);
    for (int i = 0; i < SENDER_THREADS; i++)
        pthread_join(s->threads[i], NULL);
    free(s);
}
