/*
 * Reads of the bucket for the list of videos, the reviewer's decisions and retention
 * (store_s3.h): listings of processed_* with each object's ETag, size and LastModified as its
 * stamp, HEADs of one video's objects, small objects read and written whole.
 */
#include "store/store_s3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "store/s3.h"

/* Largest metadata object listed by the scan with its id: the key "processed_<id>.<ext>". */
#define NAME_MAX_LEN ((sizeof(STORE_FILE_PREFIX) - 1) + UUID_STR_LEN + 32)

long long store_time_parse(const char *s)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    struct tm tm = {0};
    int len = 0;
    char mon[4] = "";
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &len) == 6 &&
        len == 19) {
        if (s[len] == '.' && s[len + 1] >= '0' && s[len + 1] <= '9')
            for (len++; s[len] >= '0' && s[len] <= '9'; len++) /* fraction: not kept */
                ;
        if (strcmp(s + len, "Z") != 0)
            return -1;
        tm.tm_mon -= 1;
    } else if (sscanf(s, "%*3s, %2d %3s %4d %2d:%2d:%2d GMT%n", &tm.tm_mday, mon, &tm.tm_year,
                      &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &len) == 6 &&
               len > 0 && s[len] == '\0' && strlen(mon) == 3) {
        const char *m = strstr(months, mon);
        if (!m || (m - months) % 3)
            return -1;
        tm.tm_mon = (int)(m - months) / 3;
    } else {
        return -1;
    }
    if (tm.tm_year < 1970 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    time_t t = timegm(&tm);
    return t < 0 ? -1 : (long long)t;
}

void store_stamp_of_object(struct store_stamp *out, const char *etag, unsigned long long size,
                           const char *last_modified)
{
    /* FNV-1a of the ETag without its quotes (listings and HEADs agree on the value). */
    unsigned long long h = 14695981039346656037ULL;
    for (const char *p = etag; *p; p++)
        if (*p != '"') {
            h ^= (unsigned char)*p;
            h *= 1099511628211ULL;
        }
    long long t = store_time_parse(last_modified);
    out->ino = h ? h : 1;
    out->size = (long long)size;
    out->mtime_ns = t < 0 ? 0 : t * 1000000000LL;
}

/* Any failure to ask the bucket is "unavailable" (never a false "not found"); logged. */
static enum ia_err unavailable(enum ia_err e, const char *what, const char *detail)
{
    if (e == IA_OK || e == IA_ERR_NOT_FOUND)
        return e;
    log_msg(LOG_WARN, "store", "%s: %s: %s", what, ia_err_code(e), detail);
    return IA_ERR_STORAGE_UNAVAILABLE;
}

/* The scan: videos in key order, the decisions stamp of the id seen last kept for its video. */
struct scan {
    struct store_video_files *v;
    size_t n, cap;
    char dec_id[UUID_STR_LEN + 1];
    struct store_stamp dec;
};

static int scan_entry(const struct s3_object *o, void *ctx)
{
    struct scan *sc = ctx;
    char id[UUID_STR_LEN + 1];
    const char *ext = store_entry_video(o->key, id);
    if (!ext)
        return 0;
    if (strcmp(ext, STORE_DECISIONS_EXT) == 0) {
        /* "<id>.decisions.json" sorts before "<id>.json": keep it for the metadata. */
        memcpy(sc->dec_id, id, sizeof(id));
        store_stamp_of_object(&sc->dec, o->etag, o->size, o->last_modified);
        return 0;
    }
    if (strcmp(ext, "json") != 0)
        return 0;
    if (sc->n == sc->cap) {
        sc->cap = sc->cap ? sc->cap * 2 : 64;
        sc->v = xrealloc(sc->v, sc->cap * sizeof(*sc->v));
    }
    struct store_video_files *f = &sc->v[sc->n++];
    memset(f, 0, sizeof(*f));
    memcpy(f->id, id, sizeof(id));
    store_stamp_of_object(&f->meta, o->etag, o->size, o->last_modified);
    if (strcmp(sc->dec_id, id) == 0)
        f->decisions = sc->dec;
    return 0;
}

