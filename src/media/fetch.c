/*
 * Safe download of a video URL to a file with libcurl (the only file that includes curl.h).
 * Redirects are followed by hand so that every hop's URL is checked (scheme, user-info, port);
 * every connection's actual address and port are checked at connect time by the open-socket
 * callback, which also covers DNS rebinding. Proxies from the environment are not used, so the
 * address checked is always the origin's. Webhook deliveries (media_post) and the check of a
 * callback URL at submission (media_url_check) go through the same gate.
 */
#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "media/media.h"
#include "util/curl_load.h"
#include "util/netpolicy.h"
#include "util/os.h"
#include "util/str.h"

#define FETCH_MAX_REDIRECTS 5
#define FETCH_LOW_SPEED_BYTES_S 1024L
#define FETCH_LOW_SPEED_TIME_S 30L
#define FETCH_PROGRESS_EVERY_MS 250
#define FETCH_USER_AGENT "interview-api/0.1"

struct fetch_ctx {
    const struct media_opts *opts;
    CURL *curl;
    int fd;
    EVP_MD_CTX *sha;
    uint64_t bytes;
    uint64_t discarded; /* bytes of redirect bodies, capped like the body */
    int64_t end_ms;     /* the earlier of the fetch time limit and the task deadline */
    int64_t last_progress_ms;
    struct curl_gate gate; /* the network policy on every connection */
    bool too_large, disk_full, io_error, aborted;
    char errbuf[CURL_ERROR_SIZE];
};

enum ia_err media_global_init(void)
{
    const char *why = curl_load_error();
    if (why)
        log_msg(LOG_ERROR, "media", "libcurl cannot be loaded: %s", why);
    return why ? IA_ERR_INTERNAL : IA_OK;
}

void media_global_cleanup(void) { curl_load_cleanup(); }

void fetch_result_cleanup(struct fetch_result *res)
{
    free(res->final_url);
    free(res->content_type);
    memset(res, 0, sizeof *res);
}

static bool write_all(struct fetch_ctx *c, const char *data, size_t n)
{
    if (os_write_all(c->fd, data, n))
        return true;
    if (errno == ENOSPC || errno == EDQUOT)
        c->disk_full = true;
    else
        c->io_error = true;
    return false;
}

/* Body bytes: only a 2xx body goes to the file (a redirect's body is dropped). */
static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct fetch_ctx *c = userp;
    size_t n = size * nmemb;
    long code = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
    uint64_t max = c->opts->max_download_bytes;
    if (code < 200 || code > 299) {
        c->discarded += n;
        c->too_large = max && c->discarded > max;
        return c->too_large ? 0 : n;
    }
    if (max && c->bytes + n > max) {
        c->too_large = true;
        return 0;
    }
    if (!write_all(c, data, n))
        return 0;
    EVP_DigestUpdate(c->sha, data, n);
    c->bytes += n;
    return n;
}

/* Aborts on cancel or deadline; reports "fetching" progress when the size is known. */
static int on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct fetch_ctx *c = userp;
    (void)ultotal, (void)ulnow;
    int64_t now = os_monotonic_ms();
    if ((c->opts->cancel && atomic_load(c->opts->cancel)) ||
        (c->opts->deadline_ms && now >= c->opts->deadline_ms)) {
        c->aborted = true;
        return 1;
    }
    if (c->opts->progress && dltotal > 0 && now - c->last_progress_ms >= FETCH_PROGRESS_EVERY_MS) {
        c->last_progress_ms = now;
        c->opts->progress("fetching", (double)dlnow / (double)dltotal, c->opts->progress_ctx);
    }
    return 0;
}

