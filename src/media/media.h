/*
 * Media work for one task: a safe fetch of a URL to a file, then probe, remux or transcode to a
 * browser-safe MP4 with +faststart, and a poster. ffmpeg and ffprobe run as child processes.
 * Only media/ includes curl.h. Nothing here knows about HTTP serving or Redis.
 */
#ifndef IA_MEDIA_MEDIA_H
#define IA_MEDIA_MEDIA_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct json_t json_t;
struct netpolicy;

/* Reports the stage ("fetching", "probing", "processing") and its progress 0.0..1.0. */
typedef void (*media_progress_fn)(const char *stage, double progress, void *ctx);

struct media_opts {
    /* fetch */
    uint64_t max_download_bytes;
    long connect_timeout_s;
    long fetch_timeout_s;
    const struct netpolicy *policy; /* which addresses and ports a fetch may connect to */
    long low_speed_bytes_s;         /* abort below this rate ... (0: 1024) */
    long low_speed_time_s;          /* ... sustained this long (0: 30) */
    /* processing */
    long max_duration_s;
    int max_height; /* largest shorter side: a landscape video's height, a portrait one's width */
    const char *preset;
    int crf;
    uint64_t max_output_bytes;     /* largest file ffmpeg may write (RLIMIT_FSIZE); 0: 8 GiB */
    /* whole task */
    int64_t deadline_ms;           /* monotonic ms (os_monotonic_ms) after which work is killed */
    const atomic_bool *cancel;     /* set to stop at once (shutdown); may be NULL */
    media_progress_fn progress;    /* may be NULL */
    void *progress_ctx;
    atomic_uint *children;         /* counts the ffmpeg/ffprobe children started; may be NULL */
};

struct fetch_result {
    long http_status;
    char *final_url;     /* owned */
    char *content_type;  /* owned, may be NULL */
    uint64_t bytes;
    char sha256[65];
};

/*
 * Loads libcurl (util/curl_load.c) now: the worker calls it before its threads start; other
 * commands load it on first use, and `serve` never does. IA_ERR_INTERNAL (logged) when it cannot.
 */
enum ia_err media_global_init(void);
/* Releases what media_global_init() set up, after all threads stopped. */
void media_global_cleanup(void);

/*
 * Downloads url to path (created, truncated). Refuses non-http(s) schemes (also on redirects, at
 * most 5), user-info, addresses and ports the policy refuses, bodies over max_download_bytes.
 * On failure returns the error and writes a log-only detail (may name hosts, never paths) into
 * detail. The caller calls fetch_result_cleanup() in both cases. A deadline or cancel returns
 * IA_ERR_TIMEOUT (the caller knows whether it cancelled).
 */
enum ia_err media_fetch_to_file(const struct media_opts *opts, const char *url, const char *path,
                                struct fetch_result *res, char *detail, size_t detaillen);
void fetch_result_cleanup(struct fetch_result *res);

/*
 * Turns input_path into output_mp4 (H.264/AAC MP4, +faststart) and output_jpg (poster), and
 * returns in *report the metadata sections "source", "output" and "processing" (new reference).
 * Outputs are written to the given paths directly; the caller publishes them. Fails with
 * IA_ERR_NOT_A_VIDEO, IA_ERR_DECODE, IA_ERR_TOO_LONG (checked before any transcode),
 * IA_ERR_TIMEOUT (deadline or cancel; no child is left running), IA_ERR_TRANSCODE or
 * IA_ERR_STORAGE_FULL; *report is NULL then and partial outputs are removed.
 */
enum ia_err media_process(const struct media_opts *opts, const char *input_path,
                          const char *output_mp4, const char *output_jpg, json_t **report,
                          char *detail, size_t detaillen);

/* One webhook delivery: a JSON body POSTed to url (media_post). */
struct media_post {
    const struct netpolicy *policy; /* the fetcher's: the same addresses and ports */
    const char *url;
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated; may be NULL */
    const char *body;
    size_t body_len;
    long timeout_s;            /* the whole attempt, connection included (0: 10) */
    const atomic_bool *cancel; /* set to stop at once (shutdown); may be NULL */
};

/*
 * POSTs req->body as application/json through the fetcher's gate: the URL is checked as a
 * video URL is (scheme, user-info, port) and every address connected to by the policy; a
 * redirect is never followed (a 3xx is an answer like any other non-2xx). The response body is
 * read up to 64 KiB and dropped. IA_OK for a 2xx answer; else IA_ERR_FETCH_HTTP (another status,
 * in *http_status), IA_ERR_URL_NOT_ALLOWED, IA_ERR_TIMEOUT (time limit or cancel) or
 * IA_ERR_FETCH_NETWORK, with a log-only detail (names the host, never the path or query).
 */
enum ia_err media_post(const struct media_post *req, long *http_status, char *detail,
                       size_t detaillen);

/*
 * Checks a URL before it is accepted (a callback URL at submission), without any lookup: http(s),
 * no user-info, an allowed port, and a host that is a name other than localhost, or a numeric
 * address the policy allows. A name's addresses are checked when media_post() connects.
 * IA_OK or IA_ERR_URL_NOT_ALLOWED with a client-safe detail.
 */
enum ia_err media_url_check(const struct netpolicy *policy, const char *url, char *detail,
                            size_t detaillen);

#endif
