/* The option table and its loader. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "util/crypto.h"
#include "util/str.h"

enum option_type { OPT_STRING, OPT_INT };

struct option {
    const char *name;
    enum option_type type;
    size_t offset;
    long long min, max;
    const char *def;
    bool secret;
    const char *help;
};

#define STR(field) OPT_STRING, offsetof(struct config, field), 0, 0
#define INT(field, lo, hi) OPT_INT, offsetof(struct config, field), (lo), (hi)

static const struct option options[] = {
    {"HOST", STR(host), "127.0.0.1", false, "address the API listens on"},
    {"PORT", INT(port, 0, 65535), "8000", false, "port the API listens on"},
    {"PROCESSED_DIR", STR(processed_dir), "./processed", false, "where results are stored"},
    {"PUBLIC_BASE_URL", STR(public_base_url), "", false,
     "base of URLs in responses (default http://HOST:PORT)"},
    {"CELERY_BROKER_URL", STR(broker_url), "redis://localhost:6379/0", true, "task queue"},
    {"CELERY_BACKEND_URL", STR(backend_url), "redis://localhost:6379/1", true, "result store"},
    {"CELERY_BROKER_MASTER_NAME", STR(broker_master_name), "", false,
     "with a sentinel:// broker URL: the master group the sentinels watch (kombu's master_name)"},
    {"CELERY_BACKEND_MASTER_NAME", STR(backend_master_name), "", false,
     "with a sentinel:// backend URL: the master group the sentinels watch"},
    {"WORKER_CONCURRENCY", INT(worker_concurrency, 0, 256), "0", false,
     "task slots per worker (0: number of cores)"},
    {"SERVE_THREADS", INT(serve_threads, 0, 256), "0", false,
     "HTTP event loops (0: number of cores)"},
    {"OFFLOAD_THREADS", INT(offload_threads, 1, 256), "4", false,
     "threads that do the loops' blocking work (upload writes, directory scans, bucket calls)"},
    {"WORKER_METRICS_PORT", INT(worker_metrics_port, 0, 65535), "0", false,
     "port of a worker's GET /metrics (0: none)"},
    {"WORKER_METRICS_ADDR", STR(worker_metrics_addr), "127.0.0.1", false,
     "address a worker's GET /metrics listens on"},
    {"FETCH_ALLOW_CIDRS", STR(fetch_allow_cidrs), "", false,
     "private networks the fetcher may reach anyway"},
    {"ALLOWED_PORTS", STR(allowed_ports), "", false, "ports allowed besides 80 and 443"},
    {"MAX_DOWNLOAD_BYTES", INT(max_download_bytes, 1, INT64_MAX), "4294967296", false,
     "largest download"},
    {"FETCH_CONNECT_TIMEOUT_S", INT(fetch_connect_timeout_s, 1, 3600), "10", false,
     "connect timeout"},
    {"FETCH_TIMEOUT_S", INT(fetch_timeout_s, 1, 86400), "3600", false, "whole download timeout"},
    {"TASK_LEASE_S", INT(task_lease_s, 2, 86400), "60", false,
     "a dead worker's task is re-delivered after this"},
    {"TASK_TIME_LIMIT_S", INT(task_time_limit_s, 1, 604800), "7200", false,
     "hard time limit of one task"},
    {"TASK_MAX_RETRIES", INT(task_max_retries, 0, 100), "3", false,
     "retries of transient failures"},
    {"TASK_RETRY_BACKOFF_S", INT(task_retry_backoff_s, 0, 3600), "2", false,
     "first retry delay; doubles at each retry"},
    {"TASK_MAX_DELIVERIES", INT(task_max_deliveries, 1, 1000), "5", false,
     "deliveries whose worker died (crash, kill) after which a task fails as worker_lost"},
    {"TASK_LOST_AFTER_S", INT(task_lost_after_s, 1, 86400), "60", false,
     "an accepted task whose message vanished fails as task_lost after this"},
    {"WORKER_SHUTDOWN_GRACE_S", INT(worker_shutdown_grace_s, 0, 86400), "30", false,
     "SIGTERM: time running tasks get to finish before they return to the queue"},
    {"RESULT_TTL", INT(result_ttl_s, 1, 31536000), "604800", false, "seconds results are kept"},
    {"MAX_QUEUED", INT(max_queued, 1, 100000000), "10000", false,
     "queue length above which /submit answers 503"},
    {"PRESET", STR(preset), "veryfast", false,
     "libx264 preset: ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, "
     "veryslow or placebo"},
    {"CRF", INT(crf, 0, 51), "23", false, "libx264 quality"},
    {"MAX_HEIGHT", INT(max_height, 16, 8640), "1080", false,
     "largest shorter side of the output (the width of a portrait video), aspect kept"},
    {"MAX_DURATION_S", INT(max_duration_s, 1, 86400), "14400", false, "longest input"},
    {"LOG_LEVEL", STR(log_level), "info", false, "debug, info, warn or error"},
    {"API_KEYS", STR(api_keys), "", true,
     "bearer keys required by the API (comma list, or file:PATH with one key a line)"},
    {"SIGNING_KEY", STR(signing_key), "", true,
     "key that signs media URLs (empty with API_KEYS set: derived from the keys)"},
    {"SIGNED_URL_TTL_S", INT(signed_url_ttl_s, 1, 31536000), "3600", false,
     "lifetime of signed media URLs"},
    {"MAX_CONNECTIONS", INT(max_connections, 0, 1000000), "4096", false,
     "open client connections per serve process; more are closed at once (0: no cap)"},
    {"BODY_BUDGET_BYTES", INT(body_budget_bytes, 1048576, 1099511627776), "268435456", false,
     "request bodies one serve process holds in memory at once, all connections together; a "
     "request whose body would go over gets 503 with Retry-After before its body is read"},
    {"REQUEST_TIMEOUT_S", INT(request_timeout_s, 1, 3600), "15", false,
     "a client must send a request's head (request line and headers) within this of connecting "
     "or of its previous response; a body may take longer (see IDLE_TIMEOUT_S)"},
    {"IDLE_TIMEOUT_S", INT(idle_timeout_s, 1, 3600), "30", false,
     "a connection silent this long is closed: a pause within a request body (nginx's "
     "client_body_timeout) or a response, or between two requests on a kept-alive connection"},
    {"RATE_LIMIT", INT(rate_limit, 0, 1000000), "0", false,
     "submissions per minute per API key (or per client address without keys); 0: no limit"},
    {"FETCH_LOW_SPEED_BYTES_S", INT(fetch_low_speed_bytes_s, 1, 1000000000), "1024", false,
     "a download slower than this ..."},
    {"FETCH_LOW_SPEED_TIME_S", INT(fetch_low_speed_time_s, 1, 86400), "30", false,
     "... for this many seconds is abandoned"},
    {"UPLOAD_SIMPLE_MAX", INT(upload_simple_max, 0, 16777216), "16777216", false,
     "largest body of POST /upload (at most 16 MiB; larger files use tus, POST /uploads)"},
    {"UPLOAD_EXPIRE_S", INT(upload_expire_s, 1, 31536000), "86400", false,
     "an unfinished upload not written for this long is removed"},
    {"MODELS_DIR", STR(models_dir), "", false,
     "folder of the analysis models (empty: the one the build made)"},
    {"ANALYSIS", INT(analysis, 0, 1), "1", false,
     "1: analyse every interview (a request may turn it off with \"analysis\": false)"},
    {"ANALYSIS_FPS", INT(analysis_fps, 1, 30), "5", false, "frames analysed per second of video"},
    {"ANALYSIS_WIDTH", INT(analysis_width, 160, 1280), "640", false,
     "widest frame the analysis sees (pixels)"},
    {"ANALYSIS_THREADS", INT(analysis_threads, 0, 64), "0", false,
     "threads the models use per task (0: number of cores)"},
    {"ANALYSIS_OBJECTS_EVERY_S", INT(analysis_objects_every_s, 0, 3600), "4", false,
     "seconds between object (phone, book, person) searches; 0: never"},
    {"ANALYSIS_IDENTITY_EVERY_S", INT(analysis_identity_every_s, 0, 3600), "2", false,
     "seconds between identity checks of the candidate's face; 0: never"},
    {"FACE_MIN_SCORE_PCT", INT(face_min_score_pct, 1, 100), "75", false,
     "detector score (percent) from which a face counts"},
    {"FACE_ABSENT_MIN_S", INT(face_absent_min_s, 0, 3600), "2", false,
     "shortest absence of the candidate that is an event"},
    {"MULTIPLE_FACES_MIN_S", INT(multiple_faces_min_s, 0, 3600), "1", false,
     "shortest presence of another face or person that is an event"},
    {"LOOK_AWAY_YAW_DEG", INT(look_away_yaw_deg, 5, 90), "30", false,
     "head turned left or right of the candidate's own baseline by more than this is away"},
    {"LOOK_AWAY_PITCH_DEG", INT(look_away_pitch_deg, 5, 90), "20", false,
     "head turned up or down of the baseline by more than this is away"},
    {"LOOK_AWAY_MIN_S", INT(look_away_min_s, 0, 3600), "2", false,
     "shortest looking-away (head or eyes) that is an event"},
    {"GAZE_AWAY_PCT", INT(gaze_away_pct, 5, 100), "45", false,
     "iris off the eye's centre of the baseline by more than this (percent of half the eye) is away"},
    {"OBJECT_MIN_SCORE_PCT", INT(object_min_score_pct, 1, 100), "40", false,
     "object detector score (percent) from which a phone, book, screen or person counts"},
    {"FACE_MATCH_MIN_PCT", INT(face_match_min_pct, 0, 100), "55", false,
     "identity similarity (percent) below which the face in the candidate's place is someone else"},
    {"SILENCE_MIN_S", INT(silence_min_s, 1, 3600), "2", false,
     "shortest silence that is an event"},
    {"ALERT_SUSPICIOUS_SCORE", INT(alert_suspicious_score, 1, 100), "40", false,
     "score from which a moment is SUSPICIOUS_BEHAVIOR"},
    {"ALERT_CHEATING_SCORE", INT(alert_cheating_score, 1, 100), "70", false,
     "score from which a moment is CHEATING_DETECTED (a prompt to review, not a verdict)"},
    {"REVIEW_VIDEO", INT(review_video, 0, 1), "1", false,
     "1: also make the review rendition with the analysis drawn on it"},
    {"RETENTION_DAYS", INT(retention_days, 0, 36500), "0", false,
     "videos whose processing finished more than this many days ago are deleted (0: never)"},
    {"RETENTION_SWEEP_S", INT(retention_sweep_s, 1, 86400), "3600", false,
     "seconds between two retention sweeps (by one serve process of those sharing Redis)"},
    {"STORAGE_URL", STR(storage_url), "", false,
     "s3://bucket/prefix to keep results in an S3-compatible bucket (empty: PROCESSED_DIR)"},
    {"MEDIA_DELIVERY", STR(media_delivery), "redirect", false,
     "with STORAGE_URL: redirect (302 to a presigned URL of the bucket) or proxy (serve streams "
     "the object, for clients that cannot reach the bucket)"},
    {"AWS_ENDPOINT_URL_S3", STR(aws_endpoint_url_s3), "", false,
     "S3 endpoint, e.g. http://127.0.0.1:7480 (empty: AWS_ENDPOINT_URL, else AWS's)"},
    {"AWS_ENDPOINT_URL", STR(aws_endpoint_url), "", false,
     "endpoint of every AWS service (used for S3 when AWS_ENDPOINT_URL_S3 is empty)"},
    {"AWS_REGION", STR(aws_region), "", false,
     "region of the bucket (empty: AWS_DEFAULT_REGION, else us-east-1)"},
    {"AWS_DEFAULT_REGION", STR(aws_default_region), "", false,
     "region when AWS_REGION is empty"},
    {"AWS_ACCESS_KEY_ID", STR(aws_access_key_id), "", false, "S3 access key id"},
    {"AWS_SECRET_ACCESS_KEY", STR(aws_secret_access_key), "", true, "S3 secret key"},
    {"AWS_SESSION_TOKEN", STR(aws_session_token), "", true,
     "S3 session token of temporary credentials (sent as X-Amz-Security-Token)"},
    {"S3_FORCE_PATH_STYLE", INT(s3_force_path_style, 0, 1), "0", false,
     "1: address the bucket in the path (endpoint/bucket/key), as MinIO and radosgw expect; "
     "always so when the endpoint is an IP address"},
    {"S3_ALLOW_CIDRS", STR(s3_allow_cidrs), "", false,
     "private networks the S3 endpoint may be in (127.0.0.1/32 for a local radosgw); "
     "public addresses are always allowed"},
    {"S3_CONNECT_TIMEOUT_S", INT(s3_connect_timeout_s, 1, 3600), "10", false,
     "connect timeout of an S3 request"},
    {"S3_TIMEOUT_S", INT(s3_timeout_s, 1, 86400), "600", false,
     "whole time limit of one S3 request (one part of a multipart upload)"},
    {"S3_MULTIPART_THRESHOLD", INT(s3_multipart_threshold, 5242880, 5368709120LL), "67108864",
     false, "files at least this large are uploaded in parts"},
    {"S3_PART_SIZE", INT(s3_part_size, 5242880, 5368709120LL), "16777216", false,
     "size of each part of a multipart upload (the last may be smaller)"},
    {"S3_LIST_PAGE", INT(s3_list_page, 1, 1000), "1000", false,
     "keys asked for per page when listing a prefix"},
    {"WEBHOOK_SECRET", STR(webhook_secret), "", true,
     "key that signs webhook events (HMAC-SHA256); empty: a callback_url is refused (400)"},
    {"WEBHOOK_RETRY_BASE_S", INT(webhook_retry_base_s, 1, 3600), "10", false,
     "first retry delay of a webhook event; doubles at each retry, with jitter"},
    {"WEBHOOK_RETRY_MAX_S", INT(webhook_retry_max_s, 1, 86400), "3600", false,
     "longest delay between two attempts of a webhook event"},
    {"WEBHOOK_MAX_AGE_S", INT(webhook_max_age_s, 1, 604800), "86400", false,
     "a webhook event not delivered this long after the task ended is dropped (logged)"},
    {"WEBHOOK_TIMEOUT_S", INT(webhook_timeout_s, 1, 300), "10", false,
     "time a webhook receiver has to answer one attempt, connection included"},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

static char **str_field(struct config *cfg, const struct option *o)
{
    return (char **)((char *)cfg + o->offset);
}

static long long *int_field(struct config *cfg, const struct option *o)
{
    return (long long *)((char *)cfg + o->offset);
}

static const char *str_value(const struct config *cfg, const struct option *o)
{
    return *(char *const *)((const char *)cfg + o->offset);
}

static long long int_value(const struct config *cfg, const struct option *o)
{
    return *(const long long *)((const char *)cfg + o->offset);
}

struct dotenv_lookup {
    const char *key;
    char *value;
};

static void dotenv_find(const char *key, const char *value, void *ctx)
{
    struct dotenv_lookup *l = ctx;
    if (strcmp(key, l->key) == 0) {
        free(l->value);
        l->value = xstrdup(value);
    }
}

static int set_option(struct config *cfg, const struct option *o, const char *value, char *err,
                      size_t errlen)
{
    if (o->type == OPT_STRING) {
        *str_field(cfg, o) = xstrdup(value);
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end != '\0' || v < o->min || v > o->max) {
        snprintf(err, errlen, "%s: expected a whole number from %lld to %lld", o->name, o->min,
                 o->max);
        return -1;
    }
    *int_field(cfg, o) = v;
    return 0;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * A Redis URL option: redis://host:port/db, or kombu's sentinel://host:port;sentinel://... with
 * the master's name in its *_MASTER_NAME option (queue/ parses the rest when it starts).
 */
