/* The pure parts of webhooks: the signature header, the backoff schedule and the event bodies. */
#include "webhook/webhook.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "queue/queue.h"
#include "util/crypto.h"
#include "util/str.h"
#include "util/uuid.h"

void webhook_signature(const char *secret, long long t, const char *body, size_t len,
                       char out[WEBHOOK_SIGNATURE_MAX])
{
    char stamp[24];
    int n = snprintf(stamp, sizeof stamp, "%lld.", t);
    size_t total = (size_t)n + len;
    char *msg = xmalloc(total ? total : 1);
    memcpy(msg, stamp, (size_t)n);
    memcpy(msg + n, body, len);
    unsigned char mac[SHA256_LEN];
    crypto_hmac_sha256(secret, strlen(secret), msg, total, mac);
    free(msg);
    char hex[2 * SHA256_LEN + 1];
    str_hex(hex, mac, SHA256_LEN);
    snprintf(out, WEBHOOK_SIGNATURE_MAX, "t=%lld,v1=%s", t, hex);
}

long long webhook_backoff_ms(long long base_s, long long max_s, int attempt, double jitter)
{
    long long ms = (base_s > 0 ? base_s : 1) * 1000, cap = (max_s > 0 ? max_s : 1) * 1000;
    for (int i = 1; i < attempt && ms < cap; i++)
        ms *= 2;
    if (ms > cap)
        ms = cap;
    if (jitter < 0)
        jitter = 0;
    if (jitter > 1)
        jitter = 1;
    return ms / 2 + (long long)((double)(ms - ms / 2) * jitter);
}

const char *webhook_task_callback(const json_t *kwargs)
{
    const json_t *v = json_object_get(kwargs, "callback_url");
    return json_is_string(v) && json_string_length(v) <= WEBHOOK_URL_MAX ? json_string_value(v)
                                                                         : NULL;
}

/* Copies the result's URLs (the ones /status shows) into the event. */
static void add_urls(json_t *ev, const json_t *result)
{
    static const char *const keys[] = {"video_url", "download_video_url", "metadata_url",
                                       "events_url", "review_url"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const json_t *v = json_object_get(result, keys[i]);
        if (json_is_string(v))
            json_object_set_new(ev, keys[i], json_string(json_string_value(v)));
    }
}

char *webhook_event_body(const char *event_id, const char *task_id, const char *status,
                         const json_t *result, const char *alert_level, const char *error_code,
                         const char *error_message, long long created)
{
    bool ok = strcmp(status, "success") == 0;
    json_t *ev = json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", event_id, "type",
                           ok ? "task.succeeded" : "task.failed", "created", (json_int_t)created,
                           "task_id", task_id, "status", status);
    if (!ev)
        return NULL;
    /* The video is named after its task; a failed task has none. */
    json_object_set_new(ev, "video_id", ok ? json_string(task_id) : json_null());
    json_object_set_new(ev, "alert_level", alert_level ? json_string(alert_level) : json_null());
    if (ok)
        add_urls(ev, result);
    else
        json_object_set_new(ev, "error",
                            json_pack("{s:s, s:s}", "code",
                                      error_code ? error_code : "internal_error", "message",
                                      error_message ? error_message : ""));
    char *text = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(ev);
    return text;
}

char *webhook_lost_event(void *ctx, const char *task_id, const char *callback_url, const char *code,
                         const char *message, struct queue_webhook_event *ev, char *id_buf)
{
    (void)ctx;
    uuid_v4_new(id_buf);
    char *body = webhook_event_body(id_buf, task_id, "failed", NULL, NULL, code, message,
                                    (long long)time(NULL));
    ev->event_id = id_buf;
    ev->url = callback_url;
    ev->body = body;
    return body;
}
