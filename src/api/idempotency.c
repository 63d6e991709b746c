/*
 * Idempotency-Key on POST /submit: the same key with the same body returns the same task id
 * for IDEMPOTENCY_TTL_S; the same key with another body is refused with 409. The binding lives
 * in Redis (queue_idempotency_bind), so it holds across API processes, and belongs to the API
 * key that made it: another client's same key is another key.
 */
#include "api/idempotency.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/auth.h"
#include "api/internal.h"
#include "core/log.h"
#include "http/http.h"
#include "queue/queue.h"
#include "util/crypto.h"
#include "util/str.h"
#include "util/uuid.h"

#define IDEMPOTENCY_HEADER "Idempotency-Key"

/* 1..IDEMPOTENCY_KEY_MAX printable ASCII characters (spaces allowed inside). */
static bool key_valid(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > IDEMPOTENCY_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (key[i] < ' ' || key[i] > '~')
            return false;
    return true;
}

/* The answer to a replayed request: the same as when the task was first accepted. */
static void reply_replay(struct api_call *call, const char *task_id)
{
    char location[64];
    snprintf(location, sizeof(location), "/status/%s", task_id);
    http_reply_header(call->req, "Location", location);
    http_reply_header(call->req, "Idempotent-Replayed", "true");
    api_reply_json(call->req, 200, json_pack("{s:s}", "task_id", task_id));
}

/* Answers per the binding's outcome; true when the request was answered. */
static bool reply_for(struct api_call *call, enum queue_idem_result res, const char *prior)
{
    if (res == QUEUE_IDEM_NEW)
        return false;
    if (res == QUEUE_IDEM_REPLAY && uuid_is_canonical(prior, strlen(prior))) {
        log_msg(LOG_INFO, "api", "task=%s returned again for its idempotency key", prior);
        reply_replay(call, prior);
        return true;
    }
    api_reply_error(call->req, 409, "idempotency_key_reused",
                    "this Idempotency-Key was used with a different request body");
    return true;
}

bool api_idempotency_begin(struct api_call *call, const unsigned char *body, size_t len,
                           const char *task_id, bool *bound)
{
    *bound = false;
    const char *key = http_request_header(call->req, IDEMPOTENCY_HEADER);
    if (!key)
        return false;
    if (!key_valid(key)) {
        api_reply_error(call->req, 422, "invalid_input",
                        "Idempotency-Key must be 1 to 255 printable ASCII characters");
        return true;
    }
    unsigned char md[SHA256_LEN];
    char sha[2 * SHA256_LEN + 1], prior[64];
    crypto_sha256(body, len, md);
    str_hex(sha, md, SHA256_LEN);
    enum queue_idem_result res;
    const char *scope = api_auth_request_key(call->t->app->auth, call->req);
    enum ia_err err = queue_idempotency_bind(call->t->queue, scope, key, sha, task_id,
                                             IDEMPOTENCY_TTL_S, &res, prior, sizeof(prior));
    if (err) {
        api_reply_ia_error(call->req, err);
        return true;
    }
    *bound = res == QUEUE_IDEM_NEW;
    return reply_for(call, res, prior);
}

void api_idempotency_abandon(struct api_call *call)
{
    const char *key = http_request_header(call->req, IDEMPOTENCY_HEADER);
    if (key)
        queue_idempotency_forget(call->t->queue,
                                 api_auth_request_key(call->t->app->auth, call->req), key);
}