static int validate_redis(const char *option, const char *url, const char *master_option,
                          const char *master_name, char *err, size_t errlen)
{
    if (has_prefix(url, "sentinel://") && !master_name[0]) {
        snprintf(err, errlen, "%s: a sentinel:// URL needs %s", master_option, master_option);
        return -1;
    }
    if (!has_prefix(url, "redis://") && !has_prefix(url, "sentinel://")) {
        snprintf(err, errlen,
                 "%s: expected redis://host:port/db or sentinel://host:port;sentinel://...",
                 option);
        return -1;
    }
    return 0;
}

/* True for one of libx264's preset names (x264 --fullhelp), which ffmpeg passes on as is. */
static bool preset_valid(const char *preset)
{
    static const char *const presets[] = {"ultrafast", "superfast", "veryfast", "faster", "fast",
                                          "medium",    "slow",      "slower",   "veryslow",
                                          "placebo"};
    for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++)
        if (strcmp(preset, presets[i]) == 0)
            return true;
    return false;
}

static char *read_small_file(const char *path);

/*
 * With API keys and no SIGNING_KEY, media URLs are signed anyway, with a key derived from the
 * keys' text (every process that reads the same API_KEYS derives the same key): a browser's
 * <video> cannot send a bearer key, so without signed URLs the review page could not play media
 * behind API keys. Changing API_KEYS changes the key and ends the URLs signed before.
 */
