/*
 * GET /metrics: the process's counters in Prometheus's text format, with the queue's depth read
 * from Redis at scrape time (bounded by the queue's 1 s timeouts; an outage shows
 * interview_redis_up 0 and the rest as usual). Access class ACCESS_API: docs/metrics.md says why.
 */
#include <stdlib.h>

#include "api/internal.h"
#include "http/http.h"
#include "metrics/metrics.h"
#include "queue/queue.h"

void api_metrics(struct api_call *call)
{
    struct metrics_scrape scrape = {METRICS_ROLE_SERVE, queue_length(call->t->queue)};
    size_t len = 0;
    char *text = metrics_render(&scrape, &len);
    http_reply_header(call->req, "Cache-Control", "no-store");
    http_reply_body(call->req, 200, METRICS_CONTENT_TYPE, text, len);
    free(text);
}
