/*
 * The parsers of direct uploads, with no I/O: tus header values (Upload-Length, Upload-Offset,
 * Upload-Metadata and its analysis flag and callback URL), the analysis flag of POST /upload, and a
 * multipart/form-data body holding one file part.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"
#include "core/alloc.h"
#include "queue/celery.h"
#include "webhook/webhook.h"

#define BOUNDARY_MAX 70             /* RFC 2046 */
#define PART_HEADERS_MAX (8 * 1024) /* the headers of one part */

bool upload_parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 20)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '=';
}

/* Metadata keys: printable ASCII without spaces or commas. */
static bool is_key_char(char c) { return c > ' ' && c < 0x7f && c != ','; }

/* One "key[ value]" pair of [p, end): a key, then optionally one space and a base64 value. */
static bool metadata_pair_valid(const char *p, const char *end)
{
    const char *key = p;
    while (p < end && is_key_char(*p))
        p++;
    if (p == key)
        return false;
    if (p == end)
        return true;
    if (*p != ' ')
        return false;
    for (p++; p < end; p++)
        if (!is_b64(*p))
            return false;
    return true;
}

bool upload_metadata_valid(const char *m)
{
    size_t n = strlen(m);
    if (n >= UPLOAD_METADATA_MAX)
        return false;
    const char *p = m, *end = m + n;
    while (p < end) {
        p += strspn(p, " ");
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        if (!metadata_pair_valid(p, stop))
            return false;
        p = comma ? comma + 1 : end;
    }
    return true;
}

bool upload_parse_flag(const char *s, bool *off)
{
    if (s && strcmp(s, "false") == 0)
        *off = true;
    else if (s && strcmp(s, "true") == 0)
        *off = false;
    else
        return false;
    return true;
}

/* The flag in the base64 value [p, end) of a metadata pair; false when it is not one. */
static bool metadata_flag(const char *p, const char *end, bool *off)
{
    size_t n;
    unsigned char *raw = celery_base64_decode(p, (size_t)(end - p), &n);
    char word[8] = "";
    if (raw && n < sizeof(word))
        memcpy(word, raw, n);
    free(raw);
    return upload_parse_flag(word, off);
}

bool upload_metadata_analysis(const char *m, bool *off)
{
    static const char key[] = "analysis";
    const size_t klen = sizeof(key) - 1;
    const char *p = m, *end = m + strlen(m);
    bool seen = false;
    *off = false;
    while (p < end) {
        p += strspn(p, " ");
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        bool named = (size_t)(stop - p) >= klen && memcmp(p, key, klen) == 0 &&
                     (p + klen == stop || p[klen] == ' ');
        if (named && (seen || p + klen == stop || !metadata_flag(p + klen + 1, stop, off)))
            return false;
        seen |= named;
        p = comma ? comma + 1 : end;
    }
    return true;
}

/* Finds parameter name (case-insensitive) in a header value's ";"-separated parameters; copies
 * its value (quotes removed) into out. False when absent or too long. */
static bool header_param(const char *value, size_t vlen, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    const char *p = value, *end = value + vlen;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        p = semi ? semi + 1 : end;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if ((size_t)(end - p) <= nlen || strncasecmp(p, name, nlen) != 0 || p[nlen] != '=')
            continue;
        const char *v = p + nlen + 1, *vend;
        if (v < end && *v == '"') {
            v++;
            vend = memchr(v, '"', (size_t)(end - v));
            if (!vend)
                return false;
        } else {
            vend = v;
            while (vend < end && *vend != ';' && *vend != ' ' && *vend != '\t')
                vend++;
        }
        if ((size_t)(vend - v) >= cap)
            return false;
        memcpy(out, v, (size_t)(vend - v));
        out[vend - v] = '\0';
        return true;
    }
    return false;
}

bool upload_multipart_boundary(const char *content_type, char *out, size_t cap)
{
    const char *type = "multipart/form-data";
    size_t tlen = strlen(type);
    if (!content_type || strncasecmp(content_type, type, tlen) != 0 ||
        (content_type[tlen] != ';' && content_type[tlen] != ' ' && content_type[tlen] != '\0'))
        return false;
    const char *params = content_type + tlen;
    if (!header_param(params, strlen(params), "boundary", out, cap))
        return false;
    size_t n = strlen(out);
    return n >= 1 && n <= BOUNDARY_MAX;
}

/* The value of header name in a part's header block [h, end), or NULL; *len its length. */
static const char *part_header(const char *h, const char *end, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    while (h < end) {
        const char *eol = memmem(h, (size_t)(end - h), "\r\n", 2);
        const char *stop = eol ? eol : end;
        if ((size_t)(stop - h) > nlen && strncasecmp(h, name, nlen) == 0 && h[nlen] == ':') {
            const char *v = h + nlen + 1;
            while (v < stop && (*v == ' ' || *v == '\t'))
                v++;
            *len = v < stop ? (size_t)(stop - v) : 0;
            return v;
        }
        h = eol ? eol + 2 : end;
    }
    return NULL;
}

