/* GET /healthz (the process answers) and GET /readyz (Redis, storage and ffmpeg are usable). */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "api/internal.h"
#include "queue/queue.h"
#include "store/store.h"

void api_healthz(struct api_call *call)
{
    api_reply_json(call->req, 200, json_pack("{s:s}", "status", "ok"));
}

static bool program_on_path(const char *name)
{
    const char *dirs[] = {"/usr/bin", "/usr/local/bin", "/bin"};
    char path[64];
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dirs[i], name);
        if (access(path, X_OK) == 0)
            return true;
    }
    return false;
}

void api_readyz(struct api_call *call)
{
    bool redis = queue_ping(call->t->queue);
    bool storage = store_writable(call->t->app->store);
    bool ffmpeg = program_on_path("ffmpeg") && program_on_path("ffprobe");
    bool ready = redis && storage && ffmpeg;
    json_t *body = json_pack("{s:s, s:{s:b, s:b, s:b}}", "status", ready ? "ready" : "not_ready",
                             "checks", "redis", redis, "storage", storage, "ffmpeg", ffmpeg);
    api_reply_json(call->req, ready ? 200 : 503, body);
}
