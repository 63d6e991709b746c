/* Request accessors and plain replies over libevent's evhttp_request. */
#include "http/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "metrics/metrics.h"
#include "util/str.h"

static enum http_method method_of(const struct evhttp_request *ev)
{
    switch (evhttp_request_get_command(ev)) {
    case EVHTTP_REQ_GET:
        return HTTP_GET;
    case EVHTTP_REQ_HEAD:
        return HTTP_HEAD;
    case EVHTTP_REQ_POST:
        return HTTP_POST;
    case EVHTTP_REQ_PUT:
        return HTTP_PUT;
    case EVHTTP_REQ_PATCH:
        return HTTP_PATCH;
    case EVHTTP_REQ_DELETE:
        return HTTP_DELETE;
    case EVHTTP_REQ_OPTIONS:
        return HTTP_OPTIONS;
    default:
        return HTTP_OTHER;
    }
}

char *http_path_decode(const char *in, size_t len)
{
    char *out = xmalloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i];
        if (c == '%') {
            int hi = i + 2 < len ? str_hex_value(in[i + 1]) : -1;
            int lo = hi >= 0 ? str_hex_value(in[i + 2]) : -1;
            if (lo < 0)
                goto bad;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0)
            goto bad;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void http_request_init(struct http_request *req, struct evhttp_request *ev, const char *id)
{
    memset(req, 0, sizeof(*req));
    req->ev = ev;
    req->start_ns = now_ns();
    snprintf(req->id, sizeof(req->id), "%s", id);
    req->method = method_of(ev);
    TAILQ_INIT(&req->query);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (path)
        req->path = http_path_decode(path, strlen(path));
}

void http_request_cleanup(struct http_request *req)
{
    free(req->path);
    req->path = NULL;
    evhttp_clear_headers(&req->query);
}

enum http_method http_request_method(const struct http_request *req) { return req->method; }

const char *http_request_path(const struct http_request *req) { return req->path; }

const char *http_request_query(const struct http_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req->ev);
    return uri ? evhttp_uri_get_query(uri) : NULL;
}

const char *http_request_query_param(struct http_request *req, const char *name)
{
    if (!req->query_parsed) {
        req->query_parsed = true;
        const char *q = http_request_query(req);
        req->query_ok = q && evhttp_parse_query_str(q, &req->query) == 0;
    }
    return req->query_ok ? evhttp_find_header(&req->query, name) : NULL;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(req->ev), name);
}

const unsigned char *http_request_body(struct http_request *req, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req->ev);
    *len = evbuffer_get_length(in);
    if (*len == 0)
        return (const unsigned char *)"";
    return evbuffer_pullup(in, -1);
}

const char *http_request_id(const struct http_request *req) { return req->id; }

void http_request_set_route(struct http_request *req, int route_id) { req->route_id = route_id; }

const char *http_request_peer(const struct http_request *req)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req->ev);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (conn)
        evhttp_connection_get_peer(conn, &addr, &port);
    return addr ? addr : "";
}

void http_reply_header(struct http_request *req, const char *name, const char *value)
{
    if (http_request_check_replied(req))
        return;
    if (evhttp_add_header(evhttp_request_get_output_headers(req->ev), name, value) != 0) {
        char esc[128];
        log_msg(LOG_WARN, "http", "header %s refused (bad characters): %s", name,
                log_escape(esc, sizeof(esc), value, strlen(value)));
    }
}

void http_reply_body(struct http_request *req, int status, const char *content_type,
                     const void *body, size_t len)
{
    if (http_request_check_replied(req))
        return;
    if (content_type)
        http_reply_header(req, "Content-Type", content_type);
    if (req->method == HTTP_HEAD) {
        if (status != 204 && status != 304 && status >= 200) {
            char num[24];
            snprintf(num, sizeof(num), "%zu", len);
            http_reply_header(req, "Content-Length", num);
        }
    } else if (len > 0) {
        evbuffer_add(evhttp_request_get_output_buffer(req->ev), body, len);
    }
    http_request_send(req, status);
}

bool http_request_check_replied(const struct http_request *req)
{
    if (req->replied)
        log_msg(LOG_ERROR, "http", "reply after the request was answered (a handler bug)");
    return req->replied;
}

static const char *reason_phrase(int status)
{
    static const struct {
        int status;
        const char *text;
    } table[] = {
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {206, "Partial Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {303, "See Other"},
        {304, "Not Modified"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {409, "Conflict"},
        {410, "Gone"},
        {411, "Length Required"},
        {412, "Precondition Failed"},
        {413, "Content Too Large"},
        {415, "Unsupported Media Type"},
        {416, "Range Not Satisfiable"},
        {422, "Unprocessable Content"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {507, "Insufficient Storage"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (table[i].status == status)
            return table[i].text;
    return "Status";
}

static const char *method_name(enum http_method m)
{
    switch (m) {
    case HTTP_GET:
        return "GET";
    case HTTP_HEAD:
        return "HEAD";
    case HTTP_POST:
        return "POST";
    case HTTP_PUT:
        return "PUT";
    case HTTP_PATCH:
        return "PATCH";
    case HTTP_DELETE:
        return "DELETE";
    case HTTP_OPTIONS:
        return "OPTIONS";
    default:
        return "OTHER";
    }
}

/* The path as the log shows it: decoded when it decodes, else as sent; never the query. */
static const char *log_path(const struct http_request *req, char *out, size_t cap)
{
    const char *p = req->path;
    if (!p) {
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req->ev);
        p = uri ? evhttp_uri_get_path(uri) : NULL;
    }
    if (!p)
        p = "";
    return log_escape(out, cap, p, strlen(p));
}

/* The request's metrics and its one log line (info): what was asked, answered, and how fast. */
void http_request_account(const struct http_request *req, int status, uint64_t bytes)
{
    int64_t ns = now_ns() - req->start_ns;
    uint64_t duration = ns > 0 ? (uint64_t)ns : 0;
    const char *method = method_name(req->method);
    metrics_http_observe(req->route_id, method, status, bytes, duration);
    if (LOG_INFO < log_threshold)
        return;
    char path[256];
    log_write(LOG_INFO, "http",
              "req=%s method=%s route=%s status=%d bytes=%llu ms=%.3f path=\"%s\"", req->id, method,
              metrics_route_label(req->route_id), status, (unsigned long long)bytes,
              (double)duration / 1e6, log_path(req, path, sizeof(path)));
}

void http_request_send(struct http_request *req, int status)
{
    if (http_request_check_replied(req))
        return;
    req->replied = true;
    evhttp_add_header(evhttp_request_get_output_headers(req->ev), "X-Request-Id", req->id);
    /* Before the send: libevent frees ev at once when the connection is gone. */
    http_request_account(req, status,
                         evbuffer_get_length(evhttp_request_get_output_buffer(req->ev)));
    evhttp_send_reply(req->ev, status, reason_phrase(status), NULL);
}
