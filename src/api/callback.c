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
#include "core/config.h"
#include "core/log.h"
#include "http/http.h"
#include "media/media.h"
#include "webhook/webhook.h"

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
