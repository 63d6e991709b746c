/* Tests queue/celery.c: message encoding round trips, hostile input, result record shapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "queue/celery.h"

static const char *const ID = "f8f4745c-fbe6-4ae0-b5e3-a241419cd2ab";

/* The exact bytes celery 5.2.6 send_task('process_video', args=['http://x']) LPUSHed. */
static const char PY_MESSAGE[] =
    "{\"body\": \"W1siaHR0cDovL3giXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImN"
    "oYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d\", \"content-encoding\": \"utf-8\", \"content-type\": "
    "\"application/json\", \"headers\": {\"lang\": \"py\", \"task\": \"process_video\", \"id\": "
    "\"f8f4745c-fbe6-4ae0-b5e3-a241419cd2ab\", \"shadow\": null, \"eta\": null, \"expires\": null, "
    "\"group\": null, \"group_index\": null, \"retries\": 0, \"timelimit\": [null, null], "
    "\"root_id\": \"f8f4745c-fbe6-4ae0-b5e3-a241419cd2ab\", \"parent_id\": null, \"argsrepr\": "
    "\"['http://x']\", \"kwargsrepr\": \"{}\", \"origin\": \"gen6463@vm\", \"ignore_result\": "
    "false}, \"properties\": {\"correlation_id\": \"f8f4745c-fbe6-4ae0-b5e3-a241419cd2ab\", "
    "\"reply_to\": \"f3d4f902-0cd3-3b58-ac76-e9212d404c20\", \"delivery_mode\": 2, "
    "\"delivery_info\": {\"exchange\": \"\", \"routing_key\": \"celery\"}, \"priority\": 0, "
    "\"body_encoding\": \"base64\", \"delivery_tag\": \"5c513db3-cd0d-4edc-bb56-7481590b1b44\"}}";

/* The same call with kwargs={"analysis": False}, as celery 5.2.6 LPUSHed it. */
static const char PY_MESSAGE_KWARGS[] =
    "{\"body\": \"W1siaHR0cDovL3giXSwgeyJhbmFseXNpcyI6IGZhbHNlfSwgeyJjYWxsYmFja3MiOiBudWxsLCAiZXJ"
    "yYmFja3MiOiBudWxsLCAiY2hhaW4iOiBudWxsLCAiY2hvcmQiOiBudWxsfV0=\", \"content-encoding\": "
    "\"utf-8\", \"content-type\": \"application/json\", \"headers\": {\"lang\": \"py\", \"task\": "
    "\"process_video\", \"id\": \"f8f4745c-fbe6-4ae0-b5e3-a241419cd2ab\", \"shadow\": null, "
    "\"eta\": null, \"expires\": null, \"group\": null, \"group_index\": null, \"retries\": 0, "
    "\"timelimit\": [null, null], \"root_id\": \"f8f4745c-fbe6-4ae0-b5e3-a241419cd2ab\", "
    "\"parent_id\": null, \"argsrepr\": \"['http://x']\", \"kwargsrepr\": \"{'analysis': False}\", "
    "\"origin\": \"gen14678@vm\", \"ignore_result\": false}, \"properties\": {\"correlation_id\": "
    "\"f8f4745c-fbe6-4ae0-b5e3-a241419cd2ab\", \"reply_to\": \"\", \"delivery_mode\": 2, "
    "\"delivery_info\": {\"exchange\": \"\", \"routing_key\": \"celery\"}, \"priority\": 0, "
    "\"body_encoding\": \"base64\", \"delivery_tag\": \"6c0e8d1c-2f75-4eb2-b08f-7b2036d6034d\"}}";

static char *encode_url(const char *url, const struct celery_msg_opts *opts)
{
    json_t *args = json_pack("[s]", url);
    char *m = celery_message_encode(ID, "process_video", args, opts);
    json_decref(args);
    return m;
}

static void test_python_message_decodes(void **state)
{
    (void)state;
    struct celery_message m;
    char err[128] = "";
    assert_int_equal(celery_message_decode(PY_MESSAGE, strlen(PY_MESSAGE), &m, err, sizeof(err)),
                     IA_OK);
    assert_string_equal(m.task_id, ID);
    assert_string_equal(m.delivery_tag, "5c513db3-cd0d-4edc-bb56-7481590b1b44");
    assert_string_equal(m.task_name, "process_video");
    assert_int_equal(m.retries, 0);
    assert_int_equal(json_array_size(m.args), 1);
    assert_string_equal(json_string_value(json_array_get(m.args, 0)), "http://x");
    assert_int_equal(json_object_size(m.kwargs), 0);
    celery_message_cleanup(&m);
}

