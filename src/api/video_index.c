/*
 * The per-thread cache of what the list shows of each video (see video_index.h): a sorted
 * array of summaries, rebuilt from a directory scan and re-reading a file only when its stat
 * (inode, size, mtime) changed. Metadata never changes once published, decisions often: they
 * are read apart.
 */
#include "api/video_index.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"

#define DECISIONS_FILE_MAX (4 * 1024 * 1024) /* larger decisions files are not read */
#define METADATA_FILE_MAX (64 * 1024 * 1024) /* nor larger metadata */

struct video_index {
    struct video_summary *v; /* sorted by id */
    size_t n;
};

struct video_index *video_index_new(void) { return xcalloc(1, sizeof(struct video_index)); }

static void summary_cleanup(struct video_summary *v)
{
    json_decref(v->events);
    json_decref(v->decisions);
    v->events = v->decisions = NULL;
}

static void index_clear(struct video_index *ix)
{
    for (size_t i = 0; i < ix->n; i++)
        summary_cleanup(&ix->v[i]);
    free(ix->v);
    ix->v = NULL;
    ix->n = 0;
}

void video_index_free(struct video_index *ix)
{
    if (!ix)
        return;
    index_clear(ix);
    free(ix);
}

size_t video_index_count(const struct video_index *ix) { return ix->n; }

const struct video_summary *video_index_at(const struct video_index *ix, size_t i)
{
    return i < ix->n ? &ix->v[i] : NULL;
}

static bool stamp_eq(const struct store_stamp *a, const struct store_stamp *b)
{
    return a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns;
}

/* "2026-11-24T06:44:19.801477Z" as microseconds since 1970; -1 when it is not that. */
static long long iso_to_us(const char *s)
{
    struct tm tm = {0};
    int us = 0, len = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%6dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &us, &len) != 7 ||
        len == 0 || s[len] != '\0')
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return t < 0 ? -1 : (long long)t * 1000000LL + us;
}

/* The last path segment of a URL (without query or fragment), or "upload" for an upload. */
static void source_name(const char *url, char *out, size_t cap)
{
    if (!url || strncmp(url, "upload:", 7) == 0) {
        snprintf(out, cap, "%s", url ? "upload" : "");
        return;
    }
    size_t end = strcspn(url, "?#");
    size_t start = end;
    while (start > 0 && url[start - 1] != '/')
        start--;
    if (start == end) /* "https://host/" */
        start = 0;
    snprintf(out, cap, "%.*s", (int)(end - start), url + start);
}

/* Reads the facts of a video's metadata document (NULL: unreadable). */
static void summary_read_metadata(struct video_summary *v, json_t *meta)
{
    const char *completed = json_string_value(json_object_get(meta, "completed_at"));
    snprintf(v->completed_at, sizeof(v->completed_at), "%s", completed ? completed : "");
    v->completed_us = completed ? iso_to_us(completed) : -1;
    if (v->completed_us < 0)
        v->completed_us = v->files.meta.mtime_ns / 1000;
    v->duration = json_number_value(json_object_get(json_object_get(meta, "output"), "duration"));
    source_name(json_string_value(json_object_get(json_object_get(meta, "source"), "url")),
                v->source, sizeof(v->source));
    json_t *analysis = json_object_get(meta, "analysis");
    json_t *summary = json_object_get(analysis, "summary");
    json_t *score = json_object_get(summary, "max_score");
    v->level = json_is_object(summary)
                   ? api_level_index(json_string_value(json_object_get(summary, "final_level")))
                   : api_level_index(NULL);
    v->score = json_is_number(score) ? (long long)llround(json_number_value(score)) : -1;
    v->events = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(analysis, "events"), i, e)
    {
        const char *id = json_string_value(json_object_get(e, "id"));
        const char *kind = json_string_value(json_object_get(e, "kind"));
        if (id)
            json_object_set_new(v->events, id, json_string(kind ? kind : ""));
    }
}

/*
 * A small document of the video (its metadata or decisions) into *doc (NULL when it is not
 * JSON or too large, logged); stamp as store_read_small() fills it. IA_ERR_NOT_FOUND when it is
 * missing, IA_ERR_STORAGE_UNAVAILABLE (or IA_ERR_IO) when it cannot be read.
 */
static enum ia_err read_doc(const struct store *s, const char *id, const char *ext, size_t max,
                            json_t **doc, struct store_stamp *stamp)
{
    *doc = NULL;
    char *text;
    size_t len;
    enum ia_err err = store_read_small(s, id, ext, max, &text, &len, stamp);
    if (err == IA_ERR_TOO_LARGE) {
        log_msg(LOG_WARN, "api", "video=%s %s larger than %zu bytes: not read", id, ext, max);
        return IA_OK;
    }
    if (err)
        return err;
    json_error_t jerr;
    *doc = json_loadb(text, len, 0, &jerr);
    if (!*doc)
        log_msg(LOG_WARN, "api", "video=%s %s unreadable: %s", id, ext, jerr.text);
    free(text);
    return IA_OK;
}

/*
 * Reads the decisions (when the stamp says there are some), keeping existing events only.
 * IA_ERR_STORAGE_UNAVAILABLE when the bucket cannot be asked (v then has none).
 */
