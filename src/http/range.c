/*
 * File-delivery decisions with no I/O: Range, conditionals, HTTP dates and ETags, written to
 * answer as nginx 1.22 does (behaviour measured against nginx-light on this machine).
 * Every parser takes a pointer and a length and reads nothing past them.
 */
#include "http/range.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/str.h"

/* The byte at i, or '\0' past the end: nginx parses NUL-terminated values the same way. */
static char at(const char *s, size_t len, size_t i) { return i < len ? s[i] : '\0'; }

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static void skip_spaces(const char *s, size_t len, size_t *i)
{
    while (at(s, len, *i) == ' ')
        (*i)++;
}

/* Reads a run of digits at *i as a file offset (<= INT64_MAX); false when none or too large. */
static bool read_offset(const char *s, size_t len, size_t *i, uint64_t *out)
{
    size_t start = *i;
    while (*i < len && is_digit(s[*i]))
        (*i)++;
    if (*i == start)
        return false;
    uint64_t v;
    if (!str_to_u64(s + start, *i - start, &v) || v > (uint64_t)INT64_MAX)
        return false;
    *out = v;
    return true;
}

/*
 * Parses one "a-b", "a-" or "-n" spec at *i into the half-open [*start, *end), clipped to size,
 * leaving *i on the ',' or end that follows it. False on a syntax error or overflow.
 */
static bool parse_spec(const char *s, size_t len, size_t *i, uint64_t size, uint64_t *start,
                       uint64_t *end)
{
    uint64_t first = 0, last = 0;
    skip_spaces(s, len, i);
    bool suffix = at(s, len, *i) == '-';
    if (suffix) {
        (*i)++;
    } else {
        if (!read_offset(s, len, i, &first))
            return false;
        skip_spaces(s, len, i);
        if (at(s, len, (*i)++) != '-')
            return false;
        skip_spaces(s, len, i);
        char c = at(s, len, *i);
        if (c == ',' || c == '\0') {
            *start = first;
            *end = size;
            return true;
        }
    }
    if (!read_offset(s, len, i, &last))
        return false;
    skip_spaces(s, len, i);
    char c = at(s, len, *i);
    if (c != ',' && c != '\0')
        return false;
    if (suffix) {
        *start = last < size ? size - last : 0;
        *end = size;
    } else {
        *start = first;
        *end = last >= size ? size : last + 1;
    }
    return true;
}

enum http_range_kind http_range_parse(const char *value, size_t len, uint64_t size,
                                      struct http_byte_range *first)
{
    if (len < 7 || strncasecmp(value, "bytes=", 6) != 0)
        return HTTP_RANGE_IGNORE;
    size_t i = 6, count = 0;
    uint64_t total = 0;
    for (;;) {
        uint64_t start, end;
        if (!parse_spec(value, len, &i, size, &start, &end))
            return HTTP_RANGE_UNSATISFIABLE;
        if (start < end) {
            if (count++ == 0)
                *first = (struct http_byte_range){start, end - start};
            if (total > (uint64_t)INT64_MAX - (end - start))
                return HTTP_RANGE_UNSATISFIABLE;
            total += end - start;
        } else if (start == 0) {
            return HTTP_RANGE_IGNORE; /* an empty file: nginx sends it whole */
        }
        if (at(value, len, i++) != ',')
            break;
    }
    if (count == 0)
        return HTTP_RANGE_UNSATISFIABLE;
    if (total > size)
        return HTTP_RANGE_IGNORE; /* overlapping ranges larger than the file */
    return count == 1 ? HTTP_RANGE_SINGLE : HTTP_RANGE_MULTI;
}

/* ---- HTTP dates ---- */

