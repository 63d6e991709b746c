/*
 * The list of complete videos as the directory holds it (one pass, with what each file's stat
 * says so that callers can cache what they read from it), and the reviewer's decisions file
 * beside a video: locked on the metadata, published atomically, removed with the video.
 */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "store/store_s3.h"
#include "util/os.h"

static void stamp_from(struct store_stamp *out, const struct stat *st)
{
    out->ino = (unsigned long long)st->st_ino;
    out->size = (long long)st->st_size;
    out->mtime_ns = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
}

/* Fills out with the stamp of a regular file; false when it is missing or not regular. */
static bool stamp_at(int dir_fd, const char *name, struct store_stamp *out)
{
    struct stat st;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
        return false;
    stamp_from(out, &st);
    return true;
}

static int files_cmp(const void *a, const void *b)
{
    return strcmp(((const struct store_video_files *)a)->id,
                  ((const struct store_video_files *)b)->id);
}

/* A decisions file seen in the pass, kept until the metadata files are sorted. */
struct seen_decisions {
    char id[UUID_STR_LEN + 1];
    struct store_stamp stamp;
};

/* Sets the decisions stamp of each video that has one (files sorted by id). */
static void attach_decisions(struct store_video_files *files, size_t n,
                             const struct seen_decisions *dec, size_t n_dec)
{
    for (size_t i = 0; i < n_dec; i++) {
        struct store_video_files key;
        memcpy(key.id, dec[i].id, sizeof(key.id));
        struct store_video_files *hit =
            n ? bsearch(&key, files, n, sizeof(*files), files_cmp) : NULL;
        if (hit)
            hit->decisions = dec[i].stamp;
    }
}

enum ia_err store_scan_videos(const struct store *s, struct store_video_files **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (store_remote_of(s))
        return store_remote_scan(store_remote_of(s), out, n);
    DIR *d = opendir(store_dir(s));
    if (!d)
        return IA_ERR_IO;
    size_t cap = 0, n_dec = 0, cap_dec = 0;
    struct seen_decisions *dec = NULL;
    struct dirent *e;
    char id[UUID_STR_LEN + 1];
    while ((e = readdir(d))) {
        const char *ext = store_entry_video(e->d_name, id);
        struct store_stamp stamp;
        if (!ext || (strcmp(ext, "json") != 0 && strcmp(ext, STORE_DECISIONS_EXT) != 0) ||
            !stamp_at(dirfd(d), e->d_name, &stamp))
            continue;
        if (strcmp(ext, "json") != 0) {
            if (n_dec == cap_dec) {
                cap_dec = cap_dec ? cap_dec * 2 : 16;
                dec = xrealloc(dec, cap_dec * sizeof(*dec));
            }
            memcpy(dec[n_dec].id, id, sizeof(id));
            dec[n_dec++].stamp = stamp;
            continue;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            *out = xrealloc(*out, cap * sizeof(**out));
        }
        struct store_video_files *f = &(*out)[(*n)++];
        memset(f, 0, sizeof(*f));
        memcpy(f->id, id, sizeof(id));
        f->meta = stamp;
    }
    closedir(d);
    if (*n)
        qsort(*out, *n, sizeof(**out), files_cmp);
    attach_decisions(*out, *n, dec, n_dec);
    free(dec);
    return IA_OK;
}