/* Everything but origin, reply_to and delivery_tag matches Python's bytes exactly. */
static void test_encoder_matches_python_bytes(void **state)
{
    (void)state;
    struct celery_msg_opts opts = {.delivery_tag = "5c513db3-cd0d-4edc-bb56-7481590b1b44",
                                   .origin = "gen6463@vm"};
    char *m = encode_url("http://x", &opts);
    assert_non_null(m);
    const char *py_reply = "\"reply_to\": \"f3d4f902-0cd3-3b58-ac76-e9212d404c20\"";
    char *expect = strdup(PY_MESSAGE);
    char *at = strstr(expect, py_reply);
    assert_non_null(at);
    memmove(at + strlen("\"reply_to\": \"\""), at + strlen(py_reply),
            strlen(at + strlen(py_reply)) + 1);
    memcpy(at, "\"reply_to\": \"\"", strlen("\"reply_to\": \"\""));
    assert_string_equal(m, expect);
    free(expect);
    free(m);
}

/* kwargs={"analysis": False}: the same bytes as Python's (reply_to aside), and back. */
static void test_kwargs_match_python_bytes(void **state)
{
    (void)state;
    json_t *kwargs = json_pack("{s:b}", "analysis", 0);
    struct celery_msg_opts opts = {.delivery_tag = "6c0e8d1c-2f75-4eb2-b08f-7b2036d6034d",
                                   .origin = "gen14678@vm",
                                   .kwargs = kwargs};
    char *m = encode_url("http://x", &opts);
    assert_non_null(m);
    assert_string_equal(m, PY_MESSAGE_KWARGS);
    struct celery_message d;
    assert_int_equal(celery_message_decode(m, strlen(m), &d, NULL, 0), IA_OK);
    assert_int_equal(json_object_size(d.kwargs), 1);
    assert_true(json_is_false(json_object_get(d.kwargs, "analysis")));
    celery_message_cleanup(&d);
    free(m);
    json_t *arr = json_array();
    opts.kwargs = arr; /* kwargs must be an object */
    assert_null(encode_url("http://x", &opts));
    json_decref(arr);
    json_decref(kwargs);
}

static void test_kwargsrepr(void **state)
{
    (void)state;
    json_t *k = json_object();
    char *r = celery_kwargsrepr(k);
    assert_string_equal(r, "{}");
    free(r);
    json_decref(k);
    k = json_pack("{s:b, s:s, s:i}", "analysis", 0, "who", "it's", "n", 2);
    r = celery_kwargsrepr(k);
    assert_string_equal(r, "{'analysis': False, 'who': 'it\\'s', 'n': 2}");
    free(r);
    json_decref(k);
}

/* Strings are written as Python's json.dumps writes them (ensure_ascii): short escapes, \u00XX for
 * other control bytes and DEL, \uXXXX for the rest, surrogate pairs beyond the BMP. */
static void test_strings_escaped_as_python(void **state)
{
    (void)state;
    struct celery_msg_opts opts = {.delivery_tag = "5c513db3-cd0d-4edc-bb56-7481590b1b44",
                                   .origin = "h\xc3\xa9\x01\x7f\t\"\\\xf0\x9f\x98\x80"};
    char *m = encode_url("http://x", &opts);
    assert_non_null(m);
    /* python3 -c 'import json; print(json.dumps("h\u00e9\x01\x7f\t\"\\\U0001F600"))' */
    assert_non_null(strstr(m, "\"origin\": \"h\\u00e9\\u0001\\u007f\\t\\\"\\\\\\ud83d\\ude00\","));
    free(m);
    opts.origin = "bad \xc3\x28 utf-8"; /* not UTF-8: no message, as no JSON string can hold it */
    assert_null(encode_url("http://x", &opts));
    opts.origin = "overlong \xc0\xaf";
    assert_null(encode_url("http://x", &opts));
    opts.origin = "surrogate \xed\xa0\x80";
    assert_null(encode_url("http://x", &opts));
}

/*
 * The body is the bytes Python's json.dumps([args, kwargs, embed]) writes: strings with
 * lower-case \u escapes (jansson's own dump writes \u00E9, Python \u00e9), numbers, nesting.
 */
