/* The S3 operations: objects up and down, HEAD, DELETE, listing, multipart upload. */
#include "store/s3_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "store/s3_xml.h"
#include "util/str.h"

/* Most parts of one upload (S3's limit). */
#define S3_MAX_PARTS 10000
/* A listing that goes on past this many pages is a server leading us in circles. */
#define S3_MAX_LIST_PAGES 1000000u

enum ia_err s3_create_bucket(struct s3 *s, char *detail, size_t detaillen)
{
    struct s3_request r;
    struct s3_response resp;
    s3_request_init(&r, "PUT", NULL);
    return s3_perform(s, &r, &resp, detail, detaillen);
}

static enum ia_err bad_key(char *detail, size_t detaillen)
{
    snprintf(detail, detaillen, "invalid key (empty, or longer than %d bytes with the prefix)",
             S3_MAX_KEY);
    return IA_ERR_INVALID;
}

static enum ia_err put_range(struct s3 *s, const char *full, int fd, uint64_t size,
                             const char *content_type, char *detail, size_t detaillen)
{
    struct s3_request r;
    struct s3_response resp;
    s3_request_init(&r, "PUT", full);
    r.body_fd = fd;
    r.body_len = size;
    r.content_type = content_type;
    return s3_perform(s, &r, &resp, detail, detaillen);
}

/* s3_put_file(), in parts from the threshold when may_split. */
static enum ia_err put_file(struct s3 *s, const char *key, const char *path,
                            const char *content_type, bool may_split, char *detail,
                            size_t detaillen)
{
    char *full = s3_full_key(s, key);
    if (!full)
        return bad_key(detail, detaillen);
    enum ia_err e = IA_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(detail, detaillen, "cannot read the file to upload: %s",
                 fd < 0 ? strerror(errno) : "not a regular file");
        e = fd < 0 && errno == ENOENT ? IA_ERR_NOT_FOUND : IA_ERR_IO;
        goto out;
    }
    if (may_split && (uint64_t)st.st_size >= s->multipart_threshold)
        e = s3_multipart_put(s, full, fd, (uint64_t)st.st_size, content_type, detail, detaillen);
    else
        e = put_range(s, full, fd, (uint64_t)st.st_size, content_type, detail, detaillen);
out:
    if (fd >= 0)
        close(fd);
    free(full);
    return e;
}

enum ia_err s3_put_file(struct s3 *s, const char *key, const char *path, const char *content_type,
                        char *detail, size_t detaillen)
{
    return put_file(s, key, path, content_type, true, detail, detaillen);
}

enum ia_err s3_put_file_once(struct s3 *s, const char *key, const char *path,
                             const char *content_type, char *detail, size_t detaillen)
{
    return put_file(s, key, path, content_type, false, detail, detaillen);
}

enum ia_err s3_put_mem(struct s3 *s, const char *key, const void *data, size_t len,
                       const char *content_type, char *detail, size_t detaillen)
{
    char *full = s3_full_key(s, key);
    if (!full)
        return bad_key(detail, detaillen);
    struct s3_request r;
    struct s3_response resp;
    s3_request_init(&r, "PUT", full);
    r.body_mem = data ? data : "";
    r.body_mem_len = len;
    r.content_type = content_type;
    enum ia_err e = s3_perform(s, &r, &resp, detail, detaillen);
    free(full);
    return e;
}

enum ia_err s3_get_file(struct s3 *s, const char *key, const char *path, uint64_t max, char *detail,
                        size_t detaillen)
{
    char *full = s3_full_key(s, key);
    if (!full)
        return bad_key(detail, detaillen);
    enum ia_err e;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(detail, detaillen, "cannot create %s: %s", "the download file", strerror(errno));
        e = errno == ENOSPC || errno == EDQUOT ? IA_ERR_STORAGE_FULL : IA_ERR_IO;
        goto out;
    }
    struct s3_request r;
    struct s3_response resp;
    s3_request_init(&r, "GET", full);
    r.out_fd = fd;
    r.out_max = max;
    e = s3_perform(s, &r, &resp, detail, detaillen);
    if (!e && close(fd) < 0) {
        snprintf(detail, detaillen, "closing the download file: %s", strerror(errno));
        e = errno == ENOSPC || errno == EDQUOT ? IA_ERR_STORAGE_FULL : IA_ERR_IO;
    } else if (e) {
        close(fd);
    }
    if (e)
        unlink(path);
out:
    free(full);
    return e;
}

