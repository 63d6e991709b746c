/*
 * The task queue: Celery protocol v2 messages on kombu's Redis transport (broker), and Celery
 * result-backend records (backend). Only queue/ includes hiredis. One struct queue per thread:
 * it holds blocking connections with short timeouts and reconnects by itself.
 */
#ifndef IA_QUEUE_QUEUE_H
#define IA_QUEUE_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

struct config;
struct queue;
typedef struct json_t json_t;

#define QUEUE_TASK_NAME "process_video"
#define QUEUE_NAME "celery"

/* What the API shows of a task. */
enum task_state {
    TASK_UNKNOWN,   /* never accepted, or expired */
    TASK_QUEUED,    /* accepted, no worker has started it */
    TASK_RUNNING,   /* STARTED or PROGRESS; stage and progress tell more */
    TASK_RETRYING,  /* RETRY: waiting to run again after a transient failure */
    TASK_SUCCEEDED, /* SUCCESS; result holds the result dict */
    TASK_FAILED,    /* FAILURE; error_code and error_message tell why */
};

struct task_status {
    enum task_state state;
    char stage[32];          /* queued|fetching|probing|processing|analysing|publishing|... */
    double progress;         /* 0.0 .. 1.0 */
    json_t *result;          /* owned; the result dict when TASK_SUCCEEDED, else NULL */
    char error_code[48];     /* when TASK_FAILED */
    char error_message[256]; /* when TASK_FAILED; safe for clients */
};

/* A message this worker holds under a lease. */
struct claimed_task {
    char task_id[64];
    char delivery_tag[64];
    char *task_name;      /* owned */
    json_t *args;         /* owned; the positional arguments array */
    json_t *kwargs;       /* owned; the keyword arguments object ({} when none) */
    int retries;          /* from the message headers */
    char *raw;            /* owned; the message exactly as it was on the queue */
    char lease_token[40]; /* who holds the lease: renew/ack/requeue/retry check it */
    int deliveries;       /* 1 + earlier deliveries whose worker stopped without settling them */
    char fence[64];       /* "<claims> <lease_token>": the state writes of this delivery check it */
};

/*
 * Parses CELERY_BROKER_URL and CELERY_BACKEND_URL (redis://, or kombu's sentinel:// lists) as
 * the queue will: IA_ERR_INVALID with the option and the reason in err (never a password).
 */
enum ia_err queue_config_check(const struct config *cfg, char *err, size_t errlen);
/* Prints a "# broker: ..." and a "# backend: ..." line: hosts, sentinels, db; no password. */
void queue_config_print(const struct config *cfg, FILE *out);

/* Connects lazily on first use. Never returns NULL. */
struct queue *queue_new(const struct config *cfg);
void queue_free(struct queue *q);

/* True when both broker and backend answer PING. */
bool queue_ping(struct queue *q);

/*
 * API side: records that task_id was accepted (so /status knows it) and publishes a
 * process_video(video_url, **kwargs) message; kwargs is a JSON object (borrowed) or NULL for
 * none, e.g. {"analysis": false}. IA_ERR_BROKER when Redis is unreachable (within ~1 s; nothing
 * recorded), IA_ERR_BROKER_UNSURE when the publish went unanswered (the message may be on the
 * queue, so the accepted record is kept), IA_ERR_TOO_LARGE (nothing recorded) when MAX_QUEUED
 * messages already wait.
 */
enum ia_err queue_submit(struct queue *q, const char *task_id, const char *video_url,
                         const json_t *kwargs);
/*
 * As queue_submit(), for a task bound to an Idempotency-Key, which a replay of its request
 * submits again under the same id until it is known to be queued: the message is published at
 * most once in once_ttl_s (a marker written in the same step as the message; IA_OK, publishing
 * nothing, when it is there), the accepted record is written only when there is none, and it is
 * kept when the publish fails (a replay may be submitting the same task at the same time).
 */
enum ia_err queue_submit_once(struct queue *q, const char *task_id, const char *video_url,
                              const json_t *kwargs, long long once_ttl_s);
/* The argument prefix that names a direct upload instead of a URL: "upload:<upload_id>". */
#define QUEUE_UPLOAD_PREFIX "upload:"
/*
 * As queue_submit() for a complete direct upload: the message's one argument is
 * "upload:<upload_id>" (upload_id a canonical UUID, else IA_ERR_INVALID). Same record, same queue.
 */
enum ia_err queue_submit_upload(struct queue *q, const char *task_id, const char *upload_id,
                                const json_t *kwargs);
