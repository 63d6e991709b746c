/*
 * Nonblocking Redis for an HTTP loop: the loop keeps its own connections to the broker and the
 * backend, read and written by hiredis's libevent adapter on the loop itself. A submit then
 * costs the loop no wait and no thread hop, and the submits of many clients share each write
 * and each read (pipelining). Only for redis:// URLs whose host is an address (or localhost):
 * sentinel groups and names to resolve stay on the blocking connections of the pool threads
 * (queue_conn.c), which also take every request while these connect or after they fail.
 */
#include "queue/queue_async.h"

#include <arpa/inet.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "queue/celery.h"
#include "queue/queue_int.h"
#include "util/os.h"

/* The name of these connections in Redis's CLIENT LIST. */
#define QUEUE_LOOP_CLIENT_NAME "interview-api-loop"

struct async_conn {
    const char *name; /* "broker" or "backend", for logs */
    struct queue_async *owner;
    const struct redis_url *url;
    redisAsyncContext *ac;
    bool ready;           /* the handshake was answered: commands may go */
    bool refused;         /* a handshake step was refused */
    bool down;            /* the last attempt failed; logged once per outage */
    int64_t retry_after_ms;
    int pending;          /* commands sent and not yet answered */
    int64_t progress_ms;  /* when the last answer came (or the first pending command went) */
};

struct queue_async {
    struct queue *q;
    struct event_base *base;
    struct event *watchdog; /* drops a connection that stopped answering */
    bool closing;           /* queue_async_free() runs: a closed connection is no news */
    /* The broker and the backend are databases of one server: one connection, and a submit is
     * one script (SCRIPT_SUBMIT); else two connections, and a SET then a publish. */
    bool one_server;
    struct async_conn conns[2]; /* the broker's, then the backend's unless one_server */
    int nconns;
    /* One server: the submits of one turn of the loop go as one script (a group commit). */
    struct event *flush; /* made active by the first submit of a batch */
    struct async_submit *batch, **batch_tail;
    int batch_n;
};

/* The most submits in one script: a larger batch is sent at once, the rest in the next. */
#define QUEUE_BATCH_MAX 64

struct async_submit {
    struct queue_async *a;
    char task_id[CELERY_MAX_ID_LEN + 1];
    char *msg;    /* the Celery message, published once the record is written */
    char *record; /* one server: the accepted record, written by the batch's script */
    queue_async_done_fn done;
    void *arg;
    struct async_submit *next; /* in a batch */
};

/* True when host names an address (no lookup), or is localhost (/etc/hosts). */
static bool host_is_address(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, buf) == 1 ||
           inet_pton(AF_INET6, host, buf) == 1;
}

static void conn_lost(struct async_conn *c, const char *why)
{
    if (!c->down && !c->owner->closing)
        log_msg(LOG_WARN, "queue", "%s (loop connection): %s; the pool's connections answer "
                "meanwhile", c->name, why);
    c->down = true;
    c->ac = NULL;
    c->ready = false;
    c->pending = 0;
    c->retry_after_ms = os_monotonic_ms() + QUEUE_RETRY_MS;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct async_conn *c = ac->data;
    if (status != REDIS_OK)
        conn_lost(c, ac->errstr); /* hiredis frees ac */
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct async_conn *c = ac->data;
    conn_lost(c, status == REDIS_OK ? "closed" : ac->errstr);
}

/* The start of every reply callback: the connection made progress. */
static struct async_conn *conn_answered(redisAsyncContext *ac)
{
    struct async_conn *c = ac->data;
    if (c->pending > 0)
        c->pending--;
    c->progress_ms = os_monotonic_ms();
    return c;
}

static bool conn_send(struct async_conn *c, redisCallbackFn *fn, void *priv, int argc,
                      const char **argv, const size_t *lens)
{
    if (!c->ac || redisAsyncCommandArgv(c->ac, fn, priv, argc, argv, lens) != REDIS_OK)
        return false;
    if (c->pending++ == 0)
        c->progress_ms = os_monotonic_ms();
    return true;
}

