/*
 * Tests http/head.c's parser, and through real loopback connections what conn.c does with a
 * head before its body is read: the head handler refuses or limits a body, the body budget
 * refuses a body that would go over it (503) and is given back once a response is sent, and a
 * chunked body is counted as it arrives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/internal.h"
#include "http_harness.h"

#define BUDGET 100
#define SMALL_MAX 10

/* ---- the parser ---- */

static bool parse(const char *text, struct http_head *h, struct evkeyvalq *headers)
{
    TAILQ_INIT(headers);
    return http_head_parse(text, strlen(text), h, headers);
}

static void test_parse_post_with_length(void **state)
{
    (void)state;
    struct http_head h;
    struct evkeyvalq hd;
    assert_true(parse("POST /upload?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length:  42 \r\n"
                      "X-Long: one\r\n  two\r\n\r\n",
                      &h, &hd));
    assert_int_equal(h.method, HTTP_POST);
    assert_string_equal(h.target, "/upload?x=1");
    assert_int_equal(h.content_length, 42);
    assert_false(h.chunked);
    assert_string_equal(evhttp_find_header(&hd, "content-length"), "42");
    assert_string_equal(evhttp_find_header(&hd, "X-Long"), "one two");
    http_head_cleanup(&h);
    evhttp_clear_headers(&hd);
}

static void test_parse_chunked_and_bare_newlines(void **state)
{
    (void)state;
    struct http_head h;
    struct evkeyvalq hd;
    assert_true(parse(
        "PATCH /uploads/a HTTP/1.1\nTransfer-Encoding: Chunked\nContent-Length: 5\n\n", &h, &hd));
    assert_int_equal(h.method, HTTP_PATCH);
    assert_true(h.chunked);
    http_head_cleanup(&h);
    evhttp_clear_headers(&hd);
}

static void test_parse_head_method_has_no_body(void **state)
{
    (void)state;
    struct http_head h;
    struct evkeyvalq hd;
    assert_true(parse("HEAD / HTTP/1.1\r\nContent-Length: 9\r\n\r\n", &h, &hd));
    assert_int_equal(h.content_length, 0);
    assert_false(h.body_possible);
    http_head_cleanup(&h);
    evhttp_clear_headers(&hd);
}

static void test_parse_refuses_what_evhttp_refuses(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "FOO / HTTP/1.1\r\n\r\n",                        /* unknown method */
        "GET /\r\n\r\n",                                 /* no version */
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", /* negative length */
        "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", /* not a number */
        "POST / HTTP/1.1\r\nNo colon here\r\n\r\n",      /* a field without a name */
        "POST / HTTP/1.1\r\n continued\r\n\r\n",         /* a continuation of nothing */
        "GET",                                           /* no line at all */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct http_head h;
        struct evkeyvalq hd;
        assert_false(parse(bad[i], &h, &hd));
        http_head_cleanup(&h);
        evhttp_clear_headers(&hd);
    }
}

static enum http_head_body body_of(const char *head, uint64_t *length)
{
    *length = 0;
    return http_head_body(head, strlen(head), length);
}

static void test_head_body(void **state)
{
    (void)state;
    uint64_t n;
    assert_int_equal(body_of("GET /x HTTP/1.1\r\nHost: a\r\nX-Content-Length: 5\r\n\r\n", &n),
                     HTTP_HEAD_BODY_NONE);
    assert_int_equal(body_of("POST /x HTTP/1.1\r\nHost: a\r\ncontent-length:  5 \r\n\r\n", &n),
                     HTTP_HEAD_BODY_LENGTH);
    assert_int_equal(n, 5);
    /* Whatever the parser must tell: chunked, two lengths, a folded line, not a number. */
    assert_int_equal(body_of("POST /x HTTP/1.1\nTRANSFER-ENCODING: chunked\n\n", &n),
                     HTTP_HEAD_BODY_UNCLEAR);
    assert_int_equal(body_of("POST /x HTTP/1.1\nContent-Length: 5\nTransfer-Encoding: chunked\n\n",
                             &n),
                     HTTP_HEAD_BODY_UNCLEAR);
    assert_int_equal(body_of("POST /x HTTP/1.1\nContent-Length: 5\nContent-Length: 5\n\n", &n),
                     HTTP_HEAD_BODY_UNCLEAR);
    assert_int_equal(body_of("POST /x HTTP/1.1\nContent-Length: 5\n 6\n\n", &n),
                     HTTP_HEAD_BODY_UNCLEAR);
    assert_int_equal(body_of("POST /x HTTP/1.1\nContent-Length: +5\n\n", &n),
                     HTTP_HEAD_BODY_UNCLEAR);
    assert_int_equal(body_of("POST /x HTTP/1.1\nContent-Length: 99999999999999999999\n\n", &n),
                     HTTP_HEAD_BODY_UNCLEAR);
    assert_int_equal(body_of("POST /x HTTP/1.1", &n), HTTP_HEAD_BODY_UNCLEAR);
    /* A folded line continues a value: without a length or an encoding, still no body. */
    assert_int_equal(body_of("GET /x HTTP/1.1\nX-A: 1\n 2\n\n", &n), HTTP_HEAD_BODY_NONE);
}