/* The upload id when video_arg is "upload:<canonical UUID>", else NULL. Borrowed from video_arg. */
const char *queue_upload_id(const char *video_arg);

/*
 * The state of a direct upload staged in an object store (store/store_upload_s3.c), kept in
 * Redis so that any API process can continue it: interview-upload-<id> (a hash: length,
 * metadata, offset, parts, task), interview-upload-lock-<id> (the owner token of the request
 * appending now, with a lease) and interview-uploads (a zset of ids by the time of their last
 * write, server TIME, for the sweep). Every write that follows an append is fenced by the lock's
 * token. Errors: IA_ERR_BROKER when Redis cannot be asked.
 */
#define QUEUE_UPLOAD_METADATA_MAX 4096
struct queue_upload {
    uint64_t length, offset;
    unsigned parts;   /* pieces appended so far */
    char task_id[64]; /* "" until the upload made its task */
    char metadata[QUEUE_UPLOAD_METADATA_MAX];
};
/* Records a new upload (offset 0) for ttl_s seconds; IA_ERR_INVALID when id exists already. */
enum ia_err queue_upload_create(struct queue *q, const char *id, uint64_t length,
                                const char *metadata, long long ttl_s);
/* Reads an upload's state; IA_ERR_NOT_FOUND when there is none. */
enum ia_err queue_upload_get(struct queue *q, const char *id, struct queue_upload *out);
/* Takes the append lock of id for lease_ms with token; IA_ERR_INVALID when another holds it. */
enum ia_err queue_upload_lock(struct queue *q, const char *id, const char *token,
                              long long lease_ms);
/* Releases the lock of id if token still holds it (a lock taken over since is left alone). */
void queue_upload_unlock(struct queue *q, const char *id, const char *token);
/*
 * Moves the offset of id from `from` to `to` (one more piece) while token holds the lock and
 * keeps the state ttl_s more seconds. IA_ERR_INVALID when the lock was lost or the offset is not
 * `from`, IA_ERR_NOT_FOUND when the state is gone.
 */
enum ia_err queue_upload_advance(struct queue *q, const char *id, const char *token, uint64_t from,
                                 uint64_t to, long long ttl_s);
/*
 * Records task_id as the task of id under token's lock. IA_ERR_INVALID when the upload has a
 * task already (or the lock was lost), IA_ERR_NOT_FOUND when the state is gone. An empty
 * task_id forgets the task.
 */
enum ia_err queue_upload_set_task(struct queue *q, const char *id, const char *token,
                                  const char *task_id, long long ttl_s);
/* Removes the state of id (and its lock and index entry). */
enum ia_err queue_upload_forget(struct queue *q, const char *id);
/*
 * Up to max ids (canonical UUIDs, 37 bytes each with the NUL) of uploads not written for idle_s
 * seconds that have no task, or not written for done_s seconds (or whose state is gone), in
 * ids; their number in *n.
 */
enum ia_err queue_upload_stale(struct queue *q, long long idle_s, long long done_s, size_t max,
                               char (*ids)[37], size_t *n);
/* Number of messages waiting on the queue, or -1 when Redis is unreachable. */
long long queue_length(struct queue *q);
/* Reads a task's state; the caller calls task_status_cleanup(). IA_ERR_BROKER on outage. */
enum ia_err queue_status(struct queue *q, const char *task_id, struct task_status *out);
void task_status_cleanup(struct task_status *st);

/*
 * Worker side: atomically moves one message from the queue into kombu's unacked bookkeeping
 * under a lease of lease_s seconds, counts the delivery, and takes the task's fence in the
 * backend (only this delivery's state writes pass it from then on). Waits up to wait_ms for one,
 * and stops waiting as soon as *stop (may be NULL) is true. *out is NULL when none came.
 * A malformed message is moved to the list "interview-dead" and IA_ERR_INVALID returned (*out
 * NULL): log it and call again.
 */
enum ia_err queue_claim(struct queue *q, int lease_s, int wait_ms, const atomic_bool *stop,
                        struct claimed_task **out);
/*
 * Extends the lease of a claimed task and its fence; IA_ERR_NOT_FOUND when either was lost to
 * another delivery (or ran out): the task must stop, it can no longer write its state.
 */
