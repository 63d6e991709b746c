/*
 * Webhooks: a signed JSON event POSTed to a task's callback_url when the task succeeds or fails,
 * kept in Redis until a receiver answers 2xx, retried with exponential backoff and jitter for up
 * to WEBHOOK_MAX_AGE_S. The worker queues an event in the same atomic step that writes the
 * task's final state (queue_task_succeed/queue_task_fail); sender threads in each worker
 * process deliver due events (webhook_sender.c). See docs/webhooks.md.
 */
#ifndef IA_WEBHOOK_WEBHOOK_H
#define IA_WEBHOOK_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct netpolicy;
struct queue_webhook;
struct queue_webhook_event;
typedef struct json_t json_t;

#define WEBHOOK_SIGNATURE_HEADER "Interview-Signature"
#define WEBHOOK_EVENT_ID_HEADER "Interview-Event-Id"
#define WEBHOOK_ATTEMPT_HEADER "Interview-Delivery-Attempt"
#define WEBHOOK_URL_MAX 2048
/* "t=<up to 20 digits>,v1=<64 hex>" and its NUL. */
#define WEBHOOK_SIGNATURE_MAX 96

/*
 * The signature header's value for body signed at Unix time t: "t=<t>,v1=<hex>", where hex is
 * HMAC-SHA256(secret, "<t>.<body>") in lower-case hex (Stripe's scheme). out holds
 * WEBHOOK_SIGNATURE_MAX bytes.
 */
void webhook_signature(const char *secret, long long t, const char *body, size_t len,
                       char out[WEBHOOK_SIGNATURE_MAX]);

/*
 * The delay in milliseconds before attempt number `attempt` + 1 after attempt `attempt` (1, 2, ...)
 * failed: base_s doubled at each attempt, at most max_s, then "equal jitter": half of it plus
 * jitter (0.0 to 1.0) times the other half. Deterministic given jitter.
 */
long long webhook_backoff_ms(long long base_s, long long max_s, int attempt, double jitter);

/* What one delivery attempt came to (webhook_attempt_outcome). */
enum webhook_outcome {
    WEBHOOK_DELIVERED, /* the receiver answered 2xx: the event is removed */
    WEBHOOK_RETRY,     /* failed; another attempt is scheduled */
    WEBHOOK_DROPPED,   /* failed, or expired, and no attempt is left (WEBHOOK_MAX_AGE_S) */
    WEBHOOK_REFUSED,   /* the URL or the address connected to is not allowed: dropped */
};

/*
 * The body of an event as it is signed and sent, for task_id ending with status "success"
 * (result: the task's result dict, borrowed, whose URLs are copied) or "failed" (error_code and
 * error_message). alert_level may be NULL (no analysis). A heap string.
 */
char *webhook_event_body(const char *event_id, const char *task_id, const char *status,
                         const json_t *result, const char *alert_level, const char *error_code,
                         const char *error_message, long long created);

/*
 * The event of a task that failed before any worker ran it (queue_fail_lost, a queue_event_fn):
 * a new event id in id_buf (64 bytes), ev filled, the body returned (the caller frees it).
 */
char *webhook_lost_event(void *ctx, const char *task_id, const char *callback_url, const char *code,
                         const char *message, struct queue_webhook_event *ev, char *id_buf);

/* The callback URL a task's kwargs carry ("callback_url"), or NULL. Borrowed from kwargs. */
const char *webhook_task_callback(const json_t *kwargs);

/*
 * The one place where the outcome of an attempt is known: logs one line with the task and event
 * ids, the attempt number and the receiver's host (never the path, query or secret). A counter
 * of outcomes belongs here. status is the HTTP status (0: none); next_s the delay before the
 * next attempt (WEBHOOK_RETRY only).
 */
void webhook_attempt_outcome(const struct queue_webhook *w, enum webhook_outcome outcome,
                             long status, const char *detail, double next_s);

/* The sender threads of a worker process (webhook_sender.c). */
struct webhook_sender;
/*
 * Starts the threads that deliver due events when WEBHOOK_SECRET is set (else returns NULL:
 * nothing is sent).
 * cfg and policy must outlive it. Start it with the signals the program waits for blocked.
 */
struct webhook_sender *webhook_sender_start(const struct config *cfg,
                                            const struct netpolicy *policy);
/*
 * Stops the threads: an attempt in progress is cut short and its event made due again at once
 * (another worker, or this one after a restart, sends it). NULL is fine.
 */
void webhook_sender_stop(struct webhook_sender *s);

#endif
