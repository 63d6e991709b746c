/*
 * Direct uploads staged in the bucket (store_upload.h): each append (a tus PATCH, or the whole
 * body of POST /upload) becomes one object uploads/<id>/<offset in 20 digits>, of any size, and
 * the upload's state lives in Redis (queue_upload_*), fenced by a lock with an owner token.
 * Nothing of an upload stays on the API's disk after its request: the bytes of one append wait
 * in a temporary file of PROCESSED_DIR/.work/ until store_upload_commit() sends them.
 *
 * Why objects and not one multipart upload: S3 refuses parts under 5 MiB except the last, and
 * tus lets a client send any chunk size. Pieces of any size need no buffering of small chunks
 * anywhere, no part list in Redis, and nothing stays billed by a forgotten multipart: an
 * abandoned upload is a handful of plain objects the sweep deletes. The cost: the worker reads
 * one object per append (at most STORE_UPLOAD_PIECES_MAX), and the bucket holds the pieces
 * until the task is over, as the local .bin file was kept.
 */
#include "store/store_upload_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "queue/queue.h"
#include "store/s3.h"
#include "store/store.h"
#include "store/store_s3.h"
#include "util/os.h"
#include "util/uuid.h"

#define PIECES_DIR "uploads/"
#define STALE_BATCH 100
/* The state outlives the longest the sweep may wait for an upload by this much. */
#define STATE_TTL_MARGIN_S 3600

_Static_assert(QUEUE_UPLOAD_METADATA_MAX == STORE_UPLOAD_METADATA_MAX, "metadata limits differ");
_Static_assert(sizeof(((struct queue_upload *)0)->task_id) == STORE_UPLOAD_TASK_ID_MAX,
               "task id limits differ");

/* ---- pure helpers ---- */

void upload_piece_key(const char *id, uint64_t offset, char out[UPLOAD_PIECE_KEY_MAX])
{
    snprintf(out, UPLOAD_PIECE_KEY_MAX, PIECES_DIR "%s/%020" PRIu64, id, offset);
}

bool upload_piece_offset(const char *id, const char *key, uint64_t *offset)
{
    size_t dir = strlen(PIECES_DIR), idlen = strlen(id);
    if (strncmp(key, PIECES_DIR, dir) != 0 || strncmp(key + dir, id, idlen) != 0 ||
        key[dir + idlen] != '/')
        return false;
    const char *digits = key + dir + idlen + 1;
    if (strlen(digits) != 20 || strspn(digits, "0123456789") != 20)
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(digits, &end, 10);
    if (errno || *end)
        return false;
    *offset = v;
    return true;
}

bool upload_pieces_complete(const uint64_t *offsets, const uint64_t *sizes, size_t n,
                            uint64_t length)
{
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (offsets[i] != at || sizes[i] == 0 || sizes[i] > length - at)
            return false;
        at += sizes[i];
    }
    return at == length;
}

long long upload_lease_ms(long long timeout_s, long long connect_timeout_s)
{
    return (2 * (timeout_s + connect_timeout_s) + 60) * 1000;
}

/* ---- state ---- */

static const struct config *cfg_of(const struct store *s)
{
    return store_remote_config(store_remote_of(s));
}

/* How long the state is kept after each write: past the sweep's longest wait. */
static long long state_ttl_s(const struct store *s)
{
    const struct config *cfg = cfg_of(s);
    long long longest =
        cfg->result_ttl_s > cfg->upload_expire_s ? cfg->result_ttl_s : cfg->upload_expire_s;
    return longest + STATE_TTL_MARGIN_S;
}

static void info_from(struct store_upload_info *out, const struct queue_upload *st)
{
    out->length = st->length;
    out->offset = st->offset;
    memcpy(out->task_id, st->task_id, sizeof(out->task_id));
    memcpy(out->metadata, st->metadata, sizeof(out->metadata));
}

enum ia_err upload_s3_create(const struct store *s, struct queue *q, const char *id,
                             uint64_t length, const char *metadata)
{
    return queue_upload_create(q, id, length, metadata, state_ttl_s(s));
}

