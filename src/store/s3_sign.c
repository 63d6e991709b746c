/* AWS Signature Version 4: canonical request, string to sign, signature, presigned queries. */
#include "store/s3_sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "store/s3_buf.h"
#include "util/str.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
/* No request we sign comes near this; a longer one is a bug (asserted by abort). */
#define SIGV4_MAX_TEXT (1u << 20)

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

char *sigv4_encode(const char *s, size_t len, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = xmalloc(len * 3 + 1), *o = out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

char *sigv4_encode_path(const char *key)
{
    char *enc = sigv4_encode(key, strlen(key), true);
    char *path = xasprintf("/%s", enc);
    free(enc);
    return path;
}

static void add_or_die(struct s3_buf *b, const char *s, size_t n)
{
    if (!s3_buf_add(b, s, n))
        abort();
}

static void adds_or_die(struct s3_buf *b, const char *s) { add_or_die(b, s, strlen(s)); }

struct enc_pair {
    char *name;
    char *value;
};

static int cmp_enc_pair(const void *a, const void *b)
{
    const struct enc_pair *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

char *sigv4_canonical_query(const struct sigv4_pair *query, size_t n)
{
    struct enc_pair *p = xcalloc(n ? n : 1, sizeof *p);
    for (size_t i = 0; i < n; i++) {
        const char *v = query[i].value ? query[i].value : "";
        p[i].name = sigv4_encode(query[i].name, strlen(query[i].name), false);
        p[i].value = sigv4_encode(v, strlen(v), false);
    }
    qsort(p, n, sizeof *p, cmp_enc_pair);
    struct s3_buf b;
    s3_buf_init(&b, SIGV4_MAX_TEXT);
    for (size_t i = 0; i < n; i++) {
        if (i)
            adds_or_die(&b, "&");
        adds_or_die(&b, p[i].name);
        adds_or_die(&b, "=");
        adds_or_die(&b, p[i].value);
        free(p[i].name);
        free(p[i].value);
    }
    free(p);
    return s3_buf_take(&b);
}

struct canon_header {
    char *name;  /* lower case */
    char *value; /* trimmed, inner runs of spaces collapsed */
    size_t order;
};

static char *canonical_value(const char *v)
{
    size_t n = strlen(v);
    char *out = xmalloc(n + 1), *o = out;
    while (*v == ' ' || *v == '\t')
        v++;
    bool space = false;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            space = true;
            continue;
        }
        if (space && o > out)
            *o++ = ' ';
        space = false;
        *o++ = *v;
    }
    *o = '\0';
    return out;
}

