/*
 * The counters behind GET /metrics and their text exposition. Each series is a fixed cell of
 * relaxed atomics; a histogram keeps one cell per bucket (not cumulative) and its sum in
 * microseconds, so that a scrape reads each bucket once and derives _bucket, _count and the
 * +Inf bucket from the same reading (they always agree).
 */
#include "metrics/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

#define RENDER_MAX (4 * 1024 * 1024) /* a scrape never grows past this */

/* A histogram's upper bounds, in microseconds, and their "le" labels. */
struct bound {
    uint64_t us;
    const char *le;
};

static const struct bound http_bounds[] = {
    {1000, "0.001"},  {2500, "0.0025"}, {5000, "0.005"},  {10000, "0.01"}, {25000, "0.025"},
    {50000, "0.05"},  {100000, "0.1"},  {250000, "0.25"}, {500000, "0.5"}, {1000000, "1"},
    {2500000, "2.5"}, {5000000, "5"},   {10000000, "10"},
};
#define HTTP_BOUNDS (sizeof(http_bounds) / sizeof(http_bounds[0]))

static const struct bound stage_bounds[] = {
    {100000, "0.1"},      {250000, "0.25"},     {500000, "0.5"},    {1000000, "1"},
    {2500000, "2.5"},     {5000000, "5"},       {10000000, "10"},   {30000000, "30"},
    {60000000, "60"},     {120000000, "120"},   {300000000, "300"}, {600000000, "600"},
    {1800000000, "1800"}, {3600000000, "3600"},
};
#define STAGE_BOUNDS (sizeof(stage_bounds) / sizeof(stage_bounds[0]))
#define BOUNDS_MAX 16

struct histogram {
    atomic_ullong bucket[BOUNDS_MAX + 1]; /* [i]: values in (bound i-1, bound i]; last: above all */
    atomic_ullong sum_us;
};

static const char *const method_names[] = {"GET",   "HEAD",   "POST",    "PUT",
                                           "PATCH", "DELETE", "OPTIONS", "OTHER"};
#define N_METHODS (sizeof(method_names) / sizeof(method_names[0]))

/* The statuses the server sends (http/request.c's reason phrases); others count per class. */
static const int statuses[] = {200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308,
                               400, 401, 403, 404, 405, 409, 410, 411, 412, 413, 415,
                               416, 422, 429, 431, 500, 501, 502, 503, 504, 507};
#define N_KNOWN_STATUSES (sizeof(statuses) / sizeof(statuses[0]))
static const char *const status_classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};
#define N_STATUSES (N_KNOWN_STATUSES + sizeof(status_classes) / sizeof(status_classes[0]))

static const char *const stage_names[METRICS_STAGE__COUNT] = {"fetch", "process", "analyse",
                                                              "publish"};
static const char *const outcome_names[METRICS_TASK__COUNT] = {"success", "failure", "retry",
                                                               "returned", "deleted"};
static const char *const webhook_names[METRICS_WEBHOOK__COUNT] = {"delivered", "retry", "failed"};

static struct {
    pthread_mutex_t lock; /* registration of route labels */
    const char *route_labels[METRICS_ROUTES_MAX];
    atomic_int nroutes;
    atomic_ullong requests[METRICS_ROUTES_MAX][N_METHODS][N_STATUSES];
    atomic_ullong body_bytes[METRICS_ROUTES_MAX];
    atomic_ullong sent_bytes;
    struct histogram latency[METRICS_ROUTES_MAX];
    atomic_ullong tasks[METRICS_TASK__COUNT][IA_ERR__COUNT];
    struct histogram stages[METRICS_STAGE__COUNT];
    atomic_ullong webhooks[METRICS_WEBHOOK__COUNT];
    atomic_int slots, busy;
} m = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void add(atomic_ullong *cell, unsigned long long n)
{
    atomic_fetch_add_explicit(cell, n, memory_order_relaxed);
}

static unsigned long long get(atomic_ullong *cell)
{
    return atomic_load_explicit(cell, memory_order_relaxed);
}

static void histogram_observe(struct histogram *h, const struct bound *b, size_t nb, uint64_t us)
{
    size_t i = 0;
    while (i < nb && us > b[i].us)
        i++;
    add(&h->bucket[i], 1);
    add(&h->sum_us, us);
}

