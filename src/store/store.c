/* Local-directory storage with atomic publication. */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "store/store_s3.h"
#include "util/uuid.h"

struct store {
    char *dir;
    char *work;
    struct store_remote *remote; /* NULL: results stay in dir */
};

static int mkdir_p(const char *path)
{
    char *tmp = xstrdup(path);
    int rc = 0;
    for (char *p = tmp + 1; *p && rc == 0; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) && errno != EEXIST)
            rc = -1;
        *p = '/';
    }
    if (rc == 0 && mkdir(tmp, 0755) && errno != EEXIST)
        rc = -1;
    free(tmp);
    return rc;
}

struct store *store_new(const char *dir, char *err, size_t errlen)
{
    struct store *s = xcalloc(1, sizeof(*s));
    s->dir = xstrdup(dir);
    s->work = xasprintf("%s/.work", dir);
    if (mkdir_p(s->work)) {
        snprintf(err, errlen, "PROCESSED_DIR: cannot create %s: %s", s->work, strerror(errno));
        store_free(s);
        return NULL;
    }
    return s;
}

void store_free(struct store *s)
{
    if (!s)
        return;
    store_remote_free(s->remote);
    free(s->dir);
    free(s->work);
    free(s);
}

enum ia_err store_use_s3(struct store *s, const struct config *cfg, char *err, size_t errlen)
{
    if (!cfg->storage_url[0])
        return IA_OK;
    s->remote = store_remote_new(cfg, err, errlen);
    return s->remote ? IA_OK : IA_ERR_INVALID;
}

struct store_remote *store_remote_of(const struct store *s)
{
    return s->remote;
}

const char *store_dir(const struct store *s)
{
    return s->dir;
}

char *store_path(const struct store *s, const char *video_id, const char *ext)
{
    return xasprintf("%s/processed_%s.%s", s->dir, video_id, ext);
}

