/* One process_video task from claim to acknowledgement: the stages and their results. */
#ifndef IA_WORKER_TASK_H
#define IA_WORKER_TASK_H

#include <stdatomic.h>

struct config;
struct store;
struct netpolicy;
struct queue;
struct claimed_task;

struct task_env {
    const struct config *cfg;
    const struct store *store;
    const struct netpolicy *policy;
    struct queue *queue;        /* this slot's own connection */
    const atomic_bool *cancel;  /* set when the task must stop now (shutdown, lease lost) */
    const atomic_bool *draining;
};

/* What the slot does with the message afterwards. */
enum task_outcome {
    TASK_OUTCOME_ACK,     /* a final state was written: remove the message */
    TASK_OUTCOME_REQUEUE, /* interrupted: put it back for another worker */
};

/* Runs one claimed task to a final state (or to an interruption). */
enum task_outcome task_run(const struct task_env *env, const struct claimed_task *t);

#endif