int metrics_route_id(const char *label)
{
    int id = METRICS_ROUTE_UNMATCHED;
    pthread_mutex_lock(&m.lock);
    int n = atomic_load(&m.nroutes);
    if (n == 0) {
        m.route_labels[0] = "unmatched";
        n = 1;
    }
    for (int i = 1; i < n && id == METRICS_ROUTE_UNMATCHED; i++)
        if (strcmp(m.route_labels[i], label) == 0)
            id = i;
    if (id == METRICS_ROUTE_UNMATCHED && n < METRICS_ROUTES_MAX) {
        m.route_labels[n] = label;
        id = n++;
    }
    atomic_store(&m.nroutes, n); /* after the label: a scrape that sees n sees its labels */
    pthread_mutex_unlock(&m.lock);
    return id;
}

const char *metrics_route_label(int route_id)
{
    if (route_id <= 0 || route_id >= atomic_load(&m.nroutes))
        return "unmatched";
    return m.route_labels[route_id];
}

static size_t status_index(int status)
{
    for (size_t i = 0; i < N_KNOWN_STATUSES; i++)
        if (statuses[i] == status)
            return i;
    if (status >= 100 && status <= 599)
        return N_KNOWN_STATUSES + (size_t)(status / 100 - 1);
    return N_STATUSES - 1;
}

static size_t method_index(const char *method)
{
    for (size_t i = 0; i + 1 < N_METHODS; i++)
        if (strcmp(method_names[i], method) == 0)
            return i;
    return N_METHODS - 1;
}

void metrics_http_observe(int route_id, const char *method, int status, uint64_t body_bytes,
                          uint64_t duration_ns)
{
    if (route_id < 0 || route_id >= METRICS_ROUTES_MAX)
        route_id = METRICS_ROUTE_UNMATCHED;
    add(&m.requests[route_id][method_index(method)][status_index(status)], 1);
    add(&m.body_bytes[route_id], body_bytes);
    histogram_observe(&m.latency[route_id], http_bounds, HTTP_BOUNDS, duration_ns / 1000);
}

void metrics_http_sent(uint64_t bytes) { add(&m.sent_bytes, bytes); }

void metrics_task_outcome(enum metrics_task_outcome outcome, enum ia_err code)
{
    if ((unsigned)outcome >= METRICS_TASK__COUNT)
        return;
    if ((unsigned)code >= IA_ERR__COUNT)
        code = IA_ERR_INTERNAL;
    add(&m.tasks[outcome][code], 1);
}

const char *metrics_stage_name(enum metrics_stage stage)
{
    return (unsigned)stage < METRICS_STAGE__COUNT ? stage_names[stage] : "unknown";
}

void metrics_task_stage(enum metrics_stage stage, int64_t ms)
{
    if ((unsigned)stage >= METRICS_STAGE__COUNT)
        return;
    uint64_t us = ms > 0 ? (uint64_t)ms * 1000 : 0;
    histogram_observe(&m.stages[stage], stage_bounds, STAGE_BOUNDS, us);
}

void metrics_webhook_attempt(enum metrics_webhook_outcome outcome)
{
    if ((unsigned)outcome < METRICS_WEBHOOK__COUNT)
        add(&m.webhooks[outcome], 1);
}

void metrics_worker_slots_set(int total) { atomic_store(&m.slots, total); }

void metrics_worker_busy_add(int delta) { atomic_fetch_add(&m.busy, delta); }

void metrics_reset(void)
{
    pthread_mutex_lock(&m.lock);
    atomic_store(&m.nroutes, 0);
    pthread_mutex_unlock(&m.lock);
    memset(m.requests, 0, sizeof(m.requests));
    memset(m.body_bytes, 0, sizeof(m.body_bytes));
    atomic_store(&m.sent_bytes, 0);
    memset(m.latency, 0, sizeof(m.latency));
    memset(m.tasks, 0, sizeof(m.tasks));
    memset(m.stages, 0, sizeof(m.stages));
    memset(m.webhooks, 0, sizeof(m.webhooks));
    atomic_store(&m.slots, 0);
    atomic_store(&m.busy, 0);
}

/* Escaping. */

