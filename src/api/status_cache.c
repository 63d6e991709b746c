/* Direct-mapped cache of finished tasks, shared by serve's threads under one lock. */
#include "api/status_cache.h"

#include <pthread.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "util/uuid.h"

struct status_entry {
    char task_id[UUID_STR_LEN + 1];
    char video_id[UUID_STR_LEN + 1];
    enum task_state state;
    char error_code[48];
    char error_message[256];
    int64_t expires_ms;
};

struct status_cache {
    pthread_mutex_t lock; /* held for a copy in or out: tens of nanoseconds */
    struct status_entry slots[STATUS_CACHE_SLOTS];
};

static struct status_entry *slot_for(struct status_cache *c, const char *task_id)
{
    uint32_t h = 2166136261u;
    for (const char *p = task_id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return &c->slots[h % STATUS_CACHE_SLOTS];
}

struct status_cache *status_cache_new(void)
{
    struct status_cache *c = xcalloc(1, sizeof(struct status_cache));
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void status_cache_free(struct status_cache *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c);
}

bool status_cache_get(struct status_cache *c, const char *task_id, int64_t now_ms,
                      struct task_status *out, char *video_id, size_t video_id_len)
{
    pthread_mutex_lock(&c->lock);
    const struct status_entry *e = slot_for(c, task_id);
    if (e->expires_ms <= now_ms || strcmp(e->task_id, task_id) != 0) {
        pthread_mutex_unlock(&c->lock);
        return false;
    }
    memset(out, 0, sizeof(*out));
    out->state = e->state;
    out->progress = 1.0;
    snprintf(out->error_code, sizeof(out->error_code), "%s", e->error_code);
    snprintf(out->error_message, sizeof(out->error_message), "%s", e->error_message);
    snprintf(video_id, video_id_len, "%s", e->video_id);
    pthread_mutex_unlock(&c->lock);
    return true;
}

void status_cache_put(struct status_cache *c, const char *task_id, const struct task_status *st,
                      const char *video_id, int64_t now_ms)
{
    if (strlen(task_id) > UUID_STR_LEN || (video_id && strlen(video_id) > UUID_STR_LEN))
        return;
    pthread_mutex_lock(&c->lock);
    struct status_entry *e = slot_for(c, task_id);
    snprintf(e->task_id, sizeof(e->task_id), "%s", task_id);
    snprintf(e->video_id, sizeof(e->video_id), "%s", video_id ? video_id : "");
    e->state = st->state;
    snprintf(e->error_code, sizeof(e->error_code), "%s", st->error_code);
    snprintf(e->error_message, sizeof(e->error_message), "%s", st->error_message);
    e->expires_ms = now_ms + STATUS_CACHE_TTL_MS;
    pthread_mutex_unlock(&c->lock);
}
