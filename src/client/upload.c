/*
 * `interview-api submit FILE`: a tus 1.0 client on libcurl. The file goes up in chunks
 * (INTERVIEW_API_CHUNK_BYTES, default 8 MiB) with a progress bar; a failed PATCH is followed by a
 * HEAD for the server's offset and a retry from there. The upload's URL is kept in a small state
 * file under $XDG_CACHE_HOME/interview-api/ (else ~/.cache/interview-api/), named after the API,
 * the file's path, size and mtime, so that running the same command again resumes the upload.
 * INTERVIEW_API_UPLOAD_RATE (bytes/s) caps the sending speed. After a failed chunk the chunk
 * size halves (down to 256 KiB), so that a link that keeps dropping loses less each time.
 */
#include "client/internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "util/crypto.h"

#define CHUNK_DEFAULT (8 * 1024 * 1024)
#define CHUNK_MAX (16 * 1024 * 1024)
#define CHUNK_MIN (256 * 1024)
#define MAX_ATTEMPTS 8

struct upload {
    const char *api_base;
    const char *path;
    int fd;
    uint64_t size;
    uint64_t offset;
    size_t chunk;
    long long rate;
    char *url;        /* the upload's URL, once created */
    char *state_path; /* where url is remembered between runs */
    char task_id[64];
};

/* What one tus request answered. */
struct tus_answer {
    long status;
    bool has_offset;
    uint64_t offset;
    char location[1024];
    char task_id[64];
};

static long long env_number(const char *name, long long fallback)
{
    const char *v = getenv(name);
    char *end;
    long long n = v ? strtoll(v, &end, 10) : 0;
    return v && *v && *end == '\0' && n > 0 ? n : fallback;
}

/* Copies a header value (after "Name:") without surrounding blanks or CRLF. */
static void copy_value(char *out, size_t cap, const char *v, size_t len)
{
    while (len > 0 && (*v == ' ' || *v == '\t'))
        v++, len--;
    while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
        len--;
    if (len >= cap)
        len = cap - 1;
    memcpy(out, v, len);
    out[len] = '\0';
}

static size_t on_header(char *line, size_t size, size_t n, void *ctx)
{
    struct tus_answer *a = ctx;
    size_t len = size * n;
    char value[64];
    if (len > 14 && strncasecmp(line, "Upload-Offset:", 14) == 0) {
        copy_value(value, sizeof(value), line + 14, len - 14);
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        a->has_offset = !errno && end != value && *end == '\0';
        a->offset = v;
    } else if (len > 9 && strncasecmp(line, "Location:", 9) == 0) {
        copy_value(a->location, sizeof(a->location), line + 9, len - 9);
    } else if (len > 15 && strncasecmp(line, "Upload-Task-Id:", 15) == 0) {
        copy_value(a->task_id, sizeof(a->task_id), line + 15, len - 15);
    }
    return len;
}

static size_t discard(char *data, size_t size, size_t n, void *ctx)
{
    (void)data, (void)ctx;
    return size * n;
}

static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal;
    const struct upload *u = ctx;
    double done = u->size ? (double)(u->offset + (uint64_t)ulnow) / (double)u->size : 1.0;
    client_draw_bar("uploading", done);
    return 0;
}

/* One tus request: method on url with an optional body; false on a network error. */
static bool tus_request(struct upload *u, const char *method, const char *url,
                        struct curl_slist *extra, const char *body, size_t len,
                        struct tus_answer *a)
{
    memset(a, 0, sizeof(*a));
    CURL *curl = curl_easy_init();
    struct curl_slist *h = curl_slist_append(extra, "Tus-Resumable: 1.0.0");
    h = client_auth_header(curl_slist_append(h, "Expect:"));
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (strcmp(method, "PATCH") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, u);
        if (u->rate > 0)
            curl_easy_setopt(curl, CURLOPT_MAX_SEND_SPEED_LARGE, (curl_off_t)u->rate);
    }
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &a->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(curl);
    if (rc != CURLE_OK)
        fprintf(stderr, "\ninterview-api: %s %s: %s\n", method, url, curl_easy_strerror(rc));
    return rc == CURLE_OK;
}

