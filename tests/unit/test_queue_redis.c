/*
 * Tests queue/ against a real private redis-server started on a free loopback port: submit,
 * claim, renew, ack, requeue, retry, restore of expired leases, concurrent claims, malformed
 * messages, result records and status, AUTH/db selection, and outage and recovery.
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
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "queue/celery.h"
#include "queue/queue.h"
#include "redis_harness.h"

static int port;
static pid_t redis_pid;
static redisContext *rc; /* the test's own view of Redis, db 0 (broker) */
static char broker_url[64], backend_url[64];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void redis_start(void)
{
    redis_pid = harness_redis_start(port, 0);
    rc = redis_pid > 0 ? harness_redis_connect(port, 0) : NULL;
    if (!rc)
        fail_msg("redis-server did not start on port %d", port);
}

static void redis_stop(void)
{
    redisFree(rc);
    rc = NULL;
    harness_redis_stop(redis_pid);
    redis_pid = 0;
}

static int group_setup(void **state)
{
    (void)state;
    log_set_level(LOG_WARN);
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

static int each_setup(void **state)
{
    redisReply *r = redisCommand(rc, "FLUSHALL");
    freeReplyObject(r);
    *state = new_queue(broker_url, backend_url);
    return 0;
}

static int each_teardown(void **state)
{
    queue_free(*state);
    return 0;
}

/* Runs a command on the test's connection and returns its integer reply (or -1). */
static long long rint_cmd(const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(rc, fmt, arg);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

static double zscore(const char *tag)
{
    redisReply *r = redisCommand(rc, "ZSCORE unacked_index %s", tag);
    double v = r && r->type == REDIS_REPLY_STRING ? atof(r->str) : -1;
    freeReplyObject(r);
    return v;
}

static double redis_time(void)
{
    redisReply *r = redisCommand(rc, "TIME");
    double v = atof(r->element[0]->str) + atof(r->element[1]->str) / 1e6;
    freeReplyObject(r);
    return v;
}

static struct claimed_task *claim(struct queue *q, int lease_s)
{
    struct claimed_task *t = NULL;
    assert_int_equal(queue_claim(q, lease_s, 0, NULL, &t), IA_OK);
    assert_non_null(t);
    return t;
}

static void test_submit_and_claim(void **state)
{
    struct queue *q = *state;
    assert_true(queue_ping(q));
    assert_int_equal(queue_submit(q, "task-1", "http://example.test/v.mp4", NULL), IA_OK);
    assert_int_equal(queue_length(q), 1);
    struct task_status st;
    assert_int_equal(queue_status(q, "task-1", &st), IA_OK);
    assert_int_equal(st.state, TASK_QUEUED);
    assert_string_equal(st.stage, "queued");
    task_status_cleanup(&st);

    struct claimed_task *t = claim(q, 30);
    assert_string_equal(t->task_id, "task-1");
    assert_string_equal(t->task_name, "process_video");
    assert_string_equal(json_string_value(json_array_get(t->args, 0)), "http://example.test/v.mp4");
    assert_int_equal(t->retries, 0);
    assert_int_equal(queue_length(q), 0);
    /* kombu's bookkeeping: unacked holds [message, "", "celery"], the index the deadline. */
    redisReply *r = redisCommand(rc, "HGET unacked %s", t->delivery_tag);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    json_t *entry = json_loads(r->str, 0, NULL);
    freeReplyObject(r);
    assert_int_equal(json_array_size(entry), 3);
    assert_string_equal(json_string_value(json_array_get(entry, 1)), "");
    assert_string_equal(json_string_value(json_array_get(entry, 2)), "celery");
    json_t *orig = json_loads(t->raw, 0, NULL);
    assert_true(json_equal(json_array_get(entry, 0), orig));
    json_decref(orig);
    json_decref(entry);
    double deadline = zscore(t->delivery_tag), now = redis_time();
    assert_true(deadline > now + 29 && deadline < now + 31);
    assert_int_equal(queue_ack(q, t), IA_OK);
    assert_int_equal(rint_cmd("HLEN %s", "unacked"), 0);
    assert_int_equal(rint_cmd("ZCARD %s", "unacked_index"), 0);
    assert_int_equal(rint_cmd("HLEN %s", "interview-leases"), 0);
    assert_int_equal(queue_ack(q, t), IA_ERR_NOT_FOUND);
    assert_int_equal(queue_lease_renew(q, t, 30), IA_ERR_NOT_FOUND);
    claimed_task_free(t);
}

static void test_fifo_and_empty_wait(void **state)
{
    struct queue *q = *state;
    assert_int_equal(queue_submit(q, "a", "http://x/a", NULL), IA_OK);
    assert_int_equal(queue_submit(q, "b", "http://x/b", NULL), IA_OK);
    struct claimed_task *t = claim(q, 30);
    assert_string_equal(t->task_id, "a");
    claimed_task_free(t);
    t = claim(q, 30);
    assert_string_equal(t->task_id, "b");
    claimed_task_free(t);
    double t0 = now_s();
    t = NULL;
    assert_int_equal(queue_claim(q, 30, 300, NULL, &t), IA_OK);
    double waited = now_s() - t0;
    assert_null(t);
    assert_true(waited >= 0.28 && waited < 1.0);
}

static void test_renew_and_foreign_token(void **state)
{
    struct queue *q = *state;
    assert_int_equal(queue_submit(q, "r", "http://x/r", NULL), IA_OK);
    struct claimed_task *t = claim(q, 5);
    double before = zscore(t->delivery_tag);
    assert_int_equal(queue_lease_renew(q, t, 100), IA_OK);
    assert_true(zscore(t->delivery_tag) > before + 90);
    struct claimed_task other = *t;
    memcpy(other.lease_token, "someone-else", 13);
    assert_int_equal(queue_lease_renew(q, &other, 100), IA_ERR_NOT_FOUND);
    assert_int_equal(queue_ack(q, &other), IA_ERR_NOT_FOUND);
    assert_int_equal(queue_requeue(q, &other), IA_ERR_NOT_FOUND);
    assert_int_equal(rint_cmd("HLEN %s", "unacked"), 1); /* untouched by the impostor */
    assert_int_equal(queue_length(q), 0);
    assert_int_equal(queue_ack(q, t), IA_OK);
    claimed_task_free(t);
}

static void test_requeue_goes_first(void **state)
{
    struct queue *q = *state;
    assert_int_equal(queue_submit(q, "first", "http://x/1", NULL), IA_OK);
    assert_int_equal(queue_submit(q, "second", "http://x/2", NULL), IA_OK);
    struct claimed_task *t = claim(q, 30);
    assert_string_equal(t->task_id, "first");
    assert_int_equal(queue_requeue(q, t), IA_OK);
    assert_int_equal(rint_cmd("HLEN %s", "unacked"), 0);
    struct claimed_task *again = claim(q, 30);
    assert_string_equal(again->task_id, "first");
    assert_string_equal(again->raw, t->raw); /* byte for byte, retries unchanged */
    assert_int_equal(again->retries, 0);
    claimed_task_free(again);
    claimed_task_free(t);
}

/* A task's kwargs reach the worker, and a requeue keeps them. */
static void test_kwargs_survive_claim_and_requeue(void **state)
{
    struct queue *q = *state;
    json_t *kwargs = json_pack("{s:b}", "analysis", 0);
    assert_int_equal(queue_submit(q, "k1", "http://x/k", kwargs), IA_OK);
    json_decref(kwargs);
    assert_int_equal(queue_submit(q, "k2", "http://x/k2", NULL), IA_OK);
    struct claimed_task *t = claim(q, 30);
    assert_string_equal(t->task_id, "k1");
    assert_int_equal(json_object_size(t->kwargs), 1);
    assert_true(json_is_false(json_object_get(t->kwargs, "analysis")));
    assert_int_equal(queue_requeue(q, t), IA_OK);
    claimed_task_free(t);
    struct claimed_task *again = claim(q, 30);
    assert_string_equal(again->task_id, "k1"); /* handed back at the head */
    assert_true(json_is_false(json_object_get(again->kwargs, "analysis")));
    struct claimed_task *plain = claim(q, 30);
    assert_string_equal(plain->task_id, "k2");
    assert_true(json_is_object(plain->kwargs));
    assert_int_equal(json_object_size(plain->kwargs), 0);
    claimed_task_free(again);
    claimed_task_free(plain);
}

static void test_restore_expired(void **state)
{
    struct queue *q = *state;
    assert_int_equal(queue_submit(q, "short", "http://x/s", NULL), IA_OK);
    assert_int_equal(queue_submit(q, "long", "http://x/l", NULL), IA_OK);
    /* A live kombu delivery: scored with its delivery time, not ours: must be left alone. */
    redisReply *r = redisCommand(rc, "HSET unacked kombu-tag %s", "[{}, \"\", \"celery\"]");
    freeReplyObject(r);
    r = redisCommand(rc, "ZADD unacked_index %f kombu-tag", redis_time() - 10);
    freeReplyObject(r);
    struct claimed_task *s = claim(q, 1), *l = claim(q, 60);
    assert_int_equal(queue_restore_expired(q), 0);
    usleep(1200000);
    assert_int_equal(queue_restore_expired(q), 1);
    assert_int_equal(queue_restore_expired(q), 0);
    assert_int_equal(queue_length(q), 1);
    assert_int_equal(queue_lease_renew(q, s, 30), IA_ERR_NOT_FOUND); /* lost its lease */
    assert_int_equal(queue_ack(q, s), IA_ERR_NOT_FOUND);
    struct claimed_task *again = claim(q, 30);
    assert_string_equal(again->raw, s->raw);
    assert_int_equal(queue_lease_renew(q, l, 60), IA_OK);
    assert_true(zscore("kombu-tag") > 0);
    assert_int_equal(rint_cmd("HEXISTS unacked %s", "kombu-tag"), 1);
    claimed_task_free(again);
    claimed_task_free(s);
    claimed_task_free(l);
}

static void test_malformed_go_to_dead_list(void **state)
{
    struct queue *q = *state;
    struct claimed_task sentinel;
    redisReply *r = redisCommand(rc, "LPUSH celery %s", "not json");
    freeReplyObject(r);
    r = redisCommand(rc, "LPUSH celery %s",
                     "{\"properties\": {\"delivery_tag\": \"t-1\"}, \"body\": \"!!\"}");
    freeReplyObject(r);
    assert_int_equal(queue_submit(q, "ok", "http://x/ok", NULL), IA_OK);
    struct claimed_task *t = &sentinel; /* queue_claim must set it to NULL */
    assert_int_equal(queue_claim(q, 30, 0, NULL, &t), IA_ERR_INVALID);
    assert_null(t);
    t = &sentinel;
    assert_int_equal(queue_claim(q, 30, 0, NULL, &t), IA_ERR_INVALID);
    assert_null(t);
    assert_int_equal(rint_cmd("LLEN %s", "interview-dead"), 2);
    assert_int_equal(rint_cmd("HLEN %s", "unacked"), 0);
    assert_int_equal(rint_cmd("HLEN %s", "interview-leases"), 0);
    t = claim(q, 30);
    assert_string_equal(t->task_id, "ok");
    claimed_task_free(t);
}

struct claimer {
    int claimed;
    char ids[200][8];
};

static void *claimer_main(void *arg)
{
    struct claimer *c = arg;
    struct queue *q = new_queue(broker_url, backend_url);
    struct claimed_task *t;
    while (queue_claim(q, 30, 0, NULL, &t) == IA_OK && t) {
        memcpy(c->ids[c->claimed++], t->task_id, 8);
        queue_ack(q, t);
        claimed_task_free(t);
    }
    queue_free(q);
    return NULL;
}

static void test_concurrent_claims_take_each_once(void **state)
{
    struct queue *q = *state;
    enum { N = 120, W = 4 };
    for (int i = 0; i < N; i++) {
        char id[8];
        snprintf(id, sizeof(id), "c%03d", i);
        assert_int_equal(queue_submit(q, id, "http://x/c", NULL), IA_OK);
    }
    static struct claimer cs[W];
    pthread_t th[W];
    for (int i = 0; i < W; i++) {
        memset(&cs[i], 0, sizeof(cs[i]));
        pthread_create(&th[i], NULL, claimer_main, &cs[i]);
    }
    int seen[N] = {0}, total = 0;
    for (int i = 0; i < W; i++) {
        pthread_join(th[i], NULL);
        for (int k = 0; k < cs[i].claimed; k++)
            seen[atoi(cs[i].ids[k] + 1)]++;
        total += cs[i].claimed;
    }
    assert_int_equal(total, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(rint_cmd("HLEN %s", "unacked"), 0);
}

static void status_of(struct queue *q, const char *id, struct task_status *st)
{
    assert_int_equal(queue_status(q, id, st), IA_OK);
}

static void test_results_and_status(void **state)
{
    struct queue *q = *state;
    struct task_status st;
    status_of(q, "nope", &st);
    assert_int_equal(st.state, TASK_UNKNOWN);
    json_t *meta = json_pack("{s:s, s:f}", "stage", "processing", "progress", 0.4);
    assert_int_equal(queue_set_state(q, "t", "PROGRESS", meta), IA_OK);
    json_decref(meta);
    status_of(q, "t", &st);
    assert_int_equal(st.state, TASK_RUNNING);
    assert_string_equal(st.stage, "processing");
    assert_true(st.progress > 0.39 && st.progress < 0.41);
    meta = json_pack("{s:s, s:i}", "stage", "retrying", "retries", 1); /* a plain dict */
    assert_int_equal(queue_set_state(q, "t", "RETRY", meta), IA_OK);
    json_decref(meta);
    status_of(q, "t", &st);
    assert_int_equal(st.state, TASK_RETRYING);
    assert_string_equal(st.error_code, "retrying");
    redisReply *rr = redisCommand(rc, "SELECT 1");
    freeReplyObject(rr);
    rr = redisCommand(rc, "GET celery-task-meta-t");
    assert_non_null(strstr(rr->str, "\"exc_type\": \"RuntimeError\""));
    assert_non_null(strstr(rr->str, "\"retries\": 1"));
    freeReplyObject(rr);
    rr = redisCommand(rc, "SELECT 0");
    freeReplyObject(rr);
    assert_int_equal(queue_set_retry(q, "t", "fetch_network_error", "could not download"), IA_OK);
    status_of(q, "t", &st);
    assert_int_equal(st.state, TASK_RETRYING);
    assert_string_equal(st.error_code, "fetch_network_error");
    assert_int_equal(queue_set_failure(q, "t", "too_large", "the video is larger than allowed"),
                     IA_OK);
    status_of(q, "t", &st);
    assert_int_equal(st.state, TASK_FAILED);
    assert_string_equal(st.error_code, "too_large");
    assert_string_equal(st.error_message, "the video is larger than allowed");
    char buf[16];
    assert_int_equal(queue_get_celery_status(q, "t", buf, sizeof(buf)), IA_OK);
    assert_string_equal(buf, "FAILURE");

    json_t *res = json_pack("{s:s}", "video_id", "v9");
    assert_int_equal(queue_set_state(q, "s", "SUCCESS", res), IA_OK);
    json_decref(res);
    assert_int_equal(queue_set_failure(q, "s", "timeout", "late"), IA_OK); /* ignored */
    status_of(q, "s", &st);
    assert_int_equal(st.state, TASK_SUCCEEDED);
    assert_string_equal(json_string_value(json_object_get(st.result, "video_id")), "v9");
    task_status_cleanup(&st);
    redisReply *r = redisCommand(rc, "SELECT 1");
    freeReplyObject(r);
    long long ttl = rint_cmd("TTL %s", "celery-task-meta-s");
    r = redisCommand(rc, "SELECT 0");
    freeReplyObject(r);
    assert_true(ttl > 590 && ttl <= 600);
    assert_int_equal(queue_set_state(q, "s", "BOGUS", NULL), IA_ERR_INVALID);
    assert_int_equal(queue_status(q, "bad id", &st), IA_ERR_INVALID);
}

static void test_result_is_published(void **state)
{
    struct queue *q = *state;
    struct timeval tv = {2, 0};
    redisContext *sub = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisSetTimeout(sub, tv);
    redisReply *r = redisCommand(sub, "SUBSCRIBE celery-task-meta-p");
    freeReplyObject(r);
    assert_int_equal(queue_set_state(q, "p", "STARTED", NULL), IA_OK);
    r = NULL;
    assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[0]->str, "message");
    assert_non_null(strstr(r->element[2]->str, "\"status\": \"STARTED\""));
    freeReplyObject(r);
    redisFree(sub);
}

static void test_submit_rolls_back_when_broker_down(void **state)
{
    (void)state;
    char dead[64];
    snprintf(dead, sizeof(dead), "redis://127.0.0.1:%d/0", harness_free_port());
    struct queue *q = new_queue(dead, backend_url);
    assert_int_equal(queue_submit(q, "lost", "http://x/l", NULL), IA_ERR_BROKER);
    struct task_status st;
    assert_int_equal(queue_status(q, "lost", &st), IA_OK);
    assert_int_equal(st.state, TASK_UNKNOWN); /* the accepted record was removed */
    assert_false(queue_ping(q));
    queue_free(q);
}

static void test_auth_and_db(void **state)
{
    (void)state;
    redisReply *r = redisCommand(rc, "ACL SETUSER tester on >s3cr@t ~* &* +@all");
    freeReplyObject(r);
    char b[128], bad[128];
    snprintf(b, sizeof(b), "redis://tester:s3cr%%40t@127.0.0.1:%d/3", port);
    snprintf(bad, sizeof(bad), "redis://tester:wrong@127.0.0.1:%d/3", port);
    struct queue *q = new_queue(b, b);
    assert_int_equal(queue_submit(q, "authed", "http://x/a", NULL), IA_OK);
    queue_free(q);
    r = redisCommand(rc, "SELECT 3");
    freeReplyObject(r);
    assert_int_equal(rint_cmd("LLEN %s", "celery"), 1);
    r = redisCommand(rc, "SELECT 0");
    freeReplyObject(r);
    q = new_queue(bad, bad);
    assert_int_equal(queue_submit(q, "denied", "http://x/a", NULL), IA_ERR_BROKER);
    queue_free(q);
    r = redisCommand(rc, "ACL DELUSER tester");
    freeReplyObject(r);
}

static void test_outage_and_recovery(void **state)
{
    struct queue *q = *state;
    assert_int_equal(queue_submit(q, "before", "http://x/b", NULL), IA_OK);
    redis_stop();
    double t0 = now_s();
    assert_int_equal(queue_submit(q, "during", "http://x/d", NULL), IA_ERR_BROKER);
    struct claimed_task *t = NULL;
    assert_int_equal(queue_claim(q, 30, 0, NULL, &t), IA_ERR_BROKER);
    struct task_status st;
    assert_int_equal(queue_status(q, "before", &st), IA_ERR_BROKER);
    assert_int_equal(queue_length(q), -1);
    assert_int_equal(queue_restore_expired(q), -1);
    assert_false(queue_ping(q));
    assert_true(now_s() - t0 < 1.5);
    redis_start();
    enum ia_err rc2 = IA_ERR_BROKER;
    for (int i = 0; i < 40 && rc2; i++) {
        rc2 = queue_submit(q, "after", "http://x/a", NULL);
        if (rc2)
            usleep(100000);
    }
    assert_int_equal(rc2, IA_OK);
    assert_true(queue_ping(q));
    assert_int_equal(queue_length(q), 1); /* a fresh server: only "after" */
}

/* Makes every pending task look published long ago. */
static void age_pending(void)
{
    redisReply *r = redisCommand(rc, "EVAL %s 1 interview-pending-log",
                                 "for i = 0, redis.call('LLEN', KEYS[1]) - 1 do\n"
                                 "  local e = redis.call('LINDEX', KEYS[1], i)\n"
                                 "  redis.call('LSET', KEYS[1], i, '0 ' .. e:match('^%S+ (.*)$'))\n"
                                 "end");
    freeReplyObject(r);
}

/*
 * The pending log's entry for id ("<time> <id> <message>", the message a JSON object): its time,
 * or -1 when it has none (or more than one).
 */
static double pending_since(const char *id)
{
    redisReply *r = redisCommand(rc, "LRANGE interview-pending-log 0 -1");
    double t = -1;
    int found = 0;
    size_t n = strlen(id);
    for (size_t i = 0; r && i < r->elements; i++) {
        const char *e = r->element[i]->str, *sp = strchr(e, ' ');
        if (sp && strncmp(sp + 1, id, n) == 0 && sp[1 + n] == ' ' && sp[2 + n] == '{' &&
            found++ == 0)
            t = atof(e);
    }
    freeReplyObject(r);
    return found == 1 ? t : -1;
}

static void test_lost_tasks_fail_with_task_lost(void **state)
{
    struct queue *q = *state;
    assert_int_equal(queue_submit(q, "claimed", "http://x/a", NULL), IA_OK);
    assert_int_equal(queue_submit(q, "waiting", "http://x/b", NULL), IA_OK);
    assert_int_equal(queue_submit(q, "purged", "http://x/c", NULL), IA_OK);
    assert_int_equal(rint_cmd("LLEN %s", "interview-pending-log"), 3);
    assert_true(pending_since("waiting") > redis_time() - 5);
    struct claimed_task *t = claim(q, 30); /* takes "claimed", whose entry is the log's first */
    assert_int_equal(rint_cmd("LLEN %s", "interview-pending-log"), 2);
    assert_true(pending_since("claimed") < 0);
    redisReply *r = redisCommand(rc, "LPOP celery"); /* "purged" vanishes */
    freeReplyObject(r);
    assert_int_equal(queue_fail_lost(q, 60), 0); /* too recent to judge */
    assert_int_equal(rint_cmd("LLEN %s", "interview-pending-log"), 2);
    age_pending();
    assert_int_equal(queue_fail_lost(q, 60), 1);
    struct task_status st;
    assert_int_equal(queue_status(q, "purged", &st), IA_OK);
    assert_int_equal(st.state, TASK_FAILED);
    assert_string_equal(st.error_code, "task_lost");
    task_status_cleanup(&st);
    assert_int_equal(queue_status(q, "waiting", &st), IA_OK);
    assert_int_equal(st.state, TASK_QUEUED);
    task_status_cleanup(&st);
    /* "waiting" was looked at and written again with now: not judged again for 60 s. */
    assert_true(pending_since("waiting") > redis_time() - 5);
    assert_true(pending_since("purged") < 0);
    age_pending();
    assert_int_equal(queue_fail_lost(q, 60), 0);
    assert_int_equal(queue_ack(q, t), IA_OK);
    claimed_task_free(t);
}

/*
 * A claim that finds another task's entry first in the pending log leaves its own entry there;
 * the lost check drops such entries without judging them, and stops at the first task it may
 * not judge yet.
 */
static void test_lost_check_drops_entries_of_claimed_tasks(void **state)
{
    struct queue *q = *state;
    assert_int_equal(queue_submit(q, "first", "http://x/a", NULL), IA_OK);
    assert_int_equal(queue_submit(q, "second", "http://x/b", NULL), IA_OK);
    redisReply *r = redisCommand(rc, "RPOP celery"); /* "first" taken by someone else */
    freeReplyObject(r);
    struct claimed_task *t = claim(q, 30); /* "second": its entry is not the log's first */
    assert_string_equal(t->task_id, "second");
    assert_int_equal(rint_cmd("LLEN %s", "interview-pending-log"), 2);
    assert_int_equal(queue_submit(q, "third", "http://x/c", NULL), IA_OK);
    age_pending();
    r = redisCommand(rc, "EVAL %s 1 interview-pending-log", /* "third" is recent again */
                     "local e = redis.call('RPOP', KEYS[1])\n"
                     "redis.call('RPUSH', KEYS[1], '9999999999 ' .. e:match('^%S+ (.*)$'))");
    freeReplyObject(r);
    assert_int_equal(queue_fail_lost(q, 60), 1); /* "first" is lost, "second" dropped */
    assert_true(pending_since("first") < 0);
    assert_true(pending_since("second") < 0);
    assert_true(pending_since("third") > 0);
    assert_int_equal(rint_cmd("LLEN %s", "interview-pending-log"), 1);
    struct task_status st;
    assert_int_equal(queue_status(q, "first", &st), IA_OK);
    assert_string_equal(st.error_code, "task_lost");
    task_status_cleanup(&st);
    assert_int_equal(queue_ack(q, t), IA_OK);
    claimed_task_free(t);
}

static void test_idempotency_keys(void **state)
{
    struct queue *q = *state;
    enum queue_idem_result res;
    char prior[64];
    const char *key = "order 17";
    assert_int_equal(queue_idempotency_bind(q, NULL, key, "aa", "id-1", 86400, &res, prior,
                                            sizeof(prior)), IA_OK);
    assert_int_equal(res, QUEUE_IDEM_NEW);
    assert_string_equal(prior, "id-1");
    assert_int_equal(queue_idempotency_bind(q, NULL, key, "aa", "id-2", 86400, &res, prior,
                                            sizeof(prior)), IA_OK);
    assert_int_equal(res, QUEUE_IDEM_REPLAY);
    assert_string_equal(prior, "id-1");
    assert_int_equal(queue_idempotency_bind(q, NULL, key, "bb", "id-3", 86400, &res, prior,
                                            sizeof(prior)), IA_OK);
    assert_int_equal(res, QUEUE_IDEM_CONFLICT);
    /* The same key sent with an API key is another key: no replay, no conflict, either way. */
    assert_int_equal(queue_idempotency_bind(q, "api-key-A", key, "bb", "id-4", 86400, &res, prior,
                                            sizeof(prior)), IA_OK);
    assert_int_equal(res, QUEUE_IDEM_NEW);
    assert_int_equal(queue_idempotency_bind(q, "api-key-B", key, "cc", "id-5", 86400, &res, prior,
                                            sizeof(prior)), IA_OK);
    assert_int_equal(res, QUEUE_IDEM_NEW);
    assert_int_equal(queue_idempotency_bind(q, "api-key-A", key, "bb", "id-6", 86400, &res, prior,
                                            sizeof(prior)), IA_OK);
    assert_int_equal(res, QUEUE_IDEM_REPLAY);
    assert_string_equal(prior, "id-4");
    redisReply *r = redisCommand(rc, "SELECT 1");
    freeReplyObject(r);
    r = redisCommand(rc, "KEYS interview-idem-*");
    assert_int_equal(r->elements, 3); /* one per scope; a key is never unbound */
    long long ttl = rint_cmd("TTL %s", r->element[0]->str);
    freeReplyObject(r);
    r = redisCommand(rc, "SELECT 0");
    freeReplyObject(r);
    assert_true(ttl > 86000 && ttl <= 86400);
}

/* Runs one command on the backend (db 1) from the test's connection; returns the reply. */
static redisReply *backend_cmd(const char *fmt, const char *arg)
{
    freeReplyObject(redisCommand(rc, "SELECT 1"));
    redisReply *r = redisCommand(rc, fmt, arg);
    freeReplyObject(redisCommand(rc, "SELECT 0"));
    return r;
}

/* The TTL of the backend's key (db 1), in seconds. */
static long long backend_ttl(const char *key)
{
    redisReply *r = backend_cmd("TTL %s", key);
    long long ttl = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -3;
    freeReplyObject(r);
    return ttl;
}

/*
 * A task claimed while its entry was not the log's first, then finished and acknowledged, has no
 * count in the deliveries any more: the lost check looks at it, finds its message gone, and the
 * result already written keeps it from being failed. Its entry leaves the log all the same. The
 * same holds for a task that another Celery worker ran, whose accepted record (written without a
 * TTL by a batch) then gets its result's TTL.
 */
static void test_lost_check_keeps_finished_tasks(void **state)
{
    struct queue *q = *state;
    assert_int_equal(queue_submit(q, "first", "http://x/a", NULL), IA_OK);
    assert_int_equal(queue_submit(q, "second", "http://x/b", NULL), IA_OK);
    assert_int_equal(queue_submit(q, "third", "http://x/c", NULL), IA_OK);
    freeReplyObject(redisCommand(rc, "RPOP celery")); /* "first" taken by someone else */
    struct claimed_task *t = claim(q, 30);
    assert_string_equal(t->task_id, "second");
    freeReplyObject(backend_cmd("PERSIST %s", "interview-task-second")); /* as a batch writes it */
    json_t *res = json_pack("{s:s}", "video_id", "second");
    assert_int_equal(queue_task_set_state(q, t, "SUCCESS", res), IA_OK);
    json_decref(res);
    assert_int_equal(queue_ack(q, t), IA_OK);
    claimed_task_free(t);
    assert_int_equal(rint_cmd("HEXISTS interview-deliveries %s", "second"), 0);
    long long ttl = backend_ttl("interview-task-second"); /* given by the final state */
    assert_true(ttl > 500 && ttl <= 600);
    /* "third": run by a Celery worker, which wrote its result as Celery's backend does. */
    freeReplyObject(redisCommand(rc, "RPOP celery"));
    freeReplyObject(backend_cmd("PERSIST %s", "interview-task-third"));
    freeReplyObject(backend_cmd("SET %s {\"status\":\"SUCCESS\",\"result\":{}} EX 100",
                                "celery-task-meta-third"));
    assert_int_equal(backend_ttl("interview-task-third"), -1);
    age_pending();
    assert_int_equal(queue_fail_lost(q, 60), 1); /* "first" only */
    assert_int_equal(rint_cmd("LLEN %s", "interview-pending-log"), 0);
    struct task_status st;
    assert_int_equal(queue_status(q, "second", &st), IA_OK);
    assert_int_equal(st.state, TASK_SUCCEEDED);
    task_status_cleanup(&st);
    assert_int_equal(queue_status(q, "first", &st), IA_OK);
    assert_string_equal(st.error_code, "task_lost");
    task_status_cleanup(&st);
    ttl = backend_ttl("interview-task-third");
    assert_true(ttl > 0 && ttl <= 100);
}

/*
 * A keyed submit that the full queue refuses leaves no accepted record (/status would say queued
 * for ever); a replay of one that was published keeps its record.
 */
static void test_refused_keyed_submit_leaves_no_record(void **state)
{
    (void)state;
    struct config cfg = {0};
    cfg.broker_url = broker_url;
    cfg.backend_url = backend_url;
    cfg.result_ttl_s = 600;
    cfg.max_queued = 1;
    struct queue *q = queue_new(&cfg);
    assert_int_equal(queue_submit_once(q, "kept", "http://x/a", NULL, 3600), IA_OK);
    assert_int_equal(queue_submit_once(q, "refused", "http://x/b", NULL, 3600), IA_ERR_TOO_LARGE);
    redisReply *r = backend_cmd("EXISTS interview-task-%s", "refused");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    assert_int_equal(queue_submit_once(q, "kept", "http://x/a", NULL, 3600), IA_OK); /* replay */
    r = backend_cmd("EXISTS interview-task-%s", "kept");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    assert_int_equal(queue_length(q), 1);
    queue_free(q);
}

/* Makes t's lease look run out (as after a pause) and puts it back, as a heartbeat would. */
static void expire_lease(struct queue *q, const struct claimed_task *t)
{
    freeReplyObject(redisCommand(rc, "ZADD unacked_index XX 0 %s", t->delivery_tag));
    assert_int_equal(queue_restore_expired(q), 1);
}

static enum task_state state_of(struct queue *q, const char *id)
{
    struct task_status st;
    status_of(q, id, &st);
    task_status_cleanup(&st);
    return st.state;
}

/* A final state stays: no later write (progress, retry, another final state) replaces it. */
static void test_final_state_is_never_replaced(void **state)
{
    struct queue *q = *state;
    assert_int_equal(queue_set_failure(q, "f", "decode_error", "corrupt"), IA_OK);
    json_t *meta = json_pack("{s:s, s:f}", "stage", "fetching", "progress", 0.1);
    assert_int_equal(queue_set_state(q, "f", "PROGRESS", meta), IA_OK); /* kept: no error */
    assert_int_equal(queue_set_state(q, "f", "STARTED", NULL), IA_OK);
    assert_int_equal(queue_set_retry(q, "f", "fetch_network_error", "again"), IA_OK);
    json_t *res = json_pack("{s:s}", "video_id", "f");
    assert_int_equal(queue_set_state(q, "f", "SUCCESS", res), IA_OK);
    struct task_status st;
    status_of(q, "f", &st);
    assert_int_equal(st.state, TASK_FAILED);
    assert_string_equal(st.error_code, "decode_error");
    task_status_cleanup(&st);
    assert_int_equal(queue_set_state(q, "s", "SUCCESS", res), IA_OK);
    assert_int_equal(queue_set_state(q, "s", "PROGRESS", meta), IA_OK);
    assert_int_equal(state_of(q, "s"), TASK_SUCCEEDED);
    json_decref(res);
    json_decref(meta);
}

/*
 * A delivery whose lease ran out while it still ran (a pause, an outage) writes nothing once
 * the task was delivered again, nor once its fence ran out with the lease; the new holder
 * writes, and its final state ends the fence.
 */
static void test_stale_delivery_writes_nothing(void **state)
{
    struct queue *q = *state;
    assert_int_equal(queue_submit(q, "u", "http://x/u", NULL), IA_OK);
    struct claimed_task *first = claim(q, 30);
    assert_int_equal(queue_task_set_state(q, first, "STARTED", NULL), IA_OK);
    expire_lease(q, first);
    struct claimed_task *second = claim(q, 30);
    assert_string_equal(second->task_id, "u");
    assert_string_not_equal(second->fence, first->fence);
    assert_int_equal(queue_task_set_failure(q, first, "decode_error", "late"), IA_ERR_NOT_FOUND);
    assert_int_equal(queue_task_set_state(q, first, "PROGRESS", NULL), IA_ERR_NOT_FOUND);
    assert_int_equal(queue_lease_renew(q, first, 30), IA_ERR_NOT_FOUND);
    assert_int_equal(state_of(q, "u"), TASK_RUNNING);
    assert_int_equal(queue_lease_renew(q, second, 30), IA_OK);
    json_t *res = json_pack("{s:s}", "video_id", "u");
    assert_int_equal(queue_task_set_state(q, second, "SUCCESS", res), IA_OK);
    json_decref(res);
    assert_int_equal(state_of(q, "u"), TASK_SUCCEEDED);
    redisReply *r = backend_cmd("EXISTS %s", "interview-fence-u");
    assert_int_equal(r->integer, 0); /* ended by the final state */
    freeReplyObject(r);
    assert_int_equal(queue_ack(q, second), IA_OK);
    claimed_task_free(first);
    claimed_task_free(second);

    assert_int_equal(queue_submit(q, "v", "http://x/v", NULL), IA_OK);
    struct claimed_task *alone = claim(q, 30);
    freeReplyObject(backend_cmd("PEXPIRE %s 1", "interview-fence-v")); /* as the lease runs out */
    usleep(20000);
    assert_int_equal(queue_task_set_failure(q, alone, "timeout", "late"), IA_ERR_NOT_FOUND);
    assert_int_equal(queue_lease_renew(q, alone, 30), IA_ERR_NOT_FOUND);
    assert_int_equal(state_of(q, "v"), TASK_QUEUED);
    claimed_task_free(alone);
}

/* A claim older than the fence's holder (it paused between claim and fence) takes nothing. */
static void test_older_claim_cannot_take_the_fence(void **state)
{
    struct queue *q = *state;
    assert_int_equal(queue_submit(q, "w", "http://x/w", NULL), IA_OK);
    struct claimed_task *t = claim(q, 30);
    freeReplyObject(redisCommand(rc, "HSET interview-deliveries w 7"));
    expire_lease(q, t);
    struct claimed_task *later = claim(q, 30);
    assert_int_equal(strncmp(later->fence, "8 ", 2), 0);
    expire_lease(q, later);
    freeReplyObject(redisCommand(rc, "HSET interview-deliveries w 3")); /* an older claim */
    struct claimed_task *none = t;
    assert_int_equal(queue_claim(q, 30, 0, NULL, &none), IA_OK);
    assert_null(none); /* handed back */
    assert_int_equal(queue_length(q), 1);
    assert_int_equal(queue_task_set_state(q, later, "STARTED", NULL), IA_OK); /* still 8's */
    claimed_task_free(later);
    claimed_task_free(t);
}

/*
 * Deliveries are counted beside the message: one that ends with its worker (lease restored)
 * counts, one handed back in order (requeue) does not, and an ack ends the counts.
 */
static void test_deliveries_are_counted(void **state)
{
    struct queue *q = *state;
    assert_int_equal(queue_submit(q, "d", "http://x/d", NULL), IA_OK);
    struct claimed_task *first = claim(q, 30);
    assert_int_equal(first->deliveries, 1);
    expire_lease(q, first); /* its worker died */
    struct claimed_task *t = claim(q, 30);
    assert_int_equal(t->deliveries, 2);
    assert_string_equal(t->raw, first->raw); /* counted beside the message, not in it */
    claimed_task_free(first);
    assert_int_equal(queue_requeue(q, t), IA_OK); /* a shutdown hands it back */
    claimed_task_free(t);
    t = claim(q, 30);
    assert_int_equal(t->deliveries, 2);
    expire_lease(q, t);
    claimed_task_free(t);
    t = claim(q, 30);
    assert_int_equal(t->deliveries, 3);
    assert_int_equal(queue_ack(q, t), IA_OK);
    assert_int_equal(rint_cmd("HLEN %s", "interview-deliveries"), 0);
    claimed_task_free(t);
}

/* A claim told to stop waits for nothing and takes nothing. */
static void test_claim_stops_when_told(void **state)
{
    struct queue *q = *state;
    assert_int_equal(queue_submit(q, "n", "http://x/n", NULL), IA_OK);
    atomic_bool stop = true;
    struct claimed_task *t = NULL;
    assert_int_equal(queue_claim(q, 30, 5000, &stop, &t), IA_OK);
    assert_null(t);
    assert_int_equal(queue_length(q), 1);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, each_setup, each_teardown)
    const struct CMUnitTest tests[] = {
        T(test_submit_and_claim),
        T(test_fifo_and_empty_wait),
        T(test_renew_and_foreign_token),
        T(test_requeue_goes_first),
        T(test_kwargs_survive_claim_and_requeue),
        T(test_restore_expired),
        T(test_malformed_go_to_dead_list),
        T(test_concurrent_claims_take_each_once),
        T(test_results_and_status),
        T(test_result_is_published),
        T(test_submit_rolls_back_when_broker_down),
        T(test_auth_and_db),
        T(test_outage_and_recovery),
        T(test_lost_tasks_fail_with_task_lost),
        T(test_lost_check_drops_entries_of_claimed_tasks),
        T(test_lost_check_keeps_finished_tasks),
        T(test_refused_keyed_submit_leaves_no_record),
        T(test_idempotency_keys),
        T(test_final_state_is_never_replaced),
        T(test_stale_delivery_writes_nothing),
        T(test_older_claim_cannot_take_the_fence),
        T(test_deliveries_are_counted),
        T(test_claim_stops_when_told),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
