/*
 * The worker: WORKER_CONCURRENCY slots that claim process_video tasks from the queue under a
 * lease, a heartbeat (every TASK_LEASE_S/3) that keeps those leases alive, restores expired ones
 * and fails accepted tasks whose message vanished (task_lost), and an orderly shutdown
 * (SIGTERM: stop claiming, let running tasks finish for WORKER_SHUTDOWN_GRACE_S, then return
 * them to the queue; a second SIGINT or SIGTERM: return them at once).
 */
#ifndef IA_WORKER_WORKER_H
#define IA_WORKER_WORKER_H

struct config;

/* Runs until SIGTERM/SIGINT; returns the process exit status. */
int worker_main(const struct config *cfg);

#endif
