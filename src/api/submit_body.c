/*
 * The body of POST /submit: a JSON object with an http(s) video_url of at most 2048 bytes, an
 * optional boolean "analysis" and an optional callback_url; and the task's keyword arguments
 * that the flag becomes.
 */
#include <jansson.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"
#include "core/alloc.h"
#include "webhook/webhook.h"

#define VIDEO_URL_MAX 2048

/* True for an absolute http(s) URL with a host and no spaces or control bytes. */
static bool video_url_valid(const char *url, size_t len)
{
    size_t scheme;
    if (len > 7 && strncasecmp(url, "http://", 7) == 0)
        scheme = 7;
    else if (len > 8 && strncasecmp(url, "https://", 8) == 0)
        scheme = 8;
    else
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    char first = url[scheme];
    return first != '/' && first != '?' && first != '#';
}

/* Checks the video_url member of a parsed body; NULL when it is good, else why it is not. */
static const char *submit_url_problem(const json_t *body)
{
    const json_t *url = json_is_object(body) ? json_object_get(body, "video_url") : NULL;
    if (!json_is_object(body))
        return "the body must be a JSON object";
    if (!json_is_string(url))
        return "video_url must be a string";
    size_t len = json_string_length(url);
    if (len > VIDEO_URL_MAX)
        return "video_url is longer than 2048 bytes";
    if (!video_url_valid(json_string_value(url), len))
        return "video_url must be an http or https URL";
    const json_t *analysis = json_object_get(body, "analysis");
    if (analysis && !json_is_boolean(analysis))
        return "analysis must be true or false";
    return NULL;
}

json_t *api_task_kwargs_new(bool analysis_off)
{
    return analysis_off ? json_pack("{s:b}", "analysis", 0) : json_object();
}

/* The callback_url member of a parsed body: NULL when good (or absent), else why it is not. */
static const char *callback_from(const json_t *root, char **url_out)
{
    *url_out = NULL;
    const json_t *v = json_object_get(root, "callback_url");
    size_t n = json_string_length(v);
    if (json_is_string(v) && n <= WEBHOOK_URL_MAX && strlen(json_string_value(v)) == n)
        *url_out = xstrdup(json_string_value(v));
    else if (v && !json_is_null(v))
        return "callback_url must be a string of at most 2048 bytes (no NUL)";
    return NULL;
}

const char *api_parse_submit(const unsigned char *body, size_t len, struct submit_fields *out)
{
    json_error_t jerr;
    memset(out, 0, sizeof(*out));
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *why = root ? submit_url_problem(root) : "the body is not valid JSON";
    if (!why)
        why = callback_from(root, &out->callback_url);
    if (!why) {
        out->video_url = xstrdup(json_string_value(json_object_get(root, "video_url")));
        out->analysis_off = json_is_false(json_object_get(root, "analysis"));
    }
    json_decref(root);
    return why;
}