enum ia_err queue_lease_renew(struct queue *q, const struct claimed_task *t, int lease_s);
/* Removes the message for good (after SUCCESS or FAILURE was written). */
enum ia_err queue_ack(struct queue *q, const struct claimed_task *t);
/* Puts the message back at the head of the queue, byte for byte (a shutdown). */
enum ia_err queue_requeue(struct queue *q, const struct claimed_task *t);
/* Returns messages whose lease ran out to the queue; the number restored, or -1. */
long long queue_restore_expired(struct queue *q);
void claimed_task_free(struct claimed_task *t);
/*
 * Fails accepted tasks whose message vanished (purged queue, lost write) with code task_lost:
 * looks at a bounded batch of tasks published more than age_s ago and never claimed, and fails
 * those whose message is neither on the queue nor delivered and that have no result record.
 * Returns how many were failed, or -1 when Redis is unreachable. Any process may call it.
 */
long long queue_fail_lost(struct queue *q, int age_s);

/* What queue_idempotency_bind() found. */
enum queue_idem_result {
    QUEUE_IDEM_NEW,      /* the key is now bound to this body and task id */
    QUEUE_IDEM_REPLAY,   /* bound before to the same body: prior_id is that task */
    QUEUE_IDEM_CONFLICT, /* bound before to a different body */
};

/*
 * Binds an Idempotency-Key to (body_sha256, task_id) for ttl_s seconds unless it is bound
 * already (atomic SET NX EX). Keys live per scope (the client's API key; NULL or "" for the one
 * scope of a service without keys): the same key in another scope is another key. On IA_OK *res
 * says what happened and prior_id holds the task id the key is bound to (NEW, REPLAY).
 * IA_ERR_BROKER when Redis is unreachable.
 */
enum ia_err queue_idempotency_bind(struct queue *q, const char *scope, const char *key,
                                   const char *body_sha256, const char *task_id, long long ttl_s,
                                   enum queue_idem_result *res, char *prior_id, size_t prior_len);

/*
 * Deletion (queue_delete.c; a video is named after its task, so video_id is also the task id).
 * Writes the tombstone of the video for RESULT_TTL and, in the same step, removes its task's
 * result record, accepted record and fence: the running delivery can write nothing more and
 * its next lease renewal stops it, and no later delivery runs (queue_video_deleted()). *existed
 * is true when a result or accepted record was there. IA_ERR_BROKER when Redis is unreachable.
 */
enum ia_err queue_video_forget(struct queue *q, const char *video_id, bool *existed);
/* Removes a tombstone written by queue_video_forget() for a video that turned out not to exist. */
enum ia_err queue_video_unforget(struct queue *q, const char *video_id);
/* Worker side: *deleted is true when the video was deleted (its tombstone is there). */
enum ia_err queue_video_deleted(struct queue *q, const char *video_id, bool *deleted);
/*
 * Removes every Idempotency-Key record bound to task_id, in any scope (a SCAN of the backend's
 * idempotency keys, a page at a time); *n receives how many. IA_ERR_BROKER on an outage.
 */
enum ia_err queue_idempotency_forget_task(struct queue *q, const char *task_id, long long *n);
/*
 * Takes a turn of the periodic job name for turn_ms (SET NX PX in the backend): *mine is true
 * for the one process, of all that share the backend, that should run it now. A turn a little
 * shorter than the period lets the process that woke first take the next one.
 */
enum ia_err queue_periodic_turn(struct queue *q, const char *name, long long turn_ms,
                                bool *mine);

/*
 * Locks shared by every process on the backend (queue_lock.c): interview-lock-<name> holds the
 * owner's token (a fresh UUID per holder) and expires after ttl_ms, so that a holder that died
 * blocks the others no longer than that. got (held) is set true when this owner has it. Renewal and
 * release compare the token in a script: only the owner extends or removes its lock, and a
 * renewal that succeeds proves the lock was never lost since it was taken (an expired lock has
 * no key or another owner's token). name: printable ASCII without spaces. IA_ERR_BROKER.
 */
enum ia_err queue_lock_take(struct queue *q, const char *name, const char *token, long long ttl_ms,
                            bool *got);
enum ia_err queue_lock_renew(struct queue *q, const char *name, const char *token,
                             long long ttl_ms, bool *held);
enum ia_err queue_lock_release(struct queue *q, const char *name, const char *token);

/*
 * Writes celery-task-meta-<task_id> (and publishes it, as Celery's Redis backend does), unless
 * a final state (SUCCESS, FAILURE, REVOKED) is there already: that one is kept (IA_OK).
 * status: "STARTED", "PROGRESS", "RETRY", "SUCCESS" or "FAILURE".
 * result: for SUCCESS the result dict; for PROGRESS/STARTED the meta dict; borrowed.
 * For FAILURE use queue_set_failure().
 */