static void derive_signing_key(struct config *cfg)
{
    if (cfg->signing_key[0] || !cfg->api_keys[0])
        return;
    char *text = has_prefix(cfg->api_keys, "file:") ? read_small_file(cfg->api_keys + 5)
                                                    : xstrdup(cfg->api_keys);
    if (!text)
        return; /* the API refuses to start without its key file */
    static const char label[] = "interview-api media URL signing key v1";
    unsigned char mac[SHA256_LEN];
    crypto_hmac_sha256(text, strlen(text), label, sizeof(label) - 1, mac);
    free(text);
    free(cfg->signing_key);
    cfg->signing_key = xmalloc(2 * SHA256_LEN + 1);
    str_hex(cfg->signing_key, mac, SHA256_LEN);
    cfg->signing_key_derived = true;
}

static int validate(struct config *cfg, char *err, size_t errlen)
{
    if (validate_redis("CELERY_BROKER_URL", cfg->broker_url, "CELERY_BROKER_MASTER_NAME",
                       cfg->broker_master_name, err, errlen) ||
        validate_redis("CELERY_BACKEND_URL", cfg->backend_url, "CELERY_BACKEND_MASTER_NAME",
                       cfg->backend_master_name, err, errlen))
        return -1;
    const char *base = cfg->public_base_url;
    size_t scheme = has_prefix(base, "http://") ? 7 : has_prefix(base, "https://") ? 8 : 0;
    if (base[0] && (scheme == 0 || base[scheme] == '\0' || base[scheme] == '/')) {
        snprintf(err, errlen, "PUBLIC_BASE_URL: expected an http:// or https:// URL with a host");
        return -1;
    }
    if (!preset_valid(cfg->preset)) {
        snprintf(err, errlen, "PRESET: expected a libx264 preset (ultrafast, superfast, veryfast, "
                              "faster, fast, medium, slow, slower, veryslow, placebo)");
        return -1;
    }
    int level = log_level_parse(cfg->log_level);
    if (level < 0) {
        snprintf(err, errlen, "LOG_LEVEL: expected debug, info, warn or error");
        return -1;
    }
    if (!cfg->processed_dir[0]) {
        snprintf(err, errlen, "PROCESSED_DIR: must not be empty");
        return -1;
    }
    if (!cfg->public_base_url[0]) {
        free(cfg->public_base_url);
        const char *h = cfg->host;
        if (strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0)
            h = "127.0.0.1";
        bool v6 = strchr(h, ':') != NULL;
        cfg->public_base_url =
            xasprintf("http://%s%s%s:%lld", v6 ? "[" : "", h, v6 ? "]" : "", cfg->port);
    } else {
        size_t n = strlen(cfg->public_base_url);
        while (n > 0 && cfg->public_base_url[n - 1] == '/')
            cfg->public_base_url[--n] = '\0';
    }
    if (cfg->storage_url[0] &&
        (!has_prefix(cfg->storage_url, "s3://") || !cfg->storage_url[5] ||
         cfg->storage_url[5] == '/')) {
        snprintf(err, errlen, "STORAGE_URL: expected s3://bucket or s3://bucket/prefix");
        return -1;
    }
    if (strcmp(cfg->media_delivery, "redirect") != 0 && strcmp(cfg->media_delivery, "proxy") != 0) {
        snprintf(err, errlen, "MEDIA_DELIVERY: expected redirect or proxy");
        return -1;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    if (cfg->worker_concurrency == 0)
        cfg->worker_concurrency = cores;
    if (cfg->serve_threads == 0)
        cfg->serve_threads = cores;
    derive_signing_key(cfg);
    return 0;
}

int config_load_from(struct config *cfg, config_getenv_fn env, void *env_ctx,
                     const char *dotenv_text, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &options[i];
        struct dotenv_lookup l = {o->name, NULL};
        const char *value = env(o->name, env_ctx);
        if (!value && dotenv_text) {
            dotenv_parse(dotenv_text, strlen(dotenv_text), dotenv_find, &l);
            value = l.value;
        }
        if (!value)
            value = o->def;
        int rc = set_option(cfg, o, value, err, errlen);
        free(l.value);
        if (rc) {
            config_cleanup(cfg);
            return -1;
        }
    }
    if (validate(cfg, err, errlen)) {
        config_cleanup(cfg);
        return -1;
    }
    return 0;
}