static int cmp_header(const void *a, const void *b)
{
    const struct canon_header *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Lower-cases, sorts (stable for equal names) and returns the headers; *n stays. */
static struct canon_header *canonical_headers(const struct sigv4_pair *h, size_t n)
{
    struct canon_header *c = xcalloc(n ? n : 1, sizeof *c);
    for (size_t i = 0; i < n; i++) {
        c[i].name = xstrdup(h[i].name);
        for (char *p = c[i].name; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        c[i].value = canonical_value(h[i].value ? h[i].value : "");
        c[i].order = i;
    }
    qsort(c, n, sizeof *c, cmp_header);
    return c;
}

char *sigv4_canonical_request(const struct sigv4_request *r, char **signed_headers)
{
    struct s3_buf b, sh;
    s3_buf_init(&b, SIGV4_MAX_TEXT);
    s3_buf_init(&sh, SIGV4_MAX_TEXT);
    char *query = sigv4_canonical_query(r->query, r->nquery);
    adds_or_die(&b, r->method);
    adds_or_die(&b, "\n");
    adds_or_die(&b, r->path);
    adds_or_die(&b, "\n");
    adds_or_die(&b, query);
    adds_or_die(&b, "\n");
    free(query);
    struct canon_header *h = canonical_headers(r->headers, r->nheaders);
    for (size_t i = 0; i < r->nheaders; i++) {
        bool same = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
        if (same) {
            /* Repeated names: one line, values joined by commas in the order given. */
            adds_or_die(&b, ",");
        } else {
            if (i)
                adds_or_die(&b, "\n");
            adds_or_die(&b, h[i].name);
            adds_or_die(&b, ":");
            if (sh.len)
                adds_or_die(&sh, ";");
            adds_or_die(&sh, h[i].name);
        }
        adds_or_die(&b, h[i].value);
    }
    for (size_t i = 0; i < r->nheaders; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
    adds_or_die(&b, "\n\n");
    adds_or_die(&b, sh.p ? sh.p : "");
    adds_or_die(&b, "\n");
    adds_or_die(&b, r->payload_hash);
    if (signed_headers)
        *signed_headers = s3_buf_take(&sh);
    else
        s3_buf_cleanup(&sh);
    return s3_buf_take(&b);
}

void sigv4_signing_key(const char *secret, const char *date8, const char *region,
                       const char *service, unsigned char out[SHA256_LEN])
{
    char *k = xasprintf("AWS4%s", secret);
    unsigned char a[SHA256_LEN], b[SHA256_LEN];
    crypto_hmac_sha256(k, strlen(k), date8, 8, a);
    crypto_hmac_sha256(a, sizeof a, region, strlen(region), b);
    crypto_hmac_sha256(b, sizeof b, service, strlen(service), a);
    crypto_hmac_sha256(a, sizeof a, "aws4_request", 12, out);
    explicit_bzero(k, strlen(k));
    explicit_bzero(a, sizeof a);
    explicit_bzero(b, sizeof b);
    free(k);
}

static char *scope_of(const struct sigv4_request *r)
{
    return xasprintf("%.8s/%s/%s/aws4_request", r->amz_date, r->region, r->service);
}

/* Signs a canonical request: string to sign, then HMAC with the derived key. */
static void sign_canonical(const struct sigv4_creds *c, const struct sigv4_request *r,
                           const char *canonical, char out[65])
{
    unsigned char h[SHA256_LEN], key[SHA256_LEN], sig[SHA256_LEN];
    char hexh[65];
    crypto_sha256(canonical, strlen(canonical), h);
    str_hex(hexh, h, sizeof h);
    char *scope = scope_of(r);
    char *sts = xasprintf(SIGV4_ALGORITHM "\n%s\n%s\n%s", r->amz_date, scope, hexh);
    char date8[9];
    memcpy(date8, r->amz_date, 8);
    date8[8] = '\0';
    sigv4_signing_key(c->secret_key, date8, r->region, r->service, key);
    crypto_hmac_sha256(key, sizeof key, sts, strlen(sts), sig);
    explicit_bzero(key, sizeof key);
    str_hex(out, sig, sizeof sig);
    free(scope);
    free(sts);
}

void sigv4_signature(const struct sigv4_creds *c, const struct sigv4_request *r, char out[65])
{
    char *canonical = sigv4_canonical_request(r, NULL);
    sign_canonical(c, r, canonical, out);
    free(canonical);
}

char *sigv4_authorization(const struct sigv4_creds *c, const struct sigv4_request *r)
{
    char *signed_headers = NULL;
    char *canonical = sigv4_canonical_request(r, &signed_headers);
    char sig[65];
    sign_canonical(c, r, canonical, sig);
    char *scope = scope_of(r);
    char *auth = xasprintf(SIGV4_ALGORITHM " Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                           c->access_key, scope, signed_headers, sig);
    free(scope);
    free(canonical);
    free(signed_headers);
    return auth;
}

char *sigv4_presign_query(const struct sigv4_creds *c, const char *method, const char *host,
                          const char *path, const struct sigv4_pair *query, size_t nquery,
                          const char *region, const char *service, const char *amz_date,
                          long expires_s)
{
    struct sigv4_pair *q = xcalloc(nquery + 6, sizeof *q);
    size_t n = 0;
    for (size_t i = 0; i < nquery; i++)
        q[n++] = query[i];
    struct sigv4_request r = {.method = method,
                              .path = path,
                              .payload_hash = SIGV4_UNSIGNED_PAYLOAD,
                              .region = region,
                              .service = service,
                              .amz_date = amz_date};
    char *scope = scope_of(&r);
    char *credential = xasprintf("%s/%s", c->access_key, scope);
    char expires[24];
    snprintf(expires, sizeof expires, "%ld", expires_s);
    q[n++] = (struct sigv4_pair){"X-Amz-Algorithm", SIGV4_ALGORITHM};
    q[n++] = (struct sigv4_pair){"X-Amz-Credential", credential};
    q[n++] = (struct sigv4_pair){"X-Amz-Date", amz_date};
    q[n++] = (struct sigv4_pair){"X-Amz-Expires", expires};
    if (c->session_token && c->session_token[0])
        q[n++] = (struct sigv4_pair){"X-Amz-Security-Token", c->session_token};
    q[n++] = (struct sigv4_pair){"X-Amz-SignedHeaders", "host"};
    struct sigv4_pair hosth = {"host", host};
    r.query = q;
    r.nquery = n;
    r.headers = &hosth;
    r.nheaders = 1;
    char sig[65];
    sigv4_signature(c, &r, sig);
    char *canon_query = sigv4_canonical_query(q, n);
    char *out = xasprintf("%s&X-Amz-Signature=%s", canon_query, sig);
    free(canon_query);
    free(credential);
    free(scope);
    free(q);
    return out;
}

void sigv4_format_date(long long t, char out[SIGV4_DATE_LEN])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, SIGV4_DATE_LEN, "%Y%m%dT%H%M%SZ", &tm);
}
