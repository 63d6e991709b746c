/*
 * The staging area of direct uploads.
 *
 * Local store: PROCESSED_DIR/.uploads/<id>.bin holds the bytes received so far (its size is the
 * upload's offset), <id>.len the declared length and metadata, and <id>.task the id of the task
 * made when the last byte arrived. Appends hold an exclusive flock on the .bin file, so
 * concurrent requests (in any process on the same file system) cannot interleave. q is unused.
 *
 * With a bucket (store_use_s3): each append is one object uploads/<id>/<offset, 20 digits> of
 * the bucket, and the upload's state (length, metadata, offset, pieces, task) lives in Redis
 * (queue_upload_*, through q, the calling thread's queue), so that any API process can continue
 * an upload and any worker can read it; appends are serialized by a Redis lock with an owner
 * token. The bytes of one append wait in a temporary file in PROCESSED_DIR/.work/ of the API's
 * own host until store_upload_commit() sends them. Errors there: IA_ERR_BROKER (Redis cannot be
 * asked), IA_ERR_STORAGE_UNAVAILABLE (the bucket cannot be asked). Every function may block on
 * the network (one or a few requests to Redis and the bucket).
 */
#ifndef IA_STORE_STORE_UPLOAD_H
#define IA_STORE_STORE_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct queue;
struct store;
struct store_upload;

#define STORE_UPLOAD_METADATA_MAX 4096
#define STORE_UPLOAD_TASK_ID_MAX 64

/* The most appends of one upload in a bucket (each is an object the worker reads back). */
#define STORE_UPLOAD_PIECES_MAX 10000

/* What is known of an upload. */
struct store_upload_info {
    uint64_t length;                          /* declared Upload-Length */
    uint64_t offset;                          /* bytes on disk */
    char task_id[STORE_UPLOAD_TASK_ID_MAX];   /* "" until the upload made its task */
    char metadata[STORE_UPLOAD_METADATA_MAX]; /* Upload-Metadata as sent (may be "") */
};

/*
 * Creates upload id (a canonical UUID) with an empty .bin file. metadata (may be NULL) is at most
 * STORE_UPLOAD_METADATA_MAX - 1 bytes without newlines. IA_ERR_IO or IA_ERR_STORAGE_FULL on disk
 * failures, IA_ERR_INVALID for a bad id or metadata.
 */
enum ia_err store_upload_create(const struct store *s, struct queue *q, const char *id,
                                uint64_t length, const char *metadata);
/* Reads an upload's state; IA_ERR_NOT_FOUND when there is no such upload. */
enum ia_err store_upload_stat(const struct store *s, struct queue *q, const char *id,
                              struct store_upload_info *out);

/*
 * Locks upload id to append len bytes at offset. IA_ERR_NOT_FOUND when it does not exist;
 * IA_ERR_INVALID when offset is not the current offset or another request is appending now;
 * IA_ERR_TOO_LARGE when offset + len passes the declared length (or, in a bucket, when the
 * upload would have STORE_UPLOAD_PIECES_MAX pieces before its end). On IA_OK the caller writes
 * its bytes to store_upload_fd() and calls store_upload_commit(), then store_upload_close().
 */
enum ia_err store_upload_begin(const struct store *s, struct queue *q, const char *id,
                               uint64_t offset, uint64_t len, struct store_upload **out);
/* The descriptor to write to (local: positioned at the offset, O_APPEND; bucket: an empty
 * temporary file). */
int store_upload_fd(const struct store_upload *u);
/*
 * Ends an append: when wrote_ok the data is kept; otherwise (or when the sync fails) the file is
 * cut back to the offset of store_upload_begin(), so that a failed request leaves nothing
 * behind. In a bucket the bytes written go up as one object and the offset moves only once it
 * is there. Fills info (from the state after the append) when info is not NULL.
 * Durability (local): only the append that completes the upload syncs the file (fdatasync, which
 * also flushes the earlier appends); the others stay in the page cache. An upload's offset is
 * always the .bin file's size, so after a crash of the process nothing is lost, and after a crash
 * of the machine the offset is what the file system kept (with ordered data, as ext4 and XFS do,
 * never a size whose bytes were not written): a tus client asks HEAD and sends the rest again.
 */
enum ia_err store_upload_commit(struct store_upload *u, bool wrote_ok,
                                struct store_upload_info *info);
/*
 * Records task_id as the task of a complete upload (under the append lock). IA_ERR_INVALID when
 * the upload already has one (its id is then in info->task_id after a stat).
 */
enum ia_err store_upload_set_task(struct store_upload *u, const char *task_id);
/* Forgets the task of an upload whose task could not be queued after all. */
void store_upload_clear_task(struct store_upload *u);
/* Releases the lock and frees u (NULL is fine). */
void store_upload_close(struct store_upload *u);

/* The path of a complete local upload's bytes; NULL when it is not complete (or in a bucket). */
char *store_upload_data_path(const struct store *s, const char *id);
/*
 * The bytes of complete upload id for a worker, in *path (the caller frees it): the staged file
 * itself for a local store; with a bucket, the pieces downloaded one after another (streamed,
 * bounded memory) into scratch_path, created or truncated. IA_ERR_NOT_FOUND when the upload is
 * missing or unfinished, IA_ERR_STORAGE_UNAVAILABLE or IA_ERR_BROKER (worth a retry),
 * IA_ERR_IO (local file, or pieces that do not add up).
 */
enum ia_err store_upload_input(const struct store *s, struct queue *q, const char *id,
                               const char *scratch_path, char **path);
/* Removes every file (or object, and the state in Redis) of upload id. */
void store_upload_remove(const struct store *s, struct queue *q, const char *id);
/*
 * Removes uploads not written for idle_s seconds that never completed, and complete ones older
 * than done_s (their task is long over). Returns how many were removed.
 */
int store_upload_sweep(const struct store *s, struct queue *q, long long idle_s, long long done_s);

#endif
