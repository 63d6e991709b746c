/*
 * The callback_url of a task (webhooks, docs/webhooks.md), as /submit (a body member), /upload
 * (a query parameter) and tus (the Upload-Metadata key callback_url) take it: checked at once
 * by the fetcher's rules (400 callback_url_not_allowed), refused when WEBHOOK_SECRET is unset
 * (400 webhooks_disabled), and carried to the worker in the task's kwargs.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "http/http.h"
#include "media/media.h"
#include "queue/celery.h"
#include "webhook/webhook.h"

const char *api_parse_submit_callback(const unsigned char *body, size_t len, char **url_out)
{
    *url_out = NULL;
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, NULL);
    const json_t *v = json_object_get(root, "callback_url");
    const char *why = NULL;
    if (json_is_string(v) && json_string_length(v) <= WEBHOOK_URL_MAX)
        *url_out = xstrdup(json_string_value(v));
    else if (v && !json_is_null(v))
        why = "callback_url must be a string of at most 2048 bytes";
    json_decref(root);
    return why;
}

bool upload_metadata_callback(const char *m, char **url_out)
{
    static const char key[] = "callback_url";
    const size_t klen = sizeof(key) - 1;
    const char *p = m, *end = m + strlen(m);
    *url_out = NULL;
    while (p < end) {
        p += strspn(p, " ");
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        bool named = (size_t)(stop - p) > klen && memcmp(p, key, klen) == 0 && p[klen] == ' ';
        bool bare = (size_t)(stop - p) == klen && memcmp(p, key, klen) == 0;
        if (bare || (named && *url_out))
            goto bad; /* no value, or twice */
        if (named) {
            size_t n;
            unsigned char *raw =
                celery_base64_decode(p + klen + 1, (size_t)(stop - p - klen - 1), &n);
            if (!raw || n == 0 || n > WEBHOOK_URL_MAX || memchr(raw, '\0', n)) {
                free(raw);
                goto bad;
            }
            *url_out = xstrndup((const char *)raw, n);
            free(raw);
        }
        p = comma ? comma + 1 : end;
    }
    return true;
bad:
    free(*url_out);
    *url_out = NULL;
    return false;
}

bool api_callback_admit(struct api_call *call, const char *url)
{
    const struct app *app = call->t->app;
    if (!url)
        return true;
    if (!app->cfg->webhook_secret[0]) {
        api_reply_error(call->req, 400, "webhooks_disabled",
                        "this service sends no webhooks (WEBHOOK_SECRET is not set); "
                        "leave callback_url out and poll /status");
        return false;
    }
    char detail[160], why[256];
    if (media_url_check(app->policy, url, detail, sizeof(detail)) == IA_OK)
        return true;
    snprintf(why, sizeof(why), "callback_url is not allowed: %s", detail);
    api_reply_error(call->req, 400, "callback_url_not_allowed", why);
    return false;
}

json_t *api_task_kwargs_with_callback(bool analysis_off, const char *callback_url)
{
    json_t *kwargs = api_task_kwargs_new(analysis_off);
    if (callback_url)
        json_object_set_new(kwargs, "callback_url", json_string(callback_url));
    return kwargs;
}
