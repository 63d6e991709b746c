/* Access control: bearer API keys, and HMAC-signed expiring media URLs. */
#ifndef IA_API_AUTH_H
#define IA_API_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct http_request;
struct api_auth;

enum route_access {
    ACCESS_PUBLIC, /* /healthz, /readyz */
    ACCESS_API,    /* needs a bearer key when API_KEYS is set */
    ACCESS_MEDIA,  /* a valid signature when SIGNING_KEY is set (or a bearer key when that key is
                      derived from API_KEYS), else as ACCESS_API */
};

/*
 * Reads API_KEYS (a list of key or name:key entries, or file:PATH) and SIGNING_KEY; NULL with a
 * message in err.
 */
struct api_auth *api_auth_new(const struct config *cfg, char *err, size_t errlen);
void api_auth_free(struct api_auth *a);
/* True when the request may proceed; otherwise it has been answered with 401 or 403. */
bool api_auth_check(const struct api_auth *a, struct http_request *req, enum route_access access);
/*
 * The bearer key a request was admitted with (api_auth_check() passed), borrowed from its
 * Authorization header; NULL when API keys are off. Names the client: per-client state (rate
 * limits, Idempotency-Key) is kept per key.
 */
const char *api_auth_request_key(const struct api_auth *a, struct http_request *req);
/*
 * The name of the key a request was admitted with, into out (cap bytes): the name of a
 * "name:key" entry of API_KEYS, else "key-" and the first 8 hex digits of the key's SHA-256.
 * False when API keys are off (nobody to name).
 */
bool api_auth_request_name(const struct api_auth *a, struct http_request *req, char *out,
                           size_t cap);

#endif
