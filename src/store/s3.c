/*
 * The S3 client's configuration and its one way to send a request: sign (s3_sign.c), check the
 * connected address against the network policy, perform with libcurl, map the answer.
 */
#include "store/s3_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "store/s3_xml.h"
#include "util/curl_load.h"
#include "util/netpolicy.h"
#include "util/str.h"

#define S3_USER_AGENT "interview-api/0.1"
#define S3_LOW_SPEED_BYTES_S 1024L
#define S3_LOW_SPEED_TIME_S 30L
#define S3_STREAM_READ_BYTES (512L * 1024) /* curl's receive buffer for a streamed GET */
#define S3_DEFAULT_REGION "us-east-1"

/* The state of one transfer, seen by curl's callbacks. */
struct xfer {
    struct s3 *s;
    const struct s3_request *r;
    struct s3_response *resp;
    CURL *curl;
    uint64_t sent;     /* body bytes handed to curl */
    uint64_t received; /* 2xx body bytes written */
    struct s3_buf errbody;
    struct curl_gate gate; /* the network policy on every connection */
    bool too_large, write_failed, read_failed, disk_full, stopped;
    struct s3_get_head head; /* for out_cb: filled at its first call */
    uint64_t flushed;        /* for out_cb: body bytes when it was last told to send on */
    char errbuf[CURL_ERROR_SIZE];
};

static const char *first_set(const char *a, const char *b)
{
    return a && a[0] ? a : b && b[0] ? b : NULL;
}

/* Splits "s3://bucket/prefix" into bucket and a prefix that is "" or ends in '/'. */
static bool parse_storage_url(struct s3 *s, const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "s3://", 5) != 0) {
        snprintf(err, errlen, "STORAGE_URL: expected s3://bucket/prefix");
        return false;
    }
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t blen = slash ? (size_t)(slash - b) : strlen(b);
    bool ok = blen >= 3 && blen <= 63;
    for (size_t i = 0; ok && i < blen; i++)
        ok = (b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '-' ||
             b[i] == '.';
    if (!ok || b[0] == '.' || b[0] == '-' || b[blen - 1] == '.' || b[blen - 1] == '-') {
        snprintf(err, errlen, "STORAGE_URL: the bucket name must be 3 to 63 of a-z 0-9 . -");
        return false;
    }
    s->bucket = xstrndup(b, blen);
    const char *p = slash ? slash + 1 : "";
    size_t plen = strlen(p);
    if (plen >= S3_MAX_KEY / 2) {
        snprintf(err, errlen, "STORAGE_URL: the prefix is too long");
        return false;
    }
    s->prefix = plen && p[plen - 1] != '/' ? xasprintf("%s/", p) : xstrdup(p);
    return true;
}