/* ---- a server with a head handler and a budget ---- */

static struct harness_http server;

/* "/deny" is refused at its head, "/small" takes at most SMALL_MAX bytes, others anything. */
static void head_handler(struct http_request *req, void *ctx)
{
    (void)ctx;
    const char *path = http_request_path(req);
    if (strcmp(path, "/deny") == 0)
        http_reply_refusal(req, 401, "unauthorized", "no");
    else if (strcmp(path, "/small") == 0)
        http_request_accept_body(req, SMALL_MAX);
}

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    struct http_server_opts o = {.host = "127.0.0.1",
                                 .threads = 2,
                                 .max_body_bytes = 1 << 20,
                                 .body_budget_bytes = BUDGET,
                                 .idle_timeout_s = 10,
                                 .request_timeout_s = 10,
                                 .handler = harness_http_body_size_handler,
                                 .head_handler = head_handler};
    return harness_http_start(&server, &o);
}

static int teardown(void **state)
{
    (void)state;
    harness_http_free(&server);
    return 0;
}

static int connect_send(const char *data)
{
    int fd = harness_http_connect(&server);
    assert_true(fd >= 0);
    assert_int_equal(send(fd, data, strlen(data), MSG_NOSIGNAL), (ssize_t)strlen(data));
    return fd;
}

/* Reads one whole response (its headers end, then Content-Length bytes); fd stays open. */
static char *read_response(int fd)
{
    static char buf[4096];
    size_t len = 0;
    char *end = NULL;
    while (!end || len < (size_t)(end + 4 - buf) +
                             strtoul(strstr(buf, "Content-Length: ") + 16, NULL, 10)) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        assert_true(n > 0);
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    return buf;
}

/* The answer comes although not a byte of the announced body was sent. */
static void test_refused_at_head_without_the_body(void **state)
{
    (void)state;
    char *r = harness_http_read_all(
        connect_send("POST /deny HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000\r\n\r\n"));
    assert_non_null(strstr(r, "HTTP/1.1 401 Unauthorized\r\n"));
    assert_non_null(strstr(r, "Connection: close\r\n"));
    assert_non_null(strstr(r, "{\"detail\":\"no\",\"code\":\"unauthorized\"}"));
    free(r);
    r = harness_http_read_all(
        connect_send("POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n"));
    assert_non_null(strstr(r, "HTTP/1.1 413 Content Too Large\r\n"));
    assert_non_null(strstr(r, "\"code\":\"too_large\""));
    free(r);
}

/*
 * A body that came whole with its head goes to the handler without the head handler: the bytes
 * are in memory already, and the handler checks again what the head handler checks (the API's
 * does). Only its share of the budget is taken on the way (test_budget_refuses_then_recovers).
 */
static void test_body_sent_with_its_head_goes_to_the_handler(void **state)
{
    (void)state;
    char *r = harness_http_read_all(connect_send("POST /deny HTTP/1.1\r\nHost: t\r\n"
                                                 "Content-Length: 5\r\nConnection: close\r\n\r\n"
                                                 "01234"));
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "body=5"));
    free(r);
}

