/*
 * The public URLs of a video's files, built in one place for the API, the worker's task result
 * and webhooks: PUBLIC_BASE_URL + path, signed with SIGNING_KEY (HMAC-SHA256 of "path\nexpires")
 * for SIGNED_URL_TTL_S when a key is set. The API checks the same signature (api/auth.c).
 */
#ifndef IA_CORE_MEDIA_URL_H
#define IA_CORE_MEDIA_URL_H

struct config;

/* The signature of path valid until expires, under key, as 64 hex digits in out (65 bytes). */
void media_url_sign(const char *key, const char *path, long long expires, char *out);
/* PUBLIC_BASE_URL + prefix + id + suffix, signed when SIGNING_KEY is set; the caller frees it. */
char *media_url_public(const struct config *cfg, const char *prefix, const char *id,
                       const char *suffix);

#endif
