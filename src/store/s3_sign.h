/*
 * AWS Signature Version 4 for S3 (and any SigV4 service): canonical request, string to sign,
 * signing key, the Authorization header and presigned URLs. Pure: no I/O, no clock, no
 * configuration; the caller passes the time. Allocation failure aborts.
 */
#ifndef IA_STORE_S3_SIGN_H
#define IA_STORE_S3_SIGN_H

#include <stdbool.h>
#include <stddef.h>

#include "util/crypto.h"

/* The payload hash of a request whose body is not signed (S3 only). */
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* SHA-256 of the empty string, the payload hash of every bodiless request. */
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/* "20130524T000000Z" plus the terminator. */
#define SIGV4_DATE_LEN 17
/* The longest lifetime of a presigned URL S3 accepts (7 days). */
#define SIGV4_MAX_EXPIRES 604800

/* A name and value, both borrowed, not encoded. */
struct sigv4_pair {
    const char *name;
    const char *value;
};

struct sigv4_creds {
    const char *access_key;
    const char *secret_key;
    const char *session_token; /* NULL or "": none */
};

struct sigv4_request {
    const char *method;             /* "GET", "PUT", ... */
    const char *path;               /* already encoded as sent (sigv4_encode_path) */
    const struct sigv4_pair *query; /* not encoded; any order */
    size_t nquery;
    const struct sigv4_pair *headers; /* every header to sign, Host and X-Amz-Date included */
    size_t nheaders;
    const char *payload_hash; /* lower-case hex SHA-256 of the body, or SIGV4_UNSIGNED_PAYLOAD */
    const char *region;
    const char *service;  /* "s3" */
    const char *amz_date; /* "YYYYMMDDTHHMMSSZ"; its first 8 characters are the scope's date */
};

/*
 * Percent-encodes len bytes the way SigV4 wants: unreserved characters (A-Z a-z 0-9 - . _ ~)
 * kept, everything else as %XX (upper-case hex); '/' kept when keep_slash. The caller frees it.
 */
char *sigv4_encode(const char *s, size_t len, bool keep_slash);
/* "/" + the key with each segment encoded (S3 encodes once, keeps '/'). The caller frees it. */
char *sigv4_encode_path(const char *key);
/* The canonical query string: names and values encoded, sorted by name then value. Frees: caller.
 */
char *sigv4_canonical_query(const struct sigv4_pair *query, size_t n);
/*
 * The canonical request (method, path, query, headers in lower case with trimmed values and
 * inner runs of spaces collapsed, signed header list, payload hash). *signed_headers (may be
 * NULL) receives "host;x-amz-date" etc. The caller frees both.
 */
char *sigv4_canonical_request(const struct sigv4_request *r, char **signed_headers);
/* kSigning = HMAC chain over "AWS4"+secret, date (8 chars), region, service, "aws4_request". */
void sigv4_signing_key(const char *secret, const char *date8, const char *region,
                       const char *service, unsigned char out[SHA256_LEN]);
/* The hex signature of a request (65 bytes with the terminator). */
void sigv4_signature(const struct sigv4_creds *c, const struct sigv4_request *r, char out[65]);
/*
 * The Authorization header value: "AWS4-HMAC-SHA256 Credential=AK/date/region/service/aws4_request,
 * SignedHeaders=..., Signature=...". The caller frees it. Callers add X-Amz-Security-Token to the
 * signed headers themselves when c->session_token is set (s3.c does).
 */
char *sigv4_authorization(const struct sigv4_creds *c, const struct sigv4_request *r);

/*
 * A presigned request's query string (query-string authentication), ready to append after '?':
 * the caller's query (e.g. response-content-disposition), then X-Amz-Algorithm,
 * X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-Security-Token (when set),
 * X-Amz-SignedHeaders=host, each encoded, sorted, then X-Amz-Signature. Only Host is signed
 * and the payload is UNSIGNED-PAYLOAD, so the URL works for the method it was made for (GET or
 * HEAD) from any client. expires_s is 1..SIGV4_MAX_EXPIRES. The caller frees it.
 */
char *sigv4_presign_query(const struct sigv4_creds *c, const char *method, const char *host,
                          const char *path, const struct sigv4_pair *query, size_t nquery,
                          const char *region, const char *service, const char *amz_date,
                          long expires_s);

/* Formats t (Unix time, UTC) as "YYYYMMDDTHHMMSSZ". */
void sigv4_format_date(long long t, char out[SIGV4_DATE_LEN]);

#endif
