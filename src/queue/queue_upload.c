/*
 * Tasks for uploaded files: the same process_video message as for a URL, whose one argument is
 * "upload:<upload_id>" instead of an http(s) URL, so that the message stays a valid Celery call
 * and Python clients keep sending plain URLs.
 */
#include "queue/queue.h"

#include <stdio.h>
#include <string.h>

#include "util/uuid.h"

enum ia_err queue_submit_upload(struct queue *q, const char *task_id, const char *upload_id,
                                const json_t *kwargs)
{
    if (!upload_id || !uuid_is_canonical(upload_id, strlen(upload_id)))
        return IA_ERR_INVALID;
    char arg[sizeof(QUEUE_UPLOAD_PREFIX) + UUID_STR_LEN];
    snprintf(arg, sizeof(arg), "%s%s", QUEUE_UPLOAD_PREFIX, upload_id);
    return queue_submit(q, task_id, arg, kwargs);
}

const char *queue_upload_id(const char *video_arg)
{
    size_t n = sizeof(QUEUE_UPLOAD_PREFIX) - 1;
    if (!video_arg || strncmp(video_arg, QUEUE_UPLOAD_PREFIX, n) != 0)
        return NULL;
    const char *id = video_arg + n;
    return uuid_is_canonical(id, strlen(id)) ? id : NULL;
}
