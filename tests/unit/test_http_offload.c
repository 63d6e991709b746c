/*
 * Tests http/offload.c through real loopback connections: a server with one loop and one offload
 * thread, whose /slow requests block in their work until the test opens a gate. A quick request
 * on the same loop is answered meanwhile; a client that leaves gets its answer dropped (done
 * sees no request); a stop cancels the queued work and waits for the running one.
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"
#include "http_harness.h"

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static atomic_int offloads, works_started, works_ended, dones, dones_without_req, cancelled_seen;

struct slow_ctx {
    char body[64];
    size_t len;
};

static void set_gate(bool open)
{
    pthread_mutex_lock(&gate_lock);
    gate_open = open;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

static void slow_work(struct http_offload *job, void *arg)
{
    struct slow_ctx *c = arg;
    atomic_fetch_add(&works_started, 1);
    size_t len;
    const unsigned char *p = http_offload_body(job, &len);
    c->len = len < sizeof(c->body) ? len : sizeof(c->body);
    memcpy(c->body, p, c->len);
    pthread_mutex_lock(&gate_lock);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    if (http_offload_cancelled(job))
        atomic_fetch_add(&cancelled_seen, 1);
    atomic_fetch_add(&works_ended, 1);
}

static void slow_done(struct http_request *req, void *arg)
{
    struct slow_ctx *c = arg;
    atomic_fetch_add(&dones, 1);
    if (!req)
        atomic_fetch_add(&dones_without_req, 1);
    else
        http_reply_body(req, 200, "text/plain", c->body, c->len);
    free(c);
}

/* Runs on the offload thread with its context: echoes the body and the context. */
static void whole_handler(struct http_request *req, void *ctx)
{
    size_t len;
    const unsigned char *body = http_request_body(req, &len);
    char out[128];
    int n = snprintf(out, sizeof(out), "%s:%.*s", ctx ? (const char *)ctx : "-", (int)len,
                     (const char *)body);
    http_reply_header(req, "X-Whole", "yes");
    http_reply_body(req, 201, "text/plain", out, (size_t)n);
}

static atomic_int pool_inits, pool_frees;

static void *pool_init(void *app)
{
    atomic_fetch_add(&pool_inits, 1);
    return http_thread_event_base() ? NULL : app; /* not a loop thread */
}

static void pool_free(void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&pool_frees, 1);
}

static void handler(struct http_request *req, void *ctx)
{
    (void)ctx;
    const char *path = http_request_path(req);
    if (path && strcmp(path, "/whole") == 0) {
        assert_true(http_request_offload_handler(req, HTTP_POOL_QUICK, whole_handler));
        return;
    }
    if (path && strcmp(path, "/slow") == 0) {
        struct slow_ctx *c = calloc(1, sizeof(*c));
        assert_true(http_request_offload(req, HTTP_POOL_FILES, slow_work, slow_done, c));
        /* The request is the job's now: a second reply or offload is refused. */
        assert_false(http_request_offload(req, HTTP_POOL_FILES, slow_work, slow_done, c));
        atomic_fetch_add(&offloads, 1);
        return;
    }
    http_reply_body(req, 200, "text/plain", "quick", 5);
}

static char pool_name[] = "pool";
static struct harness_http server;