enum ia_err upload_s3_stat(struct queue *q, const char *id, struct store_upload_info *out)
{
    struct queue_upload *st = xmalloc(sizeof(*st));
    enum ia_err err = queue_upload_get(q, id, st);
    if (!err)
        info_from(out, st);
    free(st);
    return err;
}

/* Checks an append of len at offset against the state read under the lock. */
static enum ia_err check_append(const struct queue_upload *st, uint64_t offset, uint64_t len)
{
    if (offset != st->offset)
        return IA_ERR_INVALID;
    if (len > st->length - st->offset)
        return IA_ERR_TOO_LARGE;
    /* The last piece may always come; before it, at most PIECES_MAX - 1. */
    if (len > 0 && offset + len < st->length && st->parts + 1 >= STORE_UPLOAD_PIECES_MAX)
        return IA_ERR_TOO_LARGE;
    return IA_OK;
}

/* A temporary file in the API's own .work/ for one append's bytes. */
static enum ia_err open_tmp(struct store_upload *u)
{
    u->tmp_path = xasprintf("%s/.work/upload-%s-XXXXXX", store_dir(u->s), u->id);
    u->fd = mkostemp(u->tmp_path, O_CLOEXEC);
    if (u->fd >= 0)
        return IA_OK;
    log_msg(LOG_ERROR, "store", "upload=%s temporary file: %s", u->id, strerror(errno));
    free(u->tmp_path);
    u->tmp_path = NULL;
    return errno == ENOSPC || errno == EDQUOT ? IA_ERR_STORAGE_FULL : IA_ERR_IO;
}

enum ia_err upload_s3_begin(const struct store *s, struct queue *q, const char *id, uint64_t offset,
                            uint64_t len, struct store_upload **out)
{
    const struct config *cfg = cfg_of(s);
    struct store_upload *u = xcalloc(1, sizeof(*u));
    u->s = s;
    u->q = q;
    u->id = xstrdup(id);
    u->fd = -1;
    u->state = xcalloc(1, sizeof(*u->state));
    uuid_v4_new(u->token);
    enum ia_err err = queue_upload_lock(
        q, id, u->token, upload_lease_ms(cfg->s3_timeout_s, cfg->s3_connect_timeout_s));
    if (err) {
        u->token[0] = '\0'; /* not ours: close must not release it */
        upload_s3_close(u);
        return err;
    }
    err = queue_upload_get(q, id, u->state);
    if (!err)
        err = check_append(u->state, offset, len);
    if (!err)
        err = open_tmp(u);
    if (err) {
        upload_s3_close(u);
        return err;
    }
    u->start = u->state->offset;
    u->length = u->state->length;
    *out = u;
    return IA_OK;
}

/* Sends the temporary file as the piece at u->start. */
static enum ia_err put_piece(struct store_upload *u)
{
    struct store_remote *r = store_remote_of(u->s);
    struct s3 *c = store_remote_take(r);
    if (!c)
        return IA_ERR_STORAGE_UNAVAILABLE;
    char key[UPLOAD_PIECE_KEY_MAX], detail[512];
    upload_piece_key(u->id, u->start, key);
    enum ia_err e =
        s3_put_file_once(c, key, u->tmp_path, "application/octet-stream", detail, sizeof(detail));
    store_remote_give(r, c);
    if (e) {
        log_msg(LOG_ERROR, "store", "upload=%s piece at %" PRIu64 " not stored: %s: %s", u->id,
                u->start, ia_err_code(e), detail);
        return IA_ERR_STORAGE_UNAVAILABLE;
    }
    return IA_OK;
}

enum ia_err upload_s3_commit(struct store_upload *u, bool wrote_ok, struct store_upload_info *info)
{
    struct stat st;
    enum ia_err err = IA_OK;
    if (!wrote_ok || fstat(u->fd, &st) != 0)
        err = IA_ERR_IO;
    else if ((uint64_t)st.st_size > u->length - u->start)
        err = IA_ERR_TOO_LARGE;
    uint64_t n = err ? 0 : (uint64_t)st.st_size;
    if (!err && n > 0)
        err = put_piece(u);
    if (!err && n > 0) {
        err =
            queue_upload_advance(u->q, u->id, u->token, u->start, u->start + n, state_ttl_s(u->s));
        if (err == IA_ERR_INVALID) { /* the lock ran out and another append came in */
            log_msg(LOG_ERROR, "store", "upload=%s lost its lock during an append", u->id);
            err = IA_ERR_BROKER;
        }
    }
    if (!err) {
        u->state->offset = u->start + n;
        u->state->parts += n > 0;
    }
    if (info)
        info_from(info, u->state);
    return err;
}

