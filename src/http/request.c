/* Request accessors and plain replies over libevent's evhttp_request. */
#include "http/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/util.h>

#include "core/alloc.h"
#include "core/log.h"
#include "metrics/metrics.h"
#include "util/os.h"
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

static void decode_path(struct http_request *req)
{
    const char *path = req->uri ? evhttp_uri_get_path(req->uri) : NULL;
    if (path)
        req->path = http_path_decode(path, strlen(path));
}

/* The Content-Length of a whole request's head; -1 when chunked. */
static long long declared_length(struct evhttp_request *ev)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(ev);
    const char *te = evhttp_find_header(h, "Transfer-Encoding");
    const char *cl = evhttp_find_header(h, "Content-Length");
    if (te && evutil_ascii_strcasecmp(te, "chunked") == 0)
        return -1;
    return cl ? strtoll(cl, NULL, 10) : 0;
}

void http_request_init(struct http_request *req, struct evhttp_request *ev, const char *id)
{
    memset(req, 0, sizeof(*req));
    req->ev = ev;
    req->evcon = evhttp_request_get_connection(ev);
    req->start_ns = os_monotonic_ns();
    snprintf(req->id, sizeof(req->id), "%s", id);
    req->method = method_of(ev);
    TAILQ_INIT(&req->query);
    req->uri = evhttp_request_get_evhttp_uri(ev);
    req->body_declared = declared_length(ev);
    decode_path(req);
}

bool http_request_init_head(struct http_request *req, const char *p, size_t len,
                            struct http_conn *conn, struct evhttp_connection *evcon,
                            struct http_head *head)
{
    memset(req, 0, sizeof(*req));
    req->start_ns = os_monotonic_ns();
    /* No id: refused at its head (logged as req=-), it never reaches the server's counter. */
    req->ev = evhttp_request_new(NULL, NULL);
    if (!req->ev)
        abort(); /* allocation failure, as xmalloc */
    req->evcon = evcon;
    req->conn = conn;
    req->method = HTTP_OTHER;
    TAILQ_INIT(&req->query);
    bool ok = http_head_parse(p, len, head, evhttp_request_get_input_headers(req->ev));
    if (ok) {
        req->method = head->method;
        req->body_declared = head->chunked ? -1 : head->content_length;
        req->uri_owned = evhttp_uri_parse_with_flags(head->target, EVHTTP_URI_NONCONFORMANT);
        req->uri = req->uri_owned;
        ok = req->uri != NULL; /* evhttp refuses such a target too */
        decode_path(req);
    }
    return ok;
}

void http_request_cleanup(struct http_request *req)
{
    free(req->path);
    req->path = NULL;
    evhttp_clear_headers(&req->query);
    if (req->uri_owned)
        evhttp_uri_free(req->uri_owned);
    req->uri_owned = NULL;
    if (req->conn)
        evhttp_request_free(req->ev); /* ours: a whole request belongs to evhttp */
    req->ev = NULL;
}

long long http_request_body_declared(const struct http_request *req) { return req->body_declared; }

void http_request_accept_body(struct http_request *req, size_t max_bytes)
{
    req->body_accepted = true;
    req->body_max = max_bytes;
}

enum http_method http_request_method(const struct http_request *req) { return req->method; }

const char *http_request_path(const struct http_request *req) { return req->path; }

const char *http_request_query(const struct http_request *req)
{
    return req->uri ? evhttp_uri_get_query(req->uri) : NULL;
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
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (req->evcon)
        evhttp_connection_get_peer(req->evcon, &addr, &port);
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

const char *http_reason_phrase(int status)
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
    int64_t ns = os_monotonic_ns() - req->start_ns;
    uint64_t duration = ns > 0 ? (uint64_t)ns : 0;
    const char *method = method_name(req->method);
    metrics_http_observe(req->route_id, method, status, bytes, duration);
    if (LOG_INFO < log_threshold)
        return;
    char path[256];
    log_write(LOG_INFO, "http",
              "req=%s method=%s route=%s status=%d bytes=%llu ms=%.3f path=\"%s\"",
              req->id[0] ? req->id : "-", method,
              metrics_route_label(req->route_id), status, (unsigned long long)bytes,
              (double)duration / 1e6, log_path(req, path, sizeof(path)));
}

void http_request_send(struct http_request *req, int status)
{
    if (http_request_check_replied(req))
        return;
    req->replied = true;
    if (req->id[0])
        evhttp_add_header(evhttp_request_get_output_headers(req->ev), "X-Request-Id", req->id);
    /* Before the send: libevent frees ev at once when the connection is gone. */
    http_request_account(req, status,
                         evbuffer_get_length(evhttp_request_get_output_buffer(req->ev)));
    if (req->deferred) {
        req->deferred_status = status; /* sent by its loop (offload.c) */
        return;
    }
    if (req->conn)
        http_conn_refuse(req->conn, req->ev, status);
    else
        evhttp_send_reply(req->ev, status, http_reason_phrase(status), NULL);
}
