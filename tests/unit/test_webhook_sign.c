/*
 * Tests webhook/webhook_sign.c (signature header, backoff schedule, event body), the callback
 * URL check at submission (media_url_check in media/fetch.c) and the tus metadata key
 * (upload_metadata_callback in api/callback.c). No I/O.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "media/media.h"
#include "util/netpolicy.h"
#include "webhook/webhook.h"

/* Known answers computed with Python's hmac.new(key, msg, hashlib.sha256).hexdigest(). */
static void test_signature_format_and_value(void **state)
{
    (void)state;
    char sig[WEBHOOK_SIGNATURE_MAX];
    const char *body = "{\"id\":\"e1\"}";
    webhook_signature("whsec_test", 1700000000, body, strlen(body), sig);
    assert_string_equal(sig, "t=1700000000,v1=6a85cb117c993612a34c72b4cfb5a16baed25a80d26e298ce0e"
                             "6671320fd07c8");
    webhook_signature("k", 0, "", 0, sig);
    assert_string_equal(sig,
                        "t=0,v1=6b4a4b8b3c40f1e8f53a3d36682e5f99f7ad2ac1df1c93dfe336f329167641e7");
    /* The timestamp is signed: another t gives another MAC over the same body. */
    char other[WEBHOOK_SIGNATURE_MAX];
    webhook_signature("whsec_test", 1700000001, body, strlen(body), other);
    assert_string_not_equal(strchr(sig, 'v'), strchr(other, 'v'));
    /* The longest timestamp still fits. */
    webhook_signature("k", 9223372036854775807LL, body, strlen(body), other);
    assert_int_equal(strlen(other), strlen("t=9223372036854775807,v1=") + 64);
}

static void test_backoff_doubles_with_jitter_and_a_cap(void **state)
{
    (void)state;
    /* Equal jitter: between half of base * 2^(n-1) and all of it. */
    assert_int_equal(webhook_backoff_ms(10, 3600, 1, 0.0), 5000);
    assert_int_equal(webhook_backoff_ms(10, 3600, 1, 1.0), 10000);
    assert_int_equal(webhook_backoff_ms(10, 3600, 1, 0.5), 7500);
    assert_int_equal(webhook_backoff_ms(10, 3600, 2, 0.0), 10000);
    assert_int_equal(webhook_backoff_ms(10, 3600, 2, 1.0), 20000);
    assert_int_equal(webhook_backoff_ms(10, 3600, 3, 1.0), 40000);
    assert_int_equal(webhook_backoff_ms(10, 3600, 9, 1.0), 2560000);
    assert_int_equal(webhook_backoff_ms(10, 3600, 10, 1.0), 3600000); /* capped */
    assert_int_equal(webhook_backoff_ms(10, 3600, 10, 0.0), 1800000);
    assert_int_equal(webhook_backoff_ms(10, 3600, 64, 1.0), 3600000); /* no overflow */
    assert_int_equal(webhook_backoff_ms(10, 3600, 1000, 1.0), 3600000);
    assert_int_equal(webhook_backoff_ms(1, 3600, 1, 2.0), 1000); /* jitter clamped */
    assert_int_equal(webhook_backoff_ms(1, 3600, 1, -1.0), 500);
    assert_int_equal(webhook_backoff_ms(0, 0, 0, 1.0), 1000); /* nonsense: 1 s */
    /* The default schedule reaches 24 h after some 30 attempts, never with a delay over 1 h. */
    long long total = 0;
    int attempts = 0;
    while (total < 86400000LL) {
        long long d = webhook_backoff_ms(10, 3600, ++attempts, 1.0);
        assert_true(d <= 3600000);
        total += d;
    }
    assert_in_range(attempts, 25, 40);
}