static void test_body_is_what_python_dumps(void **state)
{
    (void)state;
    json_t *args = json_pack("[s, i, f, b, n, [s, {s:s}], {}]", "h\xc3\xa9\x01\"'\\", -17, 0.1,
                             1, "x", "k\xf0\x9f\x98\x80", "v");
    json_t *kwargs = json_pack("{s:b, s:s, s:[i, f], s:{s:n}}", "analysis", 0, "callback_url",
                               "http://cb.test/a?b=1&c=\xc3\xa9", "n", 3, 2.5, "deep", "z");
    struct celery_msg_opts opts = {.kwargs = kwargs};
    char *m = celery_message_encode(ID, "process_video", args, &opts);
    assert_non_null(m);
    json_t *doc = json_loads(m, 0, NULL);
    const char *b64 = json_string_value(json_object_get(doc, "body"));
    assert_non_null(b64);
    size_t n;
    unsigned char *body = celery_base64_decode(b64, strlen(b64), &n);
    assert_non_null(body);
    /* /usr/bin/python3 -c 'import json; print(json.dumps([a, k, {"callbacks": None, ...}]))' */
    const char *want =
        "[[\"h\\u00e9\\u0001\\\"'\\\\\", -17, 0.1, true, null, [\"x\", {\"k\\ud83d\\ude00\": "
        "\"v\"}], {}], {\"analysis\": false, \"callback_url\": \"http://cb.test/a?b=1&c=\\u00e9\", "
        "\"n\": [3, 2.5], \"deep\": {\"z\": null}}, {\"callbacks\": null, \"errbacks\": null, "
        "\"chain\": null, \"chord\": null}]";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(body, want, n);
    free(body);
    json_decref(doc);
    free(m);
    json_decref(kwargs);
    json_decref(args);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct celery_msg_opts opts = {.retries = 3};
    const char *url = "http://example.test/a b/\xc3\xa9\"quote'\\.mp4";
    char *raw = encode_url(url, &opts);
    assert_non_null(raw);
    struct celery_message m;
    assert_int_equal(celery_message_decode(raw, strlen(raw), &m, NULL, 0), IA_OK);
    assert_string_equal(m.task_id, ID);
    assert_int_equal(m.retries, 3);
    assert_int_equal(strlen(m.delivery_tag), 36); /* a fresh UUID */
    assert_string_equal(json_string_value(json_array_get(m.args, 0)), url);
    celery_message_cleanup(&m);
    free(raw);
}

static void test_encoder_refuses_bad_input(void **state)
{
    (void)state;
    json_t *obj = json_object(), *arr = json_array();
    assert_null(celery_message_encode(ID, "process_video", obj, NULL));
    assert_null(celery_message_encode("", "process_video", arr, NULL));
    char long_id[80];
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_null(celery_message_encode(long_id, "process_video", arr, NULL));
    struct celery_msg_opts opts = {.delivery_tag = long_id};
    assert_null(celery_message_encode(ID, "process_video", arr, &opts));
    json_decref(obj);
    json_decref(arr);
}

/* Replaces the first occurrence of from in PY_MESSAGE with to. */
static char *mutate(const char *from, const char *to)
{
    const char *at = strstr(PY_MESSAGE, from);
    assert_non_null(at);
    size_t pre = (size_t)(at - PY_MESSAGE), tl = strlen(to);
    char *out = malloc(strlen(PY_MESSAGE) + tl + 1);
    memcpy(out, PY_MESSAGE, pre);
    memcpy(out + pre, to, tl);
    const char *rest = at + strlen(from);
    memcpy(out + pre + tl, rest, strlen(rest) + 1);
    return out;
}

static char *b64_body(const char *json_text)
{
    char *b = celery_base64_encode((const unsigned char *)json_text, strlen(json_text));
    char *field = malloc(strlen(b) + 16);
    snprintf(field, strlen(b) + 16, "\"body\": \"%s\"", b);
    free(b);
    return field;
}

static void expect_invalid(const char *raw, size_t len, const char *why_part)
{
    struct celery_message m;
    char err[128] = "";
    assert_int_equal(celery_message_decode(raw, len, &m, err, sizeof(err)), IA_ERR_INVALID);
    assert_null(m.task_name);
    assert_null(m.args);
    if (!strstr(err, why_part))
        fail_msg("error \"%s\" does not mention \"%s\"", err, why_part);
}

static void expect_body_invalid(const char *body_json, const char *why_part)
{
    char *field = b64_body(body_json);
    const char *py_body = strstr(PY_MESSAGE, "\"body\": ");
    char old[200];
    size_t n = (size_t)(strchr(py_body + 9, '"') - py_body) + 1;
    memcpy(old, py_body, n);
    old[n] = '\0';
    char *raw = mutate(old, field);
    expect_invalid(raw, strlen(raw), why_part);
    free(raw);
    free(field);
}

