/*
 * Internals shared by the files of queue/: the connection wrapper (queue_conn.c), the API side
 * (queue.c) and the worker side (queue_lease.c). Nothing outside queue/ includes this header.
 */
#ifndef IA_QUEUE_QUEUE_INT_H
#define IA_QUEUE_QUEUE_INT_H

#include <hiredis/hiredis.h>
#include <stdbool.h>

#include "queue/queue.h"
#include "queue/redis_url.h"

/* kombu's Redis transport bookkeeping keys (kombu.transport.redis.Channel defaults). */
#define QUEUE_UNACKED_KEY "unacked"
#define QUEUE_UNACKED_INDEX_KEY "unacked_index"
#define QUEUE_BINDING_KEY "_kombu.binding.celery"
#define QUEUE_BINDING_VALUE                                                                        \
    "celery\x06\x16\x06\x16"                                                                       \
    "celery" /* key, sep, pattern, sep, queue */
/* Our own keys: leases held by our workers (tag -> owner token), and messages we refused. */
#define QUEUE_LEASES_KEY "interview-leases"
#define QUEUE_DEAD_KEY "interview-dead"
#define QUEUE_DEAD_MAX 1000
#define QUEUE_ACCEPTED_PREFIX "interview-task-"
#define QUEUE_META_PREFIX "celery-task-meta-"
/*
 * Broker: tasks published and not yet claimed, a list of "<time> <id> <message>" in the order
 * they were written (queue_scripts.c). It replaced a sorted set "interview-pending" and, later,
 * a hash of messages "interview-pending-msg", which nothing reads any more.
 */
#define QUEUE_PENDING_LOG_KEY "interview-pending-log"
/*
 * Broker: interview-published-<id>, written with the message of a task bound to an
 * Idempotency-Key (queue_submit_once()), so that a replay that submits it again publishes nothing.
 */
#define QUEUE_PUBLISHED_PREFIX "interview-published-"
/* Broker: claims of each task (field <id>) and deliveries handed back ("<id> returned"). */
#define QUEUE_DELIVERIES_KEY "interview-deliveries"
/* Backend: interview-fence-<id> = "<claims> <lease token>" of the delivery that may write. */
#define QUEUE_FENCE_PREFIX "interview-fence-"
/*
 * Backend: interview-idem-<HMAC-SHA256(API key, Idempotency-Key)> (SHA-256 of the Idempotency-Key
 * without API keys) = "<body sha256> <task id>".
 */
#define QUEUE_IDEM_PREFIX "interview-idem-"
/*
 * Backend: interview-deleted-<video id>, the tombstone of a deleted video (queue_delete.c), and
 * interview-periodic-<name>, held by the one process that runs a periodic job this period.
 */
#define QUEUE_DELETED_PREFIX "interview-deleted-"
#define QUEUE_PERIODIC_PREFIX "interview-periodic-"
/* Backend: interview-lock-<name> = the owner's token, with an expiry (queue_lock.c). */
#define QUEUE_LOCK_PREFIX "interview-lock-"
/*
 * Backend: webhook events waiting for delivery (queue_webhook.c): a hash of envelopes with their
 * attempt counts and queue times, and a zset of their ids by the time of their next attempt.
 */
#define QUEUE_WEBHOOKS_KEY "interview-webhooks"
#define QUEUE_WEBHOOKS_DUE_KEY "interview-webhooks-due"
/* Backend: direct uploads staged in an object store (queue_upload.c). */
#define QUEUE_UPLOAD_PREFIX_KEY "interview-upload-"
#define QUEUE_UPLOAD_LOCK_PREFIX "interview-upload-lock-"
#define QUEUE_UPLOADS_KEY "interview-uploads"

#define QUEUE_TIMEOUT_MS 1000      /* connect and command timeout */
#define QUEUE_RETRY_MS 250         /* no reconnect attempt sooner than this after a failure */
#define QUEUE_SENTINEL_ASK_MS 1000 /* sentinels are asked again this often while commands flow */

enum queue_script {
    SCRIPT_CLAIM,
    SCRIPT_RENEW,
    SCRIPT_RELEASE,
    SCRIPT_RESTORE,
    SCRIPT_SET_RESULT,
    SCRIPT_PUBLISH,
    SCRIPT_SUBMIT,
    SCRIPT_LOST,
    SCRIPT_IDEM,
    SCRIPT_FENCE,
    SCRIPT_WEBHOOK_CLAIM,
    SCRIPT_WEBHOOK_SETTLE,
    SCRIPT__COUNT
};

/* The Lua source of each script (queue_scripts.c). */
extern const char *const queue_script_src[SCRIPT__COUNT];

/* The sentinels of one master group (sentinel.c). */
struct sentinel;

