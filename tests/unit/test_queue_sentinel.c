/*
 * Tests queue/sentinel.c through the queue: the sentinels are asked in order (one that is down
 * and one that does not know the master are passed over), the one that answered is asked first
 * from then on on its kept connection, at most once a second; an address whose ROLE is replica is
 * not used; and a write refused with READONLY by a master that became a replica is sent once
 * more to the master the sentinels name now. Two real private redis-servers (a master and its
 * replica) play Redis; scripted fakes on loopback play the sentinels.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "queue/queue.h"
#include "redis_harness.h"

static int port_a, port_b; /* a starts as the master, b as its replica */
static pid_t pid_a, pid_b;

/* Runs one command on a short-lived connection to port; the reply (NULL when none). */
static redisReply *redis_at(int port, const char *fmt, ...)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *r = NULL;
    if (c && !c->err) {
        va_list ap;
        va_start(ap, fmt);
        r = redisvCommand(c, fmt, ap);
        va_end(ap);
    }
    redisFree(c);
    return r;
}

/* The first element of ROLE at port ("master", "slave"), into buf. */
static const char *role_at(int port, char *buf, size_t len)
{
    redisReply *r = redis_at(port, "ROLE");
    snprintf(buf, len, "%s",
             r && r->type == REDIS_REPLY_ARRAY && r->elements ? r->element[0]->str : "?");
    freeReplyObject(r);
    return buf;
}

/* ---- A scripted fake sentinel: a thread per connection. ---- */

#define FAKE_CONNS 16

struct fake {
    int listen_fd, port;
    atomic_int master_port; /* what get-master-addr-by-name answers; 0: a null reply */
    atomic_int connections, questions;
    atomic_bool stop;
    pthread_t thread, conn_threads[FAKE_CONNS];
    int conn_fds[FAKE_CONNS];
};

struct fake_conn {
    struct fake *f;
    int fd;
};

/* Answers every complete command in buf; returns the bytes used. */
static size_t fake_answer(struct fake *f, int fd, const char *buf, size_t len)
{
    size_t used = 0;
    for (;;) { /* commands are "*N\r\n" then N "$len\r\nbytes\r\n"; only the count matters */
        const char *p = buf + used, *end = buf + len, *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol || *p != '*')
            return used;
        long n = strtol(p + 1, NULL, 10);
        p = eol + 1;
        for (long i = 0; i < n; i++) {
            eol = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
            if (!eol)
                return used;
            long l = strtol(p + 1, NULL, 10);
            if (end - (eol + 1) < l + 2)
                return used;
            p = eol + 1 + l + 2;
        }
        used = (size_t)(p - buf);
        atomic_fetch_add(&f->questions, 1);
        char reply[128];
        int mp = atomic_load(&f->master_port);
        if (mp)
            snprintf(reply, sizeof(reply), "*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%d\r\n",
                     snprintf(NULL, 0, "%d", mp), mp);
        else
            snprintf(reply, sizeof(reply), "*-1\r\n");
        if (write(fd, reply, strlen(reply)) < 0)
            return used;
    }
}

static void *fake_conn_main(void *arg)
{
    struct fake_conn *fc = arg;
    char buf[4096];
    size_t len = 0;
    while (!atomic_load(&fc->f->stop)) {
        struct pollfd p = {.fd = fc->fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        ssize_t n = read(fc->fd, buf + len, sizeof(buf) - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        size_t used = fake_answer(fc->f, fc->fd, buf, len);
        memmove(buf, buf + used, len - used);
        len -= used;
    }
    free(fc);
    return NULL;
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = f->listen_fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int fd = accept(f->listen_fd, NULL, NULL);
        int i = fd < 0 ? FAKE_CONNS : atomic_fetch_add(&f->connections, 1);
        if (i >= FAKE_CONNS) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        struct fake_conn *fc = calloc(1, sizeof(*fc));
        fc->f = f;
        fc->fd = f->conn_fds[i] = fd;
        pthread_create(&f->conn_threads[i], NULL, fake_conn_main, fc);
    }
    return NULL;
}

static void fake_start(struct fake *f, int master_port)
{
    memset(f, 0, sizeof(*f));
    atomic_store(&f->master_port, master_port);
    f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->listen_fd, 8), 0);
    assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *)&a, &alen), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    int n = atomic_load(&f->connections);
    for (int i = 0; i < n && i < FAKE_CONNS; i++) {
        pthread_join(f->conn_threads[i], NULL);
        close(f->conn_fds[i]);
    }
    close(f->listen_fd);
}

