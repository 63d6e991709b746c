/*
 * Blocking Redis connections with short timeouts: opened on first use, AUTH and SELECT from the
 * URL, dropped after any I/O error and reopened lazily (no sooner than QUEUE_RETRY_MS later), so
 * an outage answers quickly and the queue recovers by itself. A connection the server closed
 * while it was idle (Redis restarted) is noticed before it is used, and a command whose
 * connection the server dropped is sent once more on a new one, so that no caller sees the
 * restart. With sentinels (sentinel.c), every connection goes to the address they name after
 * ROLE confirmed it is a master; they are asked again at most every QUEUE_SENTINEL_ASK_MS while
 * commands flow, and at once after READONLY or NOREPLICAS, which a command that then finds
 * another master is sent to once more. Also runs the Lua scripts.
 */
#include "queue/queue_int.h"

#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "util/os.h"
#include "util/str.h"

double queue_wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parses a sentinel:// URL into qc; false with the reason in err. */
static bool conn_init_sentinel(struct queue_conn *qc, const char *url, const char *master_name,
                               char *err, size_t errlen)
{
    struct redis_sentinel_url su;
    if (redis_sentinel_url_parse(url, &su, err, errlen) != IA_OK)
        return false;
    bool ok = master_name && master_name[0];
    if (ok) {
        qc->url = su.master;
        qc->sentinel = sentinel_new(&su, master_name);
    } else {
        snprintf(err, errlen, "a sentinel:// URL needs the master's name (*_MASTER_NAME)");
    }
    memset(&su, 0, sizeof(su)); /* the password */
    return ok;
}

