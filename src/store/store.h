/*
 * Where results live: PROCESSED_DIR/processed_<video_id>.<ext>. Files appear under their final
 * name only when complete (temporary name in the same directory, fsync, rename, fsync of the
 * directory). Task scratch space lives in PROCESSED_DIR/.work/<task_id>/.
 */
#ifndef IA_STORE_STORE_H
#define IA_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <time.h>

#include "core/error.h"
#include "util/uuid.h"

struct store;

struct config;

/* The head of a streamed object: the store's answer, passed on to the client as it is. */
struct store_object_head {
    int status; /* 200, 206, 304, 412 or 416 */
    unsigned long long length;
    bool has_length;
    char etag[80];
    char last_modified[64];
    char content_range[96]; /* "" when none */
};
/* Creates the directory (and .work/) if needed; NULL with a message in err on failure. */
struct store *store_new(const char *dir, char *err, size_t errlen);
void store_free(struct store *s);
/*
 * With cfg->storage_url set (s3://bucket/prefix), results are published to the bucket
 * (store/s3.h) instead of the directory: store_publish() uploads the file as
 * prefix/processed_<id>.<ext> (metadata last, as the callers publish it) and removes the local
 * one, store_exists() asks the bucket, store_remove_videos() removes the objects, metadata
 * first, direct uploads are staged in the bucket (store_upload.h), and the listing, decisions
 * and retention functions below read and write the bucket. Scratch space stays in the
 * directory; store_open() and store_path() are local only. IA_OK and nothing changed when storage_url is
 * empty; IA_ERR_INVALID with a message in err when the S3 configuration is incomplete. cfg must
 * outlive the store.
 */
enum ia_err store_use_s3(struct store *s, const struct config *cfg, char *err, size_t errlen);

/*
 * Receives n bytes of an object's body; h is the same at every call. n is 0 (p NULL) when what
 * the network brought so far has been passed on (s3_body_cb). Returns false to stop the
 * transfer.
 */
typedef bool (*store_body_cb)(void *ctx, const struct store_object_head *h, const char *p,
                              size_t n);
/* What a GET asks of the bucket (each may be NULL): a Range, and If-Match to be sure that the
 * object is still the one that was looked at. */
struct store_conditions {
    const char *range, *if_match;
};
/*
 * Streams processed_<video_id>.<ext> from the bucket ("GET" or "HEAD") with the conditions c:
 * IA_OK with *h filled for 200/206 (the body went to cb as it arrived, in bounded memory) and
 * 304/412/416 (no body); IA_ERR_NOT_FOUND; IA_ERR_STORAGE_UNAVAILABLE when the bucket cannot
 * be asked; IA_ERR_IO when cb stopped it or the transfer broke after the first bytes. The
 * calling thread blocks until the transfer ends. IA_ERR_INVALID for a local store.
 */
enum ia_err store_get_stream(const struct store *s, const char *video_id, const char *ext,
                             const char *method, const struct store_conditions *c,
                             store_body_cb cb, void *ctx, struct store_object_head *h);

/* "DIR/processed_<video_id>.<ext>"; the caller frees it. video_id must be a canonical UUID. */
char *store_path(const struct store *s, const char *video_id, const char *ext);
/* Opens a published file read-only and fills st; -1 when missing or not a regular file. */
int store_open(const struct store *s, const char *video_id, const char *ext, struct stat *st);
bool store_exists(const struct store *s, const char *video_id, const char *ext);
/* store_lookup() that also fills *h (status 200: size, ETag, Last-Modified) from the bucket's
 * HEAD; IA_ERR_INVALID for a local store. */
enum ia_err store_lookup_head(const struct store *s, const char *video_id, const char *ext,
                              struct store_object_head *h);
/*
 * Whether processed_<video_id>.<ext> is published: IA_OK, IA_ERR_NOT_FOUND (also for an id
 * that is not canonical), or IA_ERR_STORAGE_UNAVAILABLE when the bucket cannot be asked (a
 * network failure, a timeout, a 5xx, refused credentials): never a false "not found".
 */