/* Reads the endpoint: http(s), a host, an optional port, no user-info, no path. */
static bool parse_endpoint(struct s3 *s, const char *endpoint, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL, *path = NULL, *query = NULL;
    bool ok = false;
    uint64_t portnum = 0;
    if (!u || curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        snprintf(err, errlen, "AWS_ENDPOINT_URL_S3: expected http(s)://host[:port]");
        goto out;
    }
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    if ((strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
        curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
        (path && strcmp(path, "/") != 0) || !str_to_u64(port, strlen(port), &portnum) ||
        portnum == 0 || portnum > 65535) {
        snprintf(err, errlen,
                 "AWS_ENDPOINT_URL_S3: expected http(s)://host[:port] without "
                 "user, path or query");
        goto out;
    }
    s->scheme = xstrdup(scheme);
    s->host = xstrdup(host);
    s->port = (unsigned)portnum;
    s->default_port = (portnum == 80 && strcmp(scheme, "http") == 0) ||
                      (portnum == 443 && strcmp(scheme, "https") == 0);
    ok = true;
out:
    curl_free(scheme), curl_free(host), curl_free(port), curl_free(user), curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    return ok;
}

/*
 * True when the endpoint's host is an IP address literal (IPv6 in brackets too). curl's URL
 * parser has already written any IPv4 form ("0x7f.1") as a dotted quad.
 */
static bool host_is_address(const char *host)
{
    unsigned char addr[16];
    char v6[64];
    size_t n = strlen(host);
    if (inet_pton(AF_INET, host, addr) == 1)
        return true;
    if (n < 2 || host[0] != '[' || host[n - 1] != ']' || n - 2 >= sizeof(v6))
        return inet_pton(AF_INET6, host, addr) == 1;
    memcpy(v6, host + 1, n - 2);
    v6[n - 2] = '\0';
    return inet_pton(AF_INET6, v6, addr) == 1;
}

static bool configure(struct s3 *s, const struct config *cfg, char *err, size_t errlen)
{
    if (!parse_storage_url(s, cfg->storage_url, err, errlen))
        return false;
    s->region =
        xstrdup(first_set(first_set(cfg->aws_region, cfg->aws_default_region), S3_DEFAULT_REGION));
    char *aws = xasprintf("https://s3.%s.amazonaws.com", s->region);
    const char *endpoint =
        first_set(first_set(cfg->aws_endpoint_url_s3, cfg->aws_endpoint_url), aws);
    bool ok = parse_endpoint(s, endpoint, err, errlen);
    free(aws);
    if (!ok)
        return false;
    if (!cfg->aws_access_key_id[0] || !cfg->aws_secret_access_key[0]) {
        snprintf(err, errlen,
                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set for "
                 "STORAGE_URL=s3://...");
        return false;
    }
    s->access_key = xstrdup(cfg->aws_access_key_id);
    s->secret_key = xstrdup(cfg->aws_secret_access_key);
    s->session_token = xstrdup(cfg->aws_session_token);
    /* Virtual-hosted style needs a DNS name: an address or a dotted bucket goes in the path. */
    s->path_style =
        cfg->s3_force_path_style || host_is_address(s->host) || strchr(s->bucket, '.') != NULL;
    s->connect_timeout_s = (long)cfg->s3_connect_timeout_s;
    s->timeout_s = (long)cfg->s3_timeout_s;
    s->multipart_threshold = (uint64_t)cfg->s3_multipart_threshold;
    s->part_size = (uint64_t)cfg->s3_part_size;
    s->list_page = (unsigned)cfg->s3_list_page;
    char port[8];
    snprintf(port, sizeof port, "%u", s->port);
    s->policy = netpolicy_new(cfg->s3_allow_cidrs, port, err, errlen);
    if (!s->policy) {
        /* netpolicy's messages name FETCH_ALLOW_CIDRS; say which option this was. */
        char why[200];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "S3_ALLOW_CIDRS: %s", why);
        return false;
    }
    return true;
}

struct s3 *s3_new(const struct config *cfg, char *err, size_t errlen)
{
    struct s3 *s = xcalloc(1, sizeof *s);
    if (!configure(s, cfg, err, errlen)) {
        s3_free(s);
        return NULL;
    }
    s->curl = curl_easy_init();
    if (!s->curl) {
        snprintf(err, errlen, "cannot initialise libcurl");
        s3_free(s);
        return NULL;
    }
    return s;
}

long s3_set_timeout(struct s3 *s, long timeout_s)
{
    long old = s->timeout_s;
    s->timeout_s = timeout_s < 1 ? 1 : timeout_s;
    return old;
}

void s3_free(struct s3 *s)
{
    if (!s)
        return;
    if (s->curl)
        curl_easy_cleanup(s->curl);
    if (s->secret_key)
        explicit_bzero(s->secret_key, strlen(s->secret_key));
    if (s->session_token)
        explicit_bzero(s->session_token, strlen(s->session_token));
    free(s->scheme), free(s->host), free(s->bucket), free(s->prefix), free(s->region);
    free(s->access_key), free(s->secret_key), free(s->session_token);
    netpolicy_free(s->policy);
    free(s);
}

