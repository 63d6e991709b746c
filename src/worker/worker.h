/*
 * The worker: WORKER_CONCURRENCY slots that claim process_video tasks from the queue under a
 * lease, a heartbeat (every TASK_LEASE_S/3) that keeps those leases alive, restores expired ones
 * and fails accepted tasks whose message vanished (task_lost), and an orderly shutdown
 * (SIGTERM: stop claiming, let running tasks finish for WORKER_SHUTDOWN_GRACE_S, then return
 * them to the queue; a second SIGINT or SIGTERM: return them at once).
 */
#ifndef IA_WORKER_WORKER_H
#define IA_WORKER_WORKER_H

#include <stdbool.h>

struct config;

/* Runs until SIGTERM/SIGINT; returns the process exit status. */
int worker_main(const struct config *cfg);

/*
 * The worker's GET /metrics (metrics_server.c) on WORKER_METRICS_ADDR:WORKER_METRICS_PORT, in a
 * thread of its own (start it with SIGINT and SIGTERM blocked). *out is NULL when the port is 0.
 * False, logged, when it cannot listen.
 */
struct worker_metrics;
bool worker_metrics_start(const struct config *cfg, struct worker_metrics **out);
/* Stops it and frees it; NULL is fine. */
void worker_metrics_stop(struct worker_metrics *wm);

#endif