enum handshake_step { STEP_AUTH, STEP_SELECT, STEP_NAME, STEP_SCRIPT, STEP_BINDING };
static const char *const step_names[] = {"AUTH", "SELECT", "CLIENT SETNAME", "SCRIPT LOAD",
                                         "the queue's binding"};

static void on_handshake_step(redisAsyncContext *ac, void *reply, void *priv)
{
    struct async_conn *c = conn_answered(ac);
    const redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR) {
        c->refused = true; /* never log the reply: an AUTH's could echo what it was sent */
        if (!c->down) /* once an outage: it is tried again every QUEUE_RETRY_MS */
            log_msg(LOG_WARN, "queue", "%s (loop connection): %s refused", c->name,
                    step_names[(intptr_t)priv]);
    }
}

static void on_handshake_end(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    struct async_conn *c = conn_answered(ac);
    if (!reply)
        return; /* the connection is going: on_disconnect or on_connect says so */
    if (c->refused) {
        redisAsyncDisconnect(ac); /* after this callback: on_disconnect */
        return;
    }
    if (c->down)
        log_msg(LOG_INFO, "queue", "%s (loop connection) connected again", c->name);
    c->down = false;
    c->ready = true;
}

static bool conn_step(struct async_conn *c, enum handshake_step step, int argc, const char **argv)
{
    return conn_send(c, on_handshake_step, (void *)(intptr_t)step, argc, argv, NULL);
}

static void conn_select(struct async_conn *c, int db)
{
    char n[16];
    snprintf(n, sizeof(n), "%d", db);
    conn_step(c, STEP_SELECT, 2, (const char *[]){"SELECT", n});
}

/* Queues the handshake: AUTH, SELECT, the broker's script and binding, then a PING. */
static void conn_handshake(struct async_conn *c)
{
    const struct redis_url *u = c->url;
    if (u->password[0] && u->user[0])
        conn_step(c, STEP_AUTH, 3, (const char *[]){"AUTH", u->user, u->password});
    else if (u->password[0])
        conn_step(c, STEP_AUTH, 2, (const char *[]){"AUTH", u->password});
    if (u->db != 0)
        conn_select(c, u->db);
    /* CLIENT LIST shows them as such: an operator (and a test) tells them from the pool's. */
    conn_step(c, STEP_NAME, 3, (const char *[]){"CLIENT", "SETNAME", QUEUE_LOOP_CLIENT_NAME});
    struct queue_async *a = c->owner;
    if (c == &a->conns[0]) { /* the broker's */
        if (a->one_server) { /* the script SELECTs the backend's db: it must exist */
            conn_select(c, a->q->backend.url.db);
            conn_select(c, u->db);
        }
        enum queue_script script = a->one_server ? SCRIPT_SUBMIT : SCRIPT_PUBLISH;
        conn_step(c, STEP_SCRIPT, 3,
                  (const char *[]){"SCRIPT", "LOAD", queue_script_src[script]});
        conn_step(c, STEP_BINDING, 3,
                  (const char *[]){"SADD", QUEUE_BINDING_KEY, QUEUE_BINDING_VALUE});
    }
    conn_send(c, on_handshake_end, NULL, 1, (const char *[]){"PING"}, NULL);
}

/* Starts connecting when there is no connection and the last failure is old enough. */
static void conn_start(struct async_conn *c)
{
    if (c->ac || os_monotonic_ms() < c->retry_after_ms)
        return;
    c->ready = c->refused = false;
    c->pending = 0;
    c->ac = redisAsyncConnect(c->url->host, c->url->port);
    if (!c->ac || c->ac->err) {
        const char *why = c->ac ? c->ac->errstr : "out of memory";
        if (c->ac)
            redisAsyncFree(c->ac);
        conn_lost(c, why);
        return;
    }
    c->ac->data = c;
    if (redisLibeventAttach(c->ac, c->owner->base) != REDIS_OK) {
        redisAsyncFree(c->ac);
        conn_lost(c, "cannot attach to the loop");
        return;
    }
    redisAsyncSetConnectCallback(c->ac, on_connect);
    redisAsyncSetDisconnectCallback(c->ac, on_disconnect);
    conn_handshake(c);
}

