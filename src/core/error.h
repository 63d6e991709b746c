/* The project's one error enum, with a stable machine code and a client-safe message for each. */
#ifndef IA_CORE_ERROR_H
#define IA_CORE_ERROR_H

#include <stdbool.h>

enum ia_err {
    IA_OK = 0,
    IA_ERR_INVALID,          /* bad input from a caller */
    IA_ERR_NOT_FOUND,        /* no such task, video or file */
    IA_ERR_IO,               /* local file-system failure */
    IA_ERR_BROKER,           /* Redis unreachable or answered with an error */
    IA_ERR_BROKER_UNSURE,    /* Redis stopped answering a write it may have applied */
    IA_ERR_URL_NOT_ALLOWED,  /* scheme, port, user-info or address refused */
    IA_ERR_FETCH_NETWORK,    /* connect, DNS or transfer failure */
    IA_ERR_FETCH_HTTP,       /* the origin answered with an HTTP error */
    IA_ERR_FETCH_TRANSIENT,  /* the origin answered 5xx or 429: worth a retry */
    IA_ERR_TOO_LARGE,        /* more bytes than MAX_DOWNLOAD_BYTES */
    IA_ERR_TOO_LONG,         /* longer than MAX_DURATION_S */
    IA_ERR_NOT_A_VIDEO,      /* no video stream */
    IA_ERR_DECODE,           /* corrupt or truncated media */
    IA_ERR_TRANSCODE,        /* ffmpeg failed on a file that probed well */
    IA_ERR_TIMEOUT,          /* a time limit ran out */
    IA_ERR_STORAGE_FULL,     /* no space left on the output device */
    IA_ERR_WORKER_LOST,      /* TASK_MAX_DELIVERIES deliveries each ended with their worker */
    IA_ERR_STORAGE_DENIED,   /* the object store refused our credentials or signature (403) */
    IA_ERR_STORAGE_UNAVAILABLE, /* the object store is unreachable or failing (5xx): retry */
    IA_ERR_INTERNAL,         /* a bug or an impossible state */
    IA_ERR__COUNT
};

/* The stable machine code, e.g. "fetch_http_error". */
const char *ia_err_code(enum ia_err err);
/* A message for clients: no paths, no command lines, no library strings. */
const char *ia_strerror(enum ia_err err);
/* True when trying the same work again later may succeed. */
bool ia_err_is_transient(enum ia_err err);

#endif