const char *s3_bucket(const struct s3 *s) { return s->bucket; }
const char *s3_prefix(const struct s3 *s) { return s->prefix; }

char *s3_full_key(const struct s3 *s, const char *key)
{
    if (!key || !key[0])
        return NULL;
    char *full = xasprintf("%s%s", s->prefix, key);
    if (strlen(full) > S3_MAX_KEY) {
        free(full);
        return NULL;
    }
    return full;
}

void s3_request_init(struct s3_request *r, const char *method, const char *key)
{
    memset(r, 0, sizeof *r);
    r->method = method;
    r->key = key;
    r->body_fd = -1;
    r->out_fd = -1;
}

/* The Host header: bucket.host in virtual-hosted style, with the port when not the default. */
static char *host_header(const struct s3 *s)
{
    char port[8] = "";
    if (!s->default_port)
        snprintf(port, sizeof port, ":%u", s->port);
    return s->path_style ? xasprintf("%s%s", s->host, port)
                         : xasprintf("%s.%s%s", s->bucket, s->host, port);
}

/* The encoded path of a key (or of the bucket when key is NULL). */
static char *request_path(const struct s3 *s, const char *key)
{
    char *enc = key ? sigv4_encode(key, strlen(key), true) : xstrdup("");
    char *path = s->path_style
                     ? (key ? xasprintf("/%s/%s", s->bucket, enc) : xasprintf("/%s", s->bucket))
                     : xasprintf("/%s", enc);
    free(enc);
    return path;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *userp)
{
    struct xfer *x = userp;
    const struct s3_request *r = x->r;
    uint64_t total = r->body_fd >= 0 ? r->body_len : r->body_mem_len;
    size_t want = size * nitems;
    if (x->sent >= total)
        return 0;
    if (want > total - x->sent)
        want = (size_t)(total - x->sent);
    if (r->body_fd < 0) {
        memcpy(buf, r->body_mem + x->sent, want);
        x->sent += want;
        return want;
    }
    ssize_t n;
    do
        n = pread(r->body_fd, buf, want, (off_t)(r->body_off + x->sent));
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        x->read_failed = true;
        return CURL_READFUNC_ABORT;
    }
    x->sent += (uint64_t)n;
    return (size_t)n;
}

static bool write_all(int fd, const char *p, size_t n, bool *disk_full)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            *disk_full = errno == ENOSPC || errno == EDQUOT;
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Between reads: a streamed body's receiver sends on what it gathered (s3_body_cb, n == 0). */
static int on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)ultotal, (void)ulnow;
    struct xfer *x = userp;
    if (x->head.status == 0 || (uint64_t)dlnow == x->flushed)
        return 0;
    x->flushed = (uint64_t)dlnow;
    if (!x->r->out_cb(x->r->out_ctx, &x->head, NULL, 0)) {
        x->stopped = true;
        return 1; /* curl stops the transfer */
    }
    return 0;
}

/* A 2xx body goes where the request says (capped); an error body is kept to read its code. */
static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct xfer *x = userp;
    size_t n = size * nmemb;
    long code = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code > 299) {
        s3_buf_add(&x->errbody, data, n); /* past the cap the rest is dropped */
        return n;
    }
    const struct s3_request *r = x->r;
    if (r->out_cb) {
        if (x->head.status == 0)
            s3_get_head_fill(&x->head, x->resp, code);
        if (!r->out_cb(r->out_ctx, &x->head, data, n)) {
            x->stopped = true;
            return 0;
        }
    } else if (r->out_mem) {
        if (!s3_buf_add(r->out_mem, data, n)) {
            x->too_large = true;
            return 0;
        }
    } else if (r->out_fd >= 0) {
        if (r->out_max && x->received + n > r->out_max) {
            x->too_large = true;
            return 0;
        }
        if (!write_all(r->out_fd, data, n, &x->disk_full)) {
            x->write_failed = true;
            return 0;
        }
    }
    x->received += n;
    return n;
}

