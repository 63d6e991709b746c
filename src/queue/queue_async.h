/*
 * Nonblocking Redis for an HTTP loop (queue_async.c): a submit written and published through the
 * loop's own connections, answered later on the loop. Only queue/ includes hiredis.
 */
#ifndef IA_QUEUE_QUEUE_ASYNC_H
#define IA_QUEUE_QUEUE_ASYNC_H

#include <stdbool.h>

#include "core/error.h"

struct event_base;
struct queue;
struct queue_async;
typedef struct json_t json_t;

/*
 * The end of a submit, on the loop: err as queue_submit() returns it. again: nothing was queued
 * and the submit may be run again on blocking connections (this loop's connection failed or was
 * refused), which reconnect and retry on their own.
 */
typedef void (*queue_async_done_fn)(enum ia_err err, bool again, void *arg);

/*
 * Connections for the loop of base, with q's URLs, scripts and limits (q must outlive it); NULL
 * when they cannot be used here (sentinel URLs, a host name to resolve): then everything goes
 * through q's blocking connections.
 */
struct queue_async *queue_async_new(struct queue *q, struct event_base *base);
/* Closes the connections: the submits still waiting end with IA_ERR_BROKER_UNSURE or again. */
void queue_async_free(struct queue_async *a);
/* True when both connections are up and ready; starts connecting those that are not. */
bool queue_async_ready(struct queue_async *a);
/*
 * queue_submit() on the loop's connections: the accepted record, then the message. False when
 * the connections are not ready or the submit cannot be encoded (queue_submit() then says why):
 * done is not called. Else done is called exactly once, later, on the loop.
 */
bool queue_async_submit(struct queue_async *a, const char *task_id, const char *video_url,
                        const json_t *kwargs, queue_async_done_fn done, void *arg);

#endif
