/*
 * What GET /videos knows of each complete video: a few facts read from its metadata and its
 * decisions, cached per API thread and read again only when a file's stamp changes (its stat,
 * or an object's ETag, size and Last-Modified). The files (or the bucket) stay the one source of
 * truth, so a video deleted by any process or host (DELETE, retention) leaves the list at the
 * next scan.
 */
#ifndef IA_API_VIDEO_INDEX_H
#define IA_API_VIDEO_INDEX_H

#include <stdbool.h>
#include <stddef.h>

#include "api/internal.h"
#include "store/store.h"

struct video_index;

struct video_summary {
    struct store_video_files files; /* id and the stamps of what was read */
    long long completed_us;         /* metadata completed_at (else its mtime), µs since 1970 */
    char completed_at[40];          /* as the metadata says it, "" when it has none */
    double duration;                /* output.duration, seconds */
    int level;                      /* api_level_index() of summary.final_level */
    long long score;                /* summary.max_score rounded, -1 when not analysed */
    char source[128];               /* a short name: the URL's last segment, or "upload" */
    json_t *events;                 /* owned: {event_id: kind} of the analysis's events */
    json_t *decisions;              /* owned: {event_id: decision record}, existing events only */
    size_t confirmed, dismissed;
};

struct video_index *video_index_new(void);
void video_index_free(struct video_index *ix);
/*
 * Brings the index up to date with the store (one pass over the directory or one listing of the
 * bucket, reading only the files whose stamp changed). IA_ERR_IO when the directory cannot be
 * read, IA_ERR_STORAGE_UNAVAILABLE when the bucket cannot be listed or read: the index is then
 * kept as it was, never shortened.
 */
enum ia_err video_index_refresh(struct video_index *ix, const struct store *s);
/* The number of videos, and the i-th (sorted by id), borrowed until the next refresh or get. */
size_t video_index_count(const struct video_index *ix);
const struct video_summary *video_index_at(const struct video_index *ix, size_t i);
/*
 * One video, brought up to date alone (its two files' stamps), into *out, borrowed until the
 * next refresh or get: IA_OK, IA_ERR_NOT_FOUND when it is not complete, or
 * IA_ERR_STORAGE_UNAVAILABLE when the bucket cannot tell.
 */
enum ia_err video_index_get(struct video_index *ix, const struct store *s, const char *video_id,
                            const struct video_summary **out);
/* Where the video stands with its reviewer: no events, some undecided, or all decided. */
enum api_review_status video_summary_status(const struct video_summary *v);

#endif