static void test_success_event(void **state)
{
    (void)state;
    json_t *result = json_pack("{s:s, s:s, s:s, s:s, s:s}", "video_id", "t1", "video_url",
                               "http://h/stream/t1", "download_video_url", "http://h/download/t1",
                               "metadata_url", "http://h/metadata/t1", "secret", "not copied");
    char *text = webhook_event_body("e1", "t1", "success", result, "NO_ALERT", NULL, NULL, 42);
    json_decref(result);
    json_t *ev = json_loads(text, 0, NULL);
    assert_non_null(ev);
    assert_string_equal(json_string_value(json_object_get(ev, "id")), "e1");
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "task.succeeded");
    assert_string_equal(json_string_value(json_object_get(ev, "status")), "success");
    assert_string_equal(json_string_value(json_object_get(ev, "task_id")), "t1");
    assert_string_equal(json_string_value(json_object_get(ev, "video_id")), "t1");
    assert_string_equal(json_string_value(json_object_get(ev, "video_url")), "http://h/stream/t1");
    assert_string_equal(json_string_value(json_object_get(ev, "alert_level")), "NO_ALERT");
    assert_int_equal(json_integer_value(json_object_get(ev, "created")), 42);
    assert_null(json_object_get(ev, "error"));
    assert_null(json_object_get(ev, "secret"));
    json_decref(ev);
    /* Compact, sorted keys: the same inputs give the same bytes. */
    assert_int_equal(text[0], '{');
    assert_non_null(strstr(text, "\"alert_level\":\"NO_ALERT\",\"created\":42"));
    free(text);
}

static void test_failure_event(void **state)
{
    (void)state;
    char *text = webhook_event_body("e2", "t2", "failed", NULL, NULL, "not_a_video",
                                    "the file is not a video", 7);
    json_t *ev = json_loads(text, 0, NULL);
    free(text);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "task.failed");
    assert_true(json_is_null(json_object_get(ev, "video_id")));
    assert_true(json_is_null(json_object_get(ev, "alert_level")));
    json_t *err = json_object_get(ev, "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), "not_a_video");
    assert_string_equal(json_string_value(json_object_get(err, "message")),
                        "the file is not a video");
    assert_null(json_object_get(ev, "video_url"));
    json_decref(ev);
}

static void test_task_callback_from_kwargs(void **state)
{
    (void)state;
    json_t *k = json_pack("{s:s, s:b}", "callback_url", "https://h/x", "analysis", 0);
    assert_string_equal(webhook_task_callback(k), "https://h/x");
    json_object_set_new(k, "callback_url", json_integer(5));
    assert_null(webhook_task_callback(k));
    char *longer = calloc(1, WEBHOOK_URL_MAX + 2);
    memset(longer, 'a', WEBHOOK_URL_MAX + 1);
    json_object_set_new(k, "callback_url", json_string(longer));
    assert_null(webhook_task_callback(k));
    free(longer);
    json_decref(k);
    assert_null(webhook_task_callback(NULL));
}

/* IA_OK or IA_ERR_URL_NOT_ALLOWED for url under policy p. */
static enum ia_err url_check(const struct netpolicy *p, const char *url)
{
    char detail[160];
    return media_url_check(p, url, detail, sizeof detail);
}

static void test_callback_url_check(void **state)
{
    (void)state;
    char err[128];
    struct netpolicy *none = netpolicy_new("", "", err, sizeof err);
    struct netpolicy *test = netpolicy_new("127.0.0.2/32", "8080", err, sizeof err);
    static const char *const refused[] = {
        "http://127.0.0.1/",
        "http://127.0.0.2/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://localhost/",
        "http://LOCALHOST./",
        "http://a.b.localhost/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://u:p@example.com/",
        "http://u@example.com/",
        "http://example.com:8080/",
        "http://example.com:0/",
        "example.com/x",
        "",
        "http://1.2.3.256/",
        "http://0.0.0.0/",
        "http://[::]/",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        if (url_check(none, refused[i]) != IA_ERR_URL_NOT_ALLOWED)
            fail_msg("accepted: %s", refused[i]);
    }
    assert_int_equal(url_check(none, "https://hooks.example.com/in?token=x"), IA_OK);
    assert_int_equal(url_check(none, "http://93.184.215.14/"), IA_OK);
    assert_int_equal(url_check(none, "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/"), IA_OK);
    assert_int_equal(url_check(none, "HTTPS://Example.COM:443/x"), IA_OK);
    /* FETCH_ALLOW_CIDRS and ALLOWED_PORTS apply as to video URLs. */
    assert_int_equal(url_check(test, "http://127.0.0.2:8080/x"), IA_OK);
    assert_int_equal(url_check(test, "http://127.0.0.3:8080/x"), IA_ERR_URL_NOT_ALLOWED);
    assert_int_equal(url_check(test, "http://127.0.0.2:8081/x"), IA_ERR_URL_NOT_ALLOWED);
    assert_int_equal(url_check(test, "http://localhost:8080/x"), IA_ERR_URL_NOT_ALLOWED);
    netpolicy_free(none);
    netpolicy_free(test);
}

