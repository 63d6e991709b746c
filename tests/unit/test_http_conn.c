/*
 * Tests http/conn.c's time limits through real loopback connections: a request's head must
 * arrive within request_timeout_s, while its body is timed only by the pauses between reads
 * (idle_timeout_s, as nginx's client_body_timeout), also for a pipelined request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http.h"
#include "http_harness.h"

/*
 * Wide margins, for a sanitizer build on a busy machine: a head sent at once must be read within
 * HEAD_TIMEOUT_S; a pause of GAP_MS must stay far below IDLE_TIMEOUT_S.
 */
#define HEAD_TIMEOUT_S 3
#define IDLE_TIMEOUT_S 6
#define BODY_BYTES 48
#define PIECE 3
#define GAP_MS 500 /* 16 pieces: 8 s in all, more than both timeouts; each pause 12x shorter */

static struct harness_http server;

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* as the program does: a closed connection fails a write */
    struct http_server_opts o = {.host = "127.0.0.1",
                                 .port = 0,
                                 .threads = 1,
                                 .max_body_bytes = 1 << 20,
                                 .max_header_bytes = 8192,
                                 .idle_timeout_s = IDLE_TIMEOUT_S,
                                 .request_timeout_s = HEAD_TIMEOUT_S,
                                 .handler = harness_http_body_size_handler};
    return harness_http_start(&server, &o);
}

static int teardown(void **state)
{
    (void)state;
    harness_http_free(&server);
    return 0;
}

static int connect_server(void)
{
    int fd = harness_http_connect(&server);
    assert_true(fd >= 0);
    return fd;
}

/* Sends len bytes piece bytes at a time, pausing gap_ms after each; false once the server left. */
static bool trickle(int fd, const char *data, size_t len, size_t piece, int gap_ms)
{
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        if (send(fd, data + off, n, MSG_NOSIGNAL) != (ssize_t)n)
            return false;
        usleep((useconds_t)gap_ms * 1000);
    }
    return true;
}

static int count(const char *haystack, const char *needle)
{
    int n = 0;
    for (const char *p = haystack; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static const char body[BODY_BYTES + 1] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV";

#define POST_HEAD                                                                                  \
    "POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 48\r\nConnection: close\r\n\r\n"

/* A body that takes longer than the head deadline, with short pauses, is taken whole. */
static void test_slow_body_with_short_pauses_completes(void **state)
{
    (void)state;
    int fd = connect_server();
    assert_true(trickle(fd, POST_HEAD, strlen(POST_HEAD), strlen(POST_HEAD), 0));
    assert_true(trickle(fd, body, BODY_BYTES, PIECE, GAP_MS));
    char *r = harness_http_read_all(fd);
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "body=48"));
    free(r);
}

/* A head sent a byte at a time, each pause short, is cut off at the head deadline. */
static void test_slow_head_is_cut_off(void **state)
{
    (void)state;
    int fd = connect_server();
    bool all_sent = trickle(fd, POST_HEAD, strlen(POST_HEAD), 1, GAP_MS / 5);
    char *r = harness_http_read_all(fd);
    assert_false(all_sent); /* 7.4 s of head: the server closed the connection long before */
    assert_string_equal(r, "");
    free(r);
}

/* A body that pauses longer than idle_timeout_s is cut off. */
static void test_long_pause_in_body_is_cut_off(void **state)
{
    (void)state;
    int fd = connect_server();
    assert_true(trickle(fd, POST_HEAD, strlen(POST_HEAD), strlen(POST_HEAD), 0));
    assert_true(trickle(fd, body, 10, 10, 2 * IDLE_TIMEOUT_S * 1000));
    (void)trickle(fd, body + 10, BODY_BYTES - 10, BODY_BYTES, 0);
    char *r = harness_http_read_all(fd);
    assert_string_equal(r, "");
    free(r);
}

/* A request pipelined behind another: its head is in when the first answer goes out. */
static void test_pipelined_slow_body_completes(void **state)
{
    (void)state;
    int fd = connect_server();
    const char *both = "GET /first HTTP/1.1\r\nHost: t\r\n\r\n" POST_HEAD;
    assert_true(trickle(fd, both, strlen(both), strlen(both), 0));
    assert_true(trickle(fd, body, BODY_BYTES, PIECE, GAP_MS));
    char *r = harness_http_read_all(fd);
    assert_int_equal(count(r, "HTTP/1.1 200 OK\r\n"), 2);
    assert_non_null(strstr(r, "body=0"));
    assert_non_null(strstr(r, "body=48"));
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_body_with_short_pauses_completes),
        cmocka_unit_test(test_slow_head_is_cut_off),
        cmocka_unit_test(test_long_pause_in_body_is_cut_off),
        cmocka_unit_test(test_pipelined_slow_body_completes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