int store_open(const struct store *s, const char *video_id, const char *ext, struct stat *st)
{
    if (!uuid_is_canonical(video_id, strlen(video_id)))
        return -1;
    char *path = store_path(s, video_id, ext);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    free(path);
    if (fd < 0)
        return -1;
    if (fstat(fd, st) || !S_ISREG(st->st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

bool store_exists(const struct store *s, const char *video_id, const char *ext)
{
    if (s->remote)
        return uuid_is_canonical(video_id, strlen(video_id)) &&
               store_remote_exists(s->remote, video_id, ext);
    struct stat st;
    int fd = store_open(s, video_id, ext, &st);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

enum ia_err store_lookup(const struct store *s, const char *video_id, const char *ext)
{
    if (!uuid_is_canonical(video_id, strlen(video_id)))
        return IA_ERR_NOT_FOUND;
    if (s->remote)
        return store_remote_lookup(s->remote, video_id, ext, NULL);
    return store_exists(s, video_id, ext) ? IA_OK : IA_ERR_NOT_FOUND;
}

enum ia_err store_lookup_head(const struct store *s, const char *video_id, const char *ext,
                              struct store_object_head *h)
{
    memset(h, 0, sizeof *h);
    if (!s->remote)
        return IA_ERR_INVALID;
    if (!uuid_is_canonical(video_id, strlen(video_id)))
        return IA_ERR_NOT_FOUND;
    return store_remote_lookup(s->remote, video_id, ext, h);
}

bool store_is_remote(const struct store *s)
{
    return s->remote != NULL;
}

char *store_presign(const struct store *s, const char *method, const char *video_id,
                    const char *ext, long long ttl_s, const char *disposition,
                    const char *content_type)
{
    if (!s->remote || !uuid_is_canonical(video_id, strlen(video_id)))
        return NULL;
    return store_remote_presign(s->remote, method, video_id, ext, ttl_s, disposition,
                                content_type);
}

enum ia_err store_get_stream(const struct store *s, const char *video_id, const char *ext,
                             const char *method, const struct store_conditions *c,
                             store_body_cb cb, void *ctx, struct store_object_head *h)
{
    if (!s->remote || !uuid_is_canonical(video_id, strlen(video_id)))
        return s->remote ? IA_ERR_NOT_FOUND : IA_ERR_INVALID;
    return store_remote_get_stream(s->remote, video_id, ext, method, c, cb, ctx, h);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *path)
{
    nftw(path, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/*
 * Opens and locks a scratch directory (the lock ends with the process that holds it); -1 with
 * errno EWOULDBLOCK when another process holds it, ENOENT when it is gone.
 */
static int work_dir_lock(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    int e = 0;
    if (flock(fd, LOCK_EX | LOCK_NB))
        e = errno;
    else if (fstat(fd, &st) || st.st_nlink == 0)
        e = ENOENT; /* removed between open and flock */
    if (!e)
        return fd;
    close(fd);
    errno = e;
    return -1;
}

/* Removes a scratch entry unless a running attempt holds its lock; true when removed. */
static bool remove_unless_locked(const char *path)
{
    int fd = work_dir_lock(path);
    if (fd < 0 && (errno == EWOULDBLOCK || errno == ENOENT))
        return false;
    remove_tree(path); /* unlocked, or not a directory of ours */
    if (fd >= 0)
        close(fd);
    return true;
}

char *store_work_dir_new(const struct store *s, const char *task_id, int *lock_fd, char *err,
                         size_t errlen)
{
    char nonce[UUID_STR_LEN + 1];
    uuid_v4_new(nonce);
    char *path = xasprintf("%s/%s.%.8s", s->work, task_id, nonce);
    *lock_fd = -1;
    if (mkdir(path, 0700)) {
        snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
        free(path);
        return NULL;
    }
    *lock_fd = work_dir_lock(path);
    if (*lock_fd < 0) { /* another delivery removed it before we locked it */
        snprintf(err, errlen, "lock %s: %s", path, strerror(errno));
        remove_tree(path);
        free(path);
        return NULL;
    }
    return path;
}

void store_work_dir_remove(const char *work_dir, int lock_fd)
{
    remove_tree(work_dir);
    if (lock_fd >= 0)
        close(lock_fd);
}

void store_work_dir_remove_task(const struct store *s, const char *task_id)
{
    size_t n = strlen(task_id);
    DIR *d = opendir(s->work);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, task_id, n) != 0 || e->d_name[n] != '.')
            continue;
        char *path = xasprintf("%s/%s", s->work, e->d_name);
        if (remove_unless_locked(path))
            log_msg(LOG_INFO, "store", "task=%s removed scratch of an earlier run", task_id);
        else
            log_msg(LOG_INFO, "store", "task=%s scratch of an earlier run in use; kept", task_id);
        free(path);
    }
    if (d)
        closedir(d);
}

void store_sweep_work(const struct store *s, long max_age_s)
{
    DIR *d = opendir(s->work);
    if (!d)
        return;
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *path = xasprintf("%s/%s", s->work, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && now - st.st_mtime > max_age_s && remove_unless_locked(path))
            log_msg(LOG_INFO, "store", "removed stale scratch directory %s", e->d_name);
        free(path);
    }
    closedir(d);
}

static enum ia_err errno_to_err(int e)
{
    return (e == ENOSPC || e == EDQUOT || e == EFBIG) ? IA_ERR_STORAGE_FULL : IA_ERR_IO;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

enum ia_err store_publish(const struct store *s, const char *src_path, const char *video_id,
                          const char *ext)
{
    if (s->remote)
        return store_remote_publish(s->remote, src_path, video_id, ext);
    enum ia_err result = IA_OK;
    char *final = store_path(s, video_id, ext);
    if (fsync_path(src_path, O_RDONLY) || rename(src_path, final) ||
        fsync_path(s->dir, O_RDONLY | O_DIRECTORY)) {
        result = errno_to_err(errno);
        log_msg(LOG_ERROR, "store", "publishing %s.%s failed: %s", video_id, ext,
                strerror(errno));
        unlink(src_path);
    }
    free(final);
    return result;
}

long long store_free_bytes(const struct store *s)
{
    struct statvfs v;
    if (statvfs(s->dir, &v))
        return -1;
    return (long long)v.f_bavail * (long long)v.f_frsize;
}

bool store_writable(const struct store *s)
{
    char *probe = xasprintf("%s/.writable-%d", s->work, (int)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0;
    if (ok) {
        close(fd);
        unlink(probe);
    }
    free(probe);
    return ok;
}

const char *store_entry_video(const char *name, char id[UUID_STR_LEN + 1])
{
    if (strncmp(name, STORE_FILE_PREFIX, sizeof(STORE_FILE_PREFIX) - 1) != 0)
        return NULL;
    const char *p = name + sizeof(STORE_FILE_PREFIX) - 1;
    if (strlen(p) < UUID_STR_LEN + 2 || p[UUID_STR_LEN] != '.' ||
        !uuid_is_canonical(p, UUID_STR_LEN))
        return NULL;
    memcpy(id, p, UUID_STR_LEN);
    id[UUID_STR_LEN] = '\0';
    return p + UUID_STR_LEN + 1;
}