/* Checks one URL (the first or a redirect target): http(s), no user-info, an allowed port. */
static enum ia_err check_url(const struct media_opts *o, const char *url, char *detail,
                             size_t detaillen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *user = NULL, *password = NULL, *port = NULL;
    enum ia_err result = IA_ERR_URL_NOT_ALLOWED;
    uint64_t portnum = 0;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        snprintf(detail, detaillen, "URL does not parse");
        goto out;
    }
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (!scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        snprintf(detail, detaillen, "scheme %s refused", scheme ? scheme : "(none)");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK) {
        snprintf(detail, detaillen, "URL with user-info refused");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
        !str_to_u64(port, strlen(port), &portnum) || portnum > 65535 ||
        !netpolicy_allows_port(o->policy, (unsigned)portnum)) {
        snprintf(detail, detaillen, "port %s refused", port ? port : "(none)");
        goto out;
    }
    result = IA_OK;
out:
    curl_free(scheme), curl_free(user), curl_free(password), curl_free(port);
    curl_url_cleanup(u);
    return result;
}

/* Sets the options the safety of the fetch depends on; false when libcurl refuses one. */
static bool setup_safety(struct fetch_ctx *c)
{
    CURL *h = c->curl;
    c->gate.policy = c->opts->policy;
    return curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_PROXY, "") == CURLE_OK &&
           curl_gate_install(h, &c->gate);
}

static void setup_handle(struct fetch_ctx *c)
{
    const struct media_opts *o = c->opts;
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, FETCH_USER_AGENT);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT,
                     o->connect_timeout_s > 0 ? o->connect_timeout_s : 10L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT,
                     o->low_speed_bytes_s > 0 ? o->low_speed_bytes_s : FETCH_LOW_SPEED_BYTES_S);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
                     o->low_speed_time_s > 0 ? o->low_speed_time_s : FETCH_LOW_SPEED_TIME_S);
    if (o->max_download_bytes)
        curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_download_bytes);
}

static enum ia_err map_http_status(long code, char *detail, size_t detaillen)
{
    snprintf(detail, detaillen, "origin answered HTTP %ld", code);
    return code >= 500 || code == 429 || code == 408 ? IA_ERR_FETCH_TRANSIENT : IA_ERR_FETCH_HTTP;
}

/* Maps a failed transfer to the project's error, using what the callbacks recorded. */
static enum ia_err map_curl_error(struct fetch_ctx *c, CURLcode rc, char *detail, size_t detaillen)
{
    const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
    long code = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
    if (rc == CURLE_HTTP_RETURNED_ERROR)
        return map_http_status(code, detail, detaillen);
    snprintf(detail, detaillen, "transfer failed: %s", why);
    if (c->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(detail, detaillen, "body larger than %llu bytes",
                 (unsigned long long)c->opts->max_download_bytes);
        return IA_ERR_TOO_LARGE;
    }
    if (c->disk_full)
        return IA_ERR_STORAGE_FULL;
    if (c->io_error)
        return IA_ERR_IO;
    if (c->aborted || (rc == CURLE_OPERATION_TIMEDOUT && os_monotonic_ms() >= c->end_ms - 50))
        return IA_ERR_TIMEOUT;
    if (c->gate.refused && rc == CURLE_COULDNT_CONNECT) {
        snprintf(detail, detaillen, "connection to %s refused by policy", c->gate.refused_addr);
        return IA_ERR_URL_NOT_ALLOWED;
    }
    if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT)
        return IA_ERR_URL_NOT_ALLOWED;
    return IA_ERR_FETCH_NETWORK;
}

/* One request without following: on a redirect sets *next to the target (owned). */
static enum ia_err fetch_hop(struct fetch_ctx *c, const char *url, char **next, char *detail,
                             size_t detaillen)
{
    int64_t left = c->end_ms - os_monotonic_ms();
    if (left <= 0) {
        snprintf(detail, detaillen, "time limit passed before the request");
        return IA_ERR_TIMEOUT;
    }
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)left);
    c->errbuf[0] = '\0';
    CURLcode rc = curl_easy_perform(c->curl);
    if (rc != CURLE_OK)
        return map_curl_error(c, rc, detail, detaillen);
    long code = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 200 && code <= 299)
        return IA_OK;
    char *location = NULL;
    curl_easy_getinfo(c->curl, CURLINFO_REDIRECT_URL, &location);
    if (code >= 300 && code <= 399 && location) {
        *next = xstrdup(location);
        return IA_OK;
    }
    return map_http_status(code, detail, detaillen);
}

