/*
 * The staging area of direct uploads: PROCESSED_DIR/.uploads/<id>.bin holds the bytes received so
 * far (its size is the upload's offset), <id>.len the declared length and metadata, and <id>.task
 * the id of the task made when the last byte arrived. Appends hold an exclusive flock on the .bin
 * file, so concurrent requests (in any process on the same file system) cannot interleave.
 */
#ifndef IA_STORE_STORE_UPLOAD_H
#define IA_STORE_STORE_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct store;
struct store_upload;

#define STORE_UPLOAD_METADATA_MAX 4096
#define STORE_UPLOAD_TASK_ID_MAX 64

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
enum ia_err store_upload_create(const struct store *s, const char *id, uint64_t length,
                                const char *metadata);
/* Reads an upload's state; IA_ERR_NOT_FOUND when there is no such upload. */
enum ia_err store_upload_stat(const struct store *s, const char *id, struct store_upload_info *out);

/*
 * Locks upload id to append len bytes at offset. IA_ERR_NOT_FOUND when it does not exist;
 * IA_ERR_INVALID when offset is not the current offset or another request is appending now;
 * IA_ERR_TOO_LARGE when offset + len passes the declared length. On IA_OK the caller writes
 * its bytes to store_upload_fd() and calls store_upload_commit(), then store_upload_close().
 */
enum ia_err store_upload_begin(const struct store *s, const char *id, uint64_t offset, uint64_t len,
                               struct store_upload **out);
/* The descriptor to write to (positioned at the offset, O_APPEND). */
int store_upload_fd(const struct store_upload *u);
/*
 * Ends an append: when wrote_ok the data is kept; otherwise (or when the sync fails) the file is
 * cut back to the offset of store_upload_begin(), so that a failed request leaves nothing
 * behind. Fills info (from the state after the append) when info is not NULL.
 * Durability: only the append that completes the upload syncs the file (fdatasync, which also
 * flushes the earlier appends); the others stay in the page cache. An upload's offset is always
 * the .bin file's size, so after a crash of the process nothing is lost, and after a crash of the
 * machine the offset is what the file system kept (with ordered data, as ext4 and XFS do, never
 * a size whose bytes were not written): a tus client asks HEAD and sends the rest again.
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

/* The path of a complete upload's bytes for the worker to read; NULL when it is not complete. */
char *store_upload_data_path(const struct store *s, const char *id);
/* Removes every file of upload id. */
void store_upload_remove(const struct store *s, const char *id);
/*
 * Removes uploads not written for idle_s seconds that never completed, and complete ones older
 * than done_s (their task is long over). Returns how many were removed.
 */
int store_upload_sweep(const struct store *s, long long idle_s, long long done_s);

#endif