static size_t escape(char *out, size_t cap, const char *in, bool quote)
{
    size_t o = 0;
    if (cap == 0)
        return 0;
    for (; *in; in++) {
        char tmp[2];
        size_t k = 0;
        if (*in == '\\' || (quote && *in == '"')) {
            tmp[k++] = '\\';
            tmp[k++] = *in;
        } else if (*in == '\n') {
            tmp[k++] = '\\';
            tmp[k++] = 'n';
        } else {
            tmp[k++] = *in;
        }
        if (o + k >= cap)
            break;
        memcpy(out + o, tmp, k);
        o += k;
    }
    out[o] = '\0';
    return o;
}

size_t metrics_escape_label(char *out, size_t cap, const char *in)
{
    return escape(out, cap, in, true);
}

size_t metrics_escape_help(char *out, size_t cap, const char *in)
{
    return escape(out, cap, in, false);
}

/* Rendering into a bounded, growing buffer. */

struct out {
    char *p;
    size_t len, cap;
    bool full; /* RENDER_MAX reached: later lines are dropped whole */
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    if (o->full)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        if (o->cap >= RENDER_MAX) {
            o->p[o->len] = '\0'; /* drop the partial line */
            o->full = true;
            return;
        }
        o->cap *= 2;
        o->p = xrealloc(o->p, o->cap);
    }
}

/* A label value, escaped; the values here are short names. */
static const char *label(char buf[static 256], const char *value)
{
    metrics_escape_label(buf, 256, value);
    return buf;
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
    char esc[512];
    metrics_escape_help(esc, sizeof(esc), help);
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, esc, name, type);
}

/* One histogram's series; labels is "" or `name="value",` (with the trailing comma). */
static void histogram_put(struct out *o, const char *name, const char *labels, struct histogram *h,
                          const struct bound *b, size_t nb)
{
    unsigned long long cumulative = 0;
    for (size_t i = 0; i <= nb; i++) {
        cumulative += get(&h->bucket[i]);
        put(o, "%s_bucket{%sle=\"%s\"} %llu\n", name, labels, i < nb ? b[i].le : "+Inf",
            cumulative);
    }
    size_t n = strlen(labels);
    unsigned long long sum_us = get(&h->sum_us);
    /* labels without its trailing comma, in braces, or nothing */
    if (n)
        put(o, "%s_sum{%.*s} %llu.%06llu\n%s_count{%.*s} %llu\n", name, (int)(n - 1), labels,
            sum_us / 1000000, sum_us % 1000000, name, (int)(n - 1), labels, cumulative);
    else
        put(o, "%s_sum %llu.%06llu\n%s_count %llu\n", name, sum_us / 1000000, sum_us % 1000000,
            name, cumulative);
}

static unsigned long long histogram_count(struct histogram *h)
{
    unsigned long long n = 0;
    for (size_t i = 0; i <= BOUNDS_MAX; i++)
        n += get(&h->bucket[i]);
    return n;
}

static void status_label(char *buf, size_t cap, size_t i)
{
    if (i < N_KNOWN_STATUSES)
        snprintf(buf, cap, "%d", statuses[i]);
    else
        snprintf(buf, cap, "%s", status_classes[i - N_KNOWN_STATUSES]);
}

static void render_http(struct out *o)
{
    int nroutes = atomic_load(&m.nroutes);
    char r[256], s[16];
    family(o, "interview_http_requests_total", "counter",
           "Requests answered, by route pattern, method and status.");
    for (int i = 0; i < nroutes; i++)
        for (size_t j = 0; j < N_METHODS; j++)
            for (size_t k = 0; k < N_STATUSES; k++) {
                unsigned long long n = get(&m.requests[i][j][k]);
                if (!n)
                    continue;
                status_label(s, sizeof(s), k);
                put(o,
                    "interview_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} "
                    "%llu\n",
                    label(r, metrics_route_label(i)), method_names[j], s, n);
            }
    family(o, "interview_http_request_duration_seconds", "histogram",
           "Time from a request's arrival (head and body read) to its answer, by route pattern.");
    for (int i = 0; i < nroutes; i++) {
        if (!histogram_count(&m.latency[i]))
            continue;
        char labels[300];
        snprintf(labels, sizeof(labels), "route=\"%s\",", label(r, metrics_route_label(i)));
        histogram_put(o, "interview_http_request_duration_seconds", labels, &m.latency[i],
                      http_bounds, HTTP_BOUNDS);
    }
    family(o, "interview_http_response_body_bytes_total", "counter",
           "Bytes of response bodies handed to the connection (files by sendfile), by route "
           "pattern.");
    for (int i = 0; i < nroutes; i++)
        if (histogram_count(&m.latency[i]))
            put(o, "interview_http_response_body_bytes_total{route=\"%s\"} %llu\n",
                label(r, metrics_route_label(i)), get(&m.body_bytes[i]));
}

