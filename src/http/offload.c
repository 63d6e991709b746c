/*
 * Offloaded requests: what would block a loop (Redis, disk writes and syncs, directory scans,
 * calls to a bucket) runs on a pool of threads shared by the loops, as nginx's `aio threads`,
 * and the request is answered back on its own loop. A job is either a whole handler
 * (http_request_offload_handler: its reply is kept and sent by the loop) or a work and a done
 * (http_request_offload: the body moves to the job). The loop never waits for a job, except at
 * shutdown (http_offloads_drain), when it waits for the running ones and cancels the queued.
 */
#include "http/internal.h"

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/alloc.h"
#include "core/log.h"

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_FINISHED };

struct http_offload {
    struct http_pool *pool;
    struct event_base *base;
    struct event *finished; /* made active on the loop when the work has ended */
    struct evhttp_request *ev;
    struct http_request req; /* a copy: id, route, method, start, path, headers through ev */
    struct evbuffer *body;   /* moved out of ev: the work's only */
    struct http_budget *budget;
    size_t reserved; /* budget bytes the body holds, given back when the job ends */
    http_offload_work_fn work;
    http_offload_done_fn done;
    http_handler_fn handler; /* instead of work and done: the whole handler on the pool */
    void *ctx;
    atomic_bool cancelled;
    enum job_state state;      /* under pool->lock */
    struct http_offload *next; /* in the queue (under pool->lock) */
    struct http_offload *live; /* in pool->jobs, every job not yet done (under pool->lock) */
};

struct http_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;  /* a job was queued, or the pool stops */
    pthread_cond_t ended; /* a job's work ended */
    struct http_offload *head, *tail;
    struct http_offload *jobs;
    bool stopping;
    int nthreads, started;
    pthread_t *threads;
    http_thread_init_fn init; /* each thread's context for the handlers it runs */
    http_thread_free_fn free_fn;
    void *app;
};

static _Thread_local void *pool_thread_ctx;

static void job_remove_live(struct http_pool *p, struct http_offload *job)
{
    for (struct http_offload **j = &p->jobs; *j; j = &(*j)->live)
        if (*j == job) {
            *j = job->live;
            return;
        }
}

/*
 * True when the client of evcon has closed its side (or reset): evhttp does not read while a
 * request waits for its answer, so the loop looks at the socket itself before answering.
 */
static bool peer_gone(struct evhttp_connection *evcon)
{
    if (!evcon)
        return true;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    int fd = bev ? (int)bufferevent_getfd(bev) : -1;
    if (fd < 0)
        return true;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* On the loop: done(), the reply (or the release of a request nobody waits for), and free. */
static void job_finish(struct http_offload *job)
{
    struct http_pool *p = job->pool;
    pthread_mutex_lock(&p->lock);
    job_remove_live(p, job);
    pthread_mutex_unlock(&p->lock);
    event_free(job->finished);
    evbuffer_free(job->body);
    if (job->reserved)
        http_budget_give_back(job->budget, job->reserved);
    struct evhttp_connection *evcon = evhttp_request_get_connection(job->ev);
    if (job->handler && job->req.replied && !job->req.deferred_status) {
        /* A stream took the request over: it is the stream's now. */
    } else if (atomic_load(&job->cancelled) || peer_gone(evcon)) {
        if (job->done)
            job->done(NULL, job->ctx);
        log_msg(LOG_INFO, "http", "req=%s answer dropped: the client left or the server stops",
                job->req.id);
        if (!job->req.replied) /* else the handler's answer was counted */
            http_request_account(&job->req, 499, 0);
        job->req.replied = true;
        if (evcon)
            evhttp_connection_free(evcon); /* frees ev with it */
        else
            evhttp_request_free(job->ev); /* evhttp let go of it */
    } else if (job->handler) {
        int status = job->req.deferred_status;
        evhttp_send_reply(job->ev, status, http_reason_phrase(status), NULL);
    } else {
        job->done(&job->req, job->ctx);
        if (!job->req.replied) {
            log_msg(LOG_ERROR, "http", "offloaded request finished without a reply; sending 500");
            http_reply_body(&job->req, 500, "text/plain", "internal error\n", 15);
        }
    }
    http_request_cleanup(&job->req);
    free(job);
}

static void on_finished(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    job_finish(arg);
}

/* On a pool thread: the work, or the whole handler with its reply kept for the loop. */
static void job_run(struct http_offload *job)
{
    if (!job->handler) {
        job->work(job, job->ctx);
        return;
    }
    job->req.deferred = true;
    job->handler(&job->req, pool_thread_ctx);
    if (!job->req.replied) {
        log_msg(LOG_ERROR, "http", "handler returned without a reply; sending 500");
        http_reply_body(&job->req, 500, "text/plain", "internal error\n", 15);
    }
}

static void *pool_main(void *arg)
{
    struct http_pool *p = arg;
    if (p->init)
        pool_thread_ctx = p->init(p->app);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->work, &p->lock);
        if (!p->head)
            break; /* stopping, and nothing left */
        struct http_offload *job = p->head;
        p->head = job->next;
        if (!p->head)
            p->tail = NULL;
        job->state = JOB_RUNNING;
        pthread_mutex_unlock(&p->lock);
        job_run(job);
        pthread_mutex_lock(&p->lock);
        job->state = JOB_FINISHED;
        /* Under the lock: a draining loop frees job only after it has seen JOB_FINISHED. */
        event_active(job->finished, EV_READ, 0);
        pthread_cond_broadcast(&p->ended);
    }
    pthread_mutex_unlock(&p->lock);
    if (p->free_fn)
        p->free_fn(pool_thread_ctx);
    pool_thread_ctx = NULL;
    return NULL;
}

