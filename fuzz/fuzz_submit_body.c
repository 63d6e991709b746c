/*
 * libFuzzer target for the POST /submit body check (api_parse_submit_body in api/submit_body.c):
 * the input is a request body. An accepted body yields an absolute http(s) URL of printable ASCII
 * within the length limit and kwargs {} or {"analysis": false}; a refused one yields one of the
 * fixed 422 messages and no URL. The optional callback_url (api_parse_submit_callback) is a
 * string within the limit or the one refusal.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const reasons[] = {
    "the body is not valid JSON",
    "the body must be a JSON object",
    "video_url must be a string",
    "video_url is longer than 2048 bytes",
    "video_url must be an http or https URL",
    "analysis must be true or false",
};

static void check_url(const char *url)
{
    size_t n = strlen(url);
    size_t scheme = strncasecmp(url, "http://", 7) == 0    ? 7
                    : strncasecmp(url, "https://", 8) == 0 ? 8
                                                           : 0;
    if (scheme == 0 || n <= scheme || n > 2048)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            abort();
    if (url[scheme] == '/' || url[scheme] == '?' || url[scheme] == '#')
        abort();
}

static void check_reason(const char *why)
{
    for (size_t k = 0; k < sizeof(reasons) / sizeof(reasons[0]); k++)
        if (why && strcmp(why, reasons[k]) == 0)
            return;
    abort();
}

/* The task's kwargs are {} or exactly {"analysis": false}. */
static void check_kwargs(bool analysis_off)
{
    json_t *kw = api_task_kwargs_new(analysis_off);
    bool off_kept = json_is_false(json_object_get(kw, "analysis"));
    if (json_object_size(kw) != (analysis_off ? 1u : 0u) || off_kept != analysis_off)
        abort();
    json_decref(kw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *body = malloc(size ? size : 1);
    if (size)
        memcpy(body, data, size);
    char *url = NULL;
    bool analysis_off = true;
    const char *why = NULL;
    enum ia_err rc = api_parse_submit_body(body, size, &url, &analysis_off, &why);
    if (rc == IA_OK) {
        if (!url || why)
            abort();
        check_url(url);
        check_kwargs(analysis_off);
    } else if (rc != IA_ERR_INVALID || url) {
        abort();
    } else {
        check_reason(why);
    }
    free(url);
    char *callback = NULL;
    why = api_parse_submit_callback(body, size, &callback);
    static const char refusal[] = "callback_url must be a string of at most 2048 bytes (no NUL)";
    if (why ? callback || strcmp(why, refusal) != 0 : callback && strlen(callback) > 2048)
        abort(); /* a refusal has its one message and no URL; a URL is within the limit */
    free(callback);
    free(body);
    return 0;
}