/* Follows up to FETCH_MAX_REDIRECTS redirects, checking each URL before requesting it. */
static enum ia_err fetch_follow(struct fetch_ctx *c, const char *url, char **final_url,
                                char *detail, size_t detaillen)
{
    char *cur = xstrdup(url);
    enum ia_err result = IA_OK;
    for (int hop = 0;; hop++) {
        char *next = NULL;
        result = check_url(c->opts, cur, detail, detaillen);
        if (!result)
            result = fetch_hop(c, cur, &next, detail, detaillen);
        if (result || !next)
            break;
        free(cur);
        cur = next;
        if (hop == FETCH_MAX_REDIRECTS) {
            snprintf(detail, detaillen, "more than %d redirects", FETCH_MAX_REDIRECTS);
            result = IA_ERR_FETCH_HTTP;
            break;
        }
    }
    *final_url = cur;
    return result;
}

static void fill_result(struct fetch_ctx *c, struct fetch_result *res)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char *ctype = NULL;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &res->http_status);
    curl_easy_getinfo(c->curl, CURLINFO_CONTENT_TYPE, &ctype);
    res->content_type = ctype ? xstrdup(ctype) : NULL;
    res->bytes = c->bytes;
    EVP_DigestFinal_ex(c->sha, md, &mdlen);
    str_hex(res->sha256, md, mdlen);
}

static void init_ctx(struct fetch_ctx *c, const struct media_opts *opts)
{
    memset(c, 0, sizeof *c);
    c->opts = opts;
    c->fd = -1;
    c->end_ms = os_monotonic_ms() + (opts->fetch_timeout_s > 0 ? opts->fetch_timeout_s : 3600) * 1000;
    if (opts->deadline_ms && opts->deadline_ms < c->end_ms)
        c->end_ms = opts->deadline_ms;
}

enum ia_err media_fetch_to_file(const struct media_opts *opts, const char *url, const char *path,
                                struct fetch_result *res, char *detail, size_t detaillen)
{
    struct fetch_ctx c;
    enum ia_err result = IA_ERR_INTERNAL;
    memset(res, 0, sizeof *res);
    detail[0] = '\0';
    init_ctx(&c, opts);
    c.curl = curl_easy_init();
    c.sha = EVP_MD_CTX_new();
    if (!c.curl || !c.sha || !EVP_DigestInit_ex(c.sha, EVP_sha256(), NULL)) {
        snprintf(detail, detaillen, "cannot initialise the transfer");
        goto out;
    }
    c.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (c.fd < 0) {
        snprintf(detail, detaillen, "cannot create the download file: %s", strerror(errno));
        result = errno == ENOSPC || errno == EDQUOT ? IA_ERR_STORAGE_FULL : IA_ERR_IO;
        goto out;
    }
    setup_handle(&c);
    if (!setup_safety(&c)) {
        snprintf(detail, detaillen, "libcurl lacks a required option (needs 7.85 or later)");
        result = IA_ERR_INTERNAL;
        close(c.fd);
        goto out;
    }
    result = fetch_follow(&c, url, &res->final_url, detail, detaillen);
    if (!result)
        fill_result(&c, res);
    if (!result && close(c.fd) < 0) {
        snprintf(detail, detaillen, "closing the download file: %s", strerror(errno));
        result = errno == ENOSPC || errno == EDQUOT ? IA_ERR_STORAGE_FULL : IA_ERR_IO;
    } else if (result) {
        close(c.fd);
    }
out:
    if (c.curl)
        curl_easy_cleanup(c.curl);
    EVP_MD_CTX_free(c.sha);
    return result;
}

/* ---- Webhooks: one POST through the same gate, never following a redirect ---- */