/*
 * Every QUEUE_RETRY_MS: a connection with a command unanswered for QUEUE_TIMEOUT_MS is dropped
 * (its waiting commands are answered NULL), as the blocking connections time out; one that is
 * down is opened again, so that it is back soon after Redis is, before a client needs it.
 */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct queue_async *a = arg;
    int64_t now = os_monotonic_ms();
    for (int i = 0; i < a->nconns; i++) {
        struct async_conn *c = &a->conns[i];
        if (c->ac && c->pending > 0 && now - c->progress_ms > QUEUE_TIMEOUT_MS) {
            redisAsyncContext *ac = c->ac;
            conn_lost(c, "no answer in time");
            redisAsyncFree(ac);
        } else if (!c->ac) {
            conn_start(c);
        }
    }
}

static void submit_end(struct async_submit *s, enum ia_err err, bool again)
{
    if (!err)
        log_msg(LOG_INFO, "queue", "task=%s submitted", s->task_id);
    s->done(err, again, s->arg);
    free(s->msg);
    free(s->record);
    free(s);
}

static void on_forgotten(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)reply, (void)priv;
    conn_answered(ac);
}

/*
 * Forgets the accepted record of a task that was not published (no answer awaited); with one
 * server, the script wrote none.
 */
static void forget_accepted(struct queue_async *a, const char *task_id)
{
    char key[sizeof(QUEUE_ACCEPTED_PREFIX) + CELERY_MAX_ID_LEN];
    snprintf(key, sizeof(key), "%s%s", QUEUE_ACCEPTED_PREFIX, task_id);
    if (!a->one_server && a->conns[1].ready)
        conn_send(&a->conns[1], on_forgotten, NULL, 2, (const char *[]){"DEL", key}, NULL);
}

static void on_published(redisAsyncContext *ac, void *reply, void *priv)
{
    conn_answered(ac);
    struct async_submit *s = priv;
    const redisReply *r = reply;
    if (!r) { /* sent (maybe), no answer: the task may run, so its record stays */
        log_msg(LOG_WARN, "queue", "task=%s publish unanswered; its record is kept", s->task_id);
        submit_end(s, IA_ERR_BROKER_UNSURE, false);
    } else if (r->type == REDIS_REPLY_ERROR) { /* not run: the pool's connection tries again */
        log_msg(LOG_WARN, "queue", "broker (loop connection): publish refused: %.200s", r->str);
        forget_accepted(s->a, s->task_id);
        submit_end(s, IA_ERR_BROKER, true);
    } else if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
        forget_accepted(s->a, s->task_id);
        submit_end(s, IA_ERR_TOO_LARGE, false);
    } else {
        submit_end(s, IA_OK, false);
    }
}

/* The record is written: the message goes to the broker (in this order, as queue_submit()). */
static void on_recorded(redisAsyncContext *ac, void *reply, void *priv)
{
    conn_answered(ac);
    struct async_submit *s = priv;
    const redisReply *r = reply;
    struct queue_async *a = s->a;
    char max[24];
    snprintf(max, sizeof(max), "%lld", a->q->max_queued);
    const char *argv[] = {"EVALSHA", a->q->sha[SCRIPT_PUBLISH], "2", QUEUE_NAME,
                          QUEUE_PENDING_LOG_KEY, s->msg, s->task_id, max};
    if (!r || r->type == REDIS_REPLY_ERROR || !a->conns[0].ready ||
        !conn_send(&a->conns[0], on_published, s, 8, argv, NULL))
        submit_end(s, IA_ERR_BROKER, true); /* nothing queued: the pool's connections retry */
}