static void render_sent(struct out *o)
{
    family(o, "interview_http_sent_bytes_total", "counter",
           "Bytes written to client sockets: status lines, headers and bodies (files by "
           "sendfile), as the kernel took them; a client that leaves early stops it.");
    put(o, "interview_http_sent_bytes_total %llu\n", get(&m.sent_bytes));
}

static void render_queue(struct out *o, long long depth)
{
    family(o, "interview_redis_up", "gauge",
           "1 when Redis answered this scrape's queue length query, else 0.");
    put(o, "interview_redis_up %d\n", depth >= 0);
    family(o, "interview_queue_depth", "gauge",
           "Tasks waiting in the queue (LLEN of the Celery queue); absent when Redis did not "
           "answer.");
    if (depth >= 0)
        put(o, "interview_queue_depth %lld\n", depth);
}

static void render_webhooks(struct out *o)
{
    family(o, "interview_webhook_deliveries_total", "counter",
           "Webhook delivery attempts, by outcome.");
    for (size_t i = 0; i < METRICS_WEBHOOK__COUNT; i++)
        put(o, "interview_webhook_deliveries_total{outcome=\"%s\"} %llu\n", webhook_names[i],
            get(&m.webhooks[i]));
}

/* Two error enums may share a code (broker_unavailable): their counts are one series. */
static unsigned long long task_count(size_t outcome, size_t code)
{
    unsigned long long n = 0;
    for (size_t e = 0; e < IA_ERR__COUNT; e++)
        if (strcmp(ia_err_code((enum ia_err)e), ia_err_code((enum ia_err)code)) == 0)
            n += get(&m.tasks[outcome][e]);
    return n;
}

static bool code_first(size_t code)
{
    for (size_t e = 0; e < code; e++)
        if (strcmp(ia_err_code((enum ia_err)e), ia_err_code((enum ia_err)code)) == 0)
            return false;
    return true;
}

static void render_tasks(struct out *o)
{
    family(o, "interview_tasks_total", "counter",
           "Task runs that ended, by outcome and error code (ok when none); retry: the task runs "
           "again.");
    for (size_t i = 0; i < METRICS_TASK__COUNT; i++)
        for (size_t e = 0; e < IA_ERR__COUNT; e++) {
            unsigned long long n = code_first(e) ? task_count(i, e) : 0;
            if (n || (i == METRICS_TASK_SUCCESS && e == IA_OK))
                put(o, "interview_tasks_total{outcome=\"%s\",code=\"%s\"} %llu\n", outcome_names[i],
                    ia_err_code((enum ia_err)e), n);
        }
    family(o, "interview_task_stage_duration_seconds", "histogram",
           "Time of each run of a task's stage (a retried task runs its stages again).");
    for (size_t i = 0; i < METRICS_STAGE__COUNT; i++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "stage=\"%s\",", stage_names[i]);
        histogram_put(o, "interview_task_stage_duration_seconds", labels, &m.stages[i],
                      stage_bounds, STAGE_BOUNDS);
    }
    family(o, "interview_worker_slots", "gauge", "Task slots of this worker.");
    put(o, "interview_worker_slots %d\n", atomic_load(&m.slots));
    family(o, "interview_worker_slots_busy", "gauge", "Slots running a task now.");
    put(o, "interview_worker_slots_busy %d\n", atomic_load(&m.busy));
}

char *metrics_render(const struct metrics_scrape *s, size_t *len)
{
    struct out o = {xmalloc(16384), 0, 16384, false};
    o.p[0] = '\0';
    render_http(&o);
    render_sent(&o);
    render_queue(&o, s->queue_depth);
    if (s->role == METRICS_ROLE_WORKER)
        render_tasks(&o);
    render_webhooks(&o);
    *len = o.len;
    return o.p;
}
