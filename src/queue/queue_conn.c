/*
 * Blocking Redis connections with short timeouts: opened on first use, AUTH and SELECT from the
 * URL, dropped after any I/O error and reopened lazily (no sooner than QUEUE_RETRY_MS later), so
 * an outage answers quickly and the queue recovers by itself. Also runs the Lua scripts.
 */
#include "queue/queue_int.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "util/str.h"

double queue_mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double queue_wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void queue_conn_init(struct queue_conn *qc, const char *name, const char *url)
{
    char err[128];
    memset(qc, 0, sizeof(*qc));
    qc->name = name;
    qc->url_ok = redis_url_parse(url, &qc->url, err, sizeof(err)) == IA_OK;
    if (!qc->url_ok)
        log_msg(LOG_ERROR, "queue", "%s: %s", name, err);
}

void queue_conn_close(struct queue_conn *qc)
{
    if (qc->c)
        redisFree(qc->c);
    qc->c = NULL;
    qc->bound = false;
}

/* Drops the connection after an error; the next command reconnects. */
static void conn_fail(struct queue_conn *qc, const char *what, const char *errstr)
{
    if (!qc->down)
        log_msg(LOG_WARN, "queue", "%s %s:%d unavailable: %s: %s", qc->name, qc->url.host,
                qc->url.port, what, errstr);
    qc->down = true;
    qc->retry_after = queue_mono_now() + QUEUE_RETRY_MS / 1000.0;
    queue_conn_close(qc);
}

/* Sends AUTH (when the URL has a password) and SELECT (when db is not 0). */
static bool conn_handshake(struct queue_conn *qc)
{
    redisReply *r = NULL;
    if (qc->url.password[0] && qc->url.user[0])
        r = redisCommand(qc->c, "AUTH %s %s", qc->url.user, qc->url.password);
    else if (qc->url.password[0])
        r = redisCommand(qc->c, "AUTH %s", qc->url.password);
    bool ok = !r || r->type != REDIS_REPLY_ERROR;
    if (r == NULL && qc->url.password[0])
        ok = false;
    if (r && !ok)
        log_msg(LOG_ERROR, "queue", "%s: AUTH refused", qc->name); /* never log the password */
    freeReplyObject(r);
    if (ok && qc->url.db != 0) {
        r = redisCommand(qc->c, "SELECT %d", qc->url.db);
        ok = r && r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
    }
    return ok;
}

/* Opens the connection if needed; false when Redis cannot be reached now. */
static bool conn_open(struct queue_conn *qc)
{
    if (qc->c)
        return true;
    if (!qc->url_ok || queue_mono_now() < qc->retry_after)
        return false;
    struct timeval tv = {QUEUE_TIMEOUT_MS / 1000, (QUEUE_TIMEOUT_MS % 1000) * 1000};
    qc->c = redisConnectWithTimeout(qc->url.host, qc->url.port, tv);
    if (!qc->c || qc->c->err) {
        conn_fail(qc, "connect", qc->c ? qc->c->errstr : "out of memory");
        return false;
    }
    redisSetTimeout(qc->c, tv);
    redisEnableKeepAlive(qc->c);
    if (!conn_handshake(qc)) {
        conn_fail(qc, "handshake", qc->c->err ? qc->c->errstr : "AUTH or SELECT refused");
        return false;
    }
    if (qc->down)
        log_msg(LOG_INFO, "queue", "%s %s:%d connected again", qc->name, qc->url.host,
                qc->url.port);
    qc->down = false;
    return true;
}

redisReply *queue_conn_cmd(struct queue_conn *qc, const char *fmt, ...)
{
    if (!conn_open(qc))
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(qc->c, fmt, ap);
    va_end(ap);
    if (!r)
        conn_fail(qc, "command", qc->c->errstr);
    return r;
}

redisReply *queue_conn_argv(struct queue_conn *qc, int argc, const char **argv, const size_t *lens)
{
    if (!conn_open(qc))
        return NULL;
    redisReply *r = redisCommandArgv(qc->c, argc, argv, lens);
    if (!r)
        conn_fail(qc, "command", qc->c->errstr);
    return r;
}

bool queue_reply_failed(const struct queue_conn *qc, const redisReply *r, const char *what)
{
    if (!r)
        return true;
    if (r->type != REDIS_REPLY_ERROR)
        return false;
    char esc[200];
    log_msg(LOG_WARN, "queue", "%s: %s failed: %s", qc->name, what,
            log_escape(esc, sizeof(esc), r->str, r->len));
    return true;
}

void queue_scripts_init(struct queue *q)
{
    for (int i = 0; i < SCRIPT__COUNT; i++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        const char *src = queue_script_src[i];
        if (!EVP_Digest(src, strlen(src), md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
            abort(); /* SHA-1 cannot fail short of memory exhaustion */
        str_hex(q->sha[i], md, 20);
    }
}

/* Runs EVALSHA (or EVAL) with the name, script and key count prepended to argv. */
static redisReply *eval_as(struct queue_conn *qc, const char *cmd, const char *script, int nkeys,
                           int argc, const char **argv, const size_t *lens)
{
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    const char **av = xcalloc((size_t)argc + 3, sizeof(*av));
    size_t *al = xcalloc((size_t)argc + 3, sizeof(*al));
    av[0] = cmd;
    av[1] = script;
    av[2] = nk;
    for (int i = 0; i < 3; i++)
        al[i] = strlen(av[i]);
    for (int i = 0; i < argc; i++) {
        av[i + 3] = argv[i];
        al[i + 3] = lens ? lens[i] : strlen(argv[i]);
    }
    redisReply *r = queue_conn_argv(qc, argc + 3, av, al);
    free(av);
    free(al);
    return r;
}

redisReply *queue_eval(struct queue *q, struct queue_conn *qc, enum queue_script s, int nkeys,
                       int argc, const char **argv, const size_t *lens)
{
    redisReply *r = eval_as(qc, "EVALSHA", q->sha[s], nkeys, argc, argv, lens);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        r = eval_as(qc, "EVAL", queue_script_src[s], nkeys, argc, argv, lens);
    }
    return r;
}
