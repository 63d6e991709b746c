/* What store_upload.c (local staging) and store_upload_s3.c (a bucket) share; store/ only. */
#ifndef IA_STORE_STORE_UPLOAD_INT_H
#define IA_STORE_STORE_UPLOAD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store_upload.h"

struct queue_upload;

struct store_upload {
    const struct store *s;
    char *id;
    int fd;          /* local: the .bin file, O_APPEND, under LOCK_EX; bucket: the temporary file */
    uint64_t start;  /* offset when the append began */
    uint64_t length; /* declared length */
    /* With a bucket only (q != NULL). */
    struct queue *q;
    char token[40];             /* the owner token of the Redis lock */
    char *tmp_path;             /* the temporary file, removed by store_upload_close() */
    struct queue_upload *state; /* as read under the lock, kept up to date */
};

/* The bucket's side of each function of store_upload.h (store_upload_s3.c). */
enum ia_err upload_s3_create(const struct store *s, struct queue *q, const char *id,
                             uint64_t length, const char *metadata);
enum ia_err upload_s3_stat(struct queue *q, const char *id, struct store_upload_info *out);
enum ia_err upload_s3_begin(const struct store *s, struct queue *q, const char *id, uint64_t offset,
                            uint64_t len, struct store_upload **out);
enum ia_err upload_s3_commit(struct store_upload *u, bool wrote_ok, struct store_upload_info *info);
enum ia_err upload_s3_set_task(struct store_upload *u, const char *task_id);
void upload_s3_close(struct store_upload *u);
enum ia_err upload_s3_input(const struct store *s, struct queue *q, const char *id,
                            const char *scratch_path, char **path);
void upload_s3_remove(const struct store *s, struct queue *q, const char *id);
int upload_s3_sweep(const struct store *s, struct queue *q, long long idle_s, long long done_s);

/*
 * The pure part (store_upload_s3.c, unit-tested). The key of the piece of id that starts at
 * offset: "uploads/<id>/<offset in 20 digits>", so that a listing comes in offset order.
 */
#define UPLOAD_PIECE_KEY_MAX 80
void upload_piece_key(const char *id, uint64_t offset, char out[UPLOAD_PIECE_KEY_MAX]);
/* The offset a piece key of id names; false for any other key. */
bool upload_piece_offset(const char *id, const char *key, uint64_t *offset);
/*
 * Whether the pieces (offsets and sizes, in listing order) make exactly [0, length): each
 * starts where the one before it ended, none is empty, and they end at length.
 */
bool upload_pieces_complete(const uint64_t *offsets, const uint64_t *sizes, size_t n,
                            uint64_t length);
/*
 * How long an append may hold the lock (ms): its one PUT ends within the connect and request
 * timeouts; twice that, and a minute for Redis and the local file.
 */
long long upload_lease_ms(long long timeout_s, long long connect_timeout_s);

#endif