void s3_get_head_fill(struct s3_get_head *h, const struct s3_response *resp, long status)
{
    h->status = status;
    h->length = resp->content_length;
    h->has_length = resp->has_length;
    memcpy(h->etag, resp->etag, sizeof h->etag);
    memcpy(h->last_modified, resp->last_modified, sizeof h->last_modified);
    memcpy(h->content_range, resp->content_range, sizeof h->content_range);
}

/* Copies a header's value if it is printable ASCII and fits. */
static void keep_header(char *dst, size_t dstlen, const char *v, size_t n)
{
    if (n >= dstlen)
        return;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x20 || v[i] > 0x7E)
            return;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nitems, void *userp)
{
    struct xfer *x = userp;
    size_t n = size * nitems, len = n;
    struct s3_response *resp = x->resp;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        memset(resp, 0, sizeof *resp); /* a new response (after 100 Continue) */
        return n;
    }
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    const char *colon = memchr(data, ':', len);
    if (!colon)
        return n;
    struct slice name = {data, (size_t)(colon - data)};
    const char *v = colon + 1, *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    size_t vlen = (size_t)(end - v);
    if (slice_eq_nocase(name, "etag"))
        keep_header(resp->etag, sizeof resp->etag, v, vlen);
    else if (slice_eq_nocase(name, "last-modified"))
        keep_header(resp->last_modified, sizeof resp->last_modified, v, vlen);
    else if (slice_eq_nocase(name, "content-range"))
        keep_header(resp->content_range, sizeof resp->content_range, v, vlen);
    else if (slice_eq_nocase(name, "x-amz-request-id"))
        keep_header(resp->request_id, sizeof resp->request_id, v, vlen);
    else if (slice_eq_nocase(name, "content-length"))
        resp->has_length = str_to_u64(v, vlen, &resp->content_length);
    return n;
}

/* The payload hash of the request's body, read once from its file or memory. */
static enum ia_err payload_hash(const struct s3_request *r, char out[65], char *detail,
                                size_t detaillen)
{
    unsigned char md[SHA256_LEN];
    if (r->body_fd >= 0) {
        if (crypto_sha256_fd(r->body_fd, r->body_off, r->body_len, md) < 0) {
            snprintf(detail, detaillen, "reading the file to upload: %s", strerror(errno));
            return IA_ERR_IO;
        }
    } else if (r->body_mem) {
        crypto_sha256(r->body_mem, r->body_mem_len, md);
    } else {
        snprintf(out, 65, "%s", SIGV4_EMPTY_SHA256);
        return IA_OK;
    }
    str_hex(out, md, sizeof md);
    return IA_OK;
}

/* Adds "Name: value" to a curl header list. */
static struct curl_slist *add_header(struct curl_slist *list, const char *name, const char *value)
{
    char *line = xasprintf("%s: %s", name, value);
    struct curl_slist *next = curl_slist_append(list, line);
    free(line);
    if (!next)
        abort();
    return next;
}

/* Signs r: the headers to send, Authorization included. */
static struct curl_slist *signed_headers(const struct s3 *s, const struct s3_request *r,
                                         const char *host, const char *path, const char *hash)
{
    char date[SIGV4_DATE_LEN];
    sigv4_format_date((long long)time(NULL), date);
    struct sigv4_pair h[5] = {{"host", host}, {"x-amz-content-sha256", hash}, {"x-amz-date", date}};
    size_t nh = 3;
    if (s->session_token[0])
        h[nh++] = (struct sigv4_pair){"x-amz-security-token", s->session_token};
    if (r->range)
        h[nh++] = (struct sigv4_pair){"range", r->range};
    struct sigv4_creds c = {s->access_key, s->secret_key, s->session_token};
    struct sigv4_request sr = {r->method, path, r->query,  r->nquery, h,
                               nh,        hash, s->region, "s3",      date};
    char *auth = sigv4_authorization(&c, &sr);
    struct curl_slist *list = NULL;
    for (size_t i = 0; i < nh; i++)
        list = add_header(list, h[i].name, h[i].value);
    list = add_header(list, "Authorization", auth);
    if (r->content_type)
        list = add_header(list, "Content-Type", r->content_type);
    if (r->if_match)
        list = add_header(list, "If-Match", r->if_match);
    list = add_header(list, "Expect", ""); /* no 100-continue round trip */
    list = curl_slist_append(list, "Accept:");
    free(auth);
    return list;
}

