/*
 * Tests queue/queue_webhook.c and the event step of the set-result script against a private
 * redis-server on a free loopback port (stopped by its PID): an event is queued with the final
 * state it reports and only then, claims lease it, the attempt number fences the settle, a
 * sender that dies leaves the event to the next claim, and a task_lost failure has its event.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "queue/queue.h"
#include "redis_harness.h"

static pid_t redis_pid;
static redisContext *rc; /* the test's own view of the backend, db 1 */
static char broker_url[64], backend_url[64];

static int group_setup(void **state)
{
    (void)state;
    log_set_level(LOG_ERROR);
    int port = harness_free_port();
    snprintf(broker_url, sizeof(broker_url), "redis://127.0.0.1:%d/0", port);
    snprintf(backend_url, sizeof(backend_url), "redis://127.0.0.1:%d/1", port);
    redis_pid = harness_redis_start(port, 0);
    rc = redis_pid > 0 ? harness_redis_connect(port, 1) : NULL;
    return rc ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    redisFree(rc);
    harness_redis_stop(redis_pid);
    return 0;
}

static int each_setup(void **state)
{
    freeReplyObject(redisCommand(rc, "FLUSHALL"));
    struct config cfg = {0};
    cfg.broker_url = broker_url;
    cfg.backend_url = backend_url;
    cfg.result_ttl_s = 600;
    *state = queue_new(&cfg);
    return 0;
}

static int each_teardown(void **state)
{
    queue_free(*state);
    return 0;
}