static void test_decoder_rejects_hostile(void **state)
{
    (void)state;
    static const struct {
        const char *from, *to, *why;
    } cases[] = {
        {"\"task\": \"process_video\"", "\"taskx\": 1", "not protocol v2"},
        {"\"task\": \"process_video\"", "\"task\": 7", "task name"},
        {"\"task\": \"process_video\"", "\"task\": \"\"", "task name"},
        {"\"id\": \"f8f4745c", "\"id\": \"bad id\", \"x\": \"", "headers.id"},
        {"\"delivery_tag\": \"5c513db3-cd0d-4edc-bb56-7481590b1b44\"", "\"delivery_tag\": null",
         "delivery_tag"},
        {"\"body_encoding\": \"base64\"", "\"body_encoding\": \"pickle\"", "body_encoding"},
        {"\"content-type\": \"application/json\"",
         "\"content-type\": \"application/x-python-serialize\"", "content-type"},
        {"\"content-encoding\": \"utf-8\"", "\"content-encoding\": \"binary\"", "content-encoding"},
        {"\"retries\": 0", "\"retries\": -1", "retries"},
        {"\"retries\": 0", "\"retries\": \"3\"", "retries"},
        {"\"body\": \"W1", "\"body\": \"!!", "base64"},
        {"\"headers\": {", "\"headers\": [], \"h\": {", "headers"},
        {"\"properties\": {", "\"properties\": \"x\", \"p\": {", "properties"},
        {"\"lang\": \"py\"", "\"lang\": \"py\", \"lang\": \"c\"", "not JSON"}, /* duplicates */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *raw = mutate(cases[i].from, cases[i].to);
        expect_invalid(raw, strlen(raw), cases[i].why);
        free(raw);
    }
    expect_invalid("", 0, "empty");
    expect_invalid("not json at all", 15, "not JSON");
    expect_invalid("[1, 2, 3]", 9, "not a JSON object");
    expect_invalid("{\"body\": \"\"}", 12, "headers");
    expect_invalid(PY_MESSAGE, strlen(PY_MESSAGE) - 1, "not JSON"); /* truncated */
    expect_body_invalid("{\"a\": 1}", "not a JSON array");
    expect_body_invalid("[[], {}]", "not a JSON array");
    expect_body_invalid("[\"x\", {}, {}]", "args is not an array");
    expect_body_invalid("[[], [], {}]", "kwargs");
    expect_body_invalid("not json", "not a JSON array");
}

static void test_decoder_rejects_huge_and_embedded_nul(void **state)
{
    (void)state;
    size_t n = CELERY_MAX_MESSAGE_BYTES + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    expect_invalid(big, n, "larger than");
    free(big);
    char nul[sizeof(PY_MESSAGE)];
    memcpy(nul, PY_MESSAGE, sizeof(PY_MESSAGE));
    nul[100] = '\0';
    expect_invalid(nul, sizeof(PY_MESSAGE) - 1, "not JSON");
    char long_id[100];
    memset(long_id, 'a', 70);
    memcpy(long_id + 70, "\"", 2);
    char *raw = mutate("5c513db3-cd0d-4edc-bb56-7481590b1b44\"", long_id);
    expect_invalid(raw, strlen(raw), "delivery_tag");
    free(raw);
}

static void test_base64(void **state)
{
    (void)state;
    static const struct {
        const char *plain, *b64;
    } v[] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char *e = celery_base64_encode((const unsigned char *)v[i].plain, strlen(v[i].plain));
        assert_string_equal(e, v[i].b64);
        size_t n;
        unsigned char *d = celery_base64_decode(e, strlen(e), &n);
        assert_non_null(d);
        assert_int_equal(n, strlen(v[i].plain));
        assert_memory_equal(d, v[i].plain, n);
        free(d);
        free(e);
    }
    size_t n;
    assert_null(celery_base64_decode("Zm9v\n", 5, &n));
    assert_null(celery_base64_decode("Z", 1, &n));
    assert_null(celery_base64_decode("Zm=v", 4, &n));
    assert_null(celery_base64_decode("Zm9-", 4, &n));
}

