/*
 * Process-wide counters and histograms, and their rendering in Prometheus's text exposition
 * format (version 0.0.4). Recording is a relaxed atomic add on a fixed array, so any thread
 * (serve's event loops, the worker's slots) records without a lock; a scrape reads every cell
 * and renders the sums. Every label value comes from a closed set (route patterns registered at
 * start, method and status tables, stage and outcome enums, error codes), never from a request.
 * No project dependencies beyond core/.
 */
#ifndef IA_METRICS_METRICS_H
#define IA_METRICS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* The Content-Type of a scrape. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Route labels: id 0 is "unmatched" (no route of the table took the request). */
#define METRICS_ROUTES_MAX 64
#define METRICS_ROUTE_UNMATCHED 0

/*
 * The id of a route label, registering it on first use (label is borrowed and must live as
 * long as the process: a route table's pattern). Thread-safe. Past METRICS_ROUTES_MAX labels,
 * METRICS_ROUTE_UNMATCHED.
 */
int metrics_route_id(const char *label);
/* The label of a route id ("unmatched" for an unknown id). */
const char *metrics_route_label(int route_id);

/*
 * One answered request: its route id, method name ("GET", ...; any other counts as "OTHER"),
 * status, the bytes of its response body handed to the connection, and the time from its
 * arrival to its answer in nanoseconds.
 */
void metrics_http_observe(int route_id, const char *method, int status, uint64_t body_bytes,
                          uint64_t duration_ns);

/* Bytes written to a client's socket (status line, headers and body; files by sendfile). */
void metrics_http_sent(uint64_t bytes);

/* Where a task's delivery ended. */
enum metrics_task_outcome {
    METRICS_TASK_SUCCESS,  /* SUCCESS written */
    METRICS_TASK_FAILURE,  /* FAILURE written, with its error code */
    METRICS_TASK_RETRY,    /* a transient failure: RETRY written, the task runs again */
    METRICS_TASK_RETURNED, /* interrupted (shutdown, lease lost): back to the queue */
    METRICS_TASK_DELETED,  /* its video was deleted meanwhile: dropped */
    METRICS_TASK__COUNT
};
/* Counts one outcome; code is the error (IA_OK for success, returned, deleted). */
void metrics_task_outcome(enum metrics_task_outcome outcome, enum ia_err code);

/* The stages of a task, in order. */
enum metrics_stage {
    METRICS_STAGE_FETCH,   /* download, or the staged upload looked up */
    METRICS_STAGE_PROCESS, /* probe, remux or transcode, poster */
    METRICS_STAGE_ANALYSE, /* the interview analysis (skipped when off) */
    METRICS_STAGE_PUBLISH, /* metadata written, files published */
    METRICS_STAGE__COUNT
};
/* The stage's name as logs and labels show it ("fetch", ...). */
const char *metrics_stage_name(enum metrics_stage stage);
/* One stage run (successful or not) that took ms milliseconds. */
void metrics_task_stage(enum metrics_stage stage, int64_t ms);

/* Webhook deliveries (for the webhook sender): one call per attempt. */
enum metrics_webhook_outcome {
    METRICS_WEBHOOK_DELIVERED, /* the receiver answered 2xx */
    METRICS_WEBHOOK_RETRY,     /* failed, will be tried again */
    METRICS_WEBHOOK_FAILED,    /* failed for good (attempts exhausted, or refused by policy) */
    METRICS_WEBHOOK__COUNT
};
void metrics_webhook_attempt(enum metrics_webhook_outcome outcome);

/* The worker's slots: how many it has, and one more (+1) or one fewer (-1) busy. */
void metrics_worker_slots_set(int total);
void metrics_worker_busy_add(int delta);

/* What a scrape shows beyond the counters. */
enum metrics_role { METRICS_ROLE_SERVE, METRICS_ROLE_WORKER };
struct metrics_scrape {
    enum metrics_role role; /* the worker adds its task, stage and slot series */
    long long queue_depth;  /* messages waiting (LLEN); < 0: Redis did not answer */
};

/* Renders every series into a new string (the caller frees it); *len receives its length. */
char *metrics_render(const struct metrics_scrape *s, size_t *len);

/*
 * Escapes a label value as the format requires (backslash, double quote and line feed become
 * \\, \" and \n; other bytes pass as they are) into out (cap bytes, always terminated, cut at
 * an escape boundary). Returns the length written.
 */
size_t metrics_escape_label(char *out, size_t cap, const char *in);
/* The same for HELP text: only backslash and line feed are escaped. */
size_t metrics_escape_help(char *out, size_t cap, const char *in);

/* Zeroes every counter and forgets the route labels (for unit tests). */
void metrics_reset(void);

#endif