static const char month_names[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char day_names[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

struct date_parts {
    unsigned year, month, day, hour, min, sec; /* month 1-12 */
};

/* Reads exactly n digits at *i. */
static bool read_digits(const char *s, size_t len, size_t *i, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t k = 0; k < n; k++) {
        char c = at(s, len, *i + k);
        if (!is_digit(c))
            return false;
        v = v * 10 + (unsigned)(c - '0');
    }
    *i += n;
    *out = v;
    return true;
}

static bool expect(const char *s, size_t len, size_t *i, char c)
{
    if (at(s, len, *i) != c)
        return false;
    (*i)++;
    return true;
}

/* Reads a three-letter English month name at *i into 1-12. */
static bool read_month(const char *s, size_t len, size_t *i, unsigned *out)
{
    if (*i > len || len - *i < 3)
        return false;
    for (unsigned m = 0; m < 12; m++) {
        if (memcmp(s + *i, month_names[m], 3) == 0) {
            *out = m + 1;
            *i += 3;
            return true;
        }
    }
    return false;
}

/* Reads " HH:MM:SS". */
static bool read_clock(const char *s, size_t len, size_t *i, struct date_parts *d)
{
    return expect(s, len, i, ' ') && read_digits(s, len, i, 2, &d->hour) &&
           expect(s, len, i, ':') && read_digits(s, len, i, 2, &d->min) && expect(s, len, i, ':') &&
           read_digits(s, len, i, 2, &d->sec);
}

/* "06 Nov 1994 08:49:37" (IMF-fixdate) or "06-Nov-94 08:49:37" (RFC 850), after the weekday. */
static bool parse_rfc(const char *s, size_t len, size_t i, struct date_parts *d)
{
    if (!read_digits(s, len, &i, 2, &d->day))
        return false;
    char sep = at(s, len, i);
    if (sep != ' ' && sep != '-')
        return false;
    i++;
    if (!read_month(s, len, &i, &d->month) || !expect(s, len, &i, sep))
        return false;
    if (sep == ' ')
        return read_digits(s, len, &i, 4, &d->year) && read_clock(s, len, &i, d);
    if (!read_digits(s, len, &i, 2, &d->year))
        return false;
    d->year += d->year < 70 ? 2000 : 1900;
    return read_clock(s, len, &i, d);
}

/* "Nov  6 08:49:37 1994" (asctime), after the weekday. */
static bool parse_asctime(const char *s, size_t len, size_t i, struct date_parts *d)
{
    if (!read_month(s, len, &i, &d->month) || !expect(s, len, &i, ' '))
        return false;
    if (at(s, len, i) == ' ')
        i++;
    if (!read_digits(s, len, &i, 1, &d->day))
        return false;
    unsigned second;
    if (is_digit(at(s, len, i)) && read_digits(s, len, &i, 1, &second))
        d->day = d->day * 10 + second;
    return read_clock(s, len, &i, d) && expect(s, len, &i, ' ') &&
           read_digits(s, len, &i, 4, &d->year);
}

static bool is_leap(unsigned y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* Days from 1970-01-01 to the given civil date (proleptic Gregorian), for years >= 1970. */
static int64_t days_since_epoch(unsigned y, unsigned m, unsigned d)
{
    static const unsigned before[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    int64_t yy = (int64_t)y - 1;
    int64_t days = yy * 365 + yy / 4 - yy / 100 + yy / 400 - 719162; /* 719162: 0001..1969 */
    days += before[m - 1] + (m > 2 && is_leap(y)) + d - 1;
    return days;
}

static bool parts_to_time(const struct date_parts *d, time_t *out)
{
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (d->year < 1970 || d->hour > 23 || d->min > 59 || d->sec > 59 || d->day == 0 ||
        d->day > mdays[d->month - 1] || (d->month == 2 && d->day == 29 && !is_leap(d->year)))
        return false;
    int64_t t =
        days_since_epoch(d->year, d->month, d->day) * 86400 + d->hour * 3600 + d->min * 60 + d->sec;
    *out = (time_t)t;
    return true;
}

bool http_date_parse(const char *value, size_t len, time_t *out)
{
    size_t i = 0;
    while (i < len && value[i] != ',' && value[i] != ' ')
        i++;
    if (i == len)
        return false;
    bool asctime_form = value[i] == ' ';
    i++;
    skip_spaces(value, len, &i);
    struct date_parts d = {0};
    bool ok = asctime_form ? parse_asctime(value, len, i, &d) : parse_rfc(value, len, i, &d);
    return ok && parts_to_time(&d, out);
}

void http_date_format(time_t t, char out[static HTTP_DATE_MAX])
{
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    snprintf(out, HTTP_DATE_MAX, "%s, %02d %s %04d %02d:%02d:%02d GMT", day_names[tm.tm_wday],
             tm.tm_mday, month_names[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
}

void http_etag_format(time_t mtime, uint64_t size, char out[static HTTP_ETAG_MAX])
{
    snprintf(out, HTTP_ETAG_MAX, "\"%llx-%llx\"", (unsigned long long)mtime,
             (unsigned long long)size);
}

/* ---- conditionals ---- */

static bool is_list_space(char c) { return c == ' ' || c == '\t'; }

bool http_etag_list_match(const char *list, size_t len, const char *etag, bool weak)
{
    size_t elen = strlen(etag);
    if (len == 1 && list[0] == '*')
        return true;
    if (weak && elen > 2 && etag[0] == 'W' && etag[1] == '/') {
        etag += 2;
        elen -= 2;
    }
    size_t i = 0;
    while (i < len) {
        if (weak && len - i > 2 && list[i] == 'W' && list[i + 1] == '/')
            i += 2;
        if (elen > len - i)
            return false;
        if (memcmp(list + i, etag, elen) == 0) {
            size_t j = i + elen;
            while (j < len && is_list_space(list[j]))
                j++;
            if (j == len || list[j] == ',')
                return true;
        }
        while (i < len && list[i] != ',')
            i++;
        while (i < len && (is_list_space(list[i]) || list[i] == ','))
            i++;
    }
    return false;
}

static bool date_header_is(const char *value, time_t *out)
{
    return http_date_parse(value, strlen(value), out);
}

/* If-Unmodified-Since holds when the date parses and is not before mtime (nginx). */
static bool unmodified_since(const char *value, time_t mtime)
{
    time_t t;
    return date_header_is(value, &t) && t >= mtime;
}

/* Every validator present must say "not modified"; If-Modified-Since must equal mtime. */
static bool not_modified(const struct http_file_conditions *c, time_t mtime, const char *etag)
{
    if (c->if_modified_since) {
        time_t t;
        if (!date_header_is(c->if_modified_since, &t) || t != mtime)
            return false;
    }
    if (c->if_none_match &&
        !http_etag_list_match(c->if_none_match, strlen(c->if_none_match), etag, true))
        return false;
    return true;
}

/* If-Range: an entity tag (ends in '"') must equal ours byte for byte; a date must equal mtime. */
static bool if_range_allows(const char *value, time_t mtime, const char *etag)
{
    if (!value)
        return true;
    size_t len = strlen(value);
    if (len >= 2 && value[len - 1] == '"')
        return strcmp(value, etag) == 0;
    time_t t;
    return http_date_parse(value, len, &t) && t == mtime;
}

void http_file_decide(const struct http_file_conditions *c, time_t mtime, uint64_t size,
                      const char *etag, struct http_file_plan *out)
{
    out->range = (struct http_byte_range){0, size};
    if ((c->if_unmodified_since && !unmodified_since(c->if_unmodified_since, mtime)) ||
        (c->if_match && !http_etag_list_match(c->if_match, strlen(c->if_match), etag, false))) {
        out->status = 412;
        return;
    }
    if ((c->if_modified_since || c->if_none_match) && not_modified(c, mtime, etag)) {
        out->status = 304;
        return;
    }
    out->status = 200;
    if (!c->range || !if_range_allows(c->if_range, mtime, etag))
        return;
    struct http_byte_range r;
    switch (http_range_parse(c->range, strlen(c->range), size, &r)) {
    case HTTP_RANGE_SINGLE:
        out->status = 206;
        out->range = r;
        break;
    case HTTP_RANGE_UNSATISFIABLE:
        out->status = 416;
        break;
    case HTTP_RANGE_MULTI:
        /*
         * Our choice: several ranges get the whole file with 200, which RFC 9110 section 14.2
         * allows ("a server MAY ignore the Range header field"). nginx answers
         * multipart/byteranges instead; media players ask for one range at a time.
         */
    case HTTP_RANGE_IGNORE:
        break;
    }
}
