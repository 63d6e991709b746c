/* JSON replies, and the one place where internal errors become HTTP statuses. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "api/internal.h"
#include "core/alloc.h"
#include "core/config.h"
#include "http/http.h"

void api_reply_json(struct http_request *req, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text)
        abort();
    http_reply_body(req, status, "application/json", text, strlen(text));
    free(text);
    json_decref(body);
}

void api_reply_error(struct http_request *req, int status, const char *code, const char *detail)
{
    api_reply_json(req, status, json_pack("{s:s, s:s}", "detail", detail, "code", code));
}

static int status_for(enum ia_err err)
{
    switch (err) {
    case IA_OK:
        return 200;
    case IA_ERR_INVALID:
        return 422;
    case IA_ERR_NOT_FOUND:
        return 404;
    case IA_ERR_BROKER:
    case IA_ERR_BROKER_UNSURE:
    case IA_ERR_STORAGE_FULL:
    case IA_ERR_STORAGE_UNAVAILABLE:
        return 503;
    case IA_ERR_TOO_LARGE:
        return 413;
    default:
        return 500;
    }
}

void api_reply_ia_error(struct http_request *req, enum ia_err err)
{
    int status = status_for(err);
    if (status == 503)
        http_reply_header(req, "Retry-After", "1");
    api_reply_error(req, status, ia_err_code(err), ia_strerror(err));
}

