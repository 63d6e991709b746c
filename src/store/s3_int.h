/* What s3.c and s3_ops.c share: the client, one request, and how it is performed. */
#ifndef IA_STORE_S3_INT_H
#define IA_STORE_S3_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/s3.h"
#include "store/s3_buf.h"
#include "store/s3_sign.h"

struct netpolicy;

/* The largest XML answer read (a ListObjectsV2 page of 1000 long keys fits). */
#define S3_MAX_XML (8u << 20)
/* The most of an error body kept to read its code. */
#define S3_MAX_ERROR_BODY (64u << 10)

struct s3 {
    char *scheme; /* "http" or "https" */
    char *host;   /* as in a URL: name, IPv4 or [IPv6] */
    unsigned port;
    bool default_port;
    bool path_style;
    char *bucket;
    char *prefix; /* "" or ending in '/' */
    char *region;
    char *access_key, *secret_key, *session_token;
    long connect_timeout_s, timeout_s;
    uint64_t multipart_threshold, part_size;
    unsigned list_page;
    struct netpolicy *policy;
    void *curl; /* CURL *, kept for its connections */
};

/* One request. The body comes from a file range, from memory, or is empty. */
struct s3_request {
    const char *method;
    const char *key; /* full key (prefix included); NULL: the bucket itself */
    const struct sigv4_pair *query;
    size_t nquery;
    const char *range;        /* Range header, or NULL */
    const char *if_match;     /* If-Match, sent unsigned; or NULL */
    const char *content_type; /* or NULL */
    int body_fd;              /* -1: no file body */
    uint64_t body_off, body_len;
    const char *body_mem; /* or NULL */
    size_t body_mem_len;
    /* Where a 2xx body goes: a file, a capped buffer, or nowhere. */
    int out_fd;
    uint64_t out_max; /* 0: no cap for out_fd */
    struct s3_buf *out_mem;
    /* Or to a callback (s3_get_stream): it sees the response's head with the first bytes. */
    s3_body_cb out_cb;
    void *out_ctx;
};

/* What came back: the status and the headers the operations read. */
struct s3_response {
    long status;
    uint64_t content_length;
    bool has_length;
    char etag[80];
    char last_modified[64];
    char content_range[96];
    char request_id[80];
};

void s3_request_init(struct s3_request *r, const char *method, const char *key);
/* The head an out_cb sees, from what the response's headers said. */
void s3_get_head_fill(struct s3_get_head *h, const struct s3_response *resp, long status);
/*
 * Signs and performs r (payload hash computed here from the body), fills resp. A non-2xx
 * status is an error mapped to the project's errors, with the status and S3's code in detail.
 */
enum ia_err s3_perform(struct s3 *s, const struct s3_request *r, struct s3_response *resp,
                       char *detail, size_t detaillen);
/* prefix + key, checked (non-empty, at most S3_MAX_KEY bytes, no NUL). NULL when invalid. */
char *s3_full_key(const struct s3 *s, const char *key);

/* The multipart upload of a file of size bytes (s3_ops.c). */
enum ia_err s3_multipart_put(struct s3 *s, const char *full_key, int fd, uint64_t size,
                             const char *content_type, char *detail, size_t detaillen);

#endif