/* Reads one part's headers at [p, end); fills out's names and returns where its content starts. */
static const char *part_start(const char *p, const char *end, struct upload_file_part *out,
                              bool *is_file)
{
    size_t avail = (size_t)(end - p) < PART_HEADERS_MAX ? (size_t)(end - p) : PART_HEADERS_MAX;
    if (avail >= 2 && memcmp(p, "\r\n", 2) == 0) /* a part with no headers at all */
        return p + 2;
    const char *hend = memmem(p, avail, "\r\n\r\n", 4);
    if (!hend)
        return NULL;
    size_t len;
    const char *cd = part_header(p, hend, "Content-Disposition", &len);
    *is_file = cd && header_param(cd, len, "filename", out->filename, sizeof(out->filename));
    const char *ct = part_header(p, hend, "Content-Type", &len);
    if (*is_file && ct && len < sizeof(out->content_type)) {
        memcpy(out->content_type, ct, len);
        out->content_type[len] = '\0';
    }
    return hend + 4;
}

/* True when a delimiter ending at p is a real one: "--" (the last) or blanks and CRLF follow. */
static bool delimiter_ends(const char *p, const char *end)
{
    if ((size_t)(end - p) >= 2 && memcmp(p, "--", 2) == 0)
        return true;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return (size_t)(end - p) >= 2 && memcmp(p, "\r\n", 2) == 0;
}

/* The next real delimiter at or after p, or NULL. */
static const char *next_delimiter(const char *p, const char *end, const char *delim, size_t dlen)
{
    const char *d;
    while ((d = memmem(p, (size_t)(end - p), delim, dlen)) != NULL) {
        if (delimiter_ends(d + dlen, end))
            return d;
        p = d + 1;
    }
    return NULL;
}

/*
 * Walks the parts after the first delimiter, stopping at the first file part. p is just after
 * a delimiter line; delim is "\r\n--boundary".
 */
static const char *walk_parts(const char *p, const char *end, const char *delim, size_t dlen,
                              struct upload_file_part *out, const char *base)
{
    for (;;) {
        if ((size_t)(end - p) >= 2 && memcmp(p, "--", 2) == 0)
            return "the form has no file part";
        while (p < end && (*p == ' ' || *p == '\t')) /* the body is not terminated */
            p++;
        if ((size_t)(end - p) < 2 || memcmp(p, "\r\n", 2) != 0)
            return "a multipart delimiter is not followed by a line break";
        bool is_file = false;
        memset(out, 0, sizeof(*out));
        const char *content = part_start(p + 2, end, out, &is_file);
        if (!content)
            return "a part's headers do not end";
        const char *next = next_delimiter(content, end, delim, dlen);
        if (!next)
            return "the last part is not closed by the boundary";
        if (is_file) {
            out->offset = (size_t)(content - base);
            out->length = (size_t)(next - content);
            return NULL;
        }
        p = next + dlen;
    }
}

const char *upload_multipart_parse(const unsigned char *body, size_t len, const char *boundary,
                                   struct upload_file_part *out)
{
    char delim[BOUNDARY_MAX + 5];
    int dlen = snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
    if (dlen < 5 || (size_t)dlen >= sizeof(delim))
        return "the boundary is invalid";
    const char *base = (const char *)body, *end = base + len, *p;
    memset(out, 0, sizeof(*out));
    if (len >= (size_t)dlen - 2 && memcmp(base, delim + 2, (size_t)dlen - 2) == 0)
        p = base + dlen - 2; /* the body starts with the delimiter (no preamble) */
    else if ((p = memmem(base, len, delim, (size_t)dlen)) != NULL)
        p += dlen;
    else
        return "the body does not contain the boundary";
    return walk_parts(p, end, delim, (size_t)dlen, out, base);
}

bool upload_metadata_callback(const char *m, char **url_out)
{
    static const char key[] = "callback_url";
    const size_t klen = sizeof(key) - 1;
    const char *p = m, *end = m + strlen(m);
    *url_out = NULL;
    while (p < end) {
        p += strspn(p, " ");
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        bool named = (size_t)(stop - p) > klen && memcmp(p, key, klen) == 0 && p[klen] == ' ';
        bool bare = (size_t)(stop - p) == klen && memcmp(p, key, klen) == 0;
        if (bare || (named && *url_out))
            goto bad; /* no value, or twice */
        if (named) {
            size_t n;
            unsigned char *raw =
                celery_base64_decode(p + klen + 1, (size_t)(stop - p - klen - 1), &n);
            if (!raw || n == 0 || n > WEBHOOK_URL_MAX || memchr(raw, '\0', n)) {
                free(raw);
                goto bad;
            }
            *url_out = xstrndup((const char *)raw, n);
            free(raw);
        }
        p = comma ? comma + 1 : end;
    }
    return true;
bad:
    free(*url_out);
    *url_out = NULL;
    return false;
}