static int files_cmp(const void *a, const void *b)
{
    return strcmp(((const struct store_video_files *)a)->id,
                  ((const struct store_video_files *)b)->id);
}

enum ia_err store_remote_scan(struct store_remote *r, struct store_video_files **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    struct s3 *s = store_remote_take(r);
    if (!s)
        return IA_ERR_STORAGE_UNAVAILABLE;
    struct scan sc = {0};
    char detail[512];
    unsigned pages = 0;
    enum ia_err e = s3_list(s, STORE_FILE_PREFIX, scan_entry, &sc, &pages, detail, sizeof detail);
    store_remote_give(r, s);
    /* A 404 here is the bucket's (NoSuchBucket): not an empty list. */
    e = unavailable(e == IA_ERR_NOT_FOUND ? IA_ERR_STORAGE_UNAVAILABLE : e,
                    "listing the videos of the bucket", detail);
    if (e) {
        free(sc.v);
        return e;
    }
    if (sc.n) /* the store lists in key order already; the contract does not depend on it */
        qsort(sc.v, sc.n, sizeof(*sc.v), files_cmp);
    log_msg(LOG_DEBUG, "store", "listed %zu video(s) of the bucket in %u request(s)", sc.n, pages);
    *out = sc.v;
    *n = sc.n;
    return IA_OK;
}

/* The stamp of one object from a HEAD; IA_OK, IA_ERR_NOT_FOUND or unavailable. */
static enum ia_err head_stamp(struct s3 *s, const char *id, const char *ext,
                              struct store_stamp *out)
{
    char name[NAME_MAX_LEN];
    snprintf(name, sizeof(name), STORE_FILE_PREFIX "%s.%s", id, ext);
    struct s3_head h;
    char detail[512];
    enum ia_err e = s3_head(s, name, &h, detail, sizeof detail);
    if (!e)
        store_stamp_of_object(out, h.etag, h.size, h.last_modified);
    return unavailable(e, "asking the bucket for a video", detail);
}

enum ia_err store_remote_files_get(struct store_remote *r, const char *video_id,
                                   struct store_video_files *out)
{
    struct s3 *s = store_remote_take(r);
    if (!s)
        return IA_ERR_STORAGE_UNAVAILABLE;
    memcpy(out->id, video_id, UUID_STR_LEN + 1);
    enum ia_err e = head_stamp(s, video_id, "json", &out->meta);
    if (!e) {
        e = head_stamp(s, video_id, STORE_DECISIONS_EXT, &out->decisions);
        if (e == IA_ERR_NOT_FOUND)
            e = IA_OK; /* no decisions yet */
    }
    store_remote_give(r, s);
    return e;
}

/* Retention's listing: metadata objects older than before, at most max. */
struct older {
    long long before;
    size_t max;
    struct store_video_id *ids;
    size_t n, cap;
};

static int older_entry(const struct s3_object *o, void *ctx)
{
    struct older *ol = ctx;
    char id[UUID_STR_LEN + 1];
    const char *ext = store_entry_video(o->key, id);
    long long t = store_time_parse(o->last_modified);
    if (!ext || strcmp(ext, "json") != 0 || t < 0 || t >= ol->before)
        return 0;
    if (ol->n == ol->cap) {
        ol->cap = ol->cap ? ol->cap * 2 : 16;
        ol->ids = xrealloc(ol->ids, ol->cap * sizeof(*ol->ids));
    }
    memcpy(ol->ids[ol->n++].id, id, sizeof(id));
    return ol->n >= ol->max; /* enough for this batch: stop listing */
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(((const struct store_video_id *)a)->id, ((const struct store_video_id *)b)->id);
}

