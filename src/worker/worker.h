/*
 * The worker: WORKER_CONCURRENCY slots that claim process_video tasks from the queue under a
 * lease, a heartbeat that keeps those leases alive and restores expired ones, and an orderly
 * shutdown (SIGTERM: finish or return running tasks; a second SIGINT: stop at once).
 */
#ifndef IA_WORKER_WORKER_H
#define IA_WORKER_WORKER_H

struct config;

/* Runs until SIGTERM/SIGINT; returns the process exit status. */
int worker_main(const struct config *cfg);

#endif