#define POST_RESPONSE_CAP 65536 /* response bytes read before the transfer is cut short */

struct post_ctx {
    struct fetch_ctx f; /* the gate (opts policy), errbuf */
    uint64_t received;
    bool capped;
    const atomic_bool *cancel;
};

/* Response bytes are counted, never kept; past the cap the transfer stops (status is known). */
static size_t on_post_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct post_ctx *p = userp;
    (void)data;
    p->received += size * nmemb;
    if (p->received > POST_RESPONSE_CAP) {
        p->capped = true;
        return 0;
    }
    return size * nmemb;
}

static int on_post_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                            curl_off_t ulnow)
{
    struct post_ctx *p = userp;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    if (p->cancel && atomic_load(p->cancel)) {
        p->f.aborted = true;
        return 1;
    }
    return 0;
}

/* Maps a finished POST: 2xx is IA_OK, any other status (3xx included) IA_ERR_FETCH_HTTP. */
static enum ia_err post_result(struct post_ctx *p, CURLcode rc, long *status, char *detail,
                               size_t detaillen)
{
    curl_easy_getinfo(p->f.curl, CURLINFO_RESPONSE_CODE, status);
    if (rc != CURLE_OK && !(p->capped && *status > 0)) {
        snprintf(detail, detaillen, "%s", p->f.errbuf[0] ? p->f.errbuf : curl_easy_strerror(rc));
        if (p->f.gate.refused && rc == CURLE_COULDNT_CONNECT) {
            snprintf(detail, detaillen, "connection to %s refused by policy",
                     p->f.gate.refused_addr);
            return IA_ERR_URL_NOT_ALLOWED;
        }
        if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT)
            return IA_ERR_URL_NOT_ALLOWED;
        return rc == CURLE_OPERATION_TIMEDOUT || p->f.aborted ? IA_ERR_TIMEOUT
                                                              : IA_ERR_FETCH_NETWORK;
    }
    if (*status >= 200 && *status <= 299)
        return IA_OK;
    snprintf(detail, detaillen, "receiver answered HTTP %ld", *status);
    return IA_ERR_FETCH_HTTP;
}

static void setup_post(struct post_ctx *p, const struct media_post *req, struct curl_slist *hdrs)
{
    CURL *h = p->f.curl;
    long timeout_ms = req->timeout_s > 0 ? req->timeout_s * 1000 : 10000;
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, FETCH_USER_AGENT);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, p->f.errbuf);
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_post_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_post_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, p);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
}

enum ia_err media_post(const struct media_post *req, long *http_status, char *detail,
                       size_t detaillen)
{
    struct media_opts opts = {.policy = req->policy};
    struct post_ctx p;
    memset(&p, 0, sizeof p);
    p.f.opts = &opts;
    p.f.fd = -1;
    p.cancel = req->cancel;
    *http_status = 0;
    detail[0] = '\0';
    enum ia_err result = check_url(&opts, req->url, detail, detaillen);
    if (result)
        return result;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    for (size_t i = 0; req->headers && req->headers[i]; i++)
        hdrs = curl_slist_append(hdrs, req->headers[i]);
    p.f.curl = curl_easy_init();
    result = IA_ERR_INTERNAL;
    if (!hdrs || !p.f.curl) {
        snprintf(detail, detaillen, "cannot initialise the transfer");
    } else if (!setup_safety(&p.f)) {
        snprintf(detail, detaillen, "libcurl lacks a required option (needs 7.85 or later)");
    } else {
        setup_post(&p, req, hdrs);
        result = post_result(&p, curl_easy_perform(p.f.curl), http_status, detail, detaillen);
    }
    if (p.f.curl)
        curl_easy_cleanup(p.f.curl);
    curl_slist_free_all(hdrs);
    return result;
}

