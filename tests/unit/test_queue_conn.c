/*
 * Tests queue/queue_conn.c and the API side's use of it: a connection whose server restarted is
 * replaced before a command fails on it, a command whose connection the server dropped is sent
 * again once, and a publish that went unanswered keeps its accepted record. A real private
 * redis-server plays Redis; a scripted fake on loopback plays a server that drops or stalls.
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

static int port;
static pid_t redis_pid;
static char broker_url[64], backend_url[64];

static void redis_start(void)
{
    redis_pid = harness_redis_start(port, 0);
    if (redis_pid < 0)
        fail_msg("redis-server did not start on port %d", port);
}

static void redis_stop(void)
{
    harness_redis_stop(redis_pid);
    redis_pid = 0;
}

static int group_setup(void **state)
{
    (void)state;
    log_set_level(LOG_ERROR);
    port = harness_free_port();
    snprintf(broker_url, sizeof(broker_url), "redis://127.0.0.1:%d/0", port);
    snprintf(backend_url, sizeof(backend_url), "redis://127.0.0.1:%d/1", port);
    redis_start();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (redis_pid)
        redis_stop();
    return 0;
}

static struct queue *new_queue(char *broker, char *backend)
{
    struct config cfg = {0};
    cfg.broker_url = broker;
    cfg.backend_url = backend;
    cfg.result_ttl_s = 600;
    return queue_new(&cfg);
}

/* ---- A scripted fake Redis: one connection at a time, on its own thread. ---- */

enum fake_mode {
    FAKE_DROP_SECOND, /* first connection: answers one command, resets on the second */
    FAKE_STALL_EVAL,  /* never answers EVAL/EVALSHA; answers everything else */
};

struct fake {
    enum fake_mode mode;
    int listen_fd, port;
    atomic_int connections, commands;
    atomic_bool stop;
    pthread_t thread;
};

/* Length of the first complete RESP command in buf (its name into name), or 0 if incomplete. */
static size_t resp_command(const char *buf, size_t len, char *name, size_t cap)
{
    const char *p = buf, *end = buf + len;
    char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol || *p != '*')
        return 0;
    long n = strtol(p + 1, NULL, 10);
    p = eol + 1;
    for (long i = 0; i < n; i++) {
        eol = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        if (!eol || *p != '$')
            return 0;
        long l = strtol(p + 1, NULL, 10);
        p = eol + 1;
        if (end - p < l + 2)
            return 0;
        if (i == 0)
            snprintf(name, cap, "%.*s", (int)(l < (long)cap ? l : (long)cap - 1), p);
        p += l + 2;
    }
    return (size_t)(p - buf);
}

static const char *fake_answer(const char *name)
{
    if (!strcasecmp(name, "PING"))
        return "+PONG\r\n";
    if (!strcasecmp(name, "LLEN"))
        return ":5\r\n";
    if (!strcasecmp(name, "SADD"))
        return ":1\r\n";
    return "+OK\r\n";
}

/* Serves one connection until the client leaves, or resets it as the mode says. */
static void fake_serve(struct fake *f, int fd, int nth)
{
    char buf[65536], name[32];
    size_t len = 0;
    ssize_t n;
    int seen = 0;
    while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) > 0) {
        len += (size_t)n;
        size_t used;
        while ((used = resp_command(buf, len, name, sizeof(name))) > 0) {
            memmove(buf, buf + used, len - used);
            len -= used;
            atomic_fetch_add(&f->commands, 1);
            if (f->mode == FAKE_DROP_SECOND && nth == 1 && ++seen == 2) {
                struct linger lg = {1, 0}; /* close with a reset, as a dying server may */
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
                return;
            }
            if (f->mode == FAKE_STALL_EVAL && !strncasecmp(name, "EVAL", 4))
                continue;
            const char *a = fake_answer(name);
            if (write(fd, a, strlen(a)) < 0)
                return;
        }
    }
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!atomic_load(&f->stop)) {
        int fd = accept(f->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        int nth = atomic_fetch_add(&f->connections, 1) + 1;
        if (!atomic_load(&f->stop))
            fake_serve(f, fd, nth);
        close(fd);
    }
    return NULL;
}

static void fake_start(struct fake *f, enum fake_mode mode)
{
    memset(f, 0, sizeof(*f));
    f->mode = mode;
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
    int fd = socket(AF_INET, SOCK_STREAM, 0); /* wakes accept() */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void)connect(fd, (struct sockaddr *)&a, sizeof(a));
    close(fd);
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
}

/* ---- Tests ---- */

/* Redis restarts while a connection is idle: the next command of each side succeeds. */
static void test_restart_is_invisible(void **state)
{
    (void)state;
    struct queue *q = new_queue(broker_url, backend_url);
    assert_int_equal(queue_submit(q, "t-before", "http://x/a", NULL), IA_OK);
    redis_stop();
    redis_start(); /* same port, empty: both connections of q are stale */
    assert_int_equal(queue_length(q), 0);
    assert_int_equal(queue_submit(q, "t-after", "http://x/b", NULL), IA_OK);
    struct task_status st;
    assert_int_equal(queue_status(q, "t-after", &st), IA_OK);
    assert_int_equal(st.state, TASK_QUEUED);
    task_status_cleanup(&st);
    queue_free(q);
}

/* The server resets a connection after reading a command: it is sent again, once, elsewhere. */
static void test_dropped_command_is_sent_again(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f, FAKE_DROP_SECOND);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", f.port);
    struct queue *q = new_queue(url, url);
    assert_int_equal(queue_length(q), 5);
    assert_int_equal(queue_length(q), 5); /* the first copy met the reset */
    assert_int_equal(atomic_load(&f.connections), 2);
    assert_int_equal(atomic_load(&f.commands), 3);
    queue_free(q);
    fake_stop(&f);
}

/* The publish is sent and never answered: it may be on the queue, so the record stays. */
static void test_unanswered_publish_keeps_the_record(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f, FAKE_STALL_EVAL);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", f.port);
    struct queue *q = new_queue(url, backend_url);
    assert_int_equal(queue_submit(q, "t-unsure", "http://x/u", NULL), IA_ERR_BROKER_UNSURE);
    queue_free(q);
    fake_stop(&f);
    q = new_queue(broker_url, backend_url);
    struct task_status st;
    assert_int_equal(queue_status(q, "t-unsure", &st), IA_OK);
    assert_int_equal(st.state, TASK_QUEUED);
    task_status_cleanup(&st);
    queue_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_is_invisible),
        cmocka_unit_test(test_dropped_command_is_sent_again),
        cmocka_unit_test(test_unanswered_publish_keeps_the_record),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