enum ia_err s3_get_mem(struct s3 *s, const char *key, size_t max, char **out, size_t *len,
                       char *detail, size_t detaillen)
{
    *out = NULL;
    *len = 0;
    char *full = s3_full_key(s, key);
    if (!full)
        return bad_key(detail, detaillen);
    struct s3_buf buf;
    s3_buf_init(&buf, max);
    struct s3_request r;
    struct s3_response resp;
    s3_request_init(&r, "GET", full);
    r.out_mem = &buf;
    enum ia_err e = s3_perform(s, &r, &resp, detail, detaillen);
    if (!e) {
        *len = buf.len;
        *out = s3_buf_take(&buf);
    }
    s3_buf_cleanup(&buf);
    free(full);
    return e;
}

enum ia_err s3_head(struct s3 *s, const char *key, struct s3_head *out, char *detail,
                    size_t detaillen)
{
    memset(out, 0, sizeof *out);
    char *full = s3_full_key(s, key);
    if (!full)
        return bad_key(detail, detaillen);
    struct s3_request r;
    struct s3_response resp;
    s3_request_init(&r, "HEAD", full);
    enum ia_err e = s3_perform(s, &r, &resp, detail, detaillen);
    if (!e && !resp.has_length) {
        snprintf(detail, detaillen, "HEAD answered without a Content-Length");
        e = IA_ERR_IO;
    }
    if (!e) {
        out->size = resp.content_length;
        memcpy(out->etag, resp.etag, sizeof out->etag);
        memcpy(out->last_modified, resp.last_modified, sizeof out->last_modified);
    } else if (e == IA_ERR_NOT_FOUND) {
        snprintf(detail, detaillen, "no such key");
    }
    free(full);
    return e;
}

enum ia_err s3_delete(struct s3 *s, const char *key, char *detail, size_t detaillen)
{
    char *full = s3_full_key(s, key);
    if (!full)
        return bad_key(detail, detaillen);
    struct s3_request r;
    struct s3_response resp;
    s3_request_init(&r, "DELETE", full);
    enum ia_err e = s3_perform(s, &r, &resp, detail, detaillen);
    free(full);
    return e;
}

/* Listing. */

/* Reads one <Contents> element and hands it to cb; false when the server's entry is bad. */
static bool list_entry(struct s3 *s, struct slice c, s3_list_cb cb, void *ctx, int *stop)
{
    char *key = s3_xml_get(c, "Key", S3_MAX_KEY);
    char *size = s3_xml_get(c, "Size", 24);
    char *etag = s3_xml_get(c, "ETag", 128);
    char *mtime = s3_xml_get(c, "LastModified", 64);
    uint64_t n = 0;
    size_t plen = strlen(s->prefix);
    bool ok = key && size && str_to_u64(size, strlen(size), &n) && strlen(key) > plen &&
              strncmp(key, s->prefix, plen) == 0;
    if (ok) {
        struct s3_object o = {key + plen, n, etag ? etag : "", mtime ? mtime : ""};
        *stop = cb(&o, ctx);
    }
    free(key), free(size), free(etag), free(mtime);
    return ok;
}

/* One page: calls cb for each key; *next receives the continuation token (NULL: last page). */
static enum ia_err list_page(struct s3 *s, const char *full_prefix, const char *token,
                             s3_list_cb cb, void *ctx, char **next, int *stop, char *detail,
                             size_t detaillen)
{
    char maxkeys[16];
    snprintf(maxkeys, sizeof maxkeys, "%u", s->list_page);
    struct sigv4_pair q[4] = {{"list-type", "2"}, {"max-keys", maxkeys}, {"prefix", full_prefix}};
    size_t nq = 3;
    if (token)
        q[nq++] = (struct sigv4_pair){"continuation-token", token};
    struct s3_buf buf;
    s3_buf_init(&buf, S3_MAX_XML);
    struct s3_request r;
    struct s3_response resp;
    s3_request_init(&r, "GET", NULL);
    r.query = q;
    r.nquery = nq;
    r.out_mem = &buf;
    *next = NULL;
    enum ia_err e = s3_perform(s, &r, &resp, detail, detaillen);
    if (e)
        goto out;
    struct slice in = {buf.p ? buf.p : "", buf.len}, content, rest;
    while (!*stop && s3_xml_element(in, "Contents", &content, &rest)) {
        if (!list_entry(s, content, cb, ctx, stop)) {
            snprintf(detail, detaillen, "the listing has an entry we cannot read");
            e = IA_ERR_IO;
            goto out;
        }
        in = rest;
    }
    struct slice all = {buf.p ? buf.p : "", buf.len};
    char *truncated = s3_xml_get(all, "IsTruncated", 8);
    if (truncated && strcmp(truncated, "true") == 0) {
        *next = s3_xml_get(all, "NextContinuationToken", 4096);
        if (!*next || !(*next)[0] || (token && strcmp(*next, token) == 0)) {
            free(*next);
            *next = NULL;
            snprintf(detail, detaillen, "a truncated listing without a new continuation token");
            e = IA_ERR_IO;
        }
    }
    free(truncated);
out:
    s3_buf_cleanup(&buf);
    return e;
}

