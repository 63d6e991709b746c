/*
 * libFuzzer target for the POST /submit body check (api_parse_submit in api/submit_body.c): the
 * input is a request body. An accepted body yields an absolute http(s) URL of printable ASCII
 * within the length limit, kwargs {} or {"analysis": false}, and no callback_url or one within
 * its limit; a refused one yields one of the fixed 422 messages and nothing to free.
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
    "callback_url must be a string of at most 2048 bytes (no NUL)",
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
    struct submit_fields f;
    const char *why = api_parse_submit(body, size, &f);
    if (!why) {
        if (!f.video_url)
            abort();
        check_url(f.video_url);
        check_kwargs(f.analysis_off);
        if (f.callback_url && strlen(f.callback_url) > 2048)
            abort(); /* a URL is within the limit */
    } else if (f.video_url || f.callback_url) {
        abort(); /* a refusal leaves nothing to free */
    } else {
        check_reason(why);
    }
    free(f.video_url);
    free(f.callback_url);
    free(body);
    return 0;
}
