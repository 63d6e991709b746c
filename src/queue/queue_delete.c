/*
 * Deleting a video's records, and the tombstone that keeps its task from bringing them back.
 *
 * The order that makes a deletion stick while a task may still run (api/videos.c): first the
 * tombstone interview-deleted-<id> (with RESULT_TTL), in the same step as the removal of the
 * task's result record, its accepted record and its fence; then the files. Without its fence,
 * the running delivery can write no state and its next lease renewal stops it; a later delivery
 * finds the tombstone before it starts and is acknowledged without running; and a delivery that
 * published its files anyway looks for the tombstone after publishing and removes them itself
 * (worker/task.c). Whichever side comes second removes the files.
 *
 * The scripts here run with EVAL (deletions are rare), not from the table of queue_scripts.c.
 */
#include "queue/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "queue/celery.h"
#include "queue/queue_int.h"

#define IDEM_SCAN_COUNT "1000"

/* KEYS: tombstone, result record, accepted record, fence. ARGV: ttl_s. Returns records removed. */
static const char forget_src[] = "redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])\n"
                                 "local n = redis.call('DEL', KEYS[2], KEYS[3])\n"
                                 "redis.call('DEL', KEYS[4])\n"
                                 "return n\n";

/* KEYS: idempotency records. ARGV: task_id. Removes those bound to task_id; returns how many. */
static const char idem_forget_src[] = "local suffix, n = ' ' .. ARGV[1], 0\n"
                                      "for _, k in ipairs(KEYS) do\n"
                                      "  local v = redis.call('GET', k)\n"
                                      "  if v and #v > #suffix and v:sub(-#suffix) == suffix then\n"
                                      "    redis.call('DEL', k)\n"
                                      "    n = n + 1\n"
                                      "  end\n"
                                      "end\n"
                                      "return n\n";

/* An integer reply of an EVAL on conn into *out; IA_ERR_BROKER otherwise. */
static enum ia_err eval_int(struct queue_conn *qc, int argc, const char **argv, const char *what,
                            long long *out)
{
    redisReply *r = queue_conn_argv(qc, argc, argv, NULL);
    enum ia_err rc = IA_ERR_BROKER;
    if (!queue_reply_failed(qc, r, what) && r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        rc = IA_OK;
    }
    freeReplyObject(r);
    return rc;
}

enum ia_err queue_video_forget(struct queue *q, const char *video_id, bool *existed)
{
    *existed = false;
    if (!queue_task_id_ok(video_id))
        return IA_ERR_INVALID;
    char *keys[4] = {xasprintf("%s%s", QUEUE_DELETED_PREFIX, video_id),
                     xasprintf("%s%s", QUEUE_META_PREFIX, video_id),
                     xasprintf("%s%s", QUEUE_ACCEPTED_PREFIX, video_id),
                     xasprintf("%s%s", QUEUE_FENCE_PREFIX, video_id)};
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", q->result_ttl_s);
    const char *argv[] = {"EVAL", forget_src, "4", keys[0], keys[1], keys[2], keys[3], ttl};
    long long n = 0;
    enum ia_err rc = eval_int(&q->backend, 8, argv, "forget video", &n);
    *existed = rc == IA_OK && n > 0;
    for (int i = 0; i < 4; i++)
        free(keys[i]);
    return rc;
}

enum ia_err queue_video_unforget(struct queue *q, const char *video_id)
{
    if (!queue_task_id_ok(video_id))
        return IA_ERR_INVALID;
    redisReply *r = queue_conn_cmd(&q->backend, "DEL %s%s", QUEUE_DELETED_PREFIX, video_id);
    enum ia_err rc = queue_reply_failed(&q->backend, r, "DEL tombstone") ? IA_ERR_BROKER : IA_OK;
    freeReplyObject(r);
    return rc;
}

enum ia_err queue_video_deleted(struct queue *q, const char *video_id, bool *deleted)
{
    *deleted = false;
    if (!queue_task_id_ok(video_id))
        return IA_ERR_INVALID;
    redisReply *r = queue_conn_cmd(&q->backend, "EXISTS %s%s", QUEUE_DELETED_PREFIX, video_id);
    enum ia_err rc = IA_ERR_BROKER;
    if (!queue_reply_failed(&q->backend, r, "EXISTS tombstone") && r->type == REDIS_REPLY_INTEGER) {
        *deleted = r->integer > 0;
        rc = IA_OK;
    }
    freeReplyObject(r);
    return rc;
}

/* Removes the records among one SCAN page's keys that are bound to task_id; adds to *n. */
static enum ia_err idem_forget_page(struct queue *q, const redisReply *keys, const char *task_id,
                                    long long *n)
{
    if (keys->elements == 0)
        return IA_OK;
    size_t argc = keys->elements + 4;
    const char **argv = xcalloc(argc, sizeof(*argv));
    char nkeys[24];
    snprintf(nkeys, sizeof(nkeys), "%zu", keys->elements);
    argv[0] = "EVAL";
    argv[1] = idem_forget_src;
    argv[2] = nkeys;
    enum ia_err rc = IA_OK;
    for (size_t i = 0; i < keys->elements && !rc; i++) {
        if (keys->element[i]->type != REDIS_REPLY_STRING)
            rc = IA_ERR_BROKER;
        argv[3 + i] = keys->element[i]->str;
    }
    argv[argc - 1] = task_id;
    long long removed = 0;
    if (!rc)
        rc = eval_int(&q->backend, (int)argc, argv, "forget idempotency keys", &removed);
    *n += removed;
    free(argv);
    return rc;
}

/* One SCAN step from cursor (updated; "0" when done). */
static enum ia_err idem_scan_step(struct queue *q, char *cursor, size_t cap, const char *task_id,
                                  long long *n)
{
    redisReply *r = queue_conn_cmd(&q->backend, "SCAN %s MATCH %s* COUNT %s", cursor,
                                   QUEUE_IDEM_PREFIX, IDEM_SCAN_COUNT);
    enum ia_err rc = IA_ERR_BROKER;
    if (!queue_reply_failed(&q->backend, r, "SCAN") && r->type == REDIS_REPLY_ARRAY &&
        r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
        r->element[1]->type == REDIS_REPLY_ARRAY) {
        snprintf(cursor, cap, "%s", r->element[0]->str);
        rc = idem_forget_page(q, r->element[1], task_id, n);
    }
    freeReplyObject(r);
    return rc;
}

enum ia_err queue_idempotency_forget_task(struct queue *q, const char *task_id, long long *n)
{
    *n = 0;
    if (!queue_task_id_ok(task_id))
        return IA_ERR_INVALID;
    char cursor[32] = "0";
    enum ia_err rc;
    do
        rc = idem_scan_step(q, cursor, sizeof(cursor), task_id, n);
    while (!rc && strcmp(cursor, "0") != 0);
    return rc;
}

enum ia_err queue_periodic_turn(struct queue *q, const char *name, long long turn_ms, bool *mine)
{
    *mine = false;
    redisReply *r = queue_conn_cmd(&q->backend, "SET %s%s 1 NX PX %lld", QUEUE_PERIODIC_PREFIX,
                                   name, turn_ms > 0 ? turn_ms : 1);
    enum ia_err rc = queue_reply_failed(&q->backend, r, "SET periodic") ? IA_ERR_BROKER : IA_OK;
    if (!rc)
        *mine = r->type == REDIS_REPLY_STATUS; /* OK when set; nil when another process has it */
    freeReplyObject(r);
    return rc;
}