enum ia_err store_lookup(const struct store *s, const char *video_id, const char *ext);
/* Receives the extension of one published file (borrowed for the call). */
typedef void (*store_ext_cb)(void *ctx, const char *ext);
/*
 * Calls cb for every object processed_<video_id>.<ext_prefix>* of the bucket, in one listing:
 * IA_OK, IA_ERR_STORAGE_UNAVAILABLE when the bucket cannot be listed, IA_ERR_INVALID for a
 * local store (a stat per file, store_lookup(), is cheaper there) or an id not canonical.
 */
enum ia_err store_list_exts(const struct store *s, const char *video_id, const char *ext_prefix,
                            store_ext_cb cb, void *ctx);
/* True when results live in a bucket (store_use_s3() attached one). */
bool store_is_remote(const struct store *s);
/*
 * A presigned URL of processed_<video_id>.<ext> in the bucket for method "GET" or "HEAD", valid
 * ttl_s seconds (clamped to S3's 7 days), with disposition and content_type (each may be NULL)
 * signed in as response-content-disposition and response-content-type, so that the bucket
 * answers with ours. NULL when the store is local or the key is invalid.
 */
char *store_presign(const struct store *s, const char *method, const char *video_id,
                    const char *ext, long long ttl_s, const char *disposition,
                    const char *content_type);

/*
 * A fresh scratch directory for one task attempt; the caller frees the string. *lock_fd holds
 * a lock on it (flock) until store_work_dir_remove(): while the attempt's process lives, no
 * other delivery of the task removes the directory. NULL with a message in err on failure.
 */
char *store_work_dir_new(const struct store *s, const char *task_id, int *lock_fd, char *err,
                         size_t errlen);
/* Removes a scratch directory and everything in it, then releases its lock (-1: none). */
void store_work_dir_remove(const char *work_dir, int lock_fd);
/*
 * Removes the scratch directories of task_id left by earlier deliveries whose process is gone
 * (no lock held); one whose process still runs (a lease lost to a pause) is left to it.
 */
void store_work_dir_remove_task(const struct store *s, const char *task_id);
/* Removes scratch directories not touched for max_age_s and no longer locked. */
void store_sweep_work(const struct store *s, long max_age_s);

/*
 * Publishes the finished file at src_path (inside the store's file system) as
 * processed_<video_id>.<ext>: fsync, rename, fsync the directory. On failure src_path is
 * removed and nothing appears under the final name. IA_ERR_STORAGE_FULL when out of space.
 */
enum ia_err store_publish(const struct store *s, const char *src_path, const char *video_id,
                          const char *ext);
/* A video id as text, for lists of videos (store_delete.c). */
struct store_video_id {
    char id[UUID_STR_LEN + 1];
};
/*
 * The complete videos (processed_<id>.json present) whose metadata was last changed before
 * `before` (Unix time), at most max of them, sorted by id, in a new array *ids of *n (the
 * caller frees it; NULL when none). IA_ERR_IO when the directory cannot be read. On a bucket:
 * a listing (LastModified of each metadata object); IA_ERR_STORAGE_UNAVAILABLE.
 */
enum ia_err store_list_older(const struct store *s, time_t before, size_t max,
                             struct store_video_id **ids, size_t *n);
/*
 * Removes every file processed_<id>.* of each video of ids (n, sorted by id as
 * store_list_older() returns them): the metadata of all first, so that each stops being
 * complete before its other files go, then the rest in one pass over the directory, then an
 * fsync of the directory. removed (NULL: not wanted) receives the number of files removed per
 * video. IA_ERR_IO when the directory cannot be read or a file not removed (the others are).
 */
enum ia_err store_remove_videos(const struct store *s, const struct store_video_id *ids, size_t n,
                                size_t *removed);
/*
 * Listing and the reviewer's decisions (store_list.c). The decisions of a video live beside it
 * as processed_<id>.decisions.json, so that deleting the video deletes them.
 */
