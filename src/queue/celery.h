/*
 * The Celery wire formats, as pure functions with no I/O: protocol v2 task messages in kombu's
 * Redis-transport envelope, and the result-backend records (celery-task-meta-<id>).
 * Formats checked against celery 5.2 / kombu 5.2 (see tests/blackbox/celery_interop_checks.md).
 */
#ifndef IA_QUEUE_CELERY_H
#define IA_QUEUE_CELERY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

typedef struct json_t json_t;

/* Limits on what we accept from the queue; everything bigger is refused, never truncated. */
#define CELERY_MAX_MESSAGE_BYTES (1024 * 1024)
#define CELERY_MAX_ID_LEN 63 /* task ids and delivery tags */
#define CELERY_MAX_TASK_NAME_LEN 255
#define CELERY_ARGSREPR_MAX 1024 /* celery's argsrepr_maxsize */

/* Optional fields of an outgoing message; NULL or zero fields take defaults. */
struct celery_msg_opts {
    const char *delivery_tag; /* default: a new random UUID */
    const char *origin;       /* default: "interview-api@<hostname>" */
    int retries;              /* headers.retries */
    const json_t *kwargs;     /* the keyword arguments, an object (borrowed); default: {} */
};

/* A decoded message. Strings are owned; free with celery_message_cleanup(). */
struct celery_message {
    char task_id[CELERY_MAX_ID_LEN + 1];
    char delivery_tag[CELERY_MAX_ID_LEN + 1];
    char *task_name;
    json_t *args;   /* array */
    json_t *kwargs; /* object */
    int retries;
};

/*
 * Builds the kombu envelope (JSON text) for a protocol v2 call of task_name(*args, **kwargs)
 * with id task_id; args must be a JSON array (borrowed), opts->kwargs an object or NULL.
 * Returns a heap string, or NULL when args is not an array, kwargs not an object, or an id is
 * empty or longer than CELERY_MAX_ID_LEN.
 */
char *celery_message_encode(const char *task_id, const char *task_name, const json_t *args,
                            const struct celery_msg_opts *opts);

/*
 * Parses and validates an envelope taken from the queue. Never trusts the input: returns
 * IA_ERR_INVALID with a reason in err (which may be NULL) for anything that is not a well-formed
 * protocol v2 JSON message; out is then left empty.
 */
enum ia_err celery_message_decode(const char *raw, size_t len, struct celery_message *out,
                                  char *err, size_t errlen);
void celery_message_cleanup(struct celery_message *m);

/*
 * Builds the value of celery-task-meta-<task_id> as Celery's backend writes it:
 * {"status", "result", "traceback", "children": [], "date_done", "task_id"}.
 * result is borrowed (NULL means JSON null); date_done is set from now (Unix seconds, UTC) for
 * the ready states SUCCESS, FAILURE and REVOKED and is null otherwise. traceback may be NULL.
 */
char *celery_result_encode(const char *task_id, const char *status, const json_t *result,
                           const char *traceback, double now);

/*
 * The result dict of a FAILURE or RETRY record: an exception Celery rebuilds as
 * builtins.RuntimeError(message), plus our machine code in "code". Returns a new reference.
 */
json_t *celery_exception_new(const char *code, const char *message);

/* True when status is one Celery stores an exception for (FAILURE, RETRY, REVOKED). */
bool celery_status_is_exception(const char *status);

/* Formats now (Unix seconds, UTC) as Python's datetime.isoformat() does; buf holds >= 27. */
void celery_isoformat(double now, char *buf, size_t buflen);

/* Standard base64 with padding; returns a heap string. */
char *celery_base64_encode(const unsigned char *in, size_t len);
/* Strict standard base64 (padding optional, no whitespace); NULL on any bad byte. */
unsigned char *celery_base64_decode(const char *in, size_t len, size_t *outlen);

/* Python's repr() of a JSON array of strings, numbers, booleans and null, capped like saferepr. */
char *celery_argsrepr(const json_t *args);
/*
 * The same for a JSON object of such values (kwargsrepr): "{'analysis': False}". kwargs is not
 * changed (jansson iterates objects through non-const pointers only).
 */
char *celery_kwargsrepr(json_t *kwargs);

#endif
