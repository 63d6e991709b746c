/* Idempotency-Key support for POST /submit (see idempotency.c). */
#ifndef IA_API_IDEMPOTENCY_H
#define IA_API_IDEMPOTENCY_H

#include <stdbool.h>
#include <stddef.h>

struct api_call;

#define IDEMPOTENCY_TTL_S 86400 /* a key is remembered this long */
#define IDEMPOTENCY_KEY_MAX 255

/* What api_idempotency_begin() found. */
enum api_idem {
    API_IDEM_NONE,     /* no Idempotency-Key: queue the task as usual */
    API_IDEM_NEW,      /* the key is now bound to the body and task_id: queue it once */
    API_IDEM_REPLAY,   /* bound before to the same body: task_id is that task; queue it once */
    API_IDEM_ANSWERED, /* the request was answered */
};

/*
 * Call before queuing task_id (a buffer of UUID_STR_LEN + 1 holding a new id). Binds the request's
 * Idempotency-Key, if any, to the SHA-256 of body and task_id. A key bound before to the same body
 * replaces task_id with its task; when that task has a result record, the request is answered
 * (200, Idempotent-Replayed). Otherwise a key, new or replayed, stays bound, and the caller queues
 * task_id with queue_submit_once(), which publishes it only if no earlier request did: so a
 * replay never answers 200 for a task that nothing backs, whatever failed before. The request is
 * also answered with 409 for the same key with another body, 422 for a malformed key, 503 when
 * Redis is unreachable.
 */
enum api_idem api_idempotency_begin(struct api_call *call, const unsigned char *body, size_t len,
                                    char *task_id);
/* Adds the headers of a replay's answer (Idempotent-Replayed) before its 200. */
void api_idempotency_replayed(struct api_call *call, const char *task_id);

#endif
