/* Publication to an S3 bucket: the store's remote back end (store_s3.h). */
#include "store/store_s3.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "store/s3.h"

/* The longest lifetime S3 accepts for a presigned URL (7 days). */
#define STORE_PRESIGN_MAX_S 604800L

struct store_remote {
    const struct config *cfg;
    pthread_mutex_t lock;
    struct s3 **idle; /* clients not in use */
    size_t nidle, cap;
};

struct store_remote *store_remote_new(const struct config *cfg, char *err, size_t errlen)
{
    struct s3 *first = s3_new(cfg, err, errlen);
    if (!first)
        return NULL;
    struct store_remote *r = xcalloc(1, sizeof *r);
    r->cfg = cfg;
    pthread_mutex_init(&r->lock, NULL);
    r->cap = 4;
    r->idle = xcalloc(r->cap, sizeof *r->idle);
    r->idle[r->nidle++] = first;
    log_msg(LOG_INFO, "store", "results are published to s3://%s/%s", s3_bucket(first),
            s3_prefix(first));
    return r;
}

void store_remote_free(struct store_remote *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nidle; i++)
        s3_free(r->idle[i]);
    free(r->idle);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

struct s3 *store_remote_take(struct store_remote *r)
{
    struct s3 *s = NULL;
    pthread_mutex_lock(&r->lock);
    if (r->nidle)
        s = r->idle[--r->nidle];
    pthread_mutex_unlock(&r->lock);
    if (!s) {
        char err[256];
        s = s3_new(r->cfg, err, sizeof err);
        if (!s)
            log_msg(LOG_ERROR, "store", "S3 client: %s", err);
    }
    return s;
}

const struct config *store_remote_config(const struct store_remote *r) { return r->cfg; }

void store_remote_give(struct store_remote *r, struct s3 *s)
{
    pthread_mutex_lock(&r->lock);
    if (r->nidle == r->cap) {
        r->cap *= 2;
        r->idle = xrealloc(r->idle, r->cap * sizeof *r->idle);
    }
    r->idle[r->nidle++] = s;
    pthread_mutex_unlock(&r->lock);
}

static const char *content_type_of(const char *ext)
{
    size_t n = strlen(ext);
    if (n >= 3 && strcmp(ext + n - 3, "mp4") == 0)
        return "video/mp4";
    if (n >= 3 && strcmp(ext + n - 3, "jpg") == 0)
        return "image/jpeg";
    if (n >= 4 && strcmp(ext + n - 4, "json") == 0)
        return "application/json";
    if (strcmp(ext, "vtt") == 0)
        return "text/vtt";
    return "application/octet-stream";
}

static char *object_name(const char *video_id, const char *ext)
{
    return xasprintf(STORE_FILE_PREFIX "%s.%s", video_id, ext);
}

enum ia_err store_remote_publish(struct store_remote *r, const char *src_path, const char *video_id,
                                 const char *ext)
{
    struct s3 *s = store_remote_take(r);
    if (!s) {
        unlink(src_path);
        return IA_ERR_INTERNAL;
    }
    char *name = object_name(video_id, ext);
    char detail[512];
    enum ia_err e = s3_put_file(s, name, src_path, content_type_of(ext), detail, sizeof detail);
    if (e)
        log_msg(LOG_ERROR, "store", "publishing %s to the bucket failed: %s: %s", name,
                ia_err_code(e), detail);
    else
        log_msg(LOG_INFO, "store", "published %s to s3://%s/%s", name, s3_bucket(s), s3_prefix(s));
    unlink(src_path);
    free(name);
    store_remote_give(r, s);
    return e;
}

enum ia_err store_remote_lookup(struct store_remote *r, const char *video_id, const char *ext,
                                struct store_object_head *out)
{
    struct s3 *s = store_remote_take(r);
    if (!s)
        return IA_ERR_STORAGE_UNAVAILABLE;
    char *name = object_name(video_id, ext);
    struct s3_head h;
    char detail[512];
    enum ia_err e = s3_head(s, name, &h, detail, sizeof detail);
    if (e && e != IA_ERR_NOT_FOUND) {
        log_msg(LOG_WARN, "store", "asking the bucket for %s failed: %s: %s", name, ia_err_code(e),
                detail);
        e = IA_ERR_STORAGE_UNAVAILABLE; /* whatever the cause, the answer is not "missing" */
    }
    if (!e && out) {
        out->status = 200;
        out->length = h.size;
        out->has_length = true;
        memcpy(out->etag, h.etag, sizeof out->etag);
        memcpy(out->last_modified, h.last_modified, sizeof out->last_modified);
    }
    free(name);
    store_remote_give(r, s);
    return e;
}

bool store_remote_exists(struct store_remote *r, const char *video_id, const char *ext)
{
    return store_remote_lookup(r, video_id, ext, NULL) == IA_OK;
}

