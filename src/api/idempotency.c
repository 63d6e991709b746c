/*
 * Idempotency-Key on POST /submit: the same key with the same body returns the same task id
 * for IDEMPOTENCY_TTL_S; the same key with another body is refused with 409. The binding lives
 * in Redis (queue_idempotency_bind), so it holds across API processes, and belongs to the API
 * key that made it: another client's same key is another key. A key is never unbound when its
 * submit fails: a replay submits the same task again (queue_submit_once), so a retry after a
 * failure half-way (a Redis failover) neither loses the task nor runs it twice.
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

void api_idempotency_replayed(struct api_call *call, const char *task_id)
{
    log_msg(LOG_INFO, "api", "task=%s returned again for its idempotency key", task_id);
    http_reply_header(call->req, "Idempotent-Replayed", "true");
}

/*
 * A replay of prior: answers it (true) when the task has a result record, so it surely ran or
 * runs; false when it has none (only an accepted record, or nothing: the request that bound the
 * key may have failed half-way), to be queued again under its id.
 */
static bool replay_answered(struct api_call *call, const char *prior)
{
    struct task_status st;
    enum ia_err err = queue_status(call->t->queue, prior, &st);
    bool known = !err && st.state != TASK_UNKNOWN && st.state != TASK_QUEUED;
    task_status_cleanup(&st);
    if (err) {
        api_reply_ia_error(call->req, err);
        return true;
    }
    if (!known)
        return false;
    char location[64];
    snprintf(location, sizeof(location), "/status/%s", prior);
    api_idempotency_replayed(call, prior);
    http_reply_header(call->req, "Location", location);
    api_reply_json(call->req, 200, json_pack("{s:s}", "task_id", prior));
    return true;
}

enum api_idem api_idempotency_begin(struct api_call *call, const unsigned char *body, size_t len,
                                    char *task_id)
{
    const char *key = http_request_header(call->req, IDEMPOTENCY_HEADER);
    if (!key)
        return API_IDEM_NONE;
    if (!key_valid(key)) {
        api_reply_error(call->req, 422, "invalid_input",
                        "Idempotency-Key must be 1 to 255 printable ASCII characters");
        return API_IDEM_ANSWERED;
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
        return API_IDEM_ANSWERED;
    }
    if (res == QUEUE_IDEM_NEW)
        return API_IDEM_NEW;
    if (res != QUEUE_IDEM_REPLAY || strlen(prior) != UUID_STR_LEN ||
        !uuid_is_canonical(prior, UUID_STR_LEN)) {
        api_reply_error(call->req, 409, "idempotency_key_reused",
                        "this Idempotency-Key was used with a different request body");
        return API_IDEM_ANSWERED;
    }
    memcpy(task_id, prior, UUID_STR_LEN + 1);
    return replay_answered(call, task_id) ? API_IDEM_ANSWERED : API_IDEM_REPLAY;
}