enum ia_err s3_list(struct s3 *s, const char *prefix, s3_list_cb cb, void *ctx, unsigned *pages,
                    char *detail, size_t detaillen)
{
    char *full_prefix = xasprintf("%s%s", s->prefix, prefix ? prefix : "");
    char *token = NULL;
    enum ia_err e = IA_OK;
    unsigned n = 0;
    int stop = 0;
    do {
        char *next = NULL;
        if (++n > S3_MAX_LIST_PAGES) {
            snprintf(detail, detaillen, "more than %u pages", S3_MAX_LIST_PAGES);
            e = IA_ERR_IO;
            break;
        }
        e = list_page(s, full_prefix, token, cb, ctx, &next, &stop, detail, detaillen);
        free(token);
        token = next;
    } while (!e && token && !stop);
    free(token);
    free(full_prefix);
    if (pages)
        *pages = n;
    return e;
}

/* Multipart upload. */

static enum ia_err multipart_create(struct s3 *s, const char *full, const char *content_type,
                                    char **upload_id, char *detail, size_t detaillen)
{
    struct sigv4_pair q[1] = {{"uploads", ""}};
    struct s3_buf buf;
    s3_buf_init(&buf, S3_MAX_ERROR_BODY);
    struct s3_request r;
    struct s3_response resp;
    s3_request_init(&r, "POST", full);
    r.query = q;
    r.nquery = 1;
    r.content_type = content_type;
    r.out_mem = &buf;
    enum ia_err e = s3_perform(s, &r, &resp, detail, detaillen);
    if (!e) {
        struct slice in = {buf.p ? buf.p : "", buf.len};
        *upload_id = s3_xml_get(in, "UploadId", 1024);
        if (!*upload_id || !(*upload_id)[0]) {
            free(*upload_id);
            *upload_id = NULL;
            snprintf(detail, detaillen, "CreateMultipartUpload answered without an UploadId");
            e = IA_ERR_IO;
        }
    }
    s3_buf_cleanup(&buf);
    return e;
}

static enum ia_err multipart_part(struct s3 *s, const char *full, const char *upload_id,
                                  unsigned number, int fd, uint64_t off, uint64_t len, char *etag,
                                  size_t etaglen, char *detail, size_t detaillen)
{
    char num[16];
    snprintf(num, sizeof num, "%u", number);
    struct sigv4_pair q[2] = {{"partNumber", num}, {"uploadId", upload_id}};
    struct s3_request r;
    struct s3_response resp;
    s3_request_init(&r, "PUT", full);
    r.query = q;
    r.nquery = 2;
    r.body_fd = fd;
    r.body_off = off;
    r.body_len = len;
    enum ia_err e = s3_perform(s, &r, &resp, detail, detaillen);
    if (!e && !resp.etag[0]) {
        snprintf(detail, detaillen, "part %u answered without an ETag", number);
        e = IA_ERR_IO;
    }
    if (!e)
        snprintf(etag, etaglen, "%s", resp.etag);
    return e;
}