enum ia_err store_video_files_get(const struct store *s, const char *video_id,
                                  struct store_video_files *out)
{
    memset(out, 0, sizeof(*out));
    if (!uuid_is_canonical(video_id, strlen(video_id)))
        return IA_ERR_NOT_FOUND;
    if (store_remote_of(s))
        return store_remote_files_get(store_remote_of(s), video_id, out);
    int dir_fd = open(store_dir(s), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return IA_ERR_IO;
    char name[(sizeof(STORE_FILE_PREFIX) - 1) + UUID_STR_LEN + 32];
    snprintf(name, sizeof(name), STORE_FILE_PREFIX "%s.json", video_id);
    bool found = stamp_at(dir_fd, name, &out->meta);
    snprintf(name, sizeof(name), STORE_FILE_PREFIX "%s." STORE_DECISIONS_EXT, video_id);
    if (found)
        stamp_at(dir_fd, name, &out->decisions);
    close(dir_fd);
    memcpy(out->id, video_id, UUID_STR_LEN + 1);
    return found ? IA_OK : IA_ERR_NOT_FOUND;
}

int store_video_lock(const struct store *s, const char *video_id)
{
    struct stat st, now;
    int fd = store_open(s, video_id, "json", &st);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX) && errno == EINTR)
        ;
    /* A video deleted while we waited has no metadata under its name any more. */
    char *path = store_path(s, video_id, "json");
    bool same = stat(path, &now) == 0 && now.st_ino == st.st_ino && now.st_dev == st.st_dev;
    free(path);
    if (!same) {
        close(fd);
        return -1;
    }
    return fd;
}

void store_video_unlock(int lock_fd)
{
    if (lock_fd >= 0)
        close(lock_fd); /* releases the flock */
}

enum ia_err store_publish_small(const struct store *s, const char *video_id, const char *ext,
                                const char *data, size_t len)
{
    if (store_remote_of(s))
        return store_remote_put_small(store_remote_of(s), video_id, ext, data, len);
    char *tmp_ext = xasprintf("%s.tmp", ext);
    char *tmp = store_path(s, video_id, tmp_ext);
    free(tmp_ext);
    enum ia_err err = IA_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 || !os_write_all(fd, data, len)) {
        err = errno == ENOSPC ? IA_ERR_STORAGE_FULL : IA_ERR_IO;
        log_msg(LOG_ERROR, "store", "video=%s cannot write %s: %s", video_id, ext, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        free(tmp);
        return err;
    }
    close(fd);
    err = store_publish(s, tmp, video_id, ext);
    free(tmp);
    /* A deletion that passed between our lock and the rename: remove what we added. */
    if (err == IA_OK && !store_exists(s, video_id, "json")) {
        char *final = store_path(s, video_id, ext);
        unlink(final);
        free(final);
        err = IA_ERR_NOT_FOUND;
    }
    return err;
}

enum ia_err store_read_small(const struct store *s, const char *video_id, const char *ext,
                             size_t max, char **out, size_t *len, struct store_stamp *stamp)
{
    *out = NULL;
    *len = 0;
    if (!uuid_is_canonical(video_id, strlen(video_id)))
        return IA_ERR_NOT_FOUND;
    if (store_remote_of(s))
        return store_remote_read(store_remote_of(s), video_id, ext, max, out, len);
    struct stat st;
    int fd = store_open(s, video_id, ext, &st);
    if (fd < 0)
        return IA_ERR_NOT_FOUND;
    if (stamp)
        stamp_from(stamp, &st);
    if ((unsigned long long)st.st_size > max) {
        close(fd);
        return IA_ERR_TOO_LARGE;
    }
    size_t size = (size_t)st.st_size, have = 0;
    char *buf = xmalloc(size + 1);
    bool failed = false;
    while (have < size && !failed) {
        ssize_t got = read(fd, buf + have, size - have);
        if (got == 0)
            break;
        if (got > 0)
            have += (size_t)got;
        else
            failed = errno != EINTR;
    }
    close(fd);
    if (failed) {
        free(buf);
        return IA_ERR_IO;
    }
    buf[have] = '\0'; /* a file that shrank meanwhile is read as it is now */
    *out = buf;
    *len = have;
    return IA_OK;
}

enum ia_err store_list_exts(const struct store *s, const char *video_id, const char *ext_prefix,
                            store_ext_cb cb, void *ctx)
{
    if (!store_remote_of(s) || !uuid_is_canonical(video_id, strlen(video_id)))
        return IA_ERR_INVALID;
    return store_remote_list_exts(store_remote_of(s), video_id, ext_prefix, cb, ctx);
}