static void test_tus_metadata_callback(void **state)
{
    (void)state;
    char *url = NULL;
    /* "http://a.test/x" in base64. */
    assert_true(
        upload_metadata_callback("filename YS5tcDQ=,callback_url aHR0cDovL2EudGVzdC94", &url));
    assert_string_equal(url, "http://a.test/x");
    free(url);
    assert_true(upload_metadata_callback("analysis ZmFsc2U=", &url));
    assert_null(url);
    assert_true(upload_metadata_callback("", &url));
    assert_null(url);
    assert_false(upload_metadata_callback("callback_url", &url)); /* no value */
    assert_null(url);
    assert_false(upload_metadata_callback("callback_url aHR0cDovL2EudGVzdC94,callback_url "
                                          "aHR0cDovL2EudGVzdC94",
                                          &url)); /* twice */
    assert_null(url);
    assert_false(upload_metadata_callback("callback_url !!!!", &url)); /* not base64 */
    assert_false(upload_metadata_callback("callback_url AA==", &url)); /* a NUL byte */
    /* Another key that starts the same is another key. */
    assert_true(upload_metadata_callback("callback_urls aHR0cDovL2EudGVzdC94", &url));
    assert_null(url);
}

/* The callback_url member of a /submit body (given a video_url when it has none): absent,
 * null, a string, or refused. */
static const char *submit_callback(const char *body, char **url)
{
    json_t *root = json_loads(body, 0, NULL);
    assert_non_null(root);
    if (!json_object_get(root, "video_url"))
        json_object_set_new(root, "video_url", json_string("http://a.test/v.mp4"));
    char *text = json_dumps(root, 0);
    json_decref(root);
    struct submit_fields f;
    const char *why = api_parse_submit((const unsigned char *)text, strlen(text), &f);
    free(text);
    free(f.video_url);
    *url = f.callback_url;
    return why;
}

static void test_submit_callback_member(void **state)
{
    (void)state;
    char *url = NULL;
    assert_null(submit_callback("{\"video_url\": \"http://a/v\"}", &url));
    assert_null(url);
    assert_null(submit_callback("{\"callback_url\": null}", &url));
    assert_null(url);
    assert_null(submit_callback("{\"callback_url\": \"https://h/x?t=1\"}", &url));
    assert_string_equal(url, "https://h/x?t=1");
    free(url);
    static const char *const refused[] = {
        "{\"callback_url\": 5}", "{\"callback_url\": [\"https://h/\"]}",
        "{\"callback_url\": {}}", "{\"callback_url\": true}",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_non_null(submit_callback(refused[i], &url));
        assert_null(url);
    }
    char *big = malloc(2100);
    int n = snprintf(big, 2100, "{\"callback_url\": \"https://h/");
    memset(big + n, 'a', 2049 - 10);
    memcpy(big + n + 2049 - 10, "\"}", 3);
    assert_non_null(submit_callback(big, &url));
    assert_null(url);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_format_and_value),
        cmocka_unit_test(test_backoff_doubles_with_jitter_and_a_cap),
        cmocka_unit_test(test_success_event),
        cmocka_unit_test(test_failure_event),
        cmocka_unit_test(test_task_callback_from_kwargs),
        cmocka_unit_test(test_callback_url_check),
        cmocka_unit_test(test_tus_metadata_callback),
        cmocka_unit_test(test_submit_callback_member),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