/*
 * One blocking connection, opened lazily and dropped after any I/O error. With sentinels, url
 * holds the master's credentials and db, and the address the sentinels gave last.
 */
struct queue_conn {
    const char *name; /* "broker" or "backend", for logs */
    struct redis_url url;
    bool url_ok;
    struct sentinel *sentinel; /* NULL for a redis:// URL */
    int64_t next_ask_ms;       /* sentinels: when to ask them again (os_monotonic_ms()) */
    redisContext *c;
    int64_t retry_after_ms; /* os_monotonic_ms() */
    bool down;              /* the last attempt failed; logged once per outage */
    bool announced;         /* sentinels: the master in url was logged */
    bool bound;             /* broker: kombu's queue binding was declared on this connection */
    bool unsure;            /* the last command failed after it was sent: Redis may have run it */
};

struct queue {
    struct queue_conn broker, backend;
    long long result_ttl_s;
    long long max_queued; /* publish refuses beyond this many waiting messages; 0: no bound */
    char sha[SCRIPT__COUNT][41];
    queue_event_fn lost_event; /* the webhook event of a task_lost failure (may be NULL) */
    void *lost_event_ctx;
};

/* Wall-clock time in seconds. */
double queue_wall_now(void);

/*
 * The owner-token lock of queue_lock_take() on a whole key (queue_lock.c), for the other locks of
 * the queue (an upload's appends): SET NX PX, and a release that deletes only the owner's.
 */
enum ia_err queue_lock_key_take(struct queue *q, const char *key, const char *token,
                                long long ttl_ms, bool *got);
enum ia_err queue_lock_key_release(struct queue *q, const char *key, const char *token,
                                   bool *released);

/*
 * Parses url (redis:// or kombu's sentinel:// list; master_name names the group the sentinels
 * watch) without connecting. A URL that does not parse is logged, and every command fails.
 */
void queue_conn_init(struct queue_conn *qc, const char *name, const char *url,
                     const char *master_name);
/* Closes the connection; it reopens on the next command. */
void queue_conn_close(struct queue_conn *qc);
/* Closes the connection and frees what queue_conn_init() allocated. */
void queue_conn_cleanup(struct queue_conn *qc);
/*
 * Runs one command (hiredis format, %s and %b allowed); NULL when Redis is unreachable, with
 * qc->unsure set when the command was sent and may have run (a timeout, a lost connection).
 * A command whose idle connection the server had dropped is sent again once on a new one.
 */
redisReply *queue_conn_cmd(struct queue_conn *qc, const char *fmt, ...);
/* Runs a command given as argv, as queue_conn_cmd() does. */
redisReply *queue_conn_argv(struct queue_conn *qc, int argc, const char **argv, const size_t *lens);
/*
 * Runs one of the Lua scripts by EVALSHA, falling back to EVAL on NOSCRIPT. argv holds the
 * nkeys keys, then the arguments (lens may be NULL for C strings). NULL when unreachable.
 */
redisReply *queue_eval(struct queue *q, struct queue_conn *qc, enum queue_script s, int nkeys,
                       int argc, const char **argv, const size_t *lens);
/* Computes the SHA-1 of every script into q->sha. */
void queue_scripts_init(struct queue *q);
/* True when r is an error reply; logs it. */
bool queue_reply_failed(const struct queue_conn *qc, const redisReply *r, const char *what);

/* queue_set_failure() with no fence, queuing ev (may be NULL) with the FAILURE it writes. */
enum ia_err queue_set_failure_event(struct queue *q, const char *task_id, const char *code,
                                    const char *message, const struct queue_webhook_event *ev);
/* Sentinels of the master group master_name, from a parsed URL. */
struct sentinel *sentinel_new(const struct redis_sentinel_url *u, const char *master_name);
void sentinel_free(struct sentinel *s);
/*
 * Asks the sentinels in order for the master's address, within QUEUE_TIMEOUT_MS in all; the one
 * that answered moves to the front and its connection is kept. False when none answered.
 */
bool sentinel_get_master(struct sentinel *s, struct redis_addr *out);
const char *sentinel_master_name(const struct sentinel *s);
/* True when ROLE on c says master (false for a replica, a sentinel, or no answer). */
bool sentinel_role_is_master(redisContext *c);

/*
 * What a submit writes: the accepted record interview-task-<id> = {"video_url", "submitted_at"},
 * plus the kwargs' "callback_url" when there is one (a task_lost failure sends its webhook
 * event), and the task's Celery message. NULL when video_url is not UTF-8.
 */
char *queue_accepted_text(const char *video_url, const json_t *kwargs);
char *queue_task_message(const char *task_id, const char *video_url, const json_t *kwargs);

/* Task ids name Redis keys and appear in logs: printable ASCII without spaces, short. */
bool queue_task_id_ok(const char *id);

#endif
