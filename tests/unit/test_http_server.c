/*
 * Tests http/server.c, request.c and delivery.c through real loopback connections: a server on
 * an ephemeral port with two loop threads, raw HTTP/1.1 requests, and a stop from another thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/http.h"
#include "http_harness.h"

#define THREADS 2
#define FILE_BYTES 5000

static atomic_int inits, frees;
static char file_path[64];

static void *thread_init(void *app)
{
    atomic_fetch_add(&inits, 1);
    /* The context proves both the app pointer and the loop were available here. */
    return http_thread_event_base() ? app : NULL;
}

static void thread_free(void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&frees, 1);
}

static const char *method_name(enum http_method m)
{
    return m == HTTP_GET ? "GET" : m == HTTP_HEAD ? "HEAD" : m == HTTP_POST ? "POST" : "OTHER";
}

/* /echo reports what the request looked like; /file and /none exercise the other replies. */
static void handler(struct http_request *req, void *ctx)
{
    const char *path = http_request_path(req);
    if (!path) {
        http_reply_body(req, 400, "text/plain", "undecodable\n", 12);
        return;
    }
    if (strcmp(path, "/none") == 0)
        return;
    if (strcmp(path, "/file") == 0) {
        int fd = open(file_path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        fstat(fd, &st);
        http_reply_file(req, fd, &st, "application/octet-stream");
        return;
    }
    size_t blen;
    http_request_body(req, &blen);
    const char *q = http_request_query_param(req, "q");
    const char *h = http_request_header(req, "x-test");
    char out[512];
    int n = snprintf(out, sizeof(out), "ctx=%s method=%s path=[%s] q=[%s] h=[%s] body=%zu",
                     ctx ? (const char *)ctx : "(null)", method_name(http_request_method(req)),
                     path, q ? q : "-", h ? h : "-", blen);
    http_reply_header(req, "X-Echo", "yes");
    http_reply_body(req, 200, "text/plain", out, (size_t)n);
}

static struct harness_http server;

static int setup(void **state)
{
    (void)state;
    snprintf(file_path, sizeof(file_path), "/tmp/test_http_server.%d", (int)getpid());
    FILE *f = fopen(file_path, "wb");
    for (int i = 0; i < FILE_BYTES; i++)
        fputc('a' + i % 26, f);
    fclose(f);
    static char app[] = "app";
    struct http_server_opts o = {.host = "127.0.0.1",
                                 .port = 0,
                                 .threads = THREADS,
                                 .max_body_bytes = 1000,
                                 .max_header_bytes = 8192,
                                 .idle_timeout_s = 5,
                                 .handler = handler,
                                 .thread_init = thread_init,
                                 .thread_free = thread_free,
                                 .app = app};
    return harness_http_start(&server, &o);
}

static int teardown(void **state)
{
    (void)state;
    harness_http_free(&server);
    unlink(file_path);
    return 0;
}

/* Sends raw and reads the whole answer (the request asks the server to close). */
static char *exchange(const char *raw, size_t *outlen)
{
    int fd = harness_http_connect(&server);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, raw, strlen(raw)), (ssize_t)strlen(raw));
    return harness_http_read_all_len(fd, outlen);
}

static char *get(const char *method, const char *target, const char *extra)
{
    char raw[1024];
    snprintf(raw, sizeof(raw), "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n", method,
             target, extra ? extra : "");
    size_t len;
    return exchange(raw, &len);
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    assert_non_null(b);
    return b + 4;
}

static void test_port_is_bound(void **state)
{
    (void)state;
    assert_true(http_server_port(server.srv) > 0);
}