enum ia_err store_remote_list_older(struct store_remote *r, time_t before, size_t max,
                                    struct store_video_id **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (max == 0)
        return IA_OK;
    struct s3 *s = store_remote_take(r);
    if (!s)
        return IA_ERR_STORAGE_UNAVAILABLE;
    struct older ol = {(long long)before, max, NULL, 0, 0};
    char detail[512];
    enum ia_err e = s3_list(s, STORE_FILE_PREFIX, older_entry, &ol, NULL, detail, sizeof detail);
    store_remote_give(r, s);
    e = unavailable(e == IA_ERR_NOT_FOUND ? IA_ERR_STORAGE_UNAVAILABLE : e,
                    "listing old videos of the bucket", detail);
    if (e) {
        free(ol.ids);
        return e;
    }
    if (ol.n)
        qsort(ol.ids, ol.n, sizeof(*ol.ids), id_cmp);
    *ids = ol.ids;
    *n = ol.n;
    return IA_OK;
}

/* One video's objects whose extension starts with a prefix. */
struct exts {
    const char *id;
    store_ext_cb cb;
    void *ctx;
};

static int ext_entry(const struct s3_object *o, void *ctx)
{
    struct exts *x = ctx;
    char id[UUID_STR_LEN + 1];
    const char *ext = store_entry_video(o->key, id);
    if (ext && strcmp(id, x->id) == 0)
        x->cb(x->ctx, ext);
    return 0;
}

enum ia_err store_remote_list_exts(struct store_remote *r, const char *video_id,
                                   const char *ext_prefix, store_ext_cb cb, void *ctx)
{
    struct s3 *s = store_remote_take(r);
    if (!s)
        return IA_ERR_STORAGE_UNAVAILABLE;
    char prefix[NAME_MAX_LEN + 64];
    snprintf(prefix, sizeof(prefix), STORE_FILE_PREFIX "%s.%s", video_id, ext_prefix);
    struct exts x = {video_id, cb, ctx};
    char detail[512];
    enum ia_err e = s3_list(s, prefix, ext_entry, &x, NULL, detail, sizeof detail);
    store_remote_give(r, s);
    return unavailable(e == IA_ERR_NOT_FOUND ? IA_ERR_STORAGE_UNAVAILABLE : e,
                       "listing a video's objects", detail);
}

enum ia_err store_remote_read(struct store_remote *r, const char *video_id, const char *ext,
                              size_t max, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    struct s3 *s = store_remote_take(r);
    if (!s)
        return IA_ERR_STORAGE_UNAVAILABLE;
    char name[NAME_MAX_LEN];
    snprintf(name, sizeof(name), STORE_FILE_PREFIX "%s.%s", video_id, ext);
    char detail[512];
    enum ia_err e = s3_get_mem(s, name, max, out, len, detail, sizeof detail);
    store_remote_give(r, s);
    return e == IA_ERR_TOO_LARGE ? e : unavailable(e, "reading an object of the bucket", detail);
}

enum ia_err store_remote_put_small(struct store_remote *r, const char *video_id, const char *ext,
                                   const char *data, size_t len)
{
    struct s3 *s = store_remote_take(r);
    if (!s)
        return IA_ERR_STORAGE_UNAVAILABLE;
    long saved = s3_set_timeout(s, STORE_SMALL_TIMEOUT_S);
    char name[NAME_MAX_LEN];
    snprintf(name, sizeof(name), STORE_FILE_PREFIX "%s.%s", video_id, ext);
    char detail[512];
    enum ia_err e = s3_put_mem(s, name, data, len, "application/json", detail, sizeof detail);
    e = unavailable(e == IA_ERR_NOT_FOUND ? IA_ERR_STORAGE_UNAVAILABLE : e,
                    "writing an object to the bucket", detail);
    if (!e) { /* a deletion that passed meanwhile: remove what we added */
        struct store_stamp meta;
        e = head_stamp(s, video_id, "json", &meta);
        if (e == IA_ERR_NOT_FOUND && s3_delete(s, name, detail, sizeof detail))
            log_msg(LOG_WARN, "store", "video=%s removing %s of a deleted video: %s", video_id, ext,
                    detail);
    }
    s3_set_timeout(s, saved);
    store_remote_give(r, s);
    return e;
}
