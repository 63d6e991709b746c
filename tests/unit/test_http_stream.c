/*
 * Tests http/stream.c through real loopback connections: a producer thread writes a body in
 * 16 KiB writes, as the S3 proxy does with curl's pieces. What it flushed reaches the client
 * while the producer waits for its source; a body many times the window arrives whole and in
 * order; a client that leaves makes the producer's writes fail, and the stream still ends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"
#include "http_harness.h"

#define PIECE (16 * 1024)
#define FIRST 1000                  /* bytes flushed before the producer waits */
#define BIG (32u * 1024 * 1024 + 3) /* many times the window */
#define WAIT_MS 60000               /* for bytes the test is sure must come */

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static atomic_int producers_done, writes_refused;

static unsigned char pattern_byte(size_t i) { return (unsigned char)(i % 253); }

static void set_gate(bool open)
{
    pthread_mutex_lock(&gate_lock);
    gate_open = open;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

static void wait_gate(void)
{
    pthread_mutex_lock(&gate_lock);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
}

/* Writes [from, to) of the pattern in PIECE writes; false once a write is refused. */
static bool write_range(struct http_stream *s, size_t from, size_t to)
{
    unsigned char buf[PIECE];
    while (from < to) {
        size_t n = to - from < PIECE ? to - from : PIECE;
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern_byte(from + i);
        if (!http_stream_write(s, buf, n))
            return false;
        from += n;
    }
    return true;
}

struct job {
    struct http_stream *stream;
    size_t length;
    bool pause_after_first; /* flush FIRST bytes, then wait for the gate */
};

static void *produce(void *arg)
{
    struct job *j = arg;
    char length[24];
    snprintf(length, sizeof length, "%zu", j->length);
    struct http_header hs[2] = {{"Content-Type", "application/octet-stream"},
                                {"Content-Length", length}};
    bool ok = http_stream_start(j->stream, 200, hs, 2);
    size_t done = 0;
    if (ok && j->pause_after_first) {
        ok = write_range(j->stream, 0, FIRST) && http_stream_flush(j->stream);
        done = FIRST;
        wait_gate();
    }
    ok = ok && write_range(j->stream, done, j->length);
    if (!ok)
        atomic_fetch_add(&writes_refused, 1);
    struct http_stream *s = j->stream;
    free(j);
    http_stream_end(s, ok);
    atomic_fetch_add(&producers_done, 1);
    return NULL;
}

static void handler(struct http_request *req, void *ctx)
{
    (void)ctx;
    const char *path = http_request_path(req);
    struct job *j = calloc(1, sizeof *j);
    assert_non_null(j);
    j->pause_after_first = path && strcmp(path, "/paused") == 0;
    j->length = j->pause_after_first ? 2 * FIRST : BIG;
    j->stream = http_stream_take(req);
    assert_non_null(j->stream);
    assert_true(http_stream_run(j->stream, produce, j));
}

static struct harness_http server;

static int setup(void **state)
{
    (void)state;
    struct http_server_opts o = {.host = "127.0.0.1",
                                 .threads = 1,
                                 .offload_threads = 1,
                                 .idle_timeout_s = 60,
                                 .handler = handler};
    return harness_http_start(&server, &o);
}

static int teardown(void **state)
{
    (void)state;
    harness_http_free(&server);
    return 0;
}

static int send_get(const char *path)
{
    int fd = harness_http_connect(&server);
    assert_true(fd >= 0);
    char raw[256];
    int n =
        snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    assert_int_equal(write(fd, raw, (size_t)n), n);
    return fd;
}

/* Reads into buf until it holds want bytes or the server closes; the bytes read. Fails the test
 * when nothing comes for WAIT_MS. */
static size_t read_until(int fd, unsigned char *buf, size_t have, size_t want)
{
    while (have < want) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, WAIT_MS);
        assert_int_equal(r, 1);
        ssize_t n = read(fd, buf + have, want - have);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n >= 0);
        if (n == 0)
            break;
        have += (size_t)n;
    }
    return have;
}

/* The length of the head in buf (through its blank line), or 0 when it is not all there. */
static size_t head_length(const unsigned char *buf, size_t n)
{
    for (size_t i = 3; i < n; i++)
        if (memcmp(buf + i - 3, "\r\n\r\n", 4) == 0)
            return i + 1;
    return 0;
}

/* Reads the head and then body bytes until the body has want bytes; the head's length. */
static size_t read_head_and(int fd, unsigned char *buf, size_t cap, size_t *have, size_t want)
{
    size_t head = 0;
    while (!head) {
        size_t before = *have;
        *have = read_until(fd, buf, *have, before + 1);
        assert_true(*have > before);
        head = head_length(buf, *have);
    }
    assert_true(head + want <= cap);
    *have = read_until(fd, buf, *have, head + want);
    return head;
}

static void test_flushed_bytes_reach_the_client_while_the_producer_waits(void **state)
{
    (void)state;
    set_gate(false);
    int before = atomic_load(&producers_done);
    int fd = send_get("/paused");
    unsigned char buf[8192];
    size_t have = 0;
    /* These come while the producer waits at its gate: it flushed them. */
    size_t head = read_head_and(fd, buf, sizeof buf, &have, FIRST);
    assert_non_null(strstr((const char *)buf, "HTTP/1.1 200 OK\r\n"));
    for (size_t i = 0; i < FIRST; i++)
        assert_int_equal(buf[head + i], pattern_byte(i));
    set_gate(true);
    have = read_until(fd, buf, have, sizeof buf);
    close(fd);
    assert_int_equal(have, head + 2 * FIRST);
    for (size_t i = 0; i < 2 * FIRST; i++)
        assert_int_equal(buf[head + i], pattern_byte(i));
    harness_wait_for(&producers_done, before + 1);
}

static void test_a_body_many_windows_long_arrives_whole_and_in_order(void **state)
{
    (void)state;
    set_gate(true);
    int fd = send_get("/big");
    size_t cap = BIG + 4096;
    unsigned char *buf = malloc(cap);
    assert_non_null(buf);
    size_t have = 0;
    size_t head = read_head_and(fd, buf, cap, &have, 0);
    have = read_until(fd, buf, have, cap);
    close(fd);
    assert_int_equal(have - head, BIG);
    size_t wrong = 0;
    for (size_t i = 0; i < BIG; i++)
        wrong += buf[head + i] != pattern_byte(i);
    assert_int_equal(wrong, 0);
    free(buf);
}

static void test_a_client_that_leaves_stops_the_producer(void **state)
{
    (void)state;
    set_gate(true);
    int before = atomic_load(&producers_done), refused = atomic_load(&writes_refused);
    int fd = send_get("/big");
    unsigned char buf[4096];
    size_t have = 0;
    read_head_and(fd, buf, sizeof buf, &have, 1);
    close(fd);
    harness_wait_for(&producers_done, before + 1); /* blocked on the window until the loop saw it */
    assert_int_equal(atomic_load(&writes_refused), refused + 1);
    /* The loop still serves. */
    fd = send_get("/paused");
    have = read_until(fd, buf, 0, sizeof buf);
    close(fd);
    size_t head = head_length(buf, have);
    assert_true(head > 0);
    assert_int_equal(have - head, 2 * FIRST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flushed_bytes_reach_the_client_while_the_producer_waits),
        cmocka_unit_test(test_a_body_many_windows_long_arrives_whole_and_in_order),
        cmocka_unit_test(test_a_client_that_leaves_stops_the_producer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