enum ia_err queue_set_state(struct queue *q, const char *task_id, const char *status,
                            json_t *result);
enum ia_err queue_set_failure(struct queue *q, const char *task_id, const char *code,
                              const char *message);
/* Writes a RETRY record whose exception carries our code and message (shown while retrying). */
enum ia_err queue_set_retry(struct queue *q, const char *task_id, const char *code,
                            const char *message);
/*
 * The same three, written by the delivery that holds t: the script that writes checks t's fence,
 * so nothing is written once another delivery took the task over or the lease ran out
 * (IA_ERR_NOT_FOUND: stop, and do not acknowledge). A final state (SUCCESS, FAILURE) ends the
 * fence. As for every write, a final state already there is kept (IA_OK).
 */
enum ia_err queue_task_set_state(struct queue *q, const struct claimed_task *t,
                                 const char *status, json_t *result);
enum ia_err queue_task_set_failure(struct queue *q, const struct claimed_task *t,
                                   const char *code, const char *message);
enum ia_err queue_task_set_retry(struct queue *q, const struct claimed_task *t, const char *code,
                                 const char *message);
/*
 * Webhook events (queue_webhook.c), kept in the backend beside the results. An event to queue
 * with a task's final state: its id, the callback URL and the body as it will be signed and sent.
 */
struct queue_webhook_event {
    const char *event_id; /* printable ASCII without spaces, at most 63 bytes (a UUID) */
    const char *url;
    const char *body;
};
/*
 * Writes SUCCESS (result: the result dict) or FAILURE as queue_task_set_state() and
 * queue_task_set_failure() do and, in the same atomic step, queues ev (may be NULL) for
 * delivery, due at once. The event is queued only when this call writes the final state: a
 * final state already there (IA_OK, nothing written) or a lost fence (IA_ERR_NOT_FOUND) queue
 * nothing, so each final state has at most one event.
 */
enum ia_err queue_task_succeed(struct queue *q, const struct claimed_task *t, json_t *result,
                               const struct queue_webhook_event *ev);
enum ia_err queue_task_fail(struct queue *q, const struct claimed_task *t, const char *code,
                            const char *message, const struct queue_webhook_event *ev);

/*
 * Builds the webhook event of a task that failed before any worker ran it (task_lost), for its
 * callback URL: fills ev (event_id in id_buf, 64 bytes) and returns the body (the caller frees
 * it), or returns NULL for no event.
 */
typedef char *(*queue_event_fn)(void *ctx, const char *task_id, const char *callback_url,
                                const char *code, const char *message,
                                struct queue_webhook_event *ev, char *id_buf);
/*
 * Makes queue_fail_lost() on q queue an event, built by fn, with each task_lost failure of a
 * task submitted with a callback_url (kept in its accepted record). fn NULL: none (the default).
 */
void queue_set_lost_events(struct queue *q, queue_event_fn fn, void *ctx);

/* A webhook event claimed for one delivery attempt. */
struct queue_webhook {
    char event_id[64];
    char task_id[64];
    char *url;         /* owned */
    char *body;        /* owned */
    long long attempt; /* 1 for the first; fences queue_webhook_settle() */
    double queued_at;  /* server time (Unix seconds) when the event was queued */
    double now;        /* server time of the claim */
};
/*
 * Claims up to max due events (their time has come), each for lease_s seconds: a sender that
 * dies leaves its events to be claimed again then. *out receives an array of *n events (free
 * with queue_webhooks_free). An event whose envelope does not parse is removed and logged.
 * IA_ERR_BROKER when Redis is unreachable.
 */
enum ia_err queue_webhook_claim(struct queue *q, int lease_s, int max, struct queue_webhook **out,
                                size_t *n);
/*
 * Ends the attempt on w: removes the event (retry_in_s < 0: delivered or dropped) or makes it due
 * again retry_in_s seconds from now (server time). IA_ERR_NOT_FOUND when another claim of the
 * event came after this one (the lease ran out), IA_ERR_BROKER on an outage.
 */
enum ia_err queue_webhook_settle(struct queue *q, const struct queue_webhook *w, double retry_in_s);
void queue_webhooks_free(struct queue_webhook *ws, size_t n);
/* The JSON envelope stored for ev: {"url", "task_id", "body"} (a heap string, or NULL). */
char *queue_webhook_envelope(const char *task_id, const struct queue_webhook_event *ev);

/* The stored Celery status of a task ("SUCCESS", ...) into buf, or "" when none. */
enum ia_err queue_get_celery_status(struct queue *q, const char *task_id, char *buf, size_t buflen);

#endif