#define STORE_DECISIONS_EXT "decisions.json"
/* What a file's stat says, to tell whether it changed since it was read. */
struct store_stamp {
    unsigned long long ino; /* 0: no such file */
    long long size;
    long long mtime_ns;
};
/* A complete video (its metadata published) and the stamps of its metadata and decisions. */
struct store_video_files {
    char id[UUID_STR_LEN + 1];
    struct store_stamp meta;
    struct store_stamp decisions; /* ino 0: no decisions yet */
};
/*
 * Every complete video, in one pass over the directory, sorted by id, in a new array *out of *n
 * (the caller frees it; NULL when none). IA_ERR_IO when the directory cannot be read.
 * On a bucket: one listing of processed_* (S3_LIST_PAGE keys a request), the stamps from each
 * object's ETag, size and LastModified (store_stamp_of_object); IA_ERR_STORAGE_UNAVAILABLE
 * when the bucket cannot be listed, never a shorter list.
 */
enum ia_err store_scan_videos(const struct store *s, struct store_video_files **out, size_t *n);
/*
 * The same for one video; IA_ERR_NOT_FOUND when it is not complete (or the id not canonical).
 * On a bucket: a HEAD of the metadata and one of the decisions; IA_ERR_STORAGE_UNAVAILABLE.
 */
enum ia_err store_video_files_get(const struct store *s, const char *video_id,
                                  struct store_video_files *out);
/*
 * What a stamp holds for an object of the bucket: ino a hash of its ETag (never 0), its size,
 * and its Last-Modified to the second (listings give milliseconds, HEADs seconds), so that a
 * listing and a HEAD of the same object give the same stamp.
 */
void store_stamp_of_object(struct store_stamp *out, const char *etag, unsigned long long size,
                           const char *last_modified);
/* "2026-11-30T01:46:00.123Z" (listings) or "Mon, 30 Nov 2026 01:46:00 GMT" (HTTP) as Unix
 * time; -1 for anything else. */
long long store_time_parse(const char *s);
/*
 * Reads processed_<video_id>.<ext> whole into *out (NUL-terminated; the caller frees it) of
 * *len bytes: IA_ERR_NOT_FOUND, IA_ERR_TOO_LARGE above max bytes, IA_ERR_IO (a local read),
 * IA_ERR_STORAGE_UNAVAILABLE (the bucket cannot be asked). stamp (may be NULL) receives a local
 * file's stat; for an object it is left as it is: the caller has the stamp of its listing or
 * HEAD, and an object replaced in between only makes the next comparison differ.
 */
enum ia_err store_read_small(const struct store *s, const char *video_id, const char *ext,
                             size_t max, char **out, size_t *len, struct store_stamp *stamp);
/*
 * The whole-request limit of the requests store_publish_small() makes to a bucket, whatever
 * S3_TIMEOUT_S says: a writer that holds a lock for its PUT knows how long it can last.
 */
#define STORE_SMALL_TIMEOUT_S 20
/*
 * Takes an exclusive lock (flock) on the video's metadata, which every process that changes
 * the video's decisions takes first; returns its fd, or -1 when the video does not exist (or
 * was deleted while we waited). Release it with store_video_unlock().
 */
int store_video_lock(const struct store *s, const char *video_id);
void store_video_unlock(int lock_fd);
/*
 * Publishes len bytes of data as processed_<id>.<ext> (a temporary file, then store_publish()).
 * IA_ERR_NOT_FOUND (and nothing left behind) when the video was deleted meanwhile.
 * On a bucket: one PUT, then a HEAD of the metadata, each within STORE_SMALL_TIMEOUT_S;
 * IA_ERR_STORAGE_UNAVAILABLE when either fails. Buckets have no flock: the caller serializes
 * the writers of one object itself (decisions.c: a lock in Redis).
 */
enum ia_err store_publish_small(const struct store *s, const char *video_id, const char *ext,
                                const char *data, size_t len);
/* Free bytes on the store's file system, or -1. */
long long store_free_bytes(const struct store *s);
/* True when a file can be created in the store's directory. */
bool store_writable(const struct store *s);
const char *store_dir(const struct store *s);

/* Every file of a video is named STORE_FILE_PREFIX<video id>.<ext>. */
#define STORE_FILE_PREFIX "processed_"

/*
 * The extension of a directory entry named processed_<video id>.<ext> (the id copied into id), or
 * NULL for any other name.
 */
const char *store_entry_video(const char *name, char id[UUID_STR_LEN + 1]);

#endif
