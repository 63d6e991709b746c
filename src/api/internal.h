/* Shared by the api/ files only: the per-thread context and reply helpers. */
#ifndef IA_API_INTERNAL_H
#define IA_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api.h"
#include "core/error.h"

struct http_request;
struct queue;
struct status_cache;
typedef struct json_t json_t;

struct api_thread {
    const struct app *app;
    struct queue *queue;
    struct status_cache *status_cache;
};

/*
 * The route parameters, valid until the reply: param is the first "*" of the route (the id in
 * /status/{id}), param2 the second ("" when the route has one).
 */
struct api_call {
    struct http_request *req;
    struct api_thread *t;
    const char *param;
    const char *param2;
};

typedef void (*api_handler_fn)(struct api_call *call);

/* Replies with a JSON object and frees it (steals the reference). */
void api_reply_json(struct http_request *req, int status, json_t *body);
/* Replies {"detail": detail, "code": code} with status. */
void api_reply_error(struct http_request *req, int status, const char *code, const char *detail);
/* Replies with the HTTP status that err maps to, and its client-safe message. */
void api_reply_ia_error(struct http_request *req, enum ia_err err);
/* PUBLIC_BASE_URL + prefix + id + suffix, signed when SIGNING_KEY is set; caller frees it. */
char *api_public_url(const struct app *app, const char *prefix, const char *id,
                     const char *suffix);
/*
 * Adds "events_url" and "review_url" to obj (a JSON object) for the files of the analysis that
 * video_id has (its WebVTT events, its review rendition); a video without them gets neither.
 */
void api_add_analysis_urls(const struct app *app, const char *video_id, json_t *obj);

/*
 * Parses and checks a POST /submit body ({"video_url": "http(s)://...", "analysis": false}),
 * with no I/O. IA_OK with the URL in *url_out (the caller frees it) and *analysis_off true when
 * the body says "analysis": false, or IA_ERR_INVALID with the client-facing 422 reason in
 * *why_out (a static string) and *url_out NULL.
 */
enum ia_err api_parse_submit_body(const unsigned char *body, size_t len, char **url_out,
                                  bool *analysis_off, const char **why_out);
/*
 * The keyword arguments of a task's message: {"analysis": false} when the request turned the
 * analysis off, else {} (the worker's ANALYSIS option decides). A new reference.
 */
json_t *api_task_kwargs_new(bool analysis_off);

/* Direct uploads (upload_parse.c: pure parsers; upload_tus.c, upload_simple.c: handlers). */
#define UPLOAD_METADATA_MAX 4096          /* Upload-Metadata, bytes */
#define UPLOAD_CHUNK_MAX (16 * 1024 * 1024) /* one PATCH body */

/* Decimal digits only (no sign, no spaces), at most UINT64_MAX. */
bool upload_parse_u64(const char *s, uint64_t *out);
/* True for a tus Upload-Metadata value: "key base64,key2 base64,key3", under the size limit. */
bool upload_metadata_valid(const char *m);
/* The analysis flag as text ("true" or "false", nothing else): *off is true for "false". */
bool upload_parse_flag(const char *s, bool *off);
/*
 * The "analysis" key of a valid Upload-Metadata value: *off is true when its value is the base64
 * of "false", false when it is the base64 of "true" or the key is absent. False when the key has
 * no value, another value, or appears twice.
 */
bool upload_metadata_analysis(const char *m, bool *off);
/* The boundary of a multipart/form-data Content-Type into out (cap bytes); false otherwise. */
bool upload_multipart_boundary(const char *content_type, char *out, size_t cap);

/* The first part of a multipart/form-data body with a filename (RFC 7578). */
struct upload_file_part {
    size_t offset, length;  /* of its content within the body */
    char filename[256];
    char content_type[128]; /* "" when the part has none */
};
/* Finds the file part of body; NULL on success, else the client-facing reason (static). */
const char *upload_multipart_parse(const unsigned char *body, size_t len, const char *boundary,
                                   struct upload_file_part *out);

struct store_upload;
/*
 * Makes the task of a complete upload, at most once however many requests finish it: fills
 * task_id with the new task's id, or with the one made before. analysis_off puts
 * "analysis": false into the new task's kwargs. IA_ERR_TOO_LARGE when the queue is full,
 * IA_ERR_BROKER when Redis is down (the upload stays complete and a later request may try again),
 * IA_ERR_BROKER_UNSURE when the task may have been queued (a later request answers with it).
 */
enum ia_err api_upload_finish(struct api_call *call, struct store_upload *u, const char *upload_id,
                              bool analysis_off, char *task_id, size_t cap);
/* Replies to a failed api_upload_finish() as /submit does (503 with Retry-After, ...). */
void api_upload_reply_finish_error(struct http_request *req, enum ia_err err);

void api_tus_options(struct api_call *call);
void api_tus_create(struct api_call *call);
void api_tus_head(struct api_call *call);
void api_tus_patch(struct api_call *call);
void api_upload_simple(struct api_call *call);

void api_submit(struct api_call *call);
void api_status(struct api_call *call);
void api_processed(struct api_call *call);
void api_stream(struct api_call *call);
void api_download(struct api_call *call);
void api_download_metadata(struct api_call *call);
void api_metadata(struct api_call *call);
void api_thumbnail(struct api_call *call);
void api_events(struct api_call *call);
void api_review(struct api_call *call);
void api_evidence(struct api_call *call);
void api_healthz(struct api_call *call);
void api_readyz(struct api_call *call);
void api_web_index(struct api_call *call);
void api_web_asset(struct api_call *call);
void api_video_delete(struct api_call *call);
void api_openapi(struct api_call *call);
void api_docs_page(struct api_call *call);
void api_docs_asset(struct api_call *call);

struct store_video_id;
/*
 * Deletes the videos of ids (n, sorted by id) for retention, in the order DELETE uses:
 * tombstones and records first, then every file, logging each with its id and `days`. Stops at
 * the first video whose records Redis could not delete; returns how many were deleted (the
 * first ones of ids).
 */
size_t api_videos_expire(const struct app *app, struct queue *q, const struct store_video_id *ids,
                         size_t n, long long days);

#endif
