/* One process_video task from claim to acknowledgement: the stages and their results. */
#ifndef IA_WORKER_TASK_H
#define IA_WORKER_TASK_H

#include <stdatomic.h>
#include <stddef.h>

#include "core/error.h"

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

/*
 * The input of a task for a direct upload (task_upload.c): the staged file's path in
 * *input_path (the caller frees it; scratch_path when the bytes came from a bucket) and its
 * description as a source in *facts (url "upload:<id>", bytes, sha256; a new reference).
 * IA_ERR_NOT_FOUND when the upload is missing or unfinished; IA_ERR_STORAGE_UNAVAILABLE or
 * IA_ERR_BROKER when the bucket or Redis cannot be asked now.
 */
typedef struct json_t json_t;
enum ia_err task_upload_source(const struct task_env *env, const char *upload_id,
                               const char *scratch_path, char **input_path, json_t **facts,
                               char *detail, size_t detaillen);
/* Removes the staged upload once its task is over (success or final failure). */
void task_upload_release(const struct task_env *env, const char *upload_id, const char *task_id);

/* Runs one claimed task to a final state (or to an interruption). */
enum task_outcome task_run(const struct task_env *env, const struct claimed_task *t);

#endif
