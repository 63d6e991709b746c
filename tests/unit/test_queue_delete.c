/*
 * Tests queue/queue_delete.c against a real private redis-server on a free loopback port: the
 * tombstone and the removal of a video's records in one step, what that does to a delivery
 * still running (its lease renewal and its state writes fail), idempotency records removed by
 * task id in every scope, the turns of a periodic job, and locks fenced by their owner's token
 * (queue_lock.c).
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

#define VIDEO "0b6c3a52-5d7e-4c1a-9f3e-2a1b0c9d8e7f"
#define OTHER "1c7d4b63-6e8f-4d2b-8a4f-3b2c1d0e9f80"

static int port;
static pid_t redis_pid;
static redisContext *rc; /* the test's own view of Redis */
static char broker_url[64], backend_url[64];

static int group_setup(void **state)
{
    (void)state;
    log_set_level(LOG_ERROR);
    port = harness_free_port();
    snprintf(broker_url, sizeof(broker_url), "redis://127.0.0.1:%d/0", port);
    snprintf(backend_url, sizeof(backend_url), "redis://127.0.0.1:%d/1", port);
    redis_pid = harness_redis_start(port, 0);
    rc = redis_pid > 0 ? harness_redis_connect(port, 0) : NULL;
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
    freeReplyObject(redisCommand(rc, "SELECT 1")); /* the backend */
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

static long long backend_int(const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(rc, fmt, arg);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

static bool backend_has(const char *prefix, const char *id)
{
    char key[128];
    snprintf(key, sizeof(key), "%s%s", prefix, id);
    return backend_int("EXISTS %s", key) == 1;
}

/* The records of a finished task, and the tombstone with the result TTL. */
static void test_forget_removes_records_and_leaves_a_tombstone(void **state)
{
    struct queue *q = *state;
    assert_int_equal(queue_submit(q, VIDEO, "http://example.test/v.mp4", NULL), IA_OK);
    json_t *result = json_pack("{s:s}", "video_id", VIDEO);
    assert_int_equal(queue_set_state(q, VIDEO, "SUCCESS", result), IA_OK);
    json_decref(result);
    bool existed = false, deleted = true;
    assert_int_equal(queue_video_deleted(q, VIDEO, &deleted), IA_OK);
    assert_false(deleted);

    assert_int_equal(queue_video_forget(q, VIDEO, &existed), IA_OK);
    assert_true(existed);
    assert_false(backend_has("celery-task-meta-", VIDEO));
    assert_false(backend_has("interview-task-", VIDEO));
    assert_int_equal(queue_video_deleted(q, VIDEO, &deleted), IA_OK);
    assert_true(deleted);
    long long ttl = backend_int("TTL %s", "interview-deleted-" VIDEO);
    assert_in_range(ttl, 1, 600);
    struct task_status st;
    assert_int_equal(queue_status(q, VIDEO, &st), IA_OK);
    assert_int_equal(st.state, TASK_UNKNOWN);
    task_status_cleanup(&st);

    /* Again: nothing left to remove; the tombstone goes only when asked. */
    assert_int_equal(queue_video_forget(q, VIDEO, &existed), IA_OK);
    assert_false(existed);
    assert_int_equal(queue_video_unforget(q, VIDEO), IA_OK);
    assert_int_equal(queue_video_deleted(q, VIDEO, &deleted), IA_OK);
    assert_false(deleted);
}

/* A delivery that runs while its video is deleted can neither renew nor write anything. */
static void test_forget_fences_out_the_running_delivery(void **state)
{
    struct queue *q = *state;
    assert_int_equal(queue_submit(q, VIDEO, "http://example.test/v.mp4", NULL), IA_OK);
    struct claimed_task *t = NULL;
    assert_int_equal(queue_claim(q, 30, 0, NULL, &t), IA_OK);
    assert_non_null(t);
    json_t *meta = json_pack("{s:s, s:f}", "stage", "fetching", "progress", 0.1);
    assert_int_equal(queue_task_set_state(q, t, "PROGRESS", meta), IA_OK);
    assert_int_equal(queue_lease_renew(q, t, 30), IA_OK);

    bool existed = false;
    assert_int_equal(queue_video_forget(q, VIDEO, &existed), IA_OK);
    assert_true(existed);
    assert_int_equal(queue_lease_renew(q, t, 30), IA_ERR_NOT_FOUND);
    assert_int_equal(queue_task_set_state(q, t, "PROGRESS", meta), IA_ERR_NOT_FOUND);
    json_t *result = json_pack("{s:s}", "video_id", VIDEO);
    assert_int_equal(queue_task_set_state(q, t, "SUCCESS", result), IA_ERR_NOT_FOUND);
    assert_false(backend_has("celery-task-meta-", VIDEO)); /* nothing brought it back */
    json_decref(result);
    json_decref(meta);
    assert_int_equal(queue_ack(q, t), IA_OK); /* the broker side is untouched: it can settle */
    claimed_task_free(t);
}

/* Idempotency records are found by the task they name, in every scope, and only those. */
static void test_forget_idempotency_records_of_a_task(void **state)
{
    struct queue *q = *state;
    const char *sha = "aa";
    char prior[64];
    enum queue_idem_result res;
    assert_int_equal(
        queue_idempotency_bind(q, NULL, "k1", sha, VIDEO, 60, &res, prior, sizeof(prior)), IA_OK);
    assert_int_equal(
        queue_idempotency_bind(q, "api-key-2", "k1", sha, VIDEO, 60, &res, prior, sizeof(prior)),
        IA_OK);
    assert_int_equal(
        queue_idempotency_bind(q, NULL, "k2", sha, OTHER, 60, &res, prior, sizeof(prior)), IA_OK);
    for (int i = 0; i < 2500; i++) /* more keys than one SCAN page */
        freeReplyObject(redisCommand(rc, "SET filler-%d x", i));
    long long n = -1;
    assert_int_equal(queue_idempotency_forget_task(q, VIDEO, &n), IA_OK);
    assert_int_equal(n, 2);
    /* The same key is free again for the client that used it; the other task's is kept. */
    assert_int_equal(
        queue_idempotency_bind(q, NULL, "k1", "bb", OTHER, 60, &res, prior, sizeof(prior)), IA_OK);
    assert_int_equal(res, QUEUE_IDEM_NEW);
    assert_int_equal(
        queue_idempotency_bind(q, NULL, "k2", sha, VIDEO, 60, &res, prior, sizeof(prior)), IA_OK);
    assert_int_equal(res, QUEUE_IDEM_REPLAY);
    assert_string_equal(prior, OTHER);
    assert_int_equal(queue_idempotency_forget_task(q, "no-such-task", &n), IA_OK);
    assert_int_equal(n, 0);
}

static void test_periodic_turn_is_taken_once(void **state)
{
    struct queue *q = *state;
    bool mine = false;
    assert_int_equal(queue_periodic_turn(q, "job", 60000, &mine), IA_OK);
    assert_true(mine);
    assert_int_equal(queue_periodic_turn(q, "job", 60000, &mine), IA_OK);
    assert_false(mine);
    assert_int_equal(queue_periodic_turn(q, "other-job", 60000, &mine), IA_OK);
    assert_true(mine);
}

static void test_lock_is_held_by_one_owner_and_released_only_by_it(void **state)
{
    struct queue *q = *state;
    bool got = false, held = false;
    assert_int_equal(queue_lock_take(q, "decisions-x", "tok-a", 60000, &got), IA_OK);
    assert_true(got);
    assert_int_equal(queue_lock_take(q, "decisions-x", "tok-b", 60000, &got), IA_OK);
    assert_false(got);
    /* Another owner can neither renew nor release it. */
    assert_int_equal(queue_lock_renew(q, "decisions-x", "tok-b", 60000, &held), IA_OK);
    assert_false(held);
    assert_int_equal(queue_lock_release(q, "decisions-x", "tok-b"), IA_OK);
    redisReply *r = redisCommand(rc, "GET interview-lock-decisions-x");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "tok-a");
    freeReplyObject(r);
    assert_int_equal(queue_lock_renew(q, "decisions-x", "tok-a", 60000, &held), IA_OK);
    assert_true(held);
    assert_int_equal(queue_lock_release(q, "decisions-x", "tok-a"), IA_OK);
    assert_int_equal(queue_lock_take(q, "decisions-x", "tok-b", 60000, &got), IA_OK);
    assert_true(got);
}

static void test_an_expired_lock_goes_to_the_next_owner(void **state)
{
    struct queue *q = *state;
    bool got = false, held = true;
    assert_int_equal(queue_lock_take(q, "decisions-y", "tok-a", 60000, &got), IA_OK);
    assert_true(got);
    /* Expire it as time would (PEXPIRE 1, then wait for the key to go). */
    freeReplyObject(redisCommand(rc, "PEXPIRE interview-lock-decisions-y 1"));
    redisReply *r;
    for (;;) {
        r = redisCommand(rc, "EXISTS interview-lock-decisions-y");
        long long n = r->integer;
        freeReplyObject(r);
        if (n == 0)
            break;
        usleep(1000);
    }
    /* The old owner's renewal fails: the lock was lost, whether or not another took it. */
    assert_int_equal(queue_lock_renew(q, "decisions-y", "tok-a", 60000, &held), IA_OK);
    assert_false(held);
    assert_int_equal(queue_lock_take(q, "decisions-y", "tok-b", 60000, &got), IA_OK);
    assert_true(got);
    assert_int_equal(queue_lock_renew(q, "decisions-y", "tok-a", 60000, &held), IA_OK);
    assert_false(held);
    assert_int_equal(queue_lock_release(q, "decisions-y", "tok-a"), IA_OK);
    r = redisCommand(rc, "GET interview-lock-decisions-y");
    assert_string_equal(r->str, "tok-b");
    freeReplyObject(r);
    assert_int_equal(queue_lock_take(q, "has space", "tok", 1000, &got), IA_ERR_INVALID);
    assert_int_equal(queue_lock_take(q, "n", "", 1000, &got), IA_ERR_INVALID);
}

static void test_ids_that_cannot_name_a_key_are_refused(void **state)
{
    struct queue *q = *state;
    bool b;
    long long n;
    assert_int_equal(queue_video_forget(q, "has space", &b), IA_ERR_INVALID);
    assert_int_equal(queue_video_deleted(q, "", &b), IA_ERR_INVALID);
    assert_int_equal(queue_idempotency_forget_task(q, "a\nb", &n), IA_ERR_INVALID);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, each_setup, each_teardown)
    const struct CMUnitTest tests[] = {
        T(test_forget_removes_records_and_leaves_a_tombstone),
        T(test_forget_fences_out_the_running_delivery),
        T(test_forget_idempotency_records_of_a_task),
        T(test_periodic_turn_is_taken_once),
        T(test_lock_is_held_by_one_owner_and_released_only_by_it),
        T(test_an_expired_lock_goes_to_the_next_owner),
        T(test_ids_that_cannot_name_a_key_are_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