struct http_pool *http_pool_new(int nthreads, http_thread_init_fn init, http_thread_free_fn free_fn,
                                void *app)
{
    struct http_pool *p = xcalloc(1, sizeof(*p));
    p->init = init;
    p->free_fn = free_fn;
    p->app = app;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->ended, NULL);
    p->nthreads = nthreads;
    p->threads = xcalloc((size_t)nthreads, sizeof(*p->threads));
    return p;
}

bool http_pool_start(struct http_pool *p)
{
    p->stopping = false;
    for (p->started = 0; p->started < p->nthreads; p->started++)
        if (pthread_create(&p->threads[p->started], NULL, pool_main, p) != 0)
            break;
    if (p->started == 0)
        log_msg(LOG_ERROR, "http", "cannot start the offload threads");
    return p->started > 0;
}

void http_pool_stop(struct http_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    p->started = 0;
}

void http_pool_free(struct http_pool *p)
{
    if (!p)
        return;
    pthread_cond_destroy(&p->ended);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}

/* Takes req over into a new job, queued; body_out moves the body out of ev (work and done). */
static struct http_offload *job_new(struct http_pool *p, struct http_request *req, bool body_out)
{
    struct http_offload *job = xcalloc(1, sizeof(*job));
    job->pool = p;
    job->base = http_thread_event_base();
    job->finished = event_new(job->base, -1, 0, on_finished, job);
    job->body = evbuffer_new();
    if (!job->finished || !job->body)
        abort();
    job->ev = req->ev;
    if (body_out)
        evbuffer_add_buffer(job->body, evhttp_request_get_input_buffer(req->ev));
    job->budget = http_loop_budget();
    job->reserved = http_loop_hand_over(req->ev) + req->held_reserved; /* a held request's too */
    req->held_reserved = 0;
    atomic_init(&job->cancelled, false);
    job->req = *req;
    job->req.path = req->path ? xstrdup(req->path) : NULL;
    job->req.query_parsed = false; /* the original's parameters are freed with it */
    TAILQ_INIT(&job->req.query);
    job->req.held = NULL;
    job->req.held_reserved = 0;
    req->replied = true; /* answered by the job from now on */
    req->offloaded = true;
    return job;
}

static void job_queue(struct http_pool *p, struct http_offload *job)
{
    pthread_mutex_lock(&p->lock);
    job->state = JOB_QUEUED;
    job->live = p->jobs;
    p->jobs = job;
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

bool http_request_offload(struct http_request *req, enum http_pool_kind pool,
                          http_offload_work_fn work, http_offload_done_fn done, void *ctx)
{
    struct http_pool *p = http_loop_pool(pool);
    if (http_request_check_replied(req) || !p || req->conn)
        return false;
    struct http_offload *job = job_new(p, req, true);
    job->work = work;
    job->done = done;
    job->ctx = ctx;
    job_queue(p, job);
    return true;
}

bool http_request_offload_handler(struct http_request *req, enum http_pool_kind pool,
                                  http_handler_fn fn)
{
    struct http_pool *p = http_loop_pool(pool);
    if (http_request_check_replied(req) || !p || req->conn)
        return false;
    struct http_offload *job = job_new(p, req, false);
    job->handler = fn;
    job_queue(p, job);
    return true;
}

size_t http_offload_body_length(const struct http_offload *job)
{
    return evbuffer_get_length(job->body);
}

const unsigned char *http_offload_body(struct http_offload *job, size_t *len)
{
    *len = evbuffer_get_length(job->body);
    return *len ? evbuffer_pullup(job->body, -1) : (const unsigned char *)"";
}

bool http_offload_body_to_fd(struct http_offload *job, int fd)
{
    return http_evbuffer_to_fd(job->body, fd);
}

bool http_offload_cancelled(const struct http_offload *job) { return atomic_load(&job->cancelled); }

/* The first live job of base that is not yet being finished, or NULL; under p->lock. */
static struct http_offload *first_of(struct http_pool *p, struct event_base *base)
{
    for (struct http_offload *j = p->jobs; j; j = j->live)
        if (j->base == base)
            return j;
    return NULL;
}

/* Takes job out of the queue (it has not started); under p->lock. */
static void unqueue(struct http_pool *p, struct http_offload *job)
{
    struct http_offload *prev = NULL;
    for (struct http_offload *j = p->head; j; prev = j, j = j->next)
        if (j == job) {
            if (prev)
                prev->next = j->next;
            else
                p->head = j->next;
            if (p->tail == j)
                p->tail = prev;
            return;
        }
}

void http_offloads_drain(struct http_pool *p, struct event_base *base)
{
    if (!p)
        return;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        struct http_offload *job = first_of(p, base);
        if (job) {
            atomic_store(&job->cancelled, true);
            if (job->state == JOB_QUEUED) {
                unqueue(p, job);
                job->state = JOB_FINISHED; /* its work never runs */
            }
            while (job->state != JOB_FINISHED)
                pthread_cond_wait(&p->ended, &p->lock);
        }
        pthread_mutex_unlock(&p->lock);
        if (!job)
            return;
        job_finish(job); /* done(NULL): the server stops */
    }
}
