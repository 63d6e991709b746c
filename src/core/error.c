/* Error codes and their client-facing messages. */
#include "core/error.h"

static const struct {
    const char *code;
    const char *message;
    bool transient;
} errors[IA_ERR__COUNT] = {
    [IA_OK] = {"ok", "success", false},
    [IA_ERR_INVALID] = {"invalid_input", "the input is not valid", false},
    [IA_ERR_NOT_FOUND] = {"not_found", "not found", false},
    [IA_ERR_IO] = {"storage_error", "the file could not be stored", true},
    [IA_ERR_BROKER] = {"broker_unavailable", "the task queue is unavailable", true},
    [IA_ERR_BROKER_UNSURE] = {"broker_unavailable", "the task queue is unavailable", true},
    [IA_ERR_URL_NOT_ALLOWED] = {"url_not_allowed", "the video URL is not allowed", false},
    [IA_ERR_FETCH_NETWORK] = {"fetch_network_error", "the video could not be downloaded", true},
    [IA_ERR_FETCH_HTTP] = {"fetch_http_error", "the video server answered with an error", false},
    [IA_ERR_FETCH_TRANSIENT] = {"fetch_http_error", "the video server is temporarily failing",
                                true},
    [IA_ERR_TOO_LARGE] = {"too_large", "the video is larger than allowed", false},
    [IA_ERR_TOO_LONG] = {"too_long", "the video is longer than allowed", false},
    [IA_ERR_NOT_A_VIDEO] = {"not_a_video", "the file is not a video", false},
    [IA_ERR_DECODE] = {"decode_error", "the video is corrupt or truncated", false},
    [IA_ERR_TRANSCODE] = {"transcode_error", "the video could not be converted", false},
    [IA_ERR_TIMEOUT] = {"timeout", "processing took longer than allowed", false},
    [IA_ERR_STORAGE_FULL] = {"storage_full", "there is no space left to store the video", false},
    [IA_ERR_WORKER_LOST] = {"worker_lost", "the worker stopped too many times while processing the video", false},
    [IA_ERR_STORAGE_DENIED] = {"storage_denied", "the object store refused the credentials",
                               false},
    [IA_ERR_STORAGE_UNAVAILABLE] = {"storage_unavailable", "the object store is unavailable",
                                    true},
    [IA_ERR_INTERNAL] = {"internal_error", "an internal error occurred", false},
};

const char *ia_err_code(enum ia_err err)
{
    return (unsigned)err < IA_ERR__COUNT ? errors[err].code : "internal_error";
}

const char *ia_strerror(enum ia_err err)
{
    return (unsigned)err < IA_ERR__COUNT ? errors[err].message : "an internal error occurred";
}

bool ia_err_is_transient(enum ia_err err)
{
    return (unsigned)err < IA_ERR__COUNT && errors[err].transient;
}