char *store_remote_presign(struct store_remote *r, const char *method, const char *video_id,
                           const char *ext, long long ttl_s, const char *disposition,
                           const char *content_type)
{
    struct s3 *s = store_remote_take(r);
    if (!s)
        return NULL;
    char *name = object_name(video_id, ext);
    long ttl = ttl_s > STORE_PRESIGN_MAX_S ? STORE_PRESIGN_MAX_S : (long)ttl_s;
    char *url = s3_presign(s, method, name, ttl < 1 ? 1 : ttl, disposition, content_type);
    free(name);
    store_remote_give(r, s);
    return url;
}

/* Adapts the client's streamed body to the store's callback. */
struct stream_relay {
    store_body_cb cb;
    void *ctx;
    struct store_object_head head;
    bool have_head;
};

static void head_copy(struct store_object_head *dst, const struct s3_get_head *src)
{
    dst->status = (int)src->status;
    dst->length = src->length;
    dst->has_length = src->has_length;
    memcpy(dst->etag, src->etag, sizeof dst->etag);
    memcpy(dst->last_modified, src->last_modified, sizeof dst->last_modified);
    memcpy(dst->content_range, src->content_range, sizeof dst->content_range);
}

static bool relay_body(void *ctx, const struct s3_get_head *h, const char *p, size_t n)
{
    struct stream_relay *relay = ctx;
    if (!relay->have_head) {
        head_copy(&relay->head, h);
        relay->have_head = true;
    }
    return relay->cb(relay->ctx, &relay->head, p, n);
}

enum ia_err store_remote_get_stream(struct store_remote *r, const char *video_id, const char *ext,
                                    const char *method, const struct store_conditions *c,
                                    store_body_cb cb, void *ctx, struct store_object_head *h)
{
    memset(h, 0, sizeof *h);
    struct s3 *s = store_remote_take(r);
    if (!s)
        return IA_ERR_STORAGE_UNAVAILABLE;
    char *name = object_name(video_id, ext);
    struct stream_relay relay = {cb, ctx, {0}, false};
    struct s3_get_head sh;
    char detail[512];
    enum ia_err e = s3_get_stream(s, name, method, c->range, c->if_match, relay_body, &relay,
                                  &sh, detail, sizeof detail);
    if (!e) {
        head_copy(h, &sh);
    } else if (e != IA_ERR_NOT_FOUND) {
        log_msg(relay.have_head ? LOG_INFO : LOG_WARN, "store",
                "streaming %s from the bucket: %s: %s", name, ia_err_code(e), detail);
        /* After the first bytes the transfer broke (or the client left); before, the bucket
         * failed. */
        if (!relay.have_head)
            e = IA_ERR_STORAGE_UNAVAILABLE;
    }
    free(name);
    store_remote_give(r, s);
    return e;
}

/* The names of one video's objects other than its metadata. */
struct video_keys {
    char **keys;
    size_t n;
    const char *meta; /* "processed_<id>.json", skipped */
};

static int collect_key(const struct s3_object *o, void *ctx)
{
    struct video_keys *v = ctx;
    if (strcmp(o->key, v->meta) == 0)
        return 0;
    v->keys = xrealloc(v->keys, (v->n + 1) * sizeof *v->keys);
    v->keys[v->n++] = xstrdup(o->key);
    return 0;
}

/* Deletes the metadata of a video: true when it was there. */
static enum ia_err remove_meta(struct s3 *s, const char *id, size_t *removed)
{
    char *meta = object_name(id, "json");
    char detail[512];
    struct s3_head h;
    enum ia_err e = s3_head(s, meta, &h, detail, sizeof detail);
    bool present = e == IA_OK;
    if (e == IA_OK || e == IA_ERR_NOT_FOUND)
        e = present ? s3_delete(s, meta, detail, sizeof detail) : IA_OK;
    if (!e && present && removed)
        (*removed)++;
    free(meta);
    return e;
}

/* Deletes every other object of a video. */
static enum ia_err remove_rest(struct s3 *s, const char *id, size_t *removed)
{
    char *prefix = xasprintf(STORE_FILE_PREFIX "%s.", id);
    char *meta = object_name(id, "json");
    struct video_keys v = {NULL, 0, meta};
    char detail[512];
    enum ia_err e = s3_list(s, prefix, collect_key, &v, NULL, detail, sizeof detail);
    for (size_t i = 0; i < v.n; i++) {
        if (!e) {
            e = s3_delete(s, v.keys[i], detail, sizeof detail);
            if (!e && removed)
                (*removed)++;
        }
        free(v.keys[i]);
    }
    if (e)
        log_msg(LOG_ERROR, "store", "removing video=%s from the bucket: %s: %s", id, ia_err_code(e),
                detail);
    free(v.keys);
    free(meta);
    free(prefix);
    return e;
}

enum ia_err store_remote_remove(struct store_remote *r, const struct store_video_id *ids, size_t n,
                                size_t *removed)
{
    struct s3 *s = store_remote_take(r);
    if (!s)
        return IA_ERR_INTERNAL;
    enum ia_err err = IA_OK;
    for (size_t i = 0; i < n && !err; i++) /* first: each video stops being complete */
        err = remove_meta(s, ids[i].id, removed ? &removed[i] : NULL);
    for (size_t i = 0; i < n && !err; i++)
        err = remove_rest(s, ids[i].id, removed ? &removed[i] : NULL);
    store_remote_give(r, s);
    return err;
}
