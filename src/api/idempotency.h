/* Idempotency-Key support for POST /submit (see idempotency.c). */
#ifndef IA_API_IDEMPOTENCY_H
#define IA_API_IDEMPOTENCY_H

#include <stdbool.h>
#include <stddef.h>

struct api_call;

#define IDEMPOTENCY_TTL_S 86400 /* a key is remembered this long */
#define IDEMPOTENCY_KEY_MAX 255

/*
 * Call before queuing task_id. Without an Idempotency-Key header: returns false, *bound false.
 * With one: binds it to the SHA-256 of body and task_id and returns false with *bound true (go
 * on and queue task_id; call api_idempotency_abandon() if that fails), or answers the request
 * itself and returns true: 200 with the earlier task id for the same key and body, 409 for the
 * same key with another body, 422 for a malformed key, 503 when Redis is unreachable.
 */
bool api_idempotency_begin(struct api_call *call, const unsigned char *body, size_t len,
                           const char *task_id, bool *bound);
/* Unbinds the request's key after its task could not be queued, so that a retry may work. */
void api_idempotency_abandon(struct api_call *call);

#endif
