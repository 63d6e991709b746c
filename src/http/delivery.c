/*
 * http_reply_file(): a regular file answered as nginx's static module does, with the decisions
 * from range.c and the body sent zero-copy (a libevent file segment, written with sendfile).
 */
#include "http/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "http/range.h"

static void add_header(struct http_request *req, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(req->ev), name, value);
}

static void add_number_header(struct http_request *req, const char *name, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof(num), "%" PRIu64, v);
    add_header(req, name, num);
}

static void add_validators(struct http_request *req, const char *etag, time_t mtime)
{
    char date[HTTP_DATE_MAX];
    http_date_format(mtime, date);
    add_header(req, "Last-Modified", date);
    add_header(req, "ETag", etag);
}

/* Queues [r.start, r.start + r.len) of fd for sendfile; takes fd. False if libevent refuses. */
static bool add_file_body(struct http_request *req, int fd, struct http_byte_range r)
{
    struct evbuffer_file_segment *seg =
        evbuffer_file_segment_new(fd, (ev_off_t)r.start, (ev_off_t)r.len, EVBUF_FS_CLOSE_ON_FREE);
    if (!seg) {
        close(fd);
        return false;
    }
    /* Without this flag libevent maps the file into memory instead of using sendfile. */
    struct evbuffer *out = evhttp_request_get_output_buffer(req->ev);
    evbuffer_set_flags(out, EVBUFFER_FLAG_DRAINS_TO_FD);
    int rc = evbuffer_add_file_segment(out, seg, 0, (ev_off_t)r.len);
    evbuffer_file_segment_free(
        seg); /* the buffer keeps its own reference; the last one closes fd */
    return rc == 0;
}

static void read_conditions(const struct http_request *req, struct http_file_conditions *c)
{
    c->range = http_request_header(req, "Range");
    c->if_range = http_request_header(req, "If-Range");
    c->if_match = http_request_header(req, "If-Match");
    c->if_none_match = http_request_header(req, "If-None-Match");
    c->if_modified_since = http_request_header(req, "If-Modified-Since");
    c->if_unmodified_since = http_request_header(req, "If-Unmodified-Since");
}

/* 200 or 206: validators, length, and the body unless HEAD or empty. Takes fd. */
static void send_content(struct http_request *req, int fd, const struct stat *st,
                         const char *content_type, const struct http_file_plan *plan,
                         const char *etag)
{
    uint64_t size = (uint64_t)st->st_size;
    if (content_type)
        add_header(req, "Content-Type", content_type);
    add_number_header(req, "Content-Length", plan->range.len);
    add_validators(req, etag, st->st_mtime);
    if (plan->status == 206) {
        char cr[80];
        snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, plan->range.start,
                 plan->range.start + plan->range.len - 1, size);
        add_header(req, "Content-Range", cr);
    } else {
        add_header(req, "Accept-Ranges", "bytes");
    }
    if (req->method == HTTP_HEAD || plan->range.len == 0) {
        close(fd);
    } else if (!add_file_body(req, fd, plan->range)) {
        log_msg(LOG_ERROR, "http", "cannot queue a file body of %" PRIu64 " bytes",
                plan->range.len);
        evhttp_clear_headers(evhttp_request_get_output_headers(req->ev));
        http_reply_body(req, 500, "text/plain", "internal error\n", 15);
        return;
    }
    http_request_send(req, plan->status);
}

void http_reply_file(struct http_request *req, int fd, const struct stat *st,
                     const char *content_type)
{
    if (http_request_check_replied(req)) {
        close(fd);
        return;
    }
    if (!S_ISREG(st->st_mode)) {
        log_msg(LOG_ERROR, "http", "http_reply_file: not a regular file (mode %o)",
                (unsigned)st->st_mode);
        http_reply_body(req, 500, "text/plain", "internal error\n", 15);
        close(fd);
        return;
    }
    char etag[HTTP_ETAG_MAX];
    http_etag_format(st->st_mtime, (uint64_t)st->st_size, etag);
    struct http_file_conditions c;
    read_conditions(req, &c);
    struct http_file_plan plan;
    http_file_decide(&c, st->st_mtime, (uint64_t)st->st_size, etag, &plan);
    switch (plan.status) {
    case 200:
    case 206:
        send_content(req, fd, st, content_type, &plan, etag);
        return;
    case 304:
        add_validators(req, etag, st->st_mtime);
        http_request_send(req, 304);
        break;
    case 416: {
        char cr[40];
        snprintf(cr, sizeof(cr), "bytes */%" PRIu64, (uint64_t)st->st_size);
        add_header(req, "Content-Range", cr);
        http_reply_body(req, 416, NULL, NULL, 0);
        break;
    }
    default: /* 412, like nginx without validators */
        http_reply_body(req, plan.status, NULL, NULL, 0);
        break;
    }
    close(fd);
}

int http_reply_decide(struct http_request *req, uint64_t size, const char *etag,
                      const char *last_modified, uint64_t *start, uint64_t *len)
{
    if (http_request_check_replied(req))
        return 0;
    time_t mtime = 0;
    if (last_modified)
        (void)http_date_parse(last_modified, strlen(last_modified), &mtime);
    struct http_file_conditions c = {0};
    c.range = http_request_header(req, "Range");
    c.if_range = http_request_header(req, "If-Range");
    c.if_none_match = http_request_header(req, "If-None-Match");
    struct http_file_plan plan;
    http_file_decide(&c, mtime, size, etag, &plan);
    switch (plan.status) {
    case 200:
        *start = 0;
        *len = size;
        return 200;
    case 206:
        *start = plan.range.start;
        *len = plan.range.len;
        return 206;
    case 304:
        if (last_modified && last_modified[0])
            add_header(req, "Last-Modified", last_modified);
        add_header(req, "ETag", etag);
        http_request_send(req, 304);
        return 0;
    case 416: {
        char cr[40];
        snprintf(cr, sizeof(cr), "bytes */%" PRIu64, size);
        add_header(req, "Content-Range", cr);
        http_reply_body(req, 416, NULL, NULL, 0);
        return 0;
    }
    default:
        http_reply_body(req, plan.status, NULL, NULL, 0);
        return 0;
    }
}