static void setup_method(CURL *h, struct xfer *x)
{
    const struct s3_request *r = x->r;
    uint64_t len = r->body_fd >= 0 ? r->body_len : r->body_mem_len;
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, x);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    } else if (strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, x);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
}

/* The options the safety of every request depends on; false when libcurl refuses one. */
static bool setup_safety(CURL *h, struct xfer *x)
{
    x->gate.policy = x->s->policy;
    return curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
           /* The path goes out as signed: curl must not squash "/../" in a key. */
           curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_PROXY, "") == CURLE_OK &&
           curl_gate_install(h, &x->gate);
}

static void setup_handle(CURL *h, struct xfer *x, const char *url, struct curl_slist *headers)
{
    const struct s3 *s = x->s;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, S3_USER_AGENT);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, s->connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, s->timeout_s);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, S3_LOW_SPEED_BYTES_S);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, S3_LOW_SPEED_TIME_S);
    if (x->r->out_cb) {
        /* Fewer, larger reads; the progress callback marks the end of each one's bytes. */
        curl_easy_setopt(h, CURLOPT_BUFFERSIZE, S3_STREAM_READ_BYTES);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    setup_method(h, x);
}

/* A transfer that failed before an HTTP answer, from what the callbacks recorded. */
static enum ia_err map_curl_error(struct xfer *x, CURLcode rc, char *detail, size_t detaillen)
{
    const char *why = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
    if (x->gate.refused) {
        snprintf(detail, detaillen, "connection to %s refused by policy (S3_ALLOW_CIDRS)",
                 x->gate.refused_addr);
        return IA_ERR_URL_NOT_ALLOWED;
    }
    if (x->too_large) {
        snprintf(detail, detaillen, "object larger than allowed");
        return IA_ERR_TOO_LARGE;
    }
    if (x->stopped) {
        snprintf(detail, detaillen, "the receiver stopped the transfer");
        return IA_ERR_IO;
    }
    if (x->write_failed || x->read_failed) {
        snprintf(detail, detaillen, "%s the local file failed",
                 x->write_failed ? "writing" : "reading");
        return x->disk_full ? IA_ERR_STORAGE_FULL : IA_ERR_IO;
    }
    snprintf(detail, detaillen, "S3 endpoint %s:%u: %s", x->s->host, x->s->port, why);
    return rc == CURLE_OPERATION_TIMEDOUT ? IA_ERR_TIMEOUT : IA_ERR_STORAGE_UNAVAILABLE;
}

/* An HTTP error: S3's code and message from the body, mapped to the project's errors. */
static enum ia_err map_http_error(struct xfer *x, char *detail, size_t detaillen)
{
    long status = x->resp->status;
    struct slice body = {x->errbody.p ? x->errbody.p : "", x->errbody.len};
    char *code = s3_xml_get(body, "Code", 64);
    char *message = s3_xml_get(body, "Message", 256);
    char esc_code[80], esc_msg[300];
    log_escape(esc_code, sizeof esc_code, code ? code : "", code ? strlen(code) : 0);
    log_escape(esc_msg, sizeof esc_msg, message ? message : "", message ? strlen(message) : 0);
    snprintf(detail, detaillen, "HTTP %ld%s%s%s%s", status, code ? " " : "", esc_code,
             message && message[0] ? ": " : "", esc_msg);
    enum ia_err e;
    if (status == 401 || status == 403)
        e = IA_ERR_STORAGE_DENIED;
    else if (status == 404 && !(code && strcmp(code, "NoSuchBucket") == 0))
        e = IA_ERR_NOT_FOUND;
    else if (status >= 500 || status == 429 || status == 408)
        e = IA_ERR_STORAGE_UNAVAILABLE;
    else
        e = IA_ERR_IO;
    free(code);
    free(message);
    return e;
}