void queue_conn_init(struct queue_conn *qc, const char *name, const char *url,
                     const char *master_name)
{
    char err[160];
    memset(qc, 0, sizeof(*qc));
    qc->name = name;
    if (redis_url_is_sentinel(url))
        qc->url_ok = conn_init_sentinel(qc, url, master_name, err, sizeof(err));
    else
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

void queue_conn_cleanup(struct queue_conn *qc)
{
    queue_conn_close(qc);
    sentinel_free(qc->sentinel);
    qc->sentinel = NULL;
    memset(&qc->url, 0, sizeof(qc->url)); /* the password */
}

/* Drops the connection after an error; the next command reconnects. */
static void conn_fail(struct queue_conn *qc, const char *what, const char *errstr)
{
    if (!qc->down && qc->url.host[0])
        log_msg(LOG_WARN, "queue", "%s %s:%d unavailable: %s: %s", qc->name, qc->url.host,
                qc->url.port, what, errstr);
    else if (!qc->down)
        log_msg(LOG_WARN, "queue", "%s (master %s) unavailable: %s: %s", qc->name,
                qc->sentinel ? sentinel_master_name(qc->sentinel) : "?", what, errstr);
    qc->down = true;
    qc->retry_after_ms = os_monotonic_ms() + QUEUE_RETRY_MS;
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

/*
 * Sentinels: points qc->url at the master they name now (a change is announced once ROLE has
 * confirmed it). False when no sentinel answered.
 */
static bool conn_locate(struct queue_conn *qc)
{
    struct redis_addr a;
    qc->next_ask_ms = os_monotonic_ms() + QUEUE_SENTINEL_ASK_MS;
    if (!sentinel_get_master(qc->sentinel, &a))
        return false;
    if (strcmp(a.host, qc->url.host) != 0 || a.port != qc->url.port) {
        memcpy(qc->url.host, a.host, sizeof(qc->url.host));
        qc->url.port = a.port;
        qc->announced = false;
    }
    return true;
}

/* Sentinels: true when the new connection is to a master; announces a new one. */
static bool conn_confirm_master(struct queue_conn *qc)
{
    if (!sentinel_role_is_master(qc->c))
        return false;
    if (!qc->announced) {
        char esc[300];
        log_msg(LOG_INFO, "queue", "%s master is now %s:%d", qc->name,
                log_escape(esc, sizeof(esc), qc->url.host, strlen(qc->url.host)), qc->url.port);
        qc->announced = true;
    }
    return true;
}

/* Opens the connection if needed; false when Redis cannot be reached now. */
static bool conn_open(struct queue_conn *qc)
{
    if (qc->c)
        return true;
    if (!qc->url_ok || os_monotonic_ms() < qc->retry_after_ms)
        return false;
    if (qc->sentinel && !conn_locate(qc)) {
        conn_fail(qc, "sentinels", "none answered with the master's address");
        return false;
    }
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
    if (qc->sentinel && !conn_confirm_master(qc)) {
        conn_fail(qc, "ROLE", qc->c->err ? qc->c->errstr : "not a master");
        return false;
    }
    if (qc->down)
        log_msg(LOG_INFO, "queue", "%s %s:%d connected again", qc->name, qc->url.host,
                qc->url.port);
    qc->down = false;
    return true;
}

/*
 * True when the connection is still usable: nothing may be readable on an idle connection, so
 * readable means the server closed it (or sent what nobody asked for). Closes it otherwise.
 */
static bool conn_alive(struct queue_conn *qc)
{
    struct pollfd p = {.fd = qc->c->fd, .events = POLLIN};
    if (poll(&p, 1, 0) == 0)
        return true;
    log_msg(LOG_DEBUG, "queue", "%s: the server closed the idle connection; reconnecting",
            qc->name);
    queue_conn_close(qc);
    return false;
}

/*
 * True when a command failed because the server dropped the connection (EOF, reset, broken
 * pipe), not because it was slow: such a command is sent again once on a new connection.
 */
static bool conn_dropped(const redisContext *c, int err)
{
    return c->err == REDIS_ERR_EOF ||
           (c->err == REDIS_ERR_IO && (err == ECONNRESET || err == EPIPE || err == ENOTCONN));
}

/* Sends one formatted command and reads its reply; NULL on any failure (c->err says which). */
static redisReply *conn_exec(redisContext *c, const char *cmd, size_t len)
{
    void *reply = NULL;
    if (redisAppendFormattedCommand(c, cmd, len) != REDIS_OK ||
        redisGetReply(c, &reply) != REDIS_OK)
        return NULL;
    return reply;
}

/*
 * Sentinels, at most every QUEUE_SENTINEL_ASK_MS: asks them again, and closes the connection
 * when they name another master. True when the connection stays open (also when no sentinel
 * answered: the master in use is kept).
 */
static bool conn_recheck(struct queue_conn *qc)
{
    if (!qc->sentinel || os_monotonic_ms() < qc->next_ask_ms)
        return true;
    char host[sizeof(qc->url.host)];
    int port = qc->url.port;
    memcpy(host, qc->url.host, sizeof(host));
    if (!conn_locate(qc) || (strcmp(host, qc->url.host) == 0 && port == qc->url.port))
        return true;
    log_msg(LOG_INFO, "queue", "%s: the sentinels name another master; reconnecting", qc->name);
    queue_conn_close(qc);
    return false;
}

/* True for the errors of a master that became a replica, or that lost its replicas. */
static bool master_refused(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR &&
           (strncmp(r->str, "READONLY", 8) == 0 || strncmp(r->str, "NOREPLICAS", 10) == 0);
}

/*
 * Sentinels: r refused the command, which did not run. Asks the sentinels at once; when they
 * name another master, or r came from a replica (READONLY), sends the command once more to the
 * master they name (ROLE-checked). Returns the new reply, or r when there is none to ask: a
 * NOREPLICAS from the master they still name stands (its replicas are away).
 */
static redisReply *conn_rerun(struct queue_conn *qc, redisReply *r, const char *cmd, size_t len)
{
    char host[sizeof(qc->url.host)], esc[120];
    int port = qc->url.port;
    memcpy(host, qc->url.host, sizeof(host));
    bool moved = conn_locate(qc) && (strcmp(host, qc->url.host) != 0 || port != qc->url.port);
    if (!moved && strncmp(r->str, "READONLY", 8) != 0)
        return r;
    log_msg(LOG_WARN, "queue", "%s %s:%d refused a command (%s); %s", qc->name, host, port,
            log_escape(esc, sizeof(esc), r->str, r->len),
            moved ? "sending it to the new master" : "it is no master: asking the sentinels");
    queue_conn_close(qc);
    if (!conn_open(qc))
        return r;
    freeReplyObject(r);
    redisReply *again = conn_exec(qc->c, cmd, len);
    if (!again) {
        qc->unsure = true;
        conn_fail(qc, "command", qc->c->errstr);
    }
    return again;
}

/*
 * Runs one formatted command. On a connection opened before this call that the server dropped,
 * reconnects at once and sends it again, once. qc->unsure tells afterwards whether a failed
 * command may have reached Redis.
 */
static redisReply *conn_run(struct queue_conn *qc, const char *cmd, size_t len)
{
    qc->unsure = false;
    bool reused = qc->c && conn_alive(qc) && conn_recheck(qc);
    if (!conn_open(qc))
        return NULL;
    redisReply *r = conn_exec(qc->c, cmd, len);
    if (!r && reused && conn_dropped(qc->c, errno)) {
        log_msg(LOG_INFO, "queue", "%s: connection dropped by the server (%s); sending again",
                qc->name, qc->c->errstr);
        queue_conn_close(qc);
        qc->unsure = true; /* the first copy may have run before the server went away */
        if (!conn_open(qc))
            return NULL;
        r = conn_exec(qc->c, cmd, len);
    }
    if (!r) {
        qc->unsure = true;
        conn_fail(qc, "command", qc->c->errstr);
    } else if (qc->sentinel && master_refused(r)) {
        r = conn_rerun(qc, r, cmd, len);
    }
    return r;
}

redisReply *queue_conn_cmd(struct queue_conn *qc, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        abort(); /* out of memory, or a format string bug */
    redisReply *r = conn_run(qc, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return r;
}

redisReply *queue_conn_argv(struct queue_conn *qc, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0)
        abort(); /* out of memory */
    redisReply *r = conn_run(qc, cmd, (size_t)len);
    redisFreeCommand(cmd);
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
