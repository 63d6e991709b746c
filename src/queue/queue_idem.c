/*
 * Idempotency keys for POST /submit: a client's key is bound to the SHA-256 of the request body
 * and the task id it produced, with SET NX EX in one script, so that a repeated request returns
 * the same task and a different body under the same key is refused. Keys are scoped to the API
 * key that sent them, so that one client can neither replay nor probe another's.
 */
#include "queue/queue.h"

#include <stdio.h>
#include <string.h>

#include "queue/queue_int.h"
#include "util/crypto.h"
#include "util/str.h"

/*
 * "interview-idem-<hex digest>": the key is untrusted, so only a digest names a Redis key. The
 * digest is HMAC-SHA256(scope, key) for a scoped key, SHA-256(key) for an unscoped one.
 */
static void idem_redis_key(const char *scope, const char *key, char *out, size_t outlen)
{
    unsigned char md[SHA256_LEN];
    char hex[2 * SHA256_LEN + 1];
    if (scope && scope[0])
        crypto_hmac_sha256(scope, strlen(scope), key, strlen(key), md);
    else
        crypto_sha256(key, strlen(key), md);
    str_hex(hex, md, SHA256_LEN);
    snprintf(out, outlen, "%s%s", QUEUE_IDEM_PREFIX, hex);
}

/* Reads the script's {1|0, value} answer into *res and prior_id. */
static enum ia_err idem_answer(const redisReply *r, const char *body_sha256,
                               enum queue_idem_result *res, char *prior_id, size_t prior_len)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_STRING)
        return IA_ERR_BROKER;
    const redisReply *v = r->element[1];
    if (r->element[0]->integer == 1) {
        *res = QUEUE_IDEM_NEW;
        snprintf(prior_id, prior_len, "%.*s", (int)v->len, v->str);
        return IA_OK;
    }
    size_t shalen = strlen(body_sha256);
    const char *space = memchr(v->str, ' ', v->len);
    if (!space || (size_t)(space - v->str) != shalen || memcmp(v->str, body_sha256, shalen)) {
        *res = QUEUE_IDEM_CONFLICT; /* also when the stored value is not ours: never reuse it */
        return IA_OK;
    }
    *res = QUEUE_IDEM_REPLAY;
    snprintf(prior_id, prior_len, "%.*s", (int)(v->len - shalen - 1), space + 1);
    return IA_OK;
}

enum ia_err queue_idempotency_bind(struct queue *q, const char *scope, const char *key,
                                   const char *body_sha256, const char *task_id, long long ttl_s,
                                   enum queue_idem_result *res, char *prior_id, size_t prior_len)
{
    char rkey[sizeof(QUEUE_IDEM_PREFIX) + 2 * SHA256_LEN + 1], ttl[24];
    if (!key || !key[0] || !body_sha256 || !task_id || ttl_s <= 0 || prior_len == 0)
        return IA_ERR_INVALID;
    idem_redis_key(scope, key, rkey, sizeof(rkey));
    snprintf(ttl, sizeof(ttl), "%lld", ttl_s);
    const char *argv[] = {rkey, body_sha256, task_id, ttl};
    redisReply *r = queue_eval(q, &q->backend, SCRIPT_IDEM, 1, 4, argv, NULL);
    enum ia_err rc = IA_ERR_BROKER;
    if (!queue_reply_failed(&q->backend, r, "idempotency key"))
        rc = idem_answer(r, body_sha256, res, prior_id, prior_len);
    freeReplyObject(r);
    return rc;
}