/* Ends every submit of a batch list the same way. */
static void batch_end_all(struct async_submit *s, enum ia_err err, bool again)
{
    while (s) {
        struct async_submit *next = s->next;
        submit_end(s, err, again);
        s = next;
    }
}

/* The script's answer for a batch: 1 (queued) or 0 (the queue was full) for each, in order. */
static void on_batch_answered(redisAsyncContext *ac, void *reply, void *priv)
{
    conn_answered(ac);
    struct async_submit *s = priv;
    const redisReply *r = reply;
    size_t n = 0;
    for (const struct async_submit *x = s; x; x = x->next)
        n++;
    if (!r) { /* sent (maybe), no answer: the tasks may run, so they may have records */
        log_msg(LOG_WARN, "queue", "a batch of %zu submits went unanswered", n);
        batch_end_all(s, IA_ERR_BROKER_UNSURE, false);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) { /* not run: the pool's connections try again */
        log_msg(LOG_WARN, "queue", "broker (loop connection): submit refused: %.200s", r->str);
        batch_end_all(s, IA_ERR_BROKER, true);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        log_msg(LOG_ERROR, "queue", "broker (loop connection): a submit answer of another shape");
        batch_end_all(s, IA_ERR_BROKER_UNSURE, false);
        return;
    }
    for (size_t i = 0; s; i++) {
        struct async_submit *next = s->next;
        const redisReply *e = r->element[i];
        bool queued = e->type == REDIS_REPLY_INTEGER && e->integer == 1;
        submit_end(s, queued ? IA_OK : IA_ERR_TOO_LARGE, false);
        s = next;
    }
}

/* Sends up to QUEUE_BATCH_MAX waiting submits as one script, answered by on_batch_answered(). */
static void batch_send_some(struct queue_async *a)
{
    struct async_submit *head = a->batch, **cut = &a->batch;
    int n = 0;
    while (*cut && n < QUEUE_BATCH_MAX) {
        cut = &(*cut)->next;
        n++;
    }
    a->batch = *cut; /* the rest, for the next script */
    *cut = NULL;
    a->batch_n -= n;
    if (!a->batch)
        a->batch_tail = &a->batch;
    char max[24], backend_db[16], broker_db[16];
    snprintf(max, sizeof(max), "%lld", a->q->max_queued);
    snprintf(backend_db, sizeof(backend_db), "%d", a->q->backend.url.db);
    snprintf(broker_db, sizeof(broker_db), "%d", a->q->broker.url.db);
    const char *fixed[] = {"EVALSHA", a->q->sha[SCRIPT_SUBMIT], "2", QUEUE_NAME,
                           QUEUE_PENDING_LOG_KEY, max, backend_db, broker_db};
    int i = (int)(sizeof(fixed) / sizeof(fixed[0])), argc = i + 3 * n;
    const char **argv = xcalloc((size_t)argc, sizeof(*argv));
    memcpy(argv, fixed, sizeof(fixed));
    for (const struct async_submit *s = head; s; s = s->next) {
        argv[i++] = s->msg;
        argv[i++] = s->task_id;
        argv[i++] = s->record;
    }
    if (!conn_send(&a->conns[0], on_batch_answered, head, argc, argv, NULL))
        batch_end_all(head, IA_ERR_BROKER, true); /* nothing sent: the pool's connections */
    free(argv);
}

/* After the turn's events: the batch goes, in scripts of at most QUEUE_BATCH_MAX submits. */
static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct queue_async *a = arg;
    while (a->batch)
        batch_send_some(a);
}

/* One server: s joins the batch of this turn of the loop, sent when the turn's events are done. */
static void batch_add(struct queue_async *a, struct async_submit *s)
{
    *a->batch_tail = s;
    a->batch_tail = &s->next;
    if (++a->batch_n == 1)
        event_active(a->flush, EV_WRITE, 0);
}

