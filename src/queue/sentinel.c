/*
 * Redis Sentinel for the blocking connections of queue_conn.c, as the Sentinel client guidelines
 * describe it (hiredis 0.14 has none): the sentinels are asked in order for the master's
 * address, the one that answered moves to the front and its connection is kept for the next
 * question, and an address is used only once ROLE says it is a master. Every connection has
 * the same short timeouts as the Redis connections, and one search takes at most
 * QUEUE_TIMEOUT_MS in all, however many sentinels do not answer.
 */
#include "queue/queue_int.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "util/os.h"

struct sentinel {
    char *master_name;
    struct redis_addr addr[REDIS_SENTINELS_MAX]; /* in the order to ask: the last to answer first */
    int count;
    redisContext *c; /* to addr[0], kept open between questions */
};

struct sentinel *sentinel_new(const struct redis_sentinel_url *u, const char *master_name)
{
    struct sentinel *s = xcalloc(1, sizeof(*s));
    s->master_name = xstrdup(master_name);
    s->count = u->count;
    memcpy(s->addr, u->sentinel, sizeof(s->addr));
    return s;
}

static void sentinel_close(struct sentinel *s)
{
    if (s->c)
        redisFree(s->c);
    s->c = NULL;
}

void sentinel_free(struct sentinel *s)
{
    if (!s)
        return;
    sentinel_close(s);
    free(s->master_name);
    free(s);
}

static struct timeval ms_to_tv(int64_t ms)
{
    return (struct timeval){.tv_sec = (time_t)(ms / 1000),
                            .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

/* Connects to one sentinel within timeout_ms; NULL when it cannot be reached. */
static redisContext *sentinel_connect(const struct redis_addr *a, int64_t timeout_ms)
{
    redisContext *c = redisConnectWithTimeout(a->host, a->port, ms_to_tv(timeout_ms));
    if (!c || c->err) {
        log_msg(LOG_DEBUG, "queue", "sentinel %s:%d unreachable: %s", a->host, a->port,
                c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    return c;
}

/* True when the kept connection may be used: the sentinel did not close it meanwhile. */
static bool kept_alive(const redisContext *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    return poll(&p, 1, 0) == 0;
}

/*
 * Asks one sentinel. 1 with the address in *out, 0 when it does not know the master (or answers
 * what is not an address), -1 on an I/O error.
 */
static int sentinel_ask_one(struct sentinel *s, redisContext *c, struct redis_addr *out)
{
    redisReply *r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", s->master_name);
    if (!r)
        return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[0]->len > 0 && r->element[0]->len < sizeof(out->host)) {
        long port = strtol(r->element[1]->str, NULL, 10);
        memcpy(out->host, r->element[0]->str, r->element[0]->len);
        out->host[r->element[0]->len] = '\0';
        out->port = (int)port;
        rc = port > 0 && port <= 65535;
    }
    freeReplyObject(r);
    return rc;
}

/* Moves sentinel i to the front of the list, the others keeping their order. */
static void sentinel_to_front(struct sentinel *s, int i)
{
    struct redis_addr a = s->addr[i];
    memmove(&s->addr[1], &s->addr[0], (size_t)i * sizeof(a));
    s->addr[0] = a;
}

bool sentinel_get_master(struct sentinel *s, struct redis_addr *out)
{
    int64_t deadline = os_monotonic_ms() + QUEUE_TIMEOUT_MS;
    if (s->c && !kept_alive(s->c))
        sentinel_close(s);
    int tried = 0;
    for (int i = 0; i < s->count; i++) {
        int64_t left = deadline - os_monotonic_ms();
        if (left <= 0)
            break;
        tried++;
        redisContext *c = i == 0 && s->c ? s->c : sentinel_connect(&s->addr[i], left);
        if (c == s->c)
            s->c = NULL;
        if (!c)
            continue;
        redisSetTimeout(c, ms_to_tv(left));
        int rc = sentinel_ask_one(s, c, out);
        if (rc == 1) {
            sentinel_to_front(s, i);
            redisSetTimeout(c, ms_to_tv(QUEUE_TIMEOUT_MS));
            s->c = c;
            return true;
        }
        log_msg(LOG_DEBUG, "queue", "sentinel %s:%d %s", s->addr[i].host, s->addr[i].port,
                rc == 0 ? "does not know the master" : c->errstr);
        redisFree(c);
    }
    /* Out of time before the end of the list: those that failed go last, so others get a turn. */
    for (int i = 0; i < s->count - tried && tried < s->count; i++)
        sentinel_to_front(s, s->count - 1);
    return false;
}

const char *sentinel_master_name(const struct sentinel *s) { return s->master_name; }

bool sentinel_role_is_master(redisContext *c)
{
    redisReply *r = redisCommand(c, "ROLE");
    bool master = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                  r->element[0]->type == REDIS_REPLY_STRING &&
                  strcmp(r->element[0]->str, "master") == 0;
    freeReplyObject(r);
    return master;
}
