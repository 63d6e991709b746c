/* Bearer keys (constant-time comparison) and signed media URLs (HMAC-SHA256 of path+expiry). */
#include "api/auth.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/internal.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/media_url.h"
#include "http/http.h"
#include "util/crypto.h"
#include "util/str.h"

#define KEYS_MAX 256
#define KEYS_FILE_MAX (64 * 1024)

struct api_auth {
    char *keys[KEYS_MAX];
    char *names[KEYS_MAX]; /* "name:key" entries name their key; NULL for a bare key */
    size_t nkeys;
    char *signing_key;
    bool signing_key_derived; /* from API_KEYS: a bearer key opens media too */
};

/* Adds each key of text, split on commas, spaces and newlines. */
static int add_keys(struct api_auth *a, const char *text)
{
    const char *p = text;
    while (*p) {
        size_t skip = strspn(p, ", \t\r\n");
        p += skip;
        size_t n = strcspn(p, ", \t\r\n");
        if (n == 0)
            continue;
        if (a->nkeys == KEYS_MAX)
            return -1;
        /* ':' is not in a bearer token (RFC 6750 b64token), so "name:key" is unambiguous. */
        const char *colon = memchr(p, ':', n);
        size_t skip_name = colon ? (size_t)(colon - p) + 1 : 0;
        a->names[a->nkeys] = colon && colon > p ? xstrndup(p, (size_t)(colon - p)) : NULL;
        a->keys[a->nkeys++] = xstrndup(p + skip_name, n - skip_name);
        p += n;
    }
    return 0;
}

static char *read_keys_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *text = xmalloc(KEYS_FILE_MAX + 1);
    size_t n = fread(text, 1, KEYS_FILE_MAX, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

struct api_auth *api_auth_new(const struct config *cfg, char *err, size_t errlen)
{
    struct api_auth *a = xcalloc(1, sizeof(*a));
    a->signing_key = cfg->signing_key[0] ? xstrdup(cfg->signing_key) : NULL;
    a->signing_key_derived = cfg->signing_key_derived;
    const char *keys = cfg->api_keys;
    char *file_text = NULL;
    if (strncmp(keys, "file:", 5) == 0) {
        file_text = read_keys_file(keys + 5);
        if (!file_text) {
            snprintf(err, errlen, "API_KEYS: cannot read the key file");
            api_auth_free(a);
            return NULL;
        }
        keys = file_text;
    }
    int rc = add_keys(a, keys);
    free(file_text);
    if (rc) {
        snprintf(err, errlen, "API_KEYS: more than %d keys", KEYS_MAX);
        api_auth_free(a);
        return NULL;
    }
    return a;
}

void api_auth_free(struct api_auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nkeys; i++) {
        free(a->keys[i]);
        free(a->names[i]);
    }
    free(a->signing_key);
    free(a);
}

/* Compares the bearer token with every key, always all of them; the index of its key, or -1. */
static long bearer_index(const struct api_auth *a, const char *header)
{
    if (strncasecmp(header, "Bearer ", 7) != 0)
        return -1;
    const char *token = header + 7;
    size_t len = strlen(token);
    long found = -1;
    for (size_t i = 0; i < a->nkeys; i++) {
        long eq = crypto_str_equal(token, len, a->keys[i], strlen(a->keys[i]));
        found += eq * ((long)i - found); /* no branch on the comparison */
    }
    return found;
}

static bool bearer_valid(const struct api_auth *a, const char *header)
{
    return bearer_index(a, header) >= 0;
}

static bool signature_valid(const struct api_auth *a, struct http_request *req)
{
    const char *expires_s = http_request_query_param(req, "expires");
    const char *sig = http_request_query_param(req, "sig");
    const char *path = http_request_path(req);
    long long expires;
    if (!expires_s || !sig || !path || strlen(path) > 256 ||
        !str_to_ll(expires_s, strlen(expires_s), 0, INT64_MAX, &expires) ||
        expires < (long long)time(NULL))
        return false;
    char want[2 * SHA256_LEN + 1];
    media_url_sign(a->signing_key, path, expires, want);
    return strlen(sig) == 2 * SHA256_LEN && crypto_equal(sig, want, 2 * SHA256_LEN);
}

bool api_auth_check(const struct api_auth *a, struct http_request *req, enum route_access access)
{
    if (access == ACCESS_PUBLIC)
        return true;
    if (access == ACCESS_MEDIA && a->signing_key && signature_valid(a, req))
        return true;
    /* With a key derived from API_KEYS, an API key opens media too, as it did before. */
    if (access == ACCESS_MEDIA && a->signing_key && !a->signing_key_derived) {
        api_reply_error(req, 403, "invalid_signature",
                        "this media URL is unsigned, altered or expired");
        return false;
    }
    if (a->nkeys == 0)
        return true;
    const char *header = http_request_header(req, "Authorization");
    if (!header) {
        http_reply_header(req, "WWW-Authenticate", "Bearer");
        api_reply_error(req, 401, "unauthorized", "an API key is required");
        return false;
    }
    if (!bearer_valid(a, header)) {
        api_reply_error(req, 403, "forbidden", "the API key is not valid");
        return false;
    }
    return true;
}

const char *api_auth_request_key(const struct api_auth *a, struct http_request *req)
{
    const char *header = http_request_header(req, "Authorization");
    if (a->nkeys == 0 || !header || strncasecmp(header, "Bearer ", 7) != 0)
        return NULL;
    return header + 7;
}

bool api_auth_request_name(const struct api_auth *a, struct http_request *req, char *out,
                           size_t cap)
{
    const char *header = http_request_header(req, "Authorization");
    long i = a->nkeys && header ? bearer_index(a, header) : -1;
    if (i < 0)
        return false;
    if (a->names[i]) {
        snprintf(out, cap, "%s", a->names[i]);
        return true;
    }
    /* A bare key is named by a short digest of it: stable, and it does not give the key away. */
    unsigned char digest[SHA256_LEN];
    char hex[2 * SHA256_LEN + 1];
    crypto_sha256(a->keys[i], strlen(a->keys[i]), digest);
    str_hex(hex, digest, SHA256_LEN);
    snprintf(out, cap, "key-%.8s", hex);
    return true;
}
