/* Direct uploads staged under PROCESSED_DIR/.uploads/ until their task has used them; with a
 * bucket, each function hands over to store_upload_s3.c. */
#include "store/store_upload.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "store/store.h"
#include "store/store_s3.h"
#include "store/store_upload_int.h"
#include "util/os.h"
#include "util/uuid.h"

#define UPLOADS_SUBDIR ".uploads"
#define LEN_FILE_MAX (STORE_UPLOAD_METADATA_MAX + 64)

static char *upload_file(const struct store *s, const char *id, const char *ext)
{
    return xasprintf("%s/%s/%s.%s", store_dir(s), UPLOADS_SUBDIR, id, ext);
}

static enum ia_err errno_err(int e)
{
    return (e == ENOSPC || e == EDQUOT || e == EFBIG) ? IA_ERR_STORAGE_FULL : IA_ERR_IO;
}

static bool id_ok(const char *id) { return id && uuid_is_canonical(id, strlen(id)); }

static bool metadata_ok(const char *m)
{
    return strlen(m) < STORE_UPLOAD_METADATA_MAX && !strpbrk(m, "\r\n");
}

/* Creates path exclusively with text as its content (synced). */
static enum ia_err write_new_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return errno == EEXIST ? IA_ERR_INVALID : errno_err(errno);
    bool ok = os_write_all(fd, text, strlen(text)) && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    if (ok)
        return IA_OK;
    unlink(path);
    return errno_err(saved);
}

enum ia_err store_upload_create(const struct store *s, struct queue *q, const char *id,
                                uint64_t length, const char *metadata)
{
    if (!metadata)
        metadata = "";
    if (!id_ok(id) || !metadata_ok(metadata))
        return IA_ERR_INVALID;
    if (store_remote_of(s))
        return upload_s3_create(s, q, id, length, metadata);
    char *dir = xasprintf("%s/%s", store_dir(s), UPLOADS_SUBDIR);
    int rc = mkdir(dir, 0700);
    free(dir);
    if (rc != 0 && errno != EEXIST)
        return errno_err(errno);
    char *len_path = upload_file(s, id, "len"), *bin_path = upload_file(s, id, "bin");
    char *text = xasprintf("%" PRIu64 "\n%s\n", length, metadata);
    enum ia_err err = write_new_file(len_path, text);
    if (!err) {
        err = write_new_file(bin_path, "");
        if (err)
            unlink(len_path);
    }
    free(text);
    free(len_path);
    free(bin_path);
    return err;
}

/* Reads up to cap-1 bytes of a small file into buf; -1 when missing. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    size_t got = 0;
    ssize_t n;
    while (got + 1 < cap && (n = read(fd, buf + got, cap - 1 - got)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return (ssize_t)got;
}

/* Parses "<length>\n<metadata>\n" from the .len file. */
static enum ia_err read_len_file(const struct store *s, const char *id,
                                 struct store_upload_info *out)
{
    char *path = upload_file(s, id, "len");
    char buf[LEN_FILE_MAX];
    ssize_t n = read_small(path, buf, sizeof(buf));
    free(path);
    if (n < 0)
        return IA_ERR_NOT_FOUND;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno || end == buf || *end != '\n' || buf[0] == '-')
        return IA_ERR_IO;
    out->length = v;
    char *meta = end + 1, *nl = strchr(meta, '\n');
    if (nl)
        *nl = '\0';
    snprintf(out->metadata, sizeof(out->metadata), "%s", meta);
    return IA_OK;
}

static void read_task_file(const struct store *s, const char *id, struct store_upload_info *out)
{
    char *path = upload_file(s, id, "task");
    if (read_small(path, out->task_id, sizeof(out->task_id)) < 0)
        out->task_id[0] = '\0';
    free(path);
}

enum ia_err store_upload_stat(const struct store *s, struct queue *q, const char *id,
                              struct store_upload_info *out)
{
    memset(out, 0, sizeof(*out));
    if (!id_ok(id))
        return IA_ERR_NOT_FOUND;
    if (store_remote_of(s))
        return upload_s3_stat(q, id, out);
    enum ia_err err = read_len_file(s, id, out);
    if (err)
        return err;
    char *bin = upload_file(s, id, "bin");
    struct stat st;
    int rc = lstat(bin, &st);
    free(bin);
    if (rc != 0 || !S_ISREG(st.st_mode))
        return IA_ERR_NOT_FOUND;
    out->offset = (uint64_t)st.st_size;
    read_task_file(s, id, out);
    return IA_OK;
}

