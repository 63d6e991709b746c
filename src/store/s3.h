/*
 * A client of S3-compatible object stores (AWS S3, radosgw, MinIO) on libcurl with our own
 * SigV4 (s3_sign.h). Configured the AWS way (STORAGE_URL=s3://bucket/prefix,
 * AWS_ENDPOINT_URL_S3, AWS_REGION, AWS_ACCESS_KEY_ID, ...). Every key the caller names is
 * relative to the prefix of STORAGE_URL.
 *
 * Every connection goes through the network policy (util/netpolicy.h), checked in curl's
 * open-socket callback on the address actually connected: public addresses on the endpoint's
 * port, private ones only inside S3_ALLOW_CIDRS. No proxy from the environment, no redirects.
 * Every request has a connect timeout, a whole-request timeout and a low-speed cut-off.
 *
 * A struct s3 keeps one curl handle (and its connections): use it from one thread at a time.
 * Errors: IA_ERR_NOT_FOUND (404), IA_ERR_STORAGE_DENIED (401/403: key, secret, signature),
 * IA_ERR_STORAGE_UNAVAILABLE (network, 5xx, 429: worth a retry), IA_ERR_TIMEOUT,
 * IA_ERR_URL_NOT_ALLOWED (the policy refused the endpoint's address), IA_ERR_TOO_LARGE (a body
 * above the caller's cap), IA_ERR_IO (local files; any other S3 error), IA_ERR_INVALID (bad
 * configuration or key). The detail names the HTTP status and S3's error code
 * ("HTTP 403 SignatureDoesNotMatch"), never a secret.
 */
#ifndef IA_STORE_S3_H
#define IA_STORE_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"

struct s3;

/* Longest key S3 accepts (bytes of UTF-8), prefix included. */
#define S3_MAX_KEY 1024

/*
 * A client for the bucket of cfg->storage_url (which must be s3://...), with the endpoint,
 * region, credentials and limits of cfg. NULL with a message in err when the configuration is
 * incomplete or does not parse.
 */
struct s3 *s3_new(const struct config *cfg, char *err, size_t errlen);
void s3_free(struct s3 *s);
/* "bucket", "prefix/" ("" when none): what STORAGE_URL named. */
const char *s3_bucket(const struct s3 *s);
const char *s3_prefix(const struct s3 *s);

/*
 * Sets the whole-request limit of the client's next requests (seconds, at least 1) and returns
 * the one it had, so that a caller can bound a few small requests tighter than S3_TIMEOUT_S
 * and restore it.
 */
long s3_set_timeout(struct s3 *s, long timeout_s);

/* Creates the bucket (PUT Bucket); IA_OK when it exists already and is ours. */
enum ia_err s3_create_bucket(struct s3 *s, char *detail, size_t detaillen);

/*
 * Uploads the file at path as key. Below S3_MULTIPART_THRESHOLD one PUT, at or above it a
 * multipart upload in S3_PART_SIZE parts (aborted on any failure, so no parts are left behind).
 * The file is read twice in bounded memory: once to hash each request's payload (signed, so
 * the store rejects bytes that changed on the way), once to send it. content_type may be NULL.
 */
enum ia_err s3_put_file(struct s3 *s, const char *key, const char *path, const char *content_type,
                        char *detail, size_t detaillen);
/*
 * Uploads the file at path as key in one PUT whatever its size (S3 takes up to 5 GiB so): a
 * failure or a crash leaves no multipart upload behind. Read twice, as s3_put_file() does.
 */
enum ia_err s3_put_file_once(struct s3 *s, const char *key, const char *path,
                             const char *content_type, char *detail, size_t detaillen);
/* Uploads len bytes from memory as key (one PUT). */
enum ia_err s3_put_mem(struct s3 *s, const char *key, const void *data, size_t len,
                       const char *content_type, char *detail, size_t detaillen);

/*
 * Downloads key into a new file at path (created 0600, never following a symbolic link); the
 * file is removed on failure. max: the largest body accepted (0: no limit).
 */
enum ia_err s3_get_file(struct s3 *s, const char *key, const char *path, uint64_t max, char *detail,
                        size_t detaillen);
/* Downloads key into memory, at most max bytes (IA_ERR_TOO_LARGE above); *out is terminated. */
enum ia_err s3_get_mem(struct s3 *s, const char *key, size_t max, char **out, size_t *len,
                       char *detail, size_t detaillen);

struct s3_head {
    uint64_t size;
    char etag[80];          /* as the store sent it, quotes included */
    char last_modified[64]; /* the HTTP date the store sent */
};
enum ia_err s3_head(struct s3 *s, const char *key, struct s3_head *out, char *detail,
                    size_t detaillen);
/* What a streamed GET or HEAD answered (s3_get_stream). */
struct s3_get_head {
    long status; /* 200, 206, 304, 412 or 416 */
    uint64_t length;
    bool has_length;
    char etag[80];
    char last_modified[64];
    char content_range[96]; /* "" when the store sent none */
};
/*
 * Receives the body of a streamed GET, n bytes at p; h is the answer's head, the same at every
 * call. n is 0 (and p NULL) when what the network brought so far has been passed on: a receiver
 * that gathers bytes sends them on then. Returns false to stop the transfer (s3_get_stream then
 * returns IA_ERR_IO).
 */
typedef bool (*s3_body_cb)(void *ctx, const struct s3_get_head *h, const char *p, size_t n);
/*
 * method ("GET" or "HEAD") of key with the given Range and If-Match (each may be NULL; only
 * Range is signed). IA_OK for 200 and 206 (the body goes to cb as it arrives, nothing is
 * buffered) and for 304, 412 and 416 (no body); *out has the head either way. Other answers
 * are errors as for every request (IA_ERR_NOT_FOUND for 404, ...).
 */
enum ia_err s3_get_stream(struct s3 *s, const char *key, const char *method, const char *range,
                          const char *if_match, s3_body_cb cb, void *ctx,
                          struct s3_get_head *out, char *detail, size_t detaillen);
/* Deletes key; IA_OK also when it did not exist (S3 answers 204 either way). */
enum ia_err s3_delete(struct s3 *s, const char *key, char *detail, size_t detaillen);

/* One key of a listing, relative to the client's prefix; borrowed for the callback's duration. */
struct s3_object {
    const char *key;
    uint64_t size;
    const char *etag;
    const char *last_modified; /* ISO 8601 as the store sent it */
};
/* Returns nonzero to stop the listing (s3_list then returns IA_OK). */
typedef int (*s3_list_cb)(const struct s3_object *o, void *ctx);
/*
 * Calls cb for every key under prefix (relative to the client's prefix), in the store's order
 * (sorted), following continuation tokens S3_LIST_PAGE keys at a time. *pages (may be NULL)
 * receives the number of requests made.
 */
enum ia_err s3_list(struct s3 *s, const char *prefix, s3_list_cb cb, void *ctx, unsigned *pages,
                    char *detail, size_t detaillen);

/*
 * A presigned URL for GET or HEAD of key, valid expires_s seconds (1..604800) from now;
 * disposition and content_type (each may be NULL) are signed in as response-content-disposition
 * and response-content-type (the store then answers with those headers). The caller frees it.
 * NULL for an invalid key, method or lifetime.
 */
char *s3_presign(struct s3 *s, const char *method, const char *key, long expires_s,
                 const char *disposition, const char *content_type);

#endif