static void test_isoformat(void **state)
{
    (void)state;
    char buf[40];
    celery_isoformat(1795501199.0207801, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-24T06:19:59.020780");
    celery_isoformat(0.0, buf, sizeof(buf)); /* Python omits a zero microsecond part */
    assert_string_equal(buf, "1970-01-01T00:00:00");
}

/* Python's len() of UTF-8 text. */
static size_t utf8_len_for_test(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* Builds a string of n copies of unit (n * strlen(unit) < cap). */
static const char *repeat(char *buf, size_t cap, const char *unit, int n)
{
    size_t k = strlen(unit), off = 0;
    for (int i = 0; i < n && off + k < cap; i++, off += k)
        memcpy(buf + off, unit, k);
    buf[off] = '\0';
    return buf;
}

/* Expected values printed by celery 5.2's saferepr(args, 1024), which Celery uses for argsrepr. */
static void test_argsrepr(void **state)
{
    (void)state;
    json_t *a = json_pack("[s, s, i, b, n]", "http://x", "it's", 3, 1);
    char *r = celery_argsrepr(a);
    assert_string_equal(r, "['http://x', 'it\\'s', 3, True, None]");
    free(r);
    json_decref(a);
    static char big[4000];
    a = json_pack("[s]", repeat(big, sizeof(big), "x", 3000));
    r = celery_argsrepr(a); /* cut at 1023 characters, then the budget is spent */
    assert_int_equal(strlen(r), 1034);
    assert_string_equal(r + 1034 - 12, "xxx...', ...");
    free(r);
    json_decref(a);
    a = json_pack("[s, i]", repeat(big, sizeof(big), "a", 1019), 5);
    r = celery_argsrepr(a);
    assert_string_equal(r + strlen(r) - 13, "aaaa', , ...]");
    free(r);
    json_decref(a);
    a = json_pack("[s]", repeat(big, sizeof(big), "a b ", 300));
    r = celery_argsrepr(a); /* cut back to the last space */
    assert_int_equal(strlen(r), 1032);
    assert_string_equal(r + 1032 - 18, "a b a b a...', ...");
    free(r);
    json_decref(a);
    a = json_pack("[s]", repeat(big, sizeof(big), "\xc3\xa9", 1030));
    r = celery_argsrepr(a); /* characters, not bytes */
    assert_int_equal(utf8_len_for_test(r), 1034);
    free(r);
    json_decref(a);
}

static void test_result_records(void **state)
{
    (void)state;
    json_t *res = json_pack("{s:s}", "video_id", "v1");
    char *s = celery_result_encode(ID, "SUCCESS", res, NULL, 1795501199.0207801);
    char expect[512];
    snprintf(expect, sizeof(expect),
             "{\"status\": \"SUCCESS\", \"result\": {\"video_id\": \"v1\"}, \"traceback\": null, "
             "\"children\": [], \"date_done\": \"2026-11-24T06:19:59.020780\", \"task_id\": "
             "\"%s\"}",
             ID);
    assert_string_equal(s, expect);
    free(s);
    json_decref(res);

    res = json_pack("{s:s, s:f}", "stage", "fetching", "progress", 0.4);
    s = celery_result_encode(ID, "PROGRESS", res, NULL, 1.0);
    assert_non_null(strstr(s, "\"result\": {\"stage\": \"fetching\", \"progress\": 0.4}"));
    assert_non_null(strstr(s, "\"date_done\": null"));
    free(s);
    json_decref(res);

    json_t *exc = celery_exception_new("too_large", "the video is larger than allowed");
    s = celery_result_encode(ID, "FAILURE", exc, NULL, 1.5);
    assert_non_null(strstr(s, "\"result\": {\"exc_type\": \"RuntimeError\", \"exc_message\": "
                              "[\"the video is larger than allowed\"], \"exc_module\": "
                              "\"builtins\", \"code\": \"too_large\"}"));
    assert_non_null(strstr(s, "\"date_done\": \"1970-01-01T00:00:01.500000\""));
    free(s);
    json_decref(exc);

    s = celery_result_encode(ID, "STARTED", NULL, NULL, 1.0);
    assert_non_null(strstr(s, "\"result\": null"));
    free(s);
    assert_true(celery_status_is_exception("RETRY"));
    assert_true(celery_status_is_exception("FAILURE"));
    assert_false(celery_status_is_exception("PROGRESS"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_message_decodes),
        cmocka_unit_test(test_encoder_matches_python_bytes),
        cmocka_unit_test(test_kwargs_match_python_bytes),
        cmocka_unit_test(test_body_is_what_python_dumps),
        cmocka_unit_test(test_kwargsrepr),
        cmocka_unit_test(test_strings_escaped_as_python),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_encoder_refuses_bad_input),
        cmocka_unit_test(test_decoder_rejects_hostile),
        cmocka_unit_test(test_decoder_rejects_huge_and_embedded_nul),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_isoformat),
        cmocka_unit_test(test_argsrepr),
        cmocka_unit_test(test_result_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