enum ia_err s3_perform(struct s3 *s, const struct s3_request *r, struct s3_response *resp,
                       char *detail, size_t detaillen)
{
    struct xfer x = {.s = s, .r = r, .resp = resp, .curl = s->curl};
    char hash[65];
    memset(resp, 0, sizeof *resp);
    detail[0] = '\0';
    enum ia_err e = payload_hash(r, hash, detail, detaillen);
    if (e)
        return e;
    s3_buf_init(&x.errbody, S3_MAX_ERROR_BODY);
    char *host = host_header(s);
    char *path = request_path(s, r->key);
    char *query = sigv4_canonical_query(r->query, r->nquery);
    char *url = xasprintf("%s://%s%s%s%s", s->scheme, host, path, query[0] ? "?" : "", query);
    struct curl_slist *headers = signed_headers(s, r, host, path, hash);
    curl_easy_reset(x.curl);
    setup_handle(x.curl, &x, url, headers);
    if (!setup_safety(x.curl, &x)) {
        snprintf(detail, detaillen, "libcurl lacks a required option (needs 7.85 or later)");
        e = IA_ERR_INTERNAL;
        goto out;
    }
    CURLcode rc = curl_easy_perform(x.curl);
    if (rc != CURLE_OK) {
        e = map_curl_error(&x, rc, detail, detaillen);
        goto out;
    }
    curl_easy_getinfo(x.curl, CURLINFO_RESPONSE_CODE, &resp->status);
    if (resp->status < 200 || resp->status > 299)
        e = map_http_error(&x, detail, detaillen);
out:
    if (e && e != IA_ERR_NOT_FOUND && !(r->out_cb && (resp->status == 304 || resp->status == 412 ||
                                                      resp->status == 416))) {
        char key[160];
        log_escape(key, sizeof key, r->key ? r->key : "", r->key ? strlen(r->key) : 0);
        log_msg(LOG_WARN, "s3", "%s %s/%s: %s: %s request-id=%s", r->method, s->bucket, key,
                ia_err_code(e), detail, resp->request_id[0] ? resp->request_id : "-");
    }
    curl_slist_free_all(headers);
    s3_buf_cleanup(&x.errbody);
    free(host), free(path), free(query), free(url);
    return e;
}

char *s3_presign(struct s3 *s, const char *method, const char *key, long expires_s,
                 const char *disposition, const char *content_type)
{
    if ((strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) || expires_s < 1 ||
        expires_s > SIGV4_MAX_EXPIRES)
        return NULL;
    char *full = s3_full_key(s, key);
    if (!full)
        return NULL;
    char date[SIGV4_DATE_LEN];
    sigv4_format_date((long long)time(NULL), date);
    char *host = host_header(s);
    char *path = request_path(s, full);
    struct sigv4_pair q[2];
    size_t nq = 0;
    if (disposition)
        q[nq++] = (struct sigv4_pair){"response-content-disposition", disposition};
    if (content_type)
        q[nq++] = (struct sigv4_pair){"response-content-type", content_type};
    struct sigv4_creds c = {s->access_key, s->secret_key, s->session_token};
    char *query =
        sigv4_presign_query(&c, method, host, path, q, nq, s->region, "s3", date, expires_s);
    char *url = xasprintf("%s://%s%s?%s", s->scheme, host, path, query);
    free(full), free(host), free(path), free(query);
    return url;
}