/* A request without a body, and one within its limit, go to the handler as before. */
static void test_accepted_bodies_reach_the_handler(void **state)
{
    (void)state;
    char *r = harness_http_read_all(
        connect_send("POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n"
                     "Connection: close\r\n\r\n0123456789"));
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "body=10"));
    free(r);
    r = harness_http_read_all(
        connect_send("GET /deny HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    assert_non_null(strstr(r, "body=0")); /* no body: the head handler is not asked */
    free(r);
}

/* A body that would go over the budget gets 503 at once; the budget comes back after a reply. */
static void test_budget_refuses_then_recovers(void **state)
{
    (void)state;
    const char *hold = "POST /any HTTP/1.1\r\nHost: t\r\nContent-Length: 80\r\n\r\nabc";
    int holder = connect_send(hold);
    /* The holder's head may not be read yet on its loop: until then a probe is taken whole.
     * When its head comes while a probe holds 30 bytes, the holder itself is refused (its
     * answer is readable at once): then it tries again on a new connection. */
    char *r = NULL;
    for (int tries = 0; tries < 500; tries++) {
        free(r);
        r = harness_http_read_all(
            connect_send("POST /any HTTP/1.1\r\nHost: t\r\nContent-Length: 30\r\n"
                         "Connection: close\r\n\r\n012345678901234567890123456789"));
        if (!strstr(r, "body=30"))
            break;
        struct pollfd answered = {.fd = holder, .events = POLLIN};
        if (poll(&answered, 1, 0) == 1) {
            free(harness_http_read_all(holder)); /* its 503; reading closes it */
            holder = connect_send(hold);
        }
        usleep(10000);
    }
    assert_non_null(strstr(r, "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_non_null(strstr(r, "Retry-After: 1\r\n"));
    assert_non_null(strstr(r, "\"code\":\"server_busy\""));
    free(r);
    /* A body that fits in what is left is taken meanwhile. */
    r = harness_http_read_all(connect_send("POST /any HTTP/1.1\r\nHost: t\r\nContent-Length: 20\r\n"
                                           "Connection: close\r\n\r\n01234567890123456789"));
    assert_non_null(strstr(r, "body=20"));
    free(r);
    char rest[78];
    memset(rest, 'x', sizeof(rest) - 1);
    rest[sizeof(rest) - 1] = '\0';
    assert_int_equal(send(holder, rest, strlen(rest), MSG_NOSIGNAL), 77);
    assert_non_null(strstr(read_response(holder), "body=80"));
    /* The reply was sent: its 80 bytes are back, on the same kept-alive connection too. */
    const char *again = "POST /any HTTP/1.1\r\nHost: t\r\nContent-Length: 90\r\n"
                        "Connection: close\r\n\r\n";
    assert_int_equal(send(holder, again, strlen(again), MSG_NOSIGNAL), (ssize_t)strlen(again));
    char ninety[91];
    memset(ninety, 'y', 90);
    ninety[90] = '\0';
    assert_int_equal(send(holder, ninety, 90, MSG_NOSIGNAL), 90);
    r = harness_http_read_all(holder);
    assert_non_null(strstr(r, "body=90"));
    free(r);
}

/* A chunked body is counted as it arrives: over the budget, the connection is answered 503. */
static void test_chunked_body_over_budget_is_cut(void **state)
{
    (void)state;
    int fd = connect_send("POST /any HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[64];
    bool refused = false;
    for (int i = 0; i < 20 && !refused; i++) { /* 20 x 40 bytes, far over BUDGET */
        snprintf(chunk, sizeof(chunk), "22\r\n%034d\r\n", i);
        refused = send(fd, chunk, strlen(chunk), MSG_NOSIGNAL) != (ssize_t)strlen(chunk);
        usleep(5000);
    }
    char *r = harness_http_read_all(fd);
    assert_non_null(strstr(r, "HTTP/1.1 503 Service Unavailable\r\n"));
    free(r);
    /* What it held was given back: a body of the whole budget fits. */
    char big[BUDGET + 1];
    memset(big, 'z', BUDGET);
    big[BUDGET] = '\0';
    char req[256];
    snprintf(req, sizeof(req),
             "POST /any HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
             "Connection: close\r\n\r\n%s",
             BUDGET, big);
    r = harness_http_read_all(connect_send(req));
    assert_non_null(strstr(r, "body=100"));
    free(r);
}

/* Chunks that come in the same read as the head count too. */
static void test_chunked_body_sent_with_its_head_is_counted(void **state)
{
    (void)state;
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "POST /any HTTP/1.1\r\nHost: t\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 5; i++) /* 5 x 40 bytes, twice BUDGET, and no last chunk */
        n += snprintf(req + n, sizeof(req) - (size_t)n, "22\r\n%034d\r\n", i);
    char *r = harness_http_read_all(connect_send(req));
    assert_non_null(strstr(r, "HTTP/1.1 503 Service Unavailable\r\n"));
    free(r);
}

int main(void)
{
    const struct CMUnitTest parser[] = {
        cmocka_unit_test(test_parse_post_with_length),
        cmocka_unit_test(test_parse_chunked_and_bare_newlines),
        cmocka_unit_test(test_parse_head_method_has_no_body),
        cmocka_unit_test(test_parse_refuses_what_evhttp_refuses),
        cmocka_unit_test(test_head_body),
    };
    const struct CMUnitTest server_tests[] = {
        cmocka_unit_test(test_refused_at_head_without_the_body),
        cmocka_unit_test(test_accepted_bodies_reach_the_handler),
        cmocka_unit_test(test_body_sent_with_its_head_goes_to_the_handler),
        cmocka_unit_test(test_budget_refuses_then_recovers),
        cmocka_unit_test(test_chunked_body_over_budget_is_cut),
        cmocka_unit_test(test_chunked_body_sent_with_its_head_is_counted),
    };
    int failed = cmocka_run_group_tests(parser, NULL, NULL);
    return failed + cmocka_run_group_tests(server_tests, setup, teardown);
}
