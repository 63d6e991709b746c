/*
 * The source of a task whose argument is "upload:<id>": the staged upload is used in place of a
 * download (where it lies on a local store, downloaded from the bucket into the scratch
 * directory otherwise), described as a fetch would be (bytes and SHA-256), and removed once the
 * task is over.
 */
#include "worker/task.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"
#include "store/store_upload.h"
#include "util/crypto.h"

enum ia_err task_upload_source(const struct task_env *env, const char *upload_id,
                               const char *scratch_path, char **input_path, json_t **facts,
                               char *detail, size_t detaillen)
{
    *facts = NULL;
    enum ia_err err =
        store_upload_input(env->store, env->queue, upload_id, scratch_path, input_path);
    if (err == IA_ERR_NOT_FOUND) {
        snprintf(detail, detaillen, "upload %s is missing or unfinished", upload_id);
        return err;
    }
    if (err) {
        snprintf(detail, detaillen, "upload %s cannot be read from the store now", upload_id);
        return err;
    }
    uint64_t bytes = 0;
    char sha256[65];
    if (!crypto_sha256_file(*input_path, &bytes, sha256)) {
        snprintf(detail, detaillen, "upload %s cannot be read", upload_id);
        free(*input_path);
        *input_path = NULL;
        return IA_ERR_IO;
    }
    char url[80];
    snprintf(url, sizeof(url), "upload:%s", upload_id);
    *facts = json_pack("{s:s, s:n, s:I, s:s}", "url", url, "final_url", "bytes", (json_int_t)bytes,
                       "sha256", sha256);
    return IA_OK;
}

void task_upload_release(const struct task_env *env, const char *upload_id, const char *task_id)
{
    log_msg(LOG_INFO, "worker", "task=%s removing staged upload=%s", task_id, upload_id);
    store_upload_remove(env->store, env->queue, upload_id);
}