static int group_setup(void **state)
{
    (void)state;
    log_set_level(LOG_ERROR);
    port_a = harness_free_port();
    pid_a = harness_redis_start(port_a, 0);
    port_b = harness_free_port();
    pid_b = harness_redis_start(port_b, port_a);
    return pid_a > 0 && pid_b > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    harness_redis_stop(pid_a);
    harness_redis_stop(pid_b);
    return 0;
}

static struct queue *new_queue(const char *url)
{
    char broker[512], backend[512], name[] = "mymaster";
    snprintf(broker, sizeof(broker), "%s", url);
    snprintf(backend, sizeof(backend), "%s", url);
    struct config cfg = {0};
    cfg.broker_url = broker;
    cfg.backend_url = backend;
    cfg.broker_master_name = name; /* queue_new() copies what it keeps */
    cfg.backend_master_name = name;
    cfg.result_ttl_s = 600;
    return queue_new(&cfg);
}

/* ---- Tests ---- */

static void test_asks_in_order_then_the_one_that_answered(void **state)
{
    (void)state;
    struct fake unknowing, knowing;
    fake_start(&unknowing, 0);
    fake_start(&knowing, port_a);
    char url[256];
    snprintf(url, sizeof(url),
             "sentinel://127.0.0.1:%d;sentinel://127.0.0.1:%d;sentinel://127.0.0.1:%d", harness_free_port(),
             unknowing.port, knowing.port);
    struct queue *q = new_queue(url);
    assert_true(queue_ping(q)); /* broker and backend: each asks down, unknowing, knowing */
    assert_int_equal(atomic_load(&unknowing.questions), 2);
    assert_int_equal(atomic_load(&knowing.questions), 2);
    assert_true(queue_ping(q)); /* within the second: nobody is asked */
    assert_int_equal(atomic_load(&knowing.questions), 2);
    usleep(1100 * 1000);
    assert_true(queue_ping(q)); /* a second later: the one that answered, on its connection */
    assert_int_equal(atomic_load(&unknowing.questions), 2);
    assert_int_equal(atomic_load(&knowing.questions), 4);
    assert_int_equal(atomic_load(&knowing.connections), 2);
    queue_free(q);
    fake_stop(&unknowing);
    fake_stop(&knowing);
}

static void test_a_replica_is_not_used(void **state)
{
    (void)state;
    struct fake s;
    fake_start(&s, port_b);
    char url[128];
    snprintf(url, sizeof(url), "sentinel://127.0.0.1:%d", s.port);
    struct queue *q = new_queue(url);
    assert_false(queue_ping(q)); /* ROLE says slave */
    atomic_store(&s.master_port, port_a);
    usleep(300 * 1000); /* past the reconnect delay */
    assert_true(queue_ping(q));
    queue_free(q);
    fake_stop(&s);
}

/* a becomes b's replica and the sentinel names b: a write refused by a is sent to b. */
static void test_readonly_write_goes_to_the_new_master(void **state)
{
    (void)state;
    struct fake s;
    fake_start(&s, port_a);
    char url[128], role[16];
    snprintf(url, sizeof(url), "sentinel://127.0.0.1:%d/1", s.port);
    struct queue *q = new_queue(url);
    assert_int_equal(queue_submit(q, "t-on-a", "http://x/a", NULL), IA_OK);
    freeReplyObject(redis_at(port_b, "REPLICAOF NO ONE"));
    freeReplyObject(redis_at(port_a, "REPLICAOF 127.0.0.1 %d", port_b));
    assert_string_equal(role_at(port_a, role, sizeof(role)), "slave");
    atomic_store(&s.master_port, port_b);
    /* Within the second since the sentinel was asked: only READONLY tells the queue. */
    assert_int_equal(queue_submit(q, "t-on-b", "http://x/b", NULL), IA_OK);
    redisReply *r = redis_at(port_b, "EXISTS interview-task-t-on-b");
    assert_true(r && r->type == REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 0); /* db 0: the record is in db 1 */
    freeReplyObject(r);
    redisContext *c = redisConnect("127.0.0.1", port_b);
    freeReplyObject(redisCommand(c, "SELECT 1"));
    r = redisCommand(c, "EXISTS interview-task-t-on-b");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redisFree(c);
    queue_free(q);
    fake_stop(&s);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_asks_in_order_then_the_one_that_answered),
        cmocka_unit_test(test_a_replica_is_not_used),
        cmocka_unit_test(test_readonly_write_goes_to_the_new_master),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
