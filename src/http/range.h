/*
 * File-delivery decisions with no I/O: Range parsing, conditional requests (ETag and dates),
 * and the HTTP date and ETag formats. Semantics follow nginx 1.22's static module as measured
 * on this machine, so that a player sees the same answers from us as from nginx.
 */
#ifndef IA_HTTP_RANGE_H
#define IA_HTTP_RANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* "Sun, 06 Nov 1994 08:49:37 GMT" plus room for years past 9999. */
#define HTTP_DATE_MAX 40
/* A quoted "<mtime hex>-<size hex>" ETag. */
#define HTTP_ETAG_MAX 48

/* A byte range [start, start + len) inside the file. */
struct http_byte_range {
    uint64_t start;
    uint64_t len;
};

enum http_range_kind {
    HTTP_RANGE_IGNORE,        /* no usable Range header: send the whole file (200) */
    HTTP_RANGE_SINGLE,        /* one satisfiable range (206) */
    HTTP_RANGE_MULTI,         /* several satisfiable ranges */
    HTTP_RANGE_UNSATISFIABLE, /* 416 with Content-Range: bytes * / size */
};

/*
 * Parses a Range header value of len bytes for a file of size bytes, as nginx does: a value not
 * starting with "bytes=" (any case) or shorter than 7 bytes is ignored; syntax errors, numbers
 * past INT64_MAX and ranges wholly past the end are unsatisfiable; several ranges that together
 * exceed the file are ignored. For SINGLE, *first receives the range (clipped to the file);
 * for MULTI, the first satisfiable one.
 */
enum http_range_kind http_range_parse(const char *value, size_t len, uint64_t size,
                                      struct http_byte_range *first);

/*
 * Parses an HTTP date in IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), RFC 850
 * ("Sunday, 06-Nov-94 08:49:37 GMT") or asctime ("Sun Nov  6 08:49:37 1994") form. Like nginx it
 * does not check the weekday name or what follows the time. False on anything else, and for
 * dates before 1970 or invalid calendar dates.
 */
bool http_date_parse(const char *value, size_t len, time_t *out);
/* Formats t as an IMF-fixdate into out (HTTP_DATE_MAX bytes). */
void http_date_format(time_t t, char out[static HTTP_DATE_MAX]);
/* Formats nginx's strong ETag "<mtime hex>-<size hex>", quotes included, into out. */
void http_etag_format(time_t mtime, uint64_t size, char out[static HTTP_ETAG_MAX]);

/*
 * True when the If-Match / If-None-Match list value matches etag (a quoted strong tag):
 * "*" matches; with weak set, W/ prefixes are ignored on both sides (If-None-Match).
 */
bool http_etag_list_match(const char *list, size_t len, const char *etag, bool weak);

/* The request headers that decide a file reply; NULL when absent. */
struct http_file_conditions {
    const char *range;
    const char *if_range;
    const char *if_match;
    const char *if_none_match;
    const char *if_modified_since;
    const char *if_unmodified_since;
};

/* What to send for a file: status 200, 206, 304, 412 or 416, and for 206 the range. */
struct http_file_plan {
    int status;
    struct http_byte_range range;
};

/*
 * Decides the reply for a file with the given mtime, size and ETag, in nginx's order:
 * If-Unmodified-Since and If-Match (412), then If-Modified-Since and If-None-Match (304 only when
 * every one present says "not modified"; If-Modified-Since must equal mtime exactly), then
 * If-Range and Range. Several ranges give 200 with the whole file (see http_file_plan()).
 */
void http_file_decide(const struct http_file_conditions *c, time_t mtime, uint64_t size,
                      const char *etag, struct http_file_plan *out);

#endif
