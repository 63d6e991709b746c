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

#endif