static enum ia_err multipart_complete(struct s3 *s, const char *full, const char *upload_id,
                                      char (*etags)[80], unsigned nparts, char *detail,
                                      size_t detaillen)
{
    struct s3_buf body;
    s3_buf_init(&body, (size_t)nparts * 256 + 256);
    s3_buf_adds(&body, "<CompleteMultipartUpload>");
    for (unsigned i = 0; i < nparts; i++) {
        char *etag = s3_xml_escape(etags[i]);
        s3_buf_addf(&body, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>", i + 1, etag);
        free(etag);
    }
    s3_buf_adds(&body, "</CompleteMultipartUpload>");
    struct sigv4_pair q[1] = {{"uploadId", upload_id}};
    struct s3_buf out;
    s3_buf_init(&out, S3_MAX_ERROR_BODY);
    struct s3_request r;
    struct s3_response resp;
    s3_request_init(&r, "POST", full);
    r.query = q;
    r.nquery = 1;
    r.body_mem = body.p;
    r.body_mem_len = body.len;
    r.content_type = "application/xml";
    r.out_mem = &out;
    enum ia_err e = s3_perform(s, &r, &resp, detail, detaillen);
    /* S3 may answer 200 and put an error in the body when it fails late. */
    struct slice in = {out.p ? out.p : "", out.len}, content, rest;
    if (!e && s3_xml_element(in, "Error", &content, &rest)) {
        char *code = s3_xml_get(content, "Code", 64);
        char esc[80];
        log_escape(esc, sizeof esc, code ? code : "", code ? strlen(code) : 0);
        snprintf(detail, detaillen, "CompleteMultipartUpload failed: %s", esc);
        free(code);
        e = IA_ERR_STORAGE_UNAVAILABLE;
    }
    s3_buf_cleanup(&out);
    s3_buf_cleanup(&body);
    return e;
}

static void multipart_abort(struct s3 *s, const char *full, const char *upload_id)
{
    struct sigv4_pair q[1] = {{"uploadId", upload_id}};
    struct s3_request r;
    struct s3_response resp;
    char detail[256];
    s3_request_init(&r, "DELETE", full);
    r.query = q;
    r.nquery = 1;
    if (s3_perform(s, &r, &resp, detail, sizeof detail))
        log_msg(LOG_WARN, "s3", "abort of a multipart upload failed: %s", detail);
}

enum ia_err s3_multipart_put(struct s3 *s, const char *full_key, int fd, uint64_t size,
                             const char *content_type, char *detail, size_t detaillen)
{
    uint64_t part = s->part_size;
    uint64_t nparts64 = size / part + (size % part ? 1 : 0);
    if (nparts64 == 0)
        nparts64 = 1;
    if (nparts64 > S3_MAX_PARTS) {
        snprintf(detail, detaillen, "the file needs more than %d parts of S3_PART_SIZE",
                 S3_MAX_PARTS);
        return IA_ERR_TOO_LARGE;
    }
    unsigned nparts = (unsigned)nparts64;
    char *upload_id = NULL;
    enum ia_err e = multipart_create(s, full_key, content_type, &upload_id, detail, detaillen);
    if (e)
        return e;
    char(*etags)[80] = xcalloc(nparts, sizeof *etags);
    for (unsigned i = 0; !e && i < nparts; i++) {
        uint64_t off = (uint64_t)i * part;
        uint64_t len = size - off < part ? size - off : part;
        e = multipart_part(s, full_key, upload_id, i + 1, fd, off, len, etags[i], sizeof etags[i],
                           detail, detaillen);
    }
    if (!e)
        e = multipart_complete(s, full_key, upload_id, etags, nparts, detail, detaillen);
    if (e)
        multipart_abort(s, full_key, upload_id);
    else
        log_msg(LOG_DEBUG, "s3", "multipart upload of %" PRIu64 " bytes in %u parts", size, nparts);
    free(etags);
    free(upload_id);
    return e;
}

/* Only these answers of a conditional or ranged GET are passed back to the caller as such. */
static bool passed_through(long status)
{
    return status == 200 || status == 206 || status == 304 || status == 412 || status == 416;
}

enum ia_err s3_get_stream(struct s3 *s, const char *key, const char *method, const char *range,
                          const char *if_match, s3_body_cb cb, void *ctx,
                          struct s3_get_head *out, char *detail, size_t detaillen)
{
    memset(out, 0, sizeof *out);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        snprintf(detail, detaillen, "method %s cannot be streamed", method);
        return IA_ERR_INVALID;
    }
    char *full = s3_full_key(s, key);
    if (!full)
        return bad_key(detail, detaillen);
    struct s3_request r;
    struct s3_response resp;
    s3_request_init(&r, method, full);
    r.range = range;
    r.if_match = if_match;
    r.out_cb = cb;
    r.out_ctx = ctx;
    enum ia_err e = s3_perform(s, &r, &resp, detail, detaillen);
    if (e == IA_ERR_IO && passed_through(resp.status))
        e = IA_OK; /* 304, 412, 416: an answer for the client, not a failure */
    if (!e)
        s3_get_head_fill(out, &resp, resp.status);
    else if (e == IA_ERR_NOT_FOUND)
        snprintf(detail, detaillen, "no such key");
    free(full);
    return e;
}