static void test_echo_decodes_path_and_query(void **state)
{
    (void)state;
    char *r = get("GET", "/echo/a%20b%2Fc?q=x%20y+z&other=1", "X-Test: hello\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "X-Echo: yes\r\n"));
    assert_string_equal(body_of(r),
                        "ctx=app method=GET path=[/echo/a b/c] q=[x y z] h=[hello] body=0");
    free(r);
}

static void test_bad_paths_do_not_decode(void **state)
{
    (void)state;
    static const char *bad[] = {"/a%00b", "/a%zz", "/a%4", "/%"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *r = get("GET", bad[i], NULL);
        assert_non_null(strstr(r, "HTTP/1.1 400 "));
        assert_string_equal(body_of(r), "undecodable\n");
        free(r);
    }
}

static void test_head_has_get_length_and_no_body(void **state)
{
    (void)state;
    char *g = get("GET", "/echo", NULL);
    char *h = get("HEAD", "/echo", NULL);
    const char *expected = "ctx=app method=HEAD path=[/echo] q=[-] h=[-] body=0";
    char cl[64];
    snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", strlen(expected));
    assert_non_null(strstr(h, cl));
    assert_string_equal(body_of(h), "");
    assert_non_null(strstr(g, "Content-Length: 50\r\n"));
    free(g);
    free(h);
}

static void test_post_body_and_limit(void **state)
{
    (void)state;
    size_t len;
    char *r = exchange("POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                       "Content-Length: 5\r\n\r\nhello",
                       &len);
    assert_non_null(strstr(r, "method=POST path=[/echo] q=[-] h=[-] body=5"));
    free(r);
    /* Only the headers: the server refuses on the announced length, with nothing left unread. */
    const char *raw = "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                      "Content-Length: 1001\r\n\r\n";
    r = exchange(raw, &len);
    assert_non_null(strstr(r, " 413 "));
    free(r);
}

static void test_missing_reply_is_500(void **state)
{
    (void)state;
    char *r = get("GET", "/none", NULL);
    assert_non_null(strstr(r, "HTTP/1.1 500 "));
    free(r);
}

static void test_file_full_range_and_conditional(void **state)
{
    (void)state;
    char *r = get("GET", "/file", NULL);
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "Content-Length: 5000\r\n"));
    assert_non_null(strstr(r, "Accept-Ranges: bytes\r\n"));
    assert_int_equal(strlen(body_of(r)), FILE_BYTES);
    const char *etag = strstr(r, "ETag: ");
    assert_non_null(etag);
    char inm[96];
    snprintf(inm, sizeof(inm), "If-None-Match: %.*s\r\n", (int)strcspn(etag + 6, "\r"), etag + 6);
    free(r);

    r = get("GET", "/file", "Range: bytes=26-28\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 206 Partial Content\r\n"));
    assert_non_null(strstr(r, "Content-Range: bytes 26-28/5000\r\n"));
    assert_string_equal(body_of(r), "abc");
    free(r);

    r = get("HEAD", "/file", "Range: bytes=-10\r\n");
    assert_non_null(strstr(r, "Content-Length: 10\r\n"));
    assert_string_equal(body_of(r), "");
    free(r);

    r = get("GET", "/file", "Range: bytes=9000-\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 416 "));
    assert_non_null(strstr(r, "Content-Range: bytes */5000\r\n"));
    assert_string_equal(body_of(r), "");
    free(r);

    r = get("GET", "/file", inm);
    assert_non_null(strstr(r, "HTTP/1.1 304 "));
    assert_null(strstr(r, "Content-Length"));
    assert_string_equal(body_of(r), "");
    free(r);

    r = get("GET", "/file", "If-Match: \"nope\"\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 412 "));
    assert_null(strstr(r, "ETag"));
    free(r);
}

/* Last: stops the loops from this thread and checks every thread's context was freed. */
static void test_stop_from_another_thread(void **state)
{
    (void)state;
    http_server_stop(server.srv);
    assert_int_equal(harness_http_join(&server), 0);
    assert_int_equal(atomic_load(&inits), THREADS);
    assert_int_equal(atomic_load(&frees), THREADS);
}

static void test_bad_options(void **state)
{
    (void)state;
    struct http_server_opts o = {.host = "127.0.0.1", .threads = 0, .handler = handler};
    char err[128] = "";
    assert_null(http_server_new(&o, err, sizeof(err)));
    assert_true(strlen(err) > 0);
    o.threads = 1;
    o.port = http_server_port(server.srv); /* still bound: server.srv is freed in teardown */
    err[0] = '\0';
    assert_null(http_server_new(&o, err, sizeof(err)));
    assert_true(strlen(err) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_port_is_bound),
        cmocka_unit_test(test_echo_decodes_path_and_query),
        cmocka_unit_test(test_bad_paths_do_not_decode),
        cmocka_unit_test(test_head_has_get_length_and_no_body),
        cmocka_unit_test(test_post_body_and_limit),
        cmocka_unit_test(test_missing_reply_is_500),
        cmocka_unit_test(test_file_full_range_and_conditional),
        cmocka_unit_test(test_stop_from_another_thread),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