/* A host name that always means this machine (RFC 6761): refused without a lookup. */
static bool host_is_localhost(const char *host)
{
    static const char suffix[] = ".localhost";
    size_t n = strlen(host), s = sizeof(suffix) - 1;
    while (n > 0 && host[n - 1] == '.')
        n--;
    return (n == 9 && strncasecmp(host, "localhost", 9) == 0) ||
           (n > s && strncasecmp(host + n - s, suffix, s) == 0);
}

/* True when the last label of host (a trailing dot aside) is a number: decimal, or 0x hex. */
static bool last_label_numeric(const char *host)
{
    size_t n = strlen(host);
    while (n > 0 && host[n - 1] == '.')
        n--;
    size_t start = n;
    while (start > 0 && host[start - 1] != '.')
        start--;
    const char *l = host + start;
    size_t len = n - start, i = 0;
    bool hex = len > 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X');
    for (i = hex ? 2 : 0; i < len; i++)
        if (!(hex ? isxdigit((unsigned char)l[i]) : isdigit((unsigned char)l[i])))
            return false;
    return len > 0;
}

/*
 * 1 with *ss for a numeric host (glibc's own numeric parser, AI_NUMERICHOST: never a lookup;
 * IPv6 in brackets as a URL writes it), 0 for a name, -1 for text that is neither: one whose
 * last label is a number but that is no address ("1.2.3.256"; the WHATWG URL rule).
 */
static int numeric_host(const char *host, struct sockaddr_storage *ss)
{
    char text[INET6_ADDRSTRLEN + 1];
    size_t n = strlen(host);
    bool bracketed = n > 0 && host[0] == '[';
    if (bracketed && (n < 3 || host[n - 1] != ']' || n - 2 >= sizeof(text)))
        return -1;
    if (!bracketed && n >= sizeof(text))
        return strchr(host, ':') ? -1 : 0; /* too long to be an address */
    memcpy(text, host + bracketed, n - 2 * bracketed);
    text[n - 2 * bracketed] = '\0';
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(text, NULL, &hints, &res) != 0)
        return bracketed || strchr(host, ':') || last_label_numeric(host) ? -1 : 0;
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 1;
}

/* Refuses a numeric host the policy refuses, a malformed one, and localhost names. */
static enum ia_err check_host(const struct netpolicy *p, const char *host, unsigned port,
                              char *detail, size_t detaillen)
{
    struct sockaddr_storage ss;
    int kind = numeric_host(host, &ss);
    if (kind < 0 || (kind == 0 && host_is_localhost(host))) {
        snprintf(detail, detaillen, "host refused");
        return IA_ERR_URL_NOT_ALLOWED;
    }
    if (kind == 0)
        return IA_OK; /* a name: its addresses are checked when it is connected to */
    socklen_t len = sizeof(struct sockaddr_in);
    if (ss.ss_family == AF_INET) {
        ((struct sockaddr_in *)(void *)&ss)->sin_port = htons((uint16_t)port);
    } else {
        ((struct sockaddr_in6 *)(void *)&ss)->sin6_port = htons((uint16_t)port);
        len = sizeof(struct sockaddr_in6);
    }
    const char *why = netpolicy_refusal(p, (const struct sockaddr *)&ss, len);
    if (!why)
        return IA_OK;
    snprintf(detail, detaillen, "address refused (%s)", why);
    return IA_ERR_URL_NOT_ALLOWED;
}

enum ia_err media_url_check(const struct netpolicy *policy, const char *url, char *detail,
                            size_t detaillen)
{
    struct media_opts opts = {.policy = policy};
    detail[0] = '\0';
    enum ia_err result = check_url(&opts, url, detail, detaillen);
    if (result)
        return result;
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    uint64_t portnum = 0;
    result = IA_ERR_URL_NOT_ALLOWED;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
        !str_to_u64(port, strlen(port), &portnum) || portnum > 65535)
        snprintf(detail, detaillen, "URL does not parse");
    else
        result = check_host(policy, host, (unsigned)portnum, detail, detaillen);
    curl_free(host), curl_free(port);
    curl_url_cleanup(u);
    return result;
}
