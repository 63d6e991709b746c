/*
 * Tests http/offload.c through real loopback connections: a server with one loop and one offload
 * thread, whose /slow requests block in their work until the test opens a gate. A quick request
 * on the same loop is answered meanwhile; a client that leaves gets its answer dropped (done
 * sees no request); a stop cancels the queued work and waits for the running one. A body written
 * to a file from a pool thread stays in memory for its loop to free.
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"
#include "http_harness.h"

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static atomic_int offloads, works_started, works_ended, dones, dones_without_req, cancelled_seen;

#define BIG_BODY (1024 * 1024 + 7)

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

static unsigned char pattern_byte(size_t i) { return (unsigned char)(i % 251); }

/*
 * On the files pool: writes the body to a file, checks the file against the pattern the client
 * sent, and answers "<bytes in the file> <body length afterwards> <file matches>".
 */
static void write_handler(struct http_request *req, void *ctx)
{
    (void)ctx;
    char path[] = "/tmp/test_http_offload_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    size_t before = http_request_body_length(req);
    bool wrote = http_request_body_to_fd(req, fd);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    bool same = wrote && (size_t)st.st_size == before;
    unsigned char buf[65536];
    for (size_t off = 0; same && off < before;) {
        ssize_t n = pread(fd, buf, sizeof(buf), (off_t)off);
        assert_true(n > 0);
        for (ssize_t i = 0; i < n && same; i++)
            same = buf[i] == pattern_byte(off + (size_t)i);
        off += (size_t)n;
    }
    close(fd);
    char out[96];
    int n = snprintf(out, sizeof(out), "%lld %zu %s", (long long)st.st_size,
                     http_request_body_length(req), same ? "same" : "differs");
    http_reply_body(req, 200, "text/plain", out, (size_t)n);
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
    if (path && strcmp(path, "/write") == 0) {
        assert_true(http_request_offload_handler(req, HTTP_POOL_FILES, write_handler));
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
                                 .max_body_bytes = 2 * BIG_BODY,
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
    harness_wait_for(&works_started, 1);
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
    harness_wait_for(&works_started, 2);
    close(slow); /* the client leaves while the work runs */
    /* The loop notices (a request on the same loop is served after the close was read). */
    free(harness_http_read_all(send_request("GET", "/quick", "")));
    set_gate(true);
    harness_wait_for(&dones, before + 1);
    assert_int_equal(atomic_load(&dones_without_req), 1);
    /* The server still serves. */
    char *quick = harness_http_read_all(send_request("GET", "/quick", ""));
    assert_non_null(strstr(quick, "\r\n\r\nquick"));
    free(quick);
}

/* Writes all of buf to fd (a blocking socket). */
static void send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

/*
 * A body of 1 MiB (hundreds of libevent chains), sent at once with the next request behind it on
 * the same connection: the pool thread writes all of it to the file, the body is still whole
 * afterwards (the loop frees it with the request, not the pool thread), and the request behind
 * it is served.
 */
static void test_large_body_written_and_left_to_the_loop(void **state)
{
    (void)state;
    size_t head_cap = 256, total = head_cap + BIG_BODY + 128;
    char *raw = malloc(total);
    int n = snprintf(raw, head_cap, "POST /write HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n",
                     BIG_BODY);
    size_t len = (size_t)n;
    for (size_t i = 0; i < BIG_BODY; i++)
        raw[len++] = (char)pattern_byte(i);
    const char *next = "GET /quick HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    memcpy(raw + len, next, strlen(next));
    len += strlen(next);
    int fd = connect_server();
    send_all(fd, raw, len);
    free(raw);
    char *answer = harness_http_read_all(fd);
    char want[64];
    snprintf(want, sizeof(want), "\r\n\r\n%d %d same", BIG_BODY, BIG_BODY);
    assert_non_null(strstr(answer, want));
    char *second = strstr(answer, "\r\n\r\n");
    assert_non_null(second);
    second = strstr(second + 4, "HTTP/1.1 200 OK");
    assert_non_null(second); /* the request behind the body was read as a request */
    assert_non_null(strstr(second, "\r\n\r\nquick"));
    free(answer);
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
    harness_wait_for(&works_started, started + 1);
    int b = send_request("POST", "/slow", "b"); /* queued: one offload thread */
    harness_wait_for(&offloads, queued + 2);
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
        cmocka_unit_test(test_large_body_written_and_left_to_the_loop),
        cmocka_unit_test(test_stop_cancels_queued_and_waits_for_running),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