/* "$XDG_CACHE_HOME/interview-api" or "$HOME/.cache/interview-api", created; NULL if neither. */
static char *state_dir(void)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char *base = xdg && xdg[0] == '/' ? xstrdup(xdg)
                 : home && home[0]    ? xasprintf("%s/.cache", home)
                                      : NULL;
    if (!base)
        return NULL;
    char *dir = xasprintf("%s/interview-api", base);
    mkdir(base, 0700);
    free(base);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        free(dir);
        return NULL;
    }
    return dir;
}

/* The state file of this file (by API, real path, size and mtime); NULL without a cache dir. */
static char *state_file(const char *api_base, const char *path, const struct stat *st)
{
    char real[PATH_MAX];
    char *dir = state_dir();
    if (!dir || !realpath(path, real)) {
        free(dir);
        return NULL;
    }
    char *key = xasprintf("%s\n%s\n%lld\n%lld.%09ld", api_base, real, (long long)st->st_size,
                          (long long)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec);
    unsigned char digest[SHA256_LEN];
    crypto_sha256(key, strlen(key), digest);
    free(key);
    char hex[2 * SHA256_LEN + 1];
    for (int i = 0; i < SHA256_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    char *file = xasprintf("%s/upload-%.32s", dir, hex);
    free(dir);
    return file;
}

static char *state_read(const char *state_path)
{
    FILE *f = state_path ? fopen(state_path, "r") : NULL;
    char line[1100];
    bool ok = f && fgets(line, sizeof(line), f);
    if (f)
        fclose(f);
    if (!ok)
        return NULL;
    line[strcspn(line, "\r\n")] = '\0';
    return line[0] ? xstrdup(line) : NULL;
}

static void state_write(const char *state_path, const char *url)
{
    FILE *f = state_path ? fopen(state_path, "w") : NULL;
    if (!f)
        return;
    fprintf(f, "%s\n", url);
    fclose(f);
}

/* Asks the server for the offset of u->url; false when the upload is unknown or unusable. */
static bool tus_head(struct upload *u)
{
    struct tus_answer a;
    if (!tus_request(u, "HEAD", u->url, NULL, NULL, 0, &a) || a.status != 200 || !a.has_offset ||
        a.offset > u->size)
        return false;
    u->offset = a.offset;
    snprintf(u->task_id, sizeof(u->task_id), "%s", a.task_id);
    return true;
}

/* Resumes the upload remembered for this file, if the server still has it. */
static bool tus_resume(struct upload *u)
{
    u->url = state_read(u->state_path);
    if (!u->url)
        return false;
    if (tus_head(u)) {
        fprintf(stderr, "interview-api: resuming upload at %" PRIu64 " of %" PRIu64 " bytes\n",
                u->offset, u->size);
        return true;
    }
    free(u->url);
    u->url = NULL;
    return false;
}

/* Absolute URL of a Location value (the server may answer a path). */
static char *absolute_url(const char *api_base, const char *location)
{
    if (strncasecmp(location, "http://", 7) == 0 || strncasecmp(location, "https://", 8) == 0)
        return xstrdup(location);
    return xasprintf("%s%s", api_base, location);
}

/* Standard base64 of [in, in+n) (tus metadata values); the caller frees it. */
static char *base64(const char *in, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = xmalloc(4 * (n / 3 + 1) + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)(unsigned char)in[i] << 16;
        v |= i + 1 < n ? (unsigned)(unsigned char)in[i + 1] << 8 : 0;
        v |= i + 2 < n ? (unsigned char)in[i + 2] : 0;
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = i + 1 < n ? abc[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? abc[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* POST /uploads with Upload-Length and the file name as metadata. */
static bool tus_create(struct upload *u)
{
    const char *name = strrchr(u->path, '/') ? strrchr(u->path, '/') + 1 : u->path;
    char *b64 = base64(name, strlen(name) > 200 ? 200 : strlen(name));
    char *len = xasprintf("Upload-Length: %" PRIu64, u->size);
    char *meta = xasprintf("Upload-Metadata: filename %s", b64);
    struct curl_slist *h = curl_slist_append(curl_slist_append(NULL, len), meta);
    char *url = xasprintf("%s/uploads", u->api_base);
    struct tus_answer a;
    bool ok = tus_request(u, "POST", url, h, NULL, 0, &a) && a.status == 201 && a.location[0];
    if (ok) {
        u->url = absolute_url(u->api_base, a.location);
        u->offset = 0;
        snprintf(u->task_id, sizeof(u->task_id), "%s", a.task_id);
        state_write(u->state_path, u->url);
    } else {
        fprintf(stderr, "interview-api: the upload could not be created (HTTP %ld)\n", a.status);
    }
    free(b64), free(len), free(meta), free(url);
    return ok;
}

/* Reads the next chunk into buf; its length, or -1. */
static ssize_t read_chunk(struct upload *u, char *buf)
{
    uint64_t left = u->size - u->offset;
    size_t want = left < u->chunk ? (size_t)left : u->chunk, got = 0;
    while (got < want) {
        ssize_t n = pread(u->fd, buf + got, want - got, (off_t)(u->offset + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* One PATCH of the next chunk (an empty one when all bytes are there but no task yet).
 * 1 on success, 0 when worth retrying after a HEAD, -1 when hopeless. */
static int send_chunk(struct upload *u, char *buf)
{
    ssize_t n = read_chunk(u, buf);
    if (n < 0) {
        fprintf(stderr, "\ninterview-api: %s: read error\n", u->path);
        return -1;
    }
    char *off = xasprintf("Upload-Offset: %" PRIu64, u->offset);
    struct curl_slist *h = curl_slist_append(NULL, off);
    h = curl_slist_append(h, "Content-Type: application/offset+octet-stream");
    struct tus_answer a;
    bool sent = tus_request(u, "PATCH", u->url, h, buf, (size_t)n, &a);
    free(off);
    if (sent && a.status == 204 && a.has_offset) {
        u->offset = a.offset;
        snprintf(u->task_id, sizeof(u->task_id), "%s", a.task_id);
        return 1;
    }
    if (sent && (a.status == 404 || a.status == 410 || a.status == 413 || a.status == 415 ||
                 a.status == 412 || a.status == 400 || a.status == 401 || a.status == 403)) {
        fprintf(stderr, "\ninterview-api: the server refused the upload (HTTP %ld)\n", a.status);
        return -1;
    }
    return 0;
}

/* Sends chunks until the server names the task, retrying failed ones from the server's offset. */
static bool upload_all(struct upload *u)
{
    char *buf = xmalloc(u->chunk);
    int failures = 0;
    while (!u->task_id[0]) {
        client_draw_bar("uploading", u->size ? (double)u->offset / (double)u->size : 1.0);
        int rc = send_chunk(u, buf);
        if (rc < 0)
            break;
        if (rc > 0) {
            failures = 0;
            continue;
        }
        if (++failures > MAX_ATTEMPTS)
            break;
        if (u->chunk > CHUNK_MIN) /* a link that drops a big chunk may carry smaller ones */
            u->chunk /= 2;
        sleep(failures < 4 ? 1u << (failures - 1) : 8u);
        if (!tus_head(u))
            fprintf(stderr, "\ninterview-api: the upload's offset is unknown; retrying\n");
        else
            fprintf(stderr, "\ninterview-api: continuing at %" PRIu64 " bytes\n", u->offset);
    }
    free(buf);
    if (u->task_id[0])
        client_draw_bar("uploaded", 1.0), fputc('\n', stderr);
    return u->task_id[0] != '\0';
}

int client_submit_file(const char *api_base, const char *path, bool wait)
{
    struct upload u = {.api_base = api_base, .path = path, .fd = -1};
    struct stat st;
    u.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (u.fd < 0 || fstat(u.fd, &st) != 0) {
        fprintf(stderr, "interview-api: %s: %s\n", path, strerror(errno));
        if (u.fd >= 0)
            close(u.fd);
        return 1;
    }
    u.size = (uint64_t)st.st_size;
    u.chunk = (size_t)env_number("INTERVIEW_API_CHUNK_BYTES", CHUNK_DEFAULT);
    u.chunk = u.chunk > CHUNK_MAX ? CHUNK_MAX : u.chunk;
    u.rate = env_number("INTERVIEW_API_UPLOAD_RATE", 0);
    u.state_path = state_file(api_base, path, &st);
    bool ok = (tus_resume(&u) || tus_create(&u)) && upload_all(&u);
    close(u.fd);
    if (ok && u.state_path)
        unlink(u.state_path);
    free(u.url);
    free(u.state_path);
    if (!ok)
        return 1;
    printf("%s\n", u.task_id);
    fflush(stdout);
    return wait ? client_wait_for(api_base, u.task_id) : 0;
}