static long long int_cmd(const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(rc, fmt, arg);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

static struct claimed_task *submit_and_claim(struct queue *q, const char *id)
{
    struct claimed_task *t = NULL;
    assert_int_equal(queue_submit(q, id, "http://example.test/v.mp4", NULL), IA_OK);
    assert_int_equal(queue_claim(q, 30, 0, NULL, &t), IA_OK);
    assert_non_null(t);
    return t;
}

static const struct queue_webhook_event event1 = {"ev-1", "https://hooks.example/in",
                                                  "{\"id\":\"ev-1\"}"};

/* Claims and expects exactly one event; the caller frees it. */
static struct queue_webhook *claim_one(struct queue *q, int lease_s)
{
    struct queue_webhook *ws = NULL;
    size_t n = 9;
    assert_int_equal(queue_webhook_claim(q, lease_s, 8, &ws, &n), IA_OK);
    assert_int_equal(n, 1);
    return ws;
}

static size_t claim_count(struct queue *q)
{
    struct queue_webhook *ws = NULL;
    size_t n = 9;
    assert_int_equal(queue_webhook_claim(q, 30, 8, &ws, &n), IA_OK);
    queue_webhooks_free(ws, n);
    return n;
}

static void test_event_comes_with_the_final_state_only(void **state)
{
    struct queue *q = *state;
    struct claimed_task *t = submit_and_claim(q, "t1");
    json_t *res = json_pack("{s:s}", "video_id", "t1");
    assert_int_equal(queue_task_succeed(q, t, res, &event1), IA_OK);
    assert_int_equal(int_cmd("ZCARD %s", "interview-webhooks-due"), 1);
    /* A final state already there: written again by no one, and no second event. */
    const struct queue_webhook_event event2 = {"ev-2", "https://hooks.example/in", "{}"};
    assert_int_equal(queue_task_fail(q, t, "decode_error", "late", &event2), IA_ERR_NOT_FOUND);
    assert_int_equal(queue_set_failure(q, "t1", "decode_error", "x"), IA_OK);
    assert_int_equal(int_cmd("ZCARD %s", "interview-webhooks-due"), 1);
    assert_int_equal(int_cmd("HEXISTS interview-webhooks %s", "ev-2"), 0);
    char status[16];
    assert_int_equal(queue_get_celery_status(q, "t1", status, sizeof status), IA_OK);
    assert_string_equal(status, "SUCCESS");
    json_decref(res);
    claimed_task_free(t);
}

static void test_failure_event_and_no_event_without_one(void **state)
{
    struct queue *q = *state;
    struct claimed_task *t = submit_and_claim(q, "t2");
    assert_int_equal(queue_task_fail(q, t, "not_a_video", "no video", NULL), IA_OK);
    assert_int_equal(int_cmd("EXISTS %s", "interview-webhooks-due"), 0);
    claimed_task_free(t);
    t = submit_and_claim(q, "t3");
    assert_int_equal(queue_task_fail(q, t, "not_a_video", "no video", &event1), IA_OK);
    struct queue_webhook *w = claim_one(q, 30);
    assert_string_equal(w->event_id, "ev-1");
    assert_string_equal(w->task_id, "t3");
    assert_string_equal(w->url, "https://hooks.example/in");
    assert_string_equal(w->body, "{\"id\":\"ev-1\"}");
    assert_int_equal(w->attempt, 1);
    assert_true(w->now >= w->queued_at && w->now - w->queued_at < 60);
    assert_true(w->queued_at > 1.7e9);
    queue_webhooks_free(w, 1);
    claimed_task_free(t);
}

static void test_claim_leases_and_settle_is_fenced(void **state)
{
    struct queue *q = *state;
    struct claimed_task *t = submit_and_claim(q, "t4");
    assert_int_equal(queue_task_succeed(q, t, NULL, &event1), IA_OK);
    struct queue_webhook *first = claim_one(q, 30);
    assert_int_equal(claim_count(q), 0);                        /* leased: nobody else takes it */
    assert_int_equal(queue_webhook_settle(q, first, 0), IA_OK); /* failed: due again now */
    struct queue_webhook *second = claim_one(q, 30);
    assert_int_equal(second->attempt, 2);
    assert_true(second->queued_at == first->queued_at);
    /* The first attempt's settle comes late: the second claim holds the event. */
    assert_int_equal(queue_webhook_settle(q, first, -1), IA_ERR_NOT_FOUND);
    assert_int_equal(int_cmd("ZCARD %s", "interview-webhooks-due"), 1);
    assert_int_equal(queue_webhook_settle(q, second, 3600), IA_OK);
    assert_int_equal(claim_count(q), 0);                          /* not due for an hour */
    assert_int_equal(queue_webhook_settle(q, second, -1), IA_OK); /* delivered */
    assert_int_equal(int_cmd("EXISTS %s", "interview-webhooks-due"), 0);
    assert_int_equal(int_cmd("EXISTS %s", "interview-webhooks"), 0);
    assert_int_equal(queue_webhook_settle(q, second, -1), IA_ERR_NOT_FOUND);
    queue_webhooks_free(first, 1);
    queue_webhooks_free(second, 1);
    claimed_task_free(t);
}

/* A sender that dies after its claim: the event is claimed again once the lease ran out. */
static void test_a_dead_sender_leaves_the_event_to_the_next(void **state)
{
    struct queue *q = *state;
    struct claimed_task *t = submit_and_claim(q, "t5");
    assert_int_equal(queue_task_succeed(q, t, NULL, &event1), IA_OK);
    struct queue_webhook *dead = claim_one(q, 1);
    assert_int_equal(claim_count(q), 0);
    usleep(1200 * 1000);
    struct queue_webhook *next = claim_one(q, 30);
    assert_int_equal(next->attempt, 2);
    assert_string_equal(next->body, dead->body);
    queue_webhooks_free(dead, 1);
    queue_webhooks_free(next, 1);
    claimed_task_free(t);
}

static void test_unreadable_envelope_is_removed(void **state)
{
    struct queue *q = *state;
    freeReplyObject(redisCommand(rc, "HSET interview-webhooks bad not-json"));
    freeReplyObject(redisCommand(rc, "ZADD interview-webhooks-due 0 bad"));
    freeReplyObject(redisCommand(rc, "ZADD interview-webhooks-due 0 gone"));
    assert_int_equal(claim_count(q), 0);
    assert_int_equal(int_cmd("EXISTS %s", "interview-webhooks-due"), 0);
    assert_int_equal(int_cmd("EXISTS %s", "interview-webhooks"), 0);
}

/* A queue_event_fn that names its event after the task; counts its calls. */
static int lost_calls;
static char *lost_event(void *ctx, const char *task_id, const char *callback_url, const char *code,
                        const char *message, struct queue_webhook_event *ev, char *id_buf)
{
    assert_string_equal(ctx, "ctx");
    assert_string_equal(code, "task_lost");
    assert_non_null(message);
    lost_calls++;
    snprintf(id_buf, 64, "lost-%s", task_id);
    char *body = malloc(64);
    snprintf(body, 64, "{\"task\":\"%s\"}", task_id);
    ev->event_id = id_buf;
    ev->url = callback_url;
    ev->body = body;
    return body;
}

/* task_lost: the callback URL kept in the accepted record brings the failure's event. */
static void test_lost_task_sends_its_event(void **state)
{
    struct queue *q = *state;
    json_t *with = json_pack("{s:s}", "callback_url", "https://hooks.example/lost");
    assert_int_equal(queue_submit(q, "l1", "http://example.test/v.mp4", with), IA_OK);
    assert_int_equal(queue_submit(q, "l2", "http://example.test/v.mp4", NULL), IA_OK);
    json_decref(with);
    freeReplyObject(redisCommand(rc, "SELECT 0"));
    freeReplyObject(redisCommand(rc, "DEL celery"));
    freeReplyObject(redisCommand(rc, "SELECT 1"));
    static char ctx[] = "ctx";
    queue_set_lost_events(q, lost_event, ctx);
    lost_calls = 0;
    usleep(1100 * 1000);
    assert_int_equal(queue_fail_lost(q, 1), 2);
    assert_int_equal(lost_calls, 1); /* l2 has no callback */
    struct queue_webhook *w = claim_one(q, 30);
    assert_string_equal(w->event_id, "lost-l1");
    assert_string_equal(w->task_id, "l1");
    assert_string_equal(w->url, "https://hooks.example/lost");
    assert_string_equal(w->body, "{\"task\":\"l1\"}");
    queue_webhooks_free(w, 1);
    char status[16];
    assert_int_equal(queue_get_celery_status(q, "l1", status, sizeof status), IA_OK);
    assert_string_equal(status, "FAILURE");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, each_setup, each_teardown)
    const struct CMUnitTest tests[] = {
        T(test_event_comes_with_the_final_state_only),
        T(test_failure_event_and_no_event_without_one),
        T(test_claim_leases_and_settle_is_fenced),
        T(test_a_dead_sender_leaves_the_event_to_the_next),
        T(test_unreadable_envelope_is_removed),
        T(test_lost_task_sends_its_event),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