static const char *process_getenv(const char *name, void *ctx)
{
    (void)ctx;
    return getenv(name);
}

static char *read_small_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *text = xmalloc(cap + 1);
    len = fread(text, 1, cap, f);
    fclose(f);
    text[len] = '\0';
    return text;
}

int config_load(struct config *cfg, const char *dotenv_path, char *err, size_t errlen)
{
    char *text = dotenv_path ? read_small_file(dotenv_path) : NULL;
    int rc = config_load_from(cfg, process_getenv, NULL, text, err, errlen);
    free(text);
    return rc;
}

/* Prints one URL [url, url+len) with its user and password hidden behind three stars. */
static void print_redacted_one(FILE *out, const char *url, size_t len)
{
    const char *at = NULL;
    for (const char *p = url; p < url + len; p++)
        at = *p == '@' ? p : at; /* the last '@': a password may hold one */
    const char *scheme = memmem(url, len, "://", 3);
    int keep = scheme && (!at || scheme < at) ? (int)(scheme + 3 - url) : 0;
    if (at)
        fprintf(out, "%.*s***%.*s", keep, url, (int)(url + len - at), at);
    else
        fprintf(out, "%.*s", (int)len, url);
}

/* Prints a Redis URL, or each URL of a ';' list (kombu's sentinels), without secrets. */
static void print_redacted_url(FILE *out, const char *url)
{
    for (;;) {
        const char *semi = strchr(url, ';');
        print_redacted_one(out, url, semi ? (size_t)(semi - url) : strlen(url));
        if (!semi)
            break;
        fputc(';', out);
        url = semi + 1;
    }
}

