/* Tests for metrics/metrics.c: label and help escaping, route labels, and the rendered text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"

static void test_label_escaping(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(metrics_escape_label(out, sizeof(out), "/status/{task_id}"), 17);
    assert_string_equal(out, "/status/{task_id}");
    metrics_escape_label(out, sizeof(out), "a\"b\\c\nd");
    assert_string_equal(out, "a\\\"b\\\\c\\nd");
    /* Other bytes pass as they are: tabs, carriage returns, UTF-8. */
    metrics_escape_label(out, sizeof(out), "t\tr\r\xc3\xa9");
    assert_string_equal(out, "t\tr\r\xc3\xa9");
    metrics_escape_label(out, sizeof(out), "");
    assert_string_equal(out, "");
}

static void test_label_escaping_cuts_between_escapes(void **state)
{
    (void)state;
    char out[5];
    /* "abc" fits; \" would end at byte 5, where the terminator must go: cut before it. */
    assert_int_equal(metrics_escape_label(out, sizeof(out), "abc\"d"), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(metrics_escape_label(out, sizeof(out), "ab\"d"), 4);
    assert_string_equal(out, "ab\\\"");
    assert_int_equal(metrics_escape_label(out, sizeof(out), "abc\\"), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(metrics_escape_label(out, sizeof(out), "abcdefgh"), 4);
    assert_string_equal(out, "abcd");
    assert_int_equal(metrics_escape_label(out, 0, "x"), 0);
}

static void test_help_escaping(void **state)
{
    (void)state;
    char out[64];
    metrics_escape_help(out, sizeof(out), "say \"hi\"\\\nbye");
    assert_string_equal(out, "say \"hi\"\\\\\\nbye"); /* quotes stay, \ and newline escaped */
}

static void test_route_ids(void **state)
{
    (void)state;
    metrics_reset();
    int a = metrics_route_id("/a");
    int b = metrics_route_id("/b/{id}");
    assert_int_not_equal(a, METRICS_ROUTE_UNMATCHED);
    assert_int_not_equal(a, b);
    assert_int_equal(metrics_route_id("/a"), a); /* by value, not by pointer */
    assert_string_equal(metrics_route_label(b), "/b/{id}");
    assert_string_equal(metrics_route_label(METRICS_ROUTE_UNMATCHED), "unmatched");
    assert_string_equal(metrics_route_label(-1), "unmatched");
    assert_string_equal(metrics_route_label(METRICS_ROUTES_MAX + 5), "unmatched");
    static char names[METRICS_ROUTES_MAX][16];
    int last = 0;
    for (int i = 0; i < METRICS_ROUTES_MAX; i++) {
        snprintf(names[i], sizeof(names[i]), "/r%d", i);
        last = metrics_route_id(names[i]);
    }
    assert_int_equal(last, METRICS_ROUTE_UNMATCHED); /* the table is full */
    metrics_reset();
}

static char *render(enum metrics_role role, long long depth)
{
    struct metrics_scrape s = {role, depth};
    size_t len = 0;
    char *text = metrics_render(&s, &len);
    assert_int_equal(strlen(text), len);
    assert_true(len > 0 && text[len - 1] == '\n');
    assert_null(strstr(text, "\n\n"));
    return text;
}

static void assert_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return;
    fail_msg("missing line: %s", line);
}

static void test_http_series(void **state)
{
    (void)state;
    metrics_reset();
    int r = metrics_route_id("/status/{task_id}");
    int q = metrics_route_id("/odd\"label\\");
    metrics_http_observe(r, "GET", 200, 100, 1000000);       /* exactly 1 ms: in le="0.001" */
    metrics_http_observe(r, "GET", 200, 50, 1001000);        /* just above: le="0.0025" */
    metrics_http_observe(r, "HEAD", 404, 0, 20000000000ull); /* 20 s: only +Inf */
    metrics_http_observe(q, "BREW", 418, 7, 0);
    metrics_http_observe(METRICS_ROUTE_UNMATCHED, "GET", 404, 41, 5000);
    metrics_http_sent(1000);
    metrics_http_sent(234);
    char *t = render(METRICS_ROLE_SERVE, 3);
    const char *h = "interview_http_request_duration_seconds";
    assert_line(t, "# TYPE interview_http_requests_total counter");
    assert_line(t, "interview_http_requests_total{route=\"/status/{task_id}\",method=\"GET\","
                   "status=\"200\"} 2");
    assert_line(t, "interview_http_requests_total{route=\"/status/{task_id}\",method=\"HEAD\","
                   "status=\"404\"} 1");
    assert_line(t, "interview_http_requests_total{route=\"/odd\\\"label\\\\\",method=\"OTHER\","
                   "status=\"4xx\"} 1");
    assert_line(t, "interview_http_requests_total{route=\"unmatched\",method=\"GET\","
                   "status=\"404\"} 1");
    char line[256];
    snprintf(line, sizeof(line), "%s_bucket{route=\"/status/{task_id}\",le=\"0.001\"} 1", h);
    assert_line(t, line);
    snprintf(line, sizeof(line), "%s_bucket{route=\"/status/{task_id}\",le=\"0.0025\"} 2", h);
    assert_line(t, line);
    snprintf(line, sizeof(line), "%s_bucket{route=\"/status/{task_id}\",le=\"10\"} 2", h);
    assert_line(t, line);
    snprintf(line, sizeof(line), "%s_bucket{route=\"/status/{task_id}\",le=\"+Inf\"} 3", h);
    assert_line(t, line);
    snprintf(line, sizeof(line), "%s_count{route=\"/status/{task_id}\"} 3", h);
    assert_line(t, line);
    snprintf(line, sizeof(line), "%s_sum{route=\"/status/{task_id}\"} 20.002001", h);
    assert_line(t, line);
    assert_line(t, "interview_http_response_body_bytes_total{route=\"/status/{task_id}\"} 150");
    assert_line(t, "interview_http_sent_bytes_total 1234");
    assert_line(t, "interview_redis_up 1");
    assert_line(t, "interview_queue_depth 3");
    assert_line(t, "interview_webhook_deliveries_total{outcome=\"delivered\"} 0");
    assert_null(strstr(t, "interview_tasks_total")); /* worker series stay out of serve's */
    free(t);
    metrics_reset();
}

static void test_redis_down_keeps_the_rest(void **state)
{
    (void)state;
    metrics_reset();
    metrics_webhook_attempt(METRICS_WEBHOOK_RETRY);
    metrics_webhook_attempt(METRICS_WEBHOOK_RETRY);
    metrics_webhook_attempt(METRICS_WEBHOOK_FAILED);
    char *t = render(METRICS_ROLE_SERVE, -1);
    assert_line(t, "interview_redis_up 0");
    assert_line(t, "# TYPE interview_queue_depth gauge");
    assert_null(strstr(t, "\ninterview_queue_depth "));
    assert_line(t, "interview_webhook_deliveries_total{outcome=\"delivered\"} 0");
    assert_line(t, "interview_webhook_deliveries_total{outcome=\"retry\"} 2");
    assert_line(t, "interview_webhook_deliveries_total{outcome=\"failed\"} 1");
    free(t);
    metrics_reset();
}

static void test_task_series(void **state)
{
    (void)state;
    metrics_reset();
    metrics_worker_slots_set(3);
    metrics_worker_busy_add(1);
    metrics_worker_busy_add(1);
    metrics_worker_busy_add(-1);
    metrics_task_outcome(METRICS_TASK_SUCCESS, IA_OK);
    metrics_task_outcome(METRICS_TASK_FAILURE, IA_ERR_NOT_A_VIDEO);
    /* Two errors share the code broker_unavailable: one series. */
    metrics_task_outcome(METRICS_TASK_RETRY, IA_ERR_BROKER);
    metrics_task_outcome(METRICS_TASK_RETRY, IA_ERR_BROKER_UNSURE);
    metrics_task_stage(METRICS_STAGE_FETCH, 100);     /* exactly 0.1 s: le="0.1" */
    metrics_task_stage(METRICS_STAGE_FETCH, 7200000); /* 2 h: +Inf */
    metrics_task_stage(METRICS_STAGE_PUBLISH, -5);    /* a clock step back counts as 0 */
    char *t = render(METRICS_ROLE_WORKER, 0);
    assert_line(t, "interview_tasks_total{outcome=\"success\",code=\"ok\"} 1");
    assert_line(t, "interview_tasks_total{outcome=\"failure\",code=\"not_a_video\"} 1");
    assert_line(t, "interview_tasks_total{outcome=\"retry\",code=\"broker_unavailable\"} 2");
    const char *first = strstr(t, "code=\"broker_unavailable\"");
    assert_non_null(first);
    assert_null(strstr(first + 1, "code=\"broker_unavailable\""));
    const char *h = "interview_task_stage_duration_seconds";
    char line[160];
    snprintf(line, sizeof(line), "%s_bucket{stage=\"fetch\",le=\"0.1\"} 1", h);
    assert_line(t, line);
    snprintf(line, sizeof(line), "%s_bucket{stage=\"fetch\",le=\"3600\"} 1", h);
    assert_line(t, line);
    snprintf(line, sizeof(line), "%s_bucket{stage=\"fetch\",le=\"+Inf\"} 2", h);
    assert_line(t, line);
    snprintf(line, sizeof(line), "%s_sum{stage=\"fetch\"} 7200.100000", h);
    assert_line(t, line);
    snprintf(line, sizeof(line), "%s_count{stage=\"analyse\"} 0", h); /* every stage shown */
    assert_line(t, line);
    snprintf(line, sizeof(line), "%s_bucket{stage=\"publish\",le=\"0.1\"} 1", h);
    assert_line(t, line);
    assert_line(t, "interview_worker_slots 3");
    assert_line(t, "interview_worker_slots_busy 1");
    assert_line(t, "interview_queue_depth 0");
    free(t);
    assert_string_equal(metrics_stage_name(METRICS_STAGE_ANALYSE), "analyse");
    metrics_reset();
}

/* Every HELP and TYPE comes once, before the samples of its family, which stay together. */
static void test_families_are_grouped(void **state)
{
    (void)state;
    metrics_reset();
    int r = metrics_route_id("/x");
    metrics_http_observe(r, "GET", 200, 1, 1);
    metrics_task_outcome(METRICS_TASK_SUCCESS, IA_OK);
    char *t = render(METRICS_ROLE_WORKER, 1);
    char current[128] = "";
    char seen[32][128];
    size_t nseen = 0;
    for (char *line = t, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        char name[128];
        if (sscanf(line, "# TYPE %127s", name) == 1) {
            for (size_t i = 0; i < nseen; i++)
                assert_string_not_equal(seen[i], name);
            assert_true(nseen < 32);
            snprintf(seen[nseen++], sizeof(seen[0]), "%s", name);
            snprintf(current, sizeof(current), "%s", name);
        } else if (line[0] != '#') {
            assert_true(current[0] != '\0');
            assert_memory_equal(line, current, strlen(current));
        }
    }
    free(t);
    metrics_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_label_escaping_cuts_between_escapes),
        cmocka_unit_test(test_help_escaping),
        cmocka_unit_test(test_route_ids),
        cmocka_unit_test(test_http_series),
        cmocka_unit_test(test_redis_down_keeps_the_rest),
        cmocka_unit_test(test_task_series),
        cmocka_unit_test(test_families_are_grouped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
