/*
 * Deletion of whole videos: every processed_<video_id>.* file (video, metadata, poster, events,
 * review rendition, evidence frames), and the list of complete videos older than a date that
 * retention deletes. One pass over the directory serves any number of videos.
 */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "store/store_s3.h"

static int id_cmp(const void *a, const void *b)
{
    return strcmp(((const struct store_video_id *)a)->id, ((const struct store_video_id *)b)->id);
}

/* True when the entry's metadata is a regular file last changed before `before`. */
static bool metadata_older(int dir_fd, const char *name, time_t before)
{
    struct stat st;
    return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
           st.st_mtime < before;
}

enum ia_err store_list_older(const struct store *s, time_t before, size_t max,
                             struct store_video_id **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (store_remote_of(s))
        return store_remote_list_older(store_remote_of(s), before, max, ids, n);
    DIR *d = opendir(store_dir(s));
    if (!d)
        return IA_ERR_IO;
    size_t cap = 0;
    struct dirent *e;
    char id[UUID_STR_LEN + 1];
    while (*n < max && (e = readdir(d))) {
        const char *ext = store_entry_video(e->d_name, id);
        if (!ext || strcmp(ext, "json") != 0 || !metadata_older(dirfd(d), e->d_name, before))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *ids = xrealloc(*ids, cap * sizeof(**ids));
        }
        memcpy((*ids)[(*n)++].id, id, sizeof(id));
    }
    closedir(d);
    if (*n)
        qsort(*ids, *n, sizeof(**ids), id_cmp);
    return IA_OK;
}

/* Removes DIR/processed_<id>.<ext>; true when it was there and is gone. */
static bool unlink_one(int dir_fd, const char *id, const char *ext, enum ia_err *err)
{
    char name[(sizeof(STORE_FILE_PREFIX) - 1) + UUID_STR_LEN + 64];
    snprintf(name, sizeof(name), STORE_FILE_PREFIX "%s.%s", id, ext);
    if (unlinkat(dir_fd, name, 0) == 0)
        return true;
    if (errno != ENOENT) {
        log_msg(LOG_ERROR, "store", "video=%s cannot remove %s: %s", id, name, strerror(errno));
        *err = IA_ERR_IO;
    }
    return false;
}

/* The rest of the files of the listed videos, in one pass over the directory. */
static enum ia_err remove_rest(DIR *d, const struct store_video_id *ids, size_t n, size_t *removed)
{
    enum ia_err err = IA_OK;
    struct dirent *e;
    struct store_video_id key;
    while ((e = readdir(d))) {
        const char *ext = store_entry_video(e->d_name, key.id);
        const struct store_video_id *hit = ext ? bsearch(&key, ids, n, sizeof(*ids), id_cmp) : NULL;
        if (hit && unlink_one(dirfd(d), hit->id, ext, &err) && removed)
            removed[hit - ids]++;
    }
    return err;
}

enum ia_err store_remove_videos(const struct store *s, const struct store_video_id *ids, size_t n,
                                size_t *removed)
{
    if (n == 0)
        return IA_OK; /* ids may be NULL: nothing to look for */
    if (removed)
        memset(removed, 0, n * sizeof(*removed));
    if (store_remote_of(s))
        return store_remote_remove(store_remote_of(s), ids, n, removed);
    DIR *d = opendir(store_dir(s));
    if (!d)
        return IA_ERR_IO;
    enum ia_err err = IA_OK;
    for (size_t i = 0; i < n; i++) /* first: the video stops being complete */
        if (unlink_one(dirfd(d), ids[i].id, "json", &err) && removed)
            removed[i]++;
    enum ia_err rest = remove_rest(d, ids, n, removed);
    if (fsync(dirfd(d)) && !err)
        err = IA_ERR_IO;
    closedir(d);
    return err ? err : rest;
}
