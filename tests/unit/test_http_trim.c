/*
 * Tests http/conn.c's hand-back of memory: once request bodies of more than 8 MiB in all have
 * been freed and none is in flight, a loop calls malloc_trim() (wrapped here to count), once;
 * small bodies never make it trim. Without it, serve kept 170 MiB of freed PATCH bodies in its
 * RSS after a burst of tus uploads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"
#include "http_harness.h"

#define BIG_BODY (9u * 1024 * 1024)
#define WAIT_S 60 /* for a trim the test is sure must come (the loop checks every second) */

static atomic_int trims;

int __real_malloc_trim(size_t pad);
int __wrap_malloc_trim(size_t pad);
int __wrap_malloc_trim(size_t pad)
{
    atomic_fetch_add(&trims, 1);
    return __real_malloc_trim(pad);
}

static struct harness_http server;

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    struct http_server_opts o = {.host = "127.0.0.1",
                                 .threads = 2,
                                 .max_body_bytes = 2 * BIG_BODY,
                                 .body_budget_bytes = 4 * BIG_BODY,
                                 .idle_timeout_s = 60,
                                 .handler = harness_http_body_size_handler};
    return harness_http_start(&server, &o);
}

static int teardown(void **state)
{
    (void)state;
    harness_http_free(&server);
    return 0;
}

/* POSTs a body of n bytes and checks that the server received all of them. */
static void post(size_t n)
{
    int fd = harness_http_connect(&server);
    assert_true(fd >= 0);
    char head[160];
    int h = snprintf(head, sizeof head,
                     "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     n);
    assert_int_equal(send(fd, head, (size_t)h, MSG_NOSIGNAL), h);
    char *body = malloc(n);
    assert_non_null(body);
    memset(body, 'x', n);
    for (size_t off = 0; off < n;) {
        ssize_t w = send(fd, body + off, n - off, MSG_NOSIGNAL);
        assert_true(w > 0);
        off += (size_t)w;
    }
    free(body);
    char *answer = harness_http_read_all(fd);
    char want[64];
    snprintf(want, sizeof want, "\r\n\r\nbody=%zu", n);
    assert_non_null(strstr(answer, want));
    free(answer);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_small_bodies_never_trim(void **state)
{
    (void)state;
    for (int i = 0; i < 16; i++)
        post(64 * 1024); /* 1 MiB in all */
    sleep_ms(2500);      /* two checks of each loop */
    assert_int_equal(atomic_load(&trims), 0);
}

static void test_a_large_body_freed_trims_once_idle(void **state)
{
    (void)state;
    post(BIG_BODY);
    for (int i = 0; i < WAIT_S * 10 && atomic_load(&trims) == 0; i++)
        sleep_ms(100);
    assert_int_equal(atomic_load(&trims), 1);
    sleep_ms(2500); /* and not again while nothing more is freed */
    assert_int_equal(atomic_load(&trims), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_bodies_never_trim),
        cmocka_unit_test(test_a_large_body_freed_trims_once_idle),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