/* Opens and locks the .bin file without waiting; -1 with errno (EWOULDBLOCK when busy). */
static int open_locked(const struct store *s, const char *id)
{
    char *bin = upload_file(s, id, "bin");
    int fd = open(bin, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    free(bin);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Checks offset and length against the locked upload's state. */
static enum ia_err check_append(struct store_upload *u, uint64_t offset, uint64_t len)
{
    struct store_upload_info info;
    struct stat st;
    if (read_len_file(u->s, u->id, &info) || fstat(u->fd, &st) != 0)
        return IA_ERR_NOT_FOUND;
    u->length = info.length;
    u->start = (uint64_t)st.st_size;
    if (offset != u->start)
        return IA_ERR_INVALID;
    if (len > u->length - u->start)
        return IA_ERR_TOO_LARGE;
    return IA_OK;
}

enum ia_err store_upload_begin(const struct store *s, struct queue *q, const char *id,
                               uint64_t offset, uint64_t len, struct store_upload **out)
{
    *out = NULL;
    if (!id_ok(id))
        return IA_ERR_NOT_FOUND;
    if (store_remote_of(s))
        return upload_s3_begin(s, q, id, offset, len, out);
    int fd = open_locked(s, id);
    if (fd < 0)
        return errno == EWOULDBLOCK ? IA_ERR_INVALID : IA_ERR_NOT_FOUND;
    struct store_upload *u = xcalloc(1, sizeof(*u));
    u->s = s;
    u->id = xstrdup(id);
    u->fd = fd;
    enum ia_err err = check_append(u, offset, len);
    if (err) {
        store_upload_close(u);
        return err;
    }
    *out = u;
    return IA_OK;
}

int store_upload_fd(const struct store_upload *u) { return u->fd; }

enum ia_err store_upload_commit(struct store_upload *u, bool wrote_ok,
                                struct store_upload_info *info)
{
    if (u->q)
        return upload_s3_commit(u, wrote_ok, info);
    enum ia_err err = IA_OK;
    struct stat st;
    bool bad = !wrote_ok || fstat(u->fd, &st) != 0 || (uint64_t)st.st_size > u->length;
    /* Synced once, by the append that completes the upload (see the header). */
    if (!bad && (uint64_t)st.st_size == u->length && fdatasync(u->fd) != 0)
        bad = true;
    if (bad) {
        err = errno_err(errno);
        if (ftruncate(u->fd, (off_t)u->start) != 0)
            log_msg(LOG_ERROR, "store", "upload=%s cannot cut back a failed append: %s", u->id,
                    strerror(errno));
    }
    if (info)
        store_upload_stat(u->s, NULL, u->id, info);
    return err;
}

enum ia_err store_upload_set_task(struct store_upload *u, const char *task_id)
{
    if (u->q)
        return upload_s3_set_task(u, task_id);
    char *path = upload_file(u->s, u->id, "task");
    enum ia_err err = write_new_file(path, task_id);
    free(path);
    return err;
}

void store_upload_clear_task(struct store_upload *u)
{
    if (u->q) {
        upload_s3_set_task(u, "");
        return;
    }
    char *path = upload_file(u->s, u->id, "task");
    unlink(path);
    free(path);
}

void store_upload_close(struct store_upload *u)
{
    if (!u)
        return;
    if (u->q) {
        upload_s3_close(u);
        return;
    }
    close(u->fd); /* releases the flock */
    free(u->id);
    free(u);
}

char *store_upload_data_path(const struct store *s, const char *id)
{
    struct store_upload_info info;
    if (store_remote_of(s) || store_upload_stat(s, NULL, id, &info) || info.offset != info.length)
        return NULL;
    return upload_file(s, id, "bin");
}

enum ia_err store_upload_input(const struct store *s, struct queue *q, const char *id,
                               const char *scratch_path, char **path)
{
    *path = NULL;
    if (!id_ok(id))
        return IA_ERR_NOT_FOUND;
    if (store_remote_of(s))
        return upload_s3_input(s, q, id, scratch_path, path);
    *path = store_upload_data_path(s, id);
    return *path ? IA_OK : IA_ERR_NOT_FOUND;
}

void store_upload_remove(const struct store *s, struct queue *q, const char *id)
{
    static const char *const exts[] = {"bin", "task", "len"}; /* .len last: it names the upload */
    if (!id_ok(id))
        return;
    if (store_remote_of(s)) {
        upload_s3_remove(s, q, id);
        return;
    }
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        char *path = upload_file(s, id, exts[i]);
        unlink(path);
        free(path);
    }
}

/* Seconds since the upload was last written (its .bin, else its .len), or -1. */
static long long upload_age(const struct store *s, const char *id, time_t now)
{
    static const char *const exts[] = {"bin", "len"};
    for (size_t i = 0; i < 2; i++) {
        char *path = upload_file(s, id, exts[i]);
        struct stat st;
        int rc = lstat(path, &st);
        free(path);
        if (rc == 0)
            return (long long)(now - st.st_mtime);
    }
    return -1;
}

/* Removes upload id when it is stale; true when removed. */
static bool sweep_one(const struct store *s, const char *id, long long idle_s, long long done_s,
                      time_t now)
{
    struct store_upload_info info;
    long long age = upload_age(s, id, now);
    if (age < 0)
        return false;
    bool done = store_upload_stat(s, NULL, id, &info) == IA_OK && info.task_id[0];
    if (age <= (done ? done_s : idle_s))
        return false;
    log_msg(LOG_INFO, "store", "upload=%s removing a stale %s upload (idle %lld s)", id,
            done ? "finished" : "unfinished", age);
    store_upload_remove(s, NULL, id);
    return true;
}

int store_upload_sweep(const struct store *s, struct queue *q, long long idle_s, long long done_s)
{
    if (store_remote_of(s))
        return upload_s3_sweep(s, q, idle_s, done_s);
    char *dir = xasprintf("%s/%s", store_dir(s), UPLOADS_SUBDIR);
    DIR *d = opendir(dir);
    free(dir);
    if (!d)
        return 0;
    time_t now = time(NULL);
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n != UUID_STR_LEN + 4 || strcmp(e->d_name + UUID_STR_LEN, ".len") != 0)
            continue;
        char id[UUID_STR_LEN + 1];
        memcpy(id, e->d_name, UUID_STR_LEN);
        id[UUID_STR_LEN] = '\0';
        if (id_ok(id) && sweep_one(s, id, idle_s, done_s, now))
            removed++;
    }
    closedir(d);
    return removed;
}

