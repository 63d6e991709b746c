/* Shared by the api/ files only: the per-thread context and reply helpers. */
#ifndef IA_API_INTERNAL_H
#define IA_API_INTERNAL_H

#include <stddef.h>

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

/* The route parameter (the id in /status/{id}), valid until the reply. */
struct api_call {
    struct http_request *req;
    struct api_thread *t;
    const char *param;
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
 * Parses and checks a POST /submit body ({"video_url": "http(s)://..."}), with no I/O. IA_OK
 * with the URL in *url_out (the caller frees it), or IA_ERR_INVALID with the client-facing 422
 * reason in *why_out (a static string) and *url_out NULL.
 */
enum ia_err api_parse_submit_body(const unsigned char *body, size_t len, char **url_out,
                                  const char **why_out);

void api_submit(struct api_call *call);
void api_status(struct api_call *call);
void api_processed(struct api_call *call);
void api_stream(struct api_call *call);
void api_download(struct api_call *call);
void api_download_metadata(struct api_call *call);
void api_metadata(struct api_call *call);
void api_thumbnail(struct api_call *call);
void api_healthz(struct api_call *call);
void api_readyz(struct api_call *call);
void api_web_index(struct api_call *call);
void api_web_asset(struct api_call *call);

#endif
