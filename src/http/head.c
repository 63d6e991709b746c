/*
 * Request heads seen before their body is read. libevent 2.1 hands a server request to the
 * program only once its whole body is in memory, so conn.c keeps a copy of each head as it
 * arrives and, at its end, this file parses it the way evhttp will (lines end in "\n" or "\r\n",
 * a line starting with a space or tab continues the previous field, "name: value" with spaces
 * around the value dropped) into a request that only carries a head: the head handler decides
 * from it whether the body may be read, and a reply to it is sent by conn.c, which then closes
 * the connection without reading the body.
 */
#include "http/internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "util/str.h"

static const struct {
    const char *name;
    enum http_method method;
} methods[] = {
    {"GET", HTTP_GET},         {"HEAD", HTTP_HEAD},     {"POST", HTTP_POST},
    {"PUT", HTTP_PUT},         {"PATCH", HTTP_PATCH},   {"DELETE", HTTP_DELETE},
    {"OPTIONS", HTTP_OPTIONS}, {"CONNECT", HTTP_OTHER}, {"TRACE", HTTP_OTHER},
};

/* The next line of [*p, end) without its "\n" or "\r\n"; false when no "\n" is left. */
static bool next_line(const char **p, const char *end, struct slice *line)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    if (!nl)
        return false;
    line->p = *p;
    line->len = (size_t)(nl - *p);
    if (line->len > 0 && line->p[line->len - 1] == '\r')
        line->len--;
    *p = nl + 1;
    return true;
}

/* "METHOD SP target SP version", split as evhttp does (the version after the last space). */
static bool parse_request_line(struct slice line, struct http_head *out)
{
    const char *sp = memchr(line.p, ' ', line.len);
    const char *last = line.len ? line.p + line.len : line.p;
    while (last > line.p && last[-1] != ' ')
        last--;
    if (!sp || last <= sp + 2) /* an empty target, or no version */
        return false;
    size_t mlen = (size_t)(sp - line.p);
    out->method = 0;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strlen(methods[i].name) == mlen && memcmp(methods[i].name, line.p, mlen) == 0) {
            out->method = methods[i].method;
            out->body_possible = strcmp(methods[i].name, "HEAD") && strcmp(methods[i].name, "TRACE");
        }
    if (!out->method)
        return false;
    out->target = xstrndup(sp + 1, (size_t)(last - 1 - (sp + 1)));
    return strlen(out->target) == (size_t)(last - 1 - (sp + 1)); /* no NUL byte in it */
}

/* Drops spaces and tabs at both ends. */
static struct slice trim(struct slice s)
{
    while (s.len && (s.p[0] == ' ' || s.p[0] == '\t'))
        s.p++, s.len--;
    while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t' || s.p[s.len - 1] == '\r'))
        s.len--;
    return s;
}

/* Adds "name: value" to headers, or appends a continuation line to the last field. */
static bool add_field(struct evkeyvalq *headers, struct slice line)
{
    if (line.p[0] == ' ' || line.p[0] == '\t') {
        struct evkeyval *last = TAILQ_LAST(headers, evkeyvalq);
        struct slice more = trim(line);
        if (!last)
            return false;
        char *joined = xasprintf("%s %.*s", last->value, (int)more.len, more.p);
        free(last->value);
        last->value = joined;
        return true;
    }
    const char *colon = memchr(line.p, ':', line.len);
    if (!colon || colon == line.p)
        return false;
    struct slice v = {colon + 1, (size_t)(line.p + line.len - (colon + 1))};
    v = trim(v);
    char *name = xstrndup(line.p, (size_t)(colon - line.p));
    char *value = xstrndup(v.p, v.len);
    bool ok = strlen(name) == (size_t)(colon - line.p) && strlen(value) == v.len && /* no NUL */
              evhttp_add_header(headers, name, value) == 0;
    free(name);
    free(value);
    return ok;
}

/* Content-Length as evhttp reads it (digits only); -1 when it is not a number. */
static long long content_length(const char *s)
{
    uint64_t n;
    return s && str_to_u64(s, strlen(s), &n) && n <= INT64_MAX ? (long long)n : -1;
}

/* True when the line starts with the field name (any case) and a colon. */
static bool field_is(struct slice line, const char *name)
{
    size_t n = strlen(name);
    return line.len > n && line.p[n] == ':' && strncasecmp(line.p, name, n) == 0;
}

enum http_head_body http_head_body(const char *p, size_t len, uint64_t *length)
{
    const char *end = p + len;
    struct slice line;
    size_t lengths = 0;
    bool encoded = false, folded = false, number = true;
    if (!next_line(&p, end, &line))
        return HTTP_HEAD_BODY_UNCLEAR; /* not even a request line: the parser says what it is */
    while (next_line(&p, end, &line) && line.len > 0) {
        if (line.p[0] == ' ' || line.p[0] == '\t') {
            folded = true; /* it continues a value, maybe a Content-Length's */
        } else if (field_is(line, "Transfer-Encoding")) {
            encoded = true;
        } else if (field_is(line, "Content-Length")) {
            size_t n = strlen("Content-Length:");
            struct slice v = trim((struct slice){line.p + n, line.len - n});
            lengths++;
            number = number && str_to_u64(v.p, v.len, length) && *length <= INT64_MAX;
        }
    }
    if (!lengths && !encoded)
        return HTTP_HEAD_BODY_NONE;
    return encoded || folded || lengths > 1 || !number ? HTTP_HEAD_BODY_UNCLEAR
                                                      : HTTP_HEAD_BODY_LENGTH;
}

bool http_head_parse(const char *p, size_t len, struct http_head *out, struct evkeyvalq *headers)
{
    const char *end = p + len;
    struct slice line;
    memset(out, 0, sizeof(*out));
    if (!next_line(&p, end, &line) || !parse_request_line(line, out))
        return false;
    while (next_line(&p, end, &line) && line.len > 0)
        if (!add_field(headers, line))
            return false;
    const char *te = evhttp_find_header(headers, "Transfer-Encoding");
    const char *cl = evhttp_find_header(headers, "Content-Length");
    if (te && strcasecmp(te, "chunked") == 0) {
        out->chunked = true;
    } else if (cl) {
        out->content_length = content_length(cl);
        if (out->content_length < 0)
            return false; /* evhttp answers 400 without reading a body */
    }
    if (!out->body_possible)
        out->chunked = false, out->content_length = 0;
    return true;
}

void http_head_cleanup(struct http_head *h)
{
    free(h->target);
    h->target = NULL;
}