static void conn_init(struct async_conn *c, struct queue_async *a, const struct queue_conn *qc)
{
    c->name = qc->name;
    c->owner = a;
    c->url = &qc->url;
}

/* True when two URLs name one server, with one user (their dbs may differ). */
static bool same_server(const struct redis_url *x, const struct redis_url *y)
{
    return strcmp(x->host, y->host) == 0 && x->port == y->port &&
           strcmp(x->user, y->user) == 0 && strcmp(x->password, y->password) == 0;
}

struct queue_async *queue_async_new(struct queue *q, struct event_base *base)
{
    if (!base || q->broker.sentinel || q->backend.sentinel || !q->broker.url_ok ||
        !q->backend.url_ok || !host_is_address(q->broker.url.host) ||
        !host_is_address(q->backend.url.host))
        return NULL;
    struct queue_async *a = xcalloc(1, sizeof(*a));
    a->q = q;
    a->base = base;
    a->one_server = same_server(&q->broker.url, &q->backend.url);
    a->nconns = a->one_server ? 1 : 2;
    conn_init(&a->conns[0], a, &q->broker);
    conn_init(&a->conns[1], a, &q->backend);
    a->batch_tail = &a->batch;
    a->flush = event_new(base, -1, 0, on_flush, a);
    a->watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, a);
    struct timeval tick = {0, QUEUE_RETRY_MS * 1000};
    if (!a->flush || !a->watchdog || event_add(a->watchdog, &tick) != 0)
        abort();
    for (int i = 0; i < a->nconns; i++)
        conn_start(&a->conns[i]);
    return a;
}

void queue_async_free(struct queue_async *a)
{
    if (!a)
        return;
    a->closing = true;
    batch_end_all(a->batch, IA_ERR_BROKER, true); /* never sent */
    a->batch = NULL;
    for (int i = 0; i < a->nconns; i++)
        if (a->conns[i].ac) {
            redisAsyncContext *ac = a->conns[i].ac;
            a->conns[i].ac = NULL;
            redisAsyncFree(ac); /* waiting commands are answered NULL */
        }
    event_free(a->flush);
    event_free(a->watchdog);
    free(a);
}

bool queue_async_ready(struct queue_async *a)
{
    if (!a)
        return false;
    bool ready = true;
    for (int i = 0; i < a->nconns; i++) {
        conn_start(&a->conns[i]);
        ready = ready && a->conns[i].ready;
    }
    return ready;
}

bool queue_async_submit(struct queue_async *a, const char *task_id, const char *video_url,
                        const json_t *kwargs, queue_async_done_fn done, void *arg)
{
    if (!queue_async_ready(a) || !queue_task_id_ok(task_id) || !video_url)
        return false;
    char *record = queue_accepted_text(video_url, kwargs);
    char *msg = record ? queue_task_message(task_id, video_url, kwargs) : NULL;
    if (!msg) {
        free(record);
        return false; /* the pool's queue_submit() says why */
    }
    struct async_submit *s = xcalloc(1, sizeof(*s));
    s->a = a;
    snprintf(s->task_id, sizeof(s->task_id), "%s", task_id);
    s->msg = msg;
    s->done = done;
    s->arg = arg;
    if (a->one_server) {
        s->record = record;
        batch_add(a, s);
        return true;
    }
    char key[sizeof(QUEUE_ACCEPTED_PREFIX) + CELERY_MAX_ID_LEN], ttl[24];
    snprintf(key, sizeof(key), "%s%s", QUEUE_ACCEPTED_PREFIX, task_id);
    snprintf(ttl, sizeof(ttl), "%lld", a->q->result_ttl_s);
    bool sent = conn_send(&a->conns[1], on_recorded, s, 5,
                          (const char *[]){"SET", key, record, "EX", ttl}, NULL);
    free(record);
    if (!sent) {
        free(s->msg);
        free(s);
    }
    return sent;
}