static enum ia_err summary_read_decisions(struct video_summary *v, const struct store *s)
{
    json_decref(v->decisions);
    v->decisions = json_object();
    v->confirmed = v->dismissed = 0;
    json_t *doc = NULL;
    enum ia_err err = v->files.decisions.ino == 0
                          ? IA_ERR_NOT_FOUND
                          : read_doc(s, v->files.id, STORE_DECISIONS_EXT, DECISIONS_FILE_MAX, &doc,
                                     &v->files.decisions);
    if (err == IA_ERR_NOT_FOUND) { /* none (or removed since the scan) */
        memset(&v->files.decisions, 0, sizeof(v->files.decisions));
        return IA_OK;
    }
    const char *event_id;
    json_t *rec;
    json_object_foreach(json_object_get(doc, "decisions"), event_id, rec)
    {
        const char *d = json_string_value(json_object_get(rec, "decision"));
        if (!json_object_get(v->events, event_id) || !d)
            continue;
        json_object_set(v->decisions, event_id, rec);
        v->confirmed += strcmp(d, "confirmed") == 0;
        v->dismissed += strcmp(d, "dismissed") == 0;
    }
    json_decref(doc);
    return err;
}

/* Loads a summary from scratch; IA_ERR_NOT_FOUND when the metadata is gone. */
static enum ia_err summary_load(struct video_summary *v, const struct store *s,
                                const struct store_video_files *f)
{
    memset(v, 0, sizeof(*v));
    v->files = *f;
    json_t *meta;
    enum ia_err err = read_doc(s, f->id, "json", METADATA_FILE_MAX, &meta, &v->files.meta);
    if (err)
        return err;
    summary_read_metadata(v, meta);
    json_decref(meta);
    err = summary_read_decisions(v, s);
    if (err)
        summary_cleanup(v);
    return err;
}

static int summary_cmp(const void *a, const void *b)
{
    return strcmp(((const struct video_summary *)a)->files.id,
                  ((const struct video_summary *)b)->files.id);
}

static struct video_summary *index_find(struct video_index *ix, const char *id)
{
    struct video_summary key;
    memcpy(key.files.id, id, sizeof(key.files.id));
    return ix->n ? bsearch(&key, ix->v, ix->n, sizeof(*ix->v), summary_cmp) : NULL;
}

/*
 * Makes *out the summary of f: the cached one moved over when its stamps match (decisions read
 * again when only they changed), else loaded. IA_ERR_NOT_FOUND when the video vanished
 * meanwhile; another error when it could not be read (*old is then left as it was).
 */
static enum ia_err summary_update(struct video_summary *old, struct video_summary *out,
                                  const struct store *s, const struct store_video_files *f)
{
    if (!old || !stamp_eq(&old->files.meta, &f->meta))
        return summary_load(out, s, f);
    struct video_summary next = *old;
    next.decisions = json_incref(old->decisions);
    next.events = json_incref(old->events);
    enum ia_err err = IA_OK;
    if (!stamp_eq(&next.files.decisions, &f->decisions)) {
        next.files.decisions = f->decisions;
        err = summary_read_decisions(&next, s);
    }
    if (err) {
        summary_cleanup(&next);
        return err;
    }
    *out = next;
    return IA_OK;
}

enum ia_err video_index_refresh(struct video_index *ix, const struct store *s)
{
    struct store_video_files *files;
    size_t n;
    enum ia_err err = store_scan_videos(s, &files, &n);
    if (err)
        return err;
    struct video_summary *next = n ? xcalloc(n, sizeof(*next)) : NULL;
    size_t kept = 0;
    for (size_t i = 0; i < n && !err; i++) {
        err = summary_update(index_find(ix, files[i].id), &next[kept], s, &files[i]);
        kept += err == IA_OK;
        if (err == IA_ERR_NOT_FOUND) /* deleted since the scan */
            err = IA_OK;
    }
    free(files);
    if (err) { /* the index stays as it was; what was read is dropped */
        for (size_t i = 0; i < kept; i++)
            summary_cleanup(&next[i]);
        free(next);
        return err;
    }
    index_clear(ix);
    ix->v = next;
    ix->n = kept;
    return IA_OK;
}

enum ia_err video_index_get(struct video_index *ix, const struct store *s, const char *video_id,
                            const struct video_summary **out)
{
    *out = NULL;
    struct store_video_files f;
    struct video_summary *old = index_find(ix, video_id), fresh;
    enum ia_err err = store_video_files_get(s, video_id, &f);
    if (!err)
        err = summary_update(old, &fresh, s, &f);
    if (err && err != IA_ERR_NOT_FOUND)
        return err; /* the bucket cannot tell: the index is left as it was */
    if (old) { /* replaced in place, or removed */
        summary_cleanup(old);
        if (!err) {
            *old = fresh;
            *out = old;
            return IA_OK;
        }
        size_t at = (size_t)(old - ix->v);
        memmove(old, old + 1, (ix->n - at - 1) * sizeof(*old));
        ix->n--;
        return IA_ERR_NOT_FOUND;
    }
    if (err)
        return err;
    ix->v = xrealloc(ix->v, (ix->n + 1) * sizeof(*ix->v));
    ix->v[ix->n++] = fresh;
    qsort(ix->v, ix->n, sizeof(*ix->v), summary_cmp);
    *out = index_find(ix, video_id);
    return IA_OK;
}

enum api_review_status video_summary_status(const struct video_summary *v)
{
    size_t n = json_object_size(v->events);
    if (n == 0)
        return REVIEW_NO_EVENTS;
    return v->confirmed + v->dismissed >= n ? REVIEW_REVIEWED : REVIEW_TO_REVIEW;
}