enum ia_err upload_s3_set_task(struct store_upload *u, const char *task_id)
{
    enum ia_err err = queue_upload_set_task(u->q, u->id, u->token, task_id, state_ttl_s(u->s));
    if (!err)
        snprintf(u->state->task_id, sizeof(u->state->task_id), "%s", task_id);
    return err;
}

void upload_s3_close(struct store_upload *u)
{
    if (u->fd >= 0)
        close(u->fd);
    if (u->tmp_path)
        unlink(u->tmp_path);
    if (u->token[0])
        queue_upload_unlock(u->q, u->id, u->token);
    free(u->tmp_path);
    free(u->state);
    free(u->id);
    free(u);
}

/* ---- the pieces: listing, reading back, removal ---- */

struct pieces {
    const char *id;
    uint64_t *offsets, *sizes;
    char **keys;
    size_t n;
    bool foreign; /* a key under uploads/<id>/ that is not a piece */
};

static int collect_piece(const struct s3_object *o, void *ctx)
{
    struct pieces *p = ctx;
    uint64_t off;
    if (!upload_piece_offset(p->id, o->key, &off)) {
        p->foreign = true;
        return 0;
    }
    if (p->n == STORE_UPLOAD_PIECES_MAX) {
        p->foreign = true;
        return 1;
    }
    p->offsets = xrealloc(p->offsets, (p->n + 1) * sizeof(*p->offsets));
    p->sizes = xrealloc(p->sizes, (p->n + 1) * sizeof(*p->sizes));
    p->keys = xrealloc(p->keys, (p->n + 1) * sizeof(*p->keys));
    p->offsets[p->n] = off;
    p->sizes[p->n] = o->size;
    p->keys[p->n++] = xstrdup(o->key);
    return 0;
}

static void pieces_cleanup(struct pieces *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->keys[i]);
    free(p->keys);
    free(p->offsets);
    free(p->sizes);
}

/* Lists the pieces of id into p. */
static enum ia_err list_pieces(struct s3 *c, const char *id, struct pieces *p)
{
    memset(p, 0, sizeof(*p));
    p->id = id;
    char prefix[UPLOAD_PIECE_KEY_MAX], detail[512];
    snprintf(prefix, sizeof(prefix), PIECES_DIR "%s/", id);
    enum ia_err e = s3_list(c, prefix, collect_piece, p, NULL, detail, sizeof(detail));
    if (e)
        log_msg(LOG_WARN, "store", "upload=%s listing its pieces: %s: %s", id, ia_err_code(e),
                detail);
    return e ? IA_ERR_STORAGE_UNAVAILABLE : IA_OK;
}

struct append_ctx {
    int fd;
    uint64_t got;
};

static bool append_body(void *ctx, const struct s3_get_head *h, const char *p, size_t n)
{
    (void)h;
    struct append_ctx *a = ctx;
    a->got += n;
    return n == 0 || os_write_all(a->fd, p, n);
}

/* Appends every piece, in order, to fd. */
static enum ia_err read_pieces(struct s3 *c, const struct pieces *p, int fd)
{
    for (size_t i = 0; i < p->n; i++) {
        struct append_ctx a = {fd, 0};
        struct s3_get_head h;
        char detail[512];
        enum ia_err e = s3_get_stream(c, p->keys[i], "GET", NULL, NULL, append_body, &a, &h, detail,
                                      sizeof(detail));
        if (!e && a.got != p->sizes[i]) {
            snprintf(detail, sizeof(detail), "%" PRIu64 " bytes instead of %" PRIu64, a.got,
                     p->sizes[i]);
            e = IA_ERR_STORAGE_UNAVAILABLE;
        }
        if (e) {
            log_msg(LOG_WARN, "store", "upload=%s reading piece %zu: %s: %s", p->id, i,
                    ia_err_code(e), detail);
            return e == IA_ERR_IO ? IA_ERR_IO : IA_ERR_STORAGE_UNAVAILABLE;
        }
    }
    return IA_OK;
}