void config_print(const struct config *cfg, FILE *out)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &options[i];
        fprintf(out, "%s=", o->name);
        if (o->type == OPT_INT) {
            fprintf(out, "%lld", int_value(cfg, o));
        } else {
            const char *v = str_value(cfg, o);
            if (o->secret && (has_prefix(v, "redis://") || has_prefix(v, "sentinel://")))
                print_redacted_url(out, v);
            else if (o->offset == offsetof(struct config, signing_key) && cfg->signing_key_derived)
                fputs("(derived from API_KEYS, redacted)", out);
            else if (o->secret && v[0])
                fputs("(set, redacted)", out);
            else
                fputs(v, out);
        }
        fprintf(out, "\t# %s\n", o->help);
    }
}

void config_cleanup(struct config *cfg)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (options[i].type == OPT_STRING) {
            char **f = str_field(cfg, &options[i]);
            free(*f);
            *f = NULL;
        }
    }
}

/* .env parsing. */

static const char *skip_blank(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static int dotenv_line(const char *p, const char *end, dotenv_pair_cb fn, void *ctx)
{
    p = skip_blank(p, end);
    if (p == end || *p == '#')
        return 0;
    if (end - p > 7 && memcmp(p, "export ", 7) == 0)
        p = skip_blank(p + 7, end);
    const char *key = p;
    while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
        p++;
    size_t keylen = (size_t)(p - key);
    p = skip_blank(p, end);
    if (keylen == 0 || keylen > 128 || p == end || *p != '=')
        return 0;
    p = skip_blank(p + 1, end);
    const char *val = p, *val_end = end;
    if (p < end && (*p == '"' || *p == '\'')) {
        const char *close = memchr(p + 1, *p, (size_t)(end - p - 1));
        if (!close)
            return 0;
        val = p + 1;
        val_end = close;
    } else {
        const char *hash = val;
        while (hash < end && !(*hash == '#' && (hash == val || hash[-1] == ' ' ||
                                                 hash[-1] == '\t')))
            hash++;
        val_end = hash;
        while (val_end > val && (val_end[-1] == ' ' || val_end[-1] == '\t' ||
                                 val_end[-1] == '\r'))
            val_end--;
    }
    if (memchr(val, '\0', (size_t)(val_end - val)))
        return 0;
    char *k = xstrndup(key, keylen);
    char *v = xstrndup(val, (size_t)(val_end - val));
    fn(k, v, ctx);
    free(k);
    free(v);
    return 1;
}

int dotenv_parse(const char *text, size_t len, dotenv_pair_cb fn, void *ctx)
{
    const char *p = text, *end = text + len;
    int pairs = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        pairs += dotenv_line(p, line_end, fn, ctx);
        p = nl ? nl + 1 : end;
    }
    return pairs;
}
