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

struct video_index;

struct api_thread {
    const struct app *app;
    struct queue *queue;
    struct queue_async *queue_async; /* a loop's own connections (NULL on a pool thread) */
    struct video_index *video_index; /* what GET /videos knows of each video (video_index.h) */
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

/*
 * For a route that runs on the loop but may have to block (the route table says ON_LOOP): on a
 * loop thread, hands call's request to the pool (HTTP_POOL_QUICK or HTTP_POOL_FILES), where the
 * same handler runs again, and returns true (return at once); on a pool thread, false.
 */
bool api_offload(struct api_call *call, int pool);

/* Replies with a JSON object and frees it (steals the reference). */
void api_reply_json(struct http_request *req, int status, json_t *body);
/* Replies {"detail": detail, "code": code} with status. */
void api_reply_error(struct http_request *req, int status, const char *code, const char *detail);
/* Replies with the HTTP status that err maps to, and its client-safe message. */
void api_reply_ia_error(struct http_request *req, enum ia_err err);
/*
 * Adds "events_url" and "review_url" to obj (a JSON object) for the files of the analysis that
 * video_id has (its WebVTT events, its review rendition); a video without them gets neither.
 * IA_ERR_STORAGE_UNAVAILABLE when the bucket cannot tell whether they exist.
 */
/*
 * MEDIA_DELIVERY=proxy (media_proxy.c): answers with processed_<id>.<ext> of the bucket
 * (call->param is the id; obj its size and validators from a HEAD) as for a local file, with
 * content_type and disposition (may be NULL) as ours; a body is streamed from the bucket by
 * another thread, which answers the request later.
 */
struct store_object_head;
void api_proxy_object(struct api_call *call, const char *ext, const char *content_type,
                      const char *disposition, const struct store_object_head *obj);
enum ia_err api_add_analysis_urls(const struct app *app, const char *video_id, json_t *obj);

/* What a POST /submit body asks for. */
struct submit_fields {
    char *video_url;    /* the caller frees it */
    bool analysis_off;  /* "analysis": false */
    char *callback_url; /* NULL when absent or null; the caller frees it */
};
/*
 * Parses and checks a POST /submit body ({"video_url": "http(s)://...", "analysis": false,
 * "callback_url": ...}), with no I/O: NULL with *out filled, or the client-facing 422 reason (a
 * static string) with nothing in *out to free.
 */
const char *api_parse_submit(const unsigned char *body, size_t len, struct submit_fields *out);
/*
 * The keyword arguments of a task's message: {"analysis": false} when the request turned the
 * analysis off, else {} (the worker's ANALYSIS option decides). A new reference.
 */
json_t *api_task_kwargs_new(bool analysis_off);

/* Webhooks: the callback_url of a task (parsers in submit_body.c and upload_parse.c, the check
 * in callback.c). */
/*
 * The "callback_url" key of a valid Upload-Metadata value, base64-decoded into *url_out (the
 * caller frees it; NULL when absent). False when the key has no value, a value that is not
 * base64 of 1 to 2048 bytes without NUL, or appears twice.
 */
bool upload_metadata_callback(const char *m, char **url_out);
/*
 * True when url (NULL: none) may be a task's callback URL; else replies 400 webhooks_disabled
 * (WEBHOOK_SECRET unset) or callback_url_not_allowed (scheme, user-info, port, localhost or a
 * numeric address the fetcher may not reach; names are checked when the event is sent).
 */
bool api_callback_admit(struct api_call *call, const char *url);
/* api_task_kwargs_new() plus "callback_url" when callback_url is not NULL. A new reference. */
json_t *api_task_kwargs_with_callback(bool analysis_off, const char *callback_url);

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
 * "analysis": false into the new task's kwargs, callback_url (may be NULL) "callback_url".
 * IA_ERR_TOO_LARGE when the queue is full,
 * IA_ERR_BROKER when Redis is down (the upload stays complete and a later request may try again),
 * IA_ERR_BROKER_UNSURE when the task may have been queued (a later request answers with it).
 */
enum ia_err api_upload_finish(struct api_call *call, struct store_upload *u, const char *upload_id,
                              bool analysis_off, const char *callback_url, char *task_id,
                              size_t cap);
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
void api_metrics(struct api_call *call);

/*
 * The reviewer's part (decisions_body.c: pure parsers; decisions.c, videos_list.c: handlers;
 * video_index.c: what the list knows of each video).
 */
#define API_DECISION_NOTE_MAX 500 /* characters (code points) of a note */
#define API_LIST_DEFAULT 20       /* videos per page of GET /videos */
#define API_LIST_MAX 100

/* A reviewer's decision on one event, as PATCH /videos/{video_id}/events/{event_id} sends it. */
struct api_decision {
    char decision[16];                        /* "confirmed" or "dismissed" */
    char note[4 * API_DECISION_NOTE_MAX + 1]; /* UTF-8, "" when none */
};
/*
 * Parses and checks the body {"decision": "confirmed"|"dismissed", "note": "..."} (note
 * optional, at most API_DECISION_NOTE_MAX characters, no control characters but tab and
 * newline; no other keys). IA_OK with *out filled, or IA_ERR_INVALID with the client-facing
 * 422 reason in *why_out (static) and *out zeroed.
 */
enum ia_err api_parse_decision_body(const unsigned char *body, size_t len, struct api_decision *out,
                                    const char **why_out);
/*
 * The decisions document of a video with the decision on event_id set (replacing an earlier
 * one): {"schema": 1, "video_id", "decisions": {event_id: {"decision", "note", "decided_by",
 * "decided_at"}}}. doc (borrowed, may be NULL) is the current one; decided_by may be NULL.
 * Returns a new reference.
 */
json_t *api_decisions_apply(json_t *doc, const char *video_id, const char *event_id,
                            const struct api_decision *d, const char *decided_by,
                            const char *decided_at);

/* Where a video stands with its reviewer (REVIEW_ANY: no filter). */
enum api_review_status { REVIEW_ANY, REVIEW_TO_REVIEW, REVIEW_REVIEWED, REVIEW_NO_EVENTS };
enum api_list_sort { LIST_NEWEST, LIST_SCORE };
/* A position in the list: the sort keys of the last video of a page. */
struct api_list_cursor {
    long long score;        /* -1: no score (not analysed); LIST_SCORE only */
    long long completed_us; /* when its processing completed, microseconds since 1970 */
    char id[37];
};
struct api_list_query {
    enum api_review_status status;
    int level; /* -1: any; else an index of api_level_name() */
    enum api_list_sort sort;
    int limit;
    bool has_cursor;
    struct api_list_cursor cursor;
};
/*
 * Parses GET /videos's query parameters (each NULL when absent). NULL when good (q filled),
 * else the client-facing 422 reason (static).
 */
const char *api_parse_list_query(const char *status, const char *level, const char *sort,
                                 const char *limit, const char *cursor, struct api_list_query *q);
/* Writes the cursor that resumes after c (cap: 128 is enough). */
void api_list_cursor(enum api_list_sort sort, const struct api_list_cursor *c, char *out,
                     size_t cap);
/* "to_review", "reviewed", "no_events". */
const char *api_review_status_name(enum api_review_status s);
/* NO_ALERT, SUSPICIOUS_BEHAVIOR, CHEATING_DETECTED, none: index <-> name (-1 / NULL: other). */
const char *api_level_name(int level);
int api_level_index(const char *final_level_or_null);

void api_videos_list(struct api_call *call);
void api_decision_patch(struct api_call *call);
void api_decisions_get(struct api_call *call);

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
