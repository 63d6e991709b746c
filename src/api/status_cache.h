/*
 * The cache of finished tasks for GET /status, one per process (struct app), shared by its
 * threads. A SUCCESS or FAILURE record never
 * changes, so it may be answered without Redis; entries live at most STATUS_CACHE_TTL_MS so
 * that an expired result (RESULT_TTL) stops being shown soon after.
 */
#ifndef IA_API_STATUS_CACHE_H
#define IA_API_STATUS_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "queue/queue.h"

#define STATUS_CACHE_SLOTS 4096
#define STATUS_CACHE_TTL_MS 60000

struct status_cache;

struct status_cache *status_cache_new(void);
void status_cache_free(struct status_cache *c);
/* Fills out (without a result dict) and returns true when task_id is cached and fresh. */
bool status_cache_get(struct status_cache *c, const char *task_id, int64_t now_ms,
                      struct task_status *out, char *video_id, size_t video_id_len);
/* Remembers a finished task; st->state must be TASK_SUCCEEDED or TASK_FAILED. */
void status_cache_put(struct status_cache *c, const char *task_id, const struct task_status *st,
                      const char *video_id, int64_t now_ms);

#endif