/* Lists, checks and downloads the pieces of a complete upload of length bytes into path. */
static enum ia_err fetch_pieces(struct s3 *c, const char *id, uint64_t length, const char *path)
{
    struct pieces p;
    enum ia_err err = list_pieces(c, id, &p);
    if (!err && (p.foreign || !upload_pieces_complete(p.offsets, p.sizes, p.n, length))) {
        log_msg(LOG_ERROR, "store",
                "upload=%s: its %zu pieces in the bucket do not make %" PRIu64 " bytes", id, p.n,
                length);
        err = IA_ERR_IO;
    }
    int fd = -1;
    if (!err) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            err = errno == ENOSPC || errno == EDQUOT ? IA_ERR_STORAGE_FULL : IA_ERR_IO;
    }
    if (!err)
        err = read_pieces(c, &p, fd);
    if (fd >= 0 && close(fd) != 0 && !err)
        err = IA_ERR_IO;
    if (err && fd >= 0)
        unlink(path);
    pieces_cleanup(&p);
    return err;
}

enum ia_err upload_s3_input(const struct store *s, struct queue *q, const char *id,
                            const char *scratch_path, char **path)
{
    struct queue_upload *st = xmalloc(sizeof(*st));
    enum ia_err err = queue_upload_get(q, id, st);
    if (!err && (st->offset != st->length || !st->task_id[0]))
        err = IA_ERR_NOT_FOUND;
    uint64_t length = st->length;
    free(st);
    if (err)
        return err;
    struct store_remote *r = store_remote_of(s);
    struct s3 *c = store_remote_take(r);
    if (!c)
        return IA_ERR_STORAGE_UNAVAILABLE;
    err = fetch_pieces(c, id, length, scratch_path);
    store_remote_give(r, c);
    if (!err) {
        log_msg(LOG_INFO, "store", "upload=%s read from the bucket: %" PRIu64 " bytes", id, length);
        *path = xstrdup(scratch_path);
    }
    return err;
}

/* Deletes every object under uploads/<id>/; IA_OK when none is left. */
static enum ia_err delete_pieces(struct s3 *c, const char *id)
{
    struct pieces p;
    enum ia_err err = list_pieces(c, id, &p);
    char detail[512] = "";
    for (size_t i = 0; i < p.n && !err; i++)
        if (s3_delete(c, p.keys[i], detail, sizeof(detail)))
            err = IA_ERR_STORAGE_UNAVAILABLE;
    if (err)
        log_msg(LOG_WARN, "store", "upload=%s pieces not all removed: %s", id, detail);
    pieces_cleanup(&p);
    return err;
}

void upload_s3_remove(const struct store *s, struct queue *q, const char *id)
{
    struct store_remote *r = store_remote_of(s);
    struct s3 *c = store_remote_take(r);
    if (!c)
        return;
    enum ia_err err = delete_pieces(c, id);
    store_remote_give(r, c);
    /* The state goes last: while it is there, the sweep can still find the pieces. */
    if (!err && queue_upload_forget(q, id))
        log_msg(LOG_WARN, "store", "upload=%s state not removed (it expires)", id);
}

int upload_s3_sweep(const struct store *s, struct queue *q, long long idle_s, long long done_s)
{
    char(*ids)[37] = xcalloc(STALE_BATCH, sizeof(*ids));
    size_t n = 0;
    int removed = 0;
    if (queue_upload_stale(q, idle_s, done_s, STALE_BATCH, ids, &n))
        n = 0;
    for (size_t i = 0; i < n; i++) {
        char token[40];
        uuid_v4_new(token);
        if (queue_upload_lock(q, ids[i], token, 60000)) /* an append is running: not stale */
            continue;
        log_msg(LOG_INFO, "store", "upload=%s removing a stale upload from the bucket", ids[i]);
        upload_s3_remove(s, q, ids[i]);
        queue_upload_unlock(q, ids[i], token);
        removed++;
    }
    free(ids);
    return removed;
}