static int setup(void **state)
{
    (void)state;
    struct http_server_opts o = {.host = "127.0.0.1",
                                 .threads = 1,
                                 .offload_threads = 1,
                                 .max_body_bytes = 1000,
                                 .idle_timeout_s = 30,
                                 .handler = handler,
                                 .offload_thread_init = pool_init,
                                 .offload_thread_free = pool_free,
                                 .app = pool_name};
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

static int send_request(const char *method, const char *path, const char *body)
{
    int fd = connect_server();
    char raw[512];
    int n =
        snprintf(raw, sizeof(raw),
                 "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
                 method, path, strlen(body), body);
    assert_int_equal(write(fd, raw, (size_t)n), n);
    return fd;
}

/* Waits (without a deadline: the test's own timeout bounds it) until *v reaches want. */
static void wait_for(atomic_int *v, int want)
{
    while (atomic_load(v) < want) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

static void test_quick_request_answered_while_work_blocks(void **state)
{
    (void)state;
    set_gate(false);
    int slow = send_request("POST", "/slow", "hello body");
    wait_for(&works_started, 1);
    char *quick = harness_http_read_all(send_request("GET", "/quick", ""));
    assert_non_null(strstr(quick, "200 OK"));
    assert_non_null(strstr(quick, "\r\n\r\nquick"));
    free(quick);
    assert_int_equal(atomic_load(&works_ended), 0); /* the quick answer came first */
    assert_false(readable(slow));
    set_gate(true);
    char *answer = harness_http_read_all(slow);
    assert_non_null(strstr(answer, "200 OK"));
    assert_non_null(strstr(answer, "X-Request-Id: "));
    assert_non_null(strstr(answer, "\r\n\r\nhello body")); /* the body moved to the job */
    free(answer);
    assert_int_equal(atomic_load(&dones), 1);
    assert_int_equal(atomic_load(&dones_without_req), 0);
}

static void test_whole_handler_runs_on_the_pool(void **state)
{
    (void)state;
    char *answer = harness_http_read_all(send_request("POST", "/whole", "body!"));
    assert_non_null(strstr(answer, "HTTP/1.1 201 Created"));
    assert_non_null(strstr(answer, "X-Whole: yes"));
    assert_non_null(strstr(answer, "X-Request-Id: "));
    assert_non_null(strstr(answer, "\r\n\r\npool:body!"));
    free(answer);
    assert_int_equal(atomic_load(&pool_inits), 2); /* one thread in each pool */
}

static void test_client_gone_while_work_runs(void **state)
{
    (void)state;
    set_gate(false);
    int before = atomic_load(&dones);
    int slow = send_request("POST", "/slow", "bye");
    wait_for(&works_started, 2);
    close(slow); /* the client leaves while the work runs */
    /* The loop notices (a request on the same loop is served after the close was read). */
    free(harness_http_read_all(send_request("GET", "/quick", "")));
    set_gate(true);
    wait_for(&dones, before + 1);
    assert_int_equal(atomic_load(&dones_without_req), 1);
    /* The server still serves. */
    char *quick = harness_http_read_all(send_request("GET", "/quick", ""));
    assert_non_null(strstr(quick, "\r\n\r\nquick"));
    free(quick);
}

/* Last: a stop with one job running and one queued. */
static void test_stop_cancels_queued_and_waits_for_running(void **state)
{
    (void)state;
    set_gate(false);
    assert_int_equal(atomic_load(&works_ended), atomic_load(&works_started));
    int started = atomic_load(&works_started), before = atomic_load(&dones);
    int queued = atomic_load(&offloads);
    int a = send_request("POST", "/slow", "a");
    wait_for(&works_started, started + 1);
    int b = send_request("POST", "/slow", "b"); /* queued: one offload thread */
    wait_for(&offloads, queued + 2);
    http_server_stop(server.srv);
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, NULL);
    /* The queued job is cancelled at once; the loop waits for the running one. */
    assert_int_equal(atomic_load(&works_ended), started);
    assert_true(atomic_load(&dones) <= before + 1);
    set_gate(true);
    assert_int_equal(harness_http_join(&server), 0);
    assert_int_equal(atomic_load(&works_started), started + 1); /* b's work never ran */
    assert_int_equal(atomic_load(&cancelled_seen), 1);          /* a's saw the stop */
    assert_int_equal(atomic_load(&dones), before + 2);
    assert_int_equal(atomic_load(&dones_without_req), 3);
    assert_int_equal(atomic_load(&pool_frees), 2);
    free(harness_http_read_all(a));
    free(harness_http_read_all(b));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quick_request_answered_while_work_blocks),
        cmocka_unit_test(test_whole_handler_runs_on_the_pool),
        cmocka_unit_test(test_client_gone_while_work_runs),
        cmocka_unit_test(test_stop_cancels_queued_and_waits_for_running),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
