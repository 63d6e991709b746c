/*
 * The S3 back end of the store (inside store/ only): with STORAGE_URL=s3://bucket/prefix,
 * published results go to the bucket as prefix/processed_<id>.<ext>, metadata last, and are
 * removed from it metadata first. A pool of S3 clients (one curl handle each) serves the
 * threads that publish or look at the same time.
 */
#ifndef IA_STORE_STORE_S3_H
#define IA_STORE_STORE_S3_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/error.h"
#include "store/store.h"

struct store_remote;

/* NULL with a message in err when the S3 configuration is incomplete or invalid. */
struct store_remote *store_remote_new(const struct config *cfg, char *err, size_t errlen);
void store_remote_free(struct store_remote *r);
/* The remote of a store, or NULL when results stay in the directory. */
struct store_remote *store_remote_of(const struct store *s);
/*
 * A client of the pool for this thread (an idle one, else a new one; NULL only when a new one
 * cannot be made), handed back with store_remote_give().
 */
struct s3 *store_remote_take(struct store_remote *r);
void store_remote_give(struct store_remote *r, struct s3 *s);
/* The configuration the remote was made with. */
const struct config *store_remote_config(const struct store_remote *r);
/* Uploads src_path as processed_<video_id>.<ext>, then removes src_path (also on failure). */
enum ia_err store_remote_publish(struct store_remote *r, const char *src_path, const char *video_id,
                                 const char *ext);
/* True when processed_<video_id>.<ext> is in the bucket (false also when it cannot be asked). */
bool store_remote_exists(struct store_remote *r, const char *video_id, const char *ext);
/* store_lookup() for the bucket: a HEAD; IA_ERR_STORAGE_UNAVAILABLE for any failure to ask. */
enum ia_err store_remote_lookup(struct store_remote *r, const char *video_id, const char *ext,
                                struct store_object_head *h);
/* store_presign() for the bucket (no request is made). */
char *store_remote_presign(struct store_remote *r, const char *method, const char *video_id,
                           const char *ext, long long ttl_s, const char *disposition,
                           const char *content_type);
/* store_get_stream() for the bucket. */
enum ia_err store_remote_get_stream(struct store_remote *r, const char *video_id, const char *ext,
                                    const char *method, const struct store_conditions *c,
                                    store_body_cb cb, void *ctx, struct store_object_head *h);
/* store_remove_videos() for the bucket: every metadata object first, then the rest. */
enum ia_err store_remote_remove(struct store_remote *r, const struct store_video_id *ids, size_t n,
                                size_t *removed);


/* Reads of the bucket (store_s3_list.c): each is the function of store.h without "remote". */
enum ia_err store_remote_scan(struct store_remote *r, struct store_video_files **out, size_t *n);
enum ia_err store_remote_files_get(struct store_remote *r, const char *video_id,
                                   struct store_video_files *out);
enum ia_err store_remote_list_older(struct store_remote *r, time_t before, size_t max,
                                    struct store_video_id **ids, size_t *n);
enum ia_err store_remote_read(struct store_remote *r, const char *video_id, const char *ext,
                              size_t max, char **out, size_t *len);
enum ia_err store_remote_list_exts(struct store_remote *r, const char *video_id,
                                   const char *ext_prefix, store_ext_cb cb, void *ctx);
enum ia_err store_remote_put_small(struct store_remote *r, const char *video_id, const char *ext,
                                   const char *data, size_t len);

#endif
