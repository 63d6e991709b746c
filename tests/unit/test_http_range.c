/*
 * Tests http/range.c: Range parsing, HTTP dates, ETag lists and the file-reply decision.
 * Expected values were measured against nginx 1.22.1 (nginx-light) on a 1000-byte file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/range.h"

enum {
    R_IGN = HTTP_RANGE_IGNORE,
    R_ONE = HTTP_RANGE_SINGLE,
    R_MANY = HTTP_RANGE_MULTI,
    R_416 = HTTP_RANGE_UNSATISFIABLE
};

struct range_case {
    const char *value;
    uint64_t size;
    int kind;
    uint64_t start, len; /* checked for R_ONE and R_MANY (first range) */
};

static const struct range_case range_cases[] = {
    {"bytes=0-0", 1000, R_ONE, 0, 1},
    {"bytes=0-9", 1000, R_ONE, 0, 10},
    {"bytes=999-", 1000, R_ONE, 999, 1},
    {"bytes=900-2000", 1000, R_ONE, 900, 100},
    {"bytes=-2000", 1000, R_ONE, 0, 1000},
    {"bytes=-1", 1000, R_ONE, 999, 1},
    {"bytes=0-", 1000, R_ONE, 0, 1000},
    {"bytes=-9223372036854775807", 1000, R_ONE, 0, 1000},
    {"Bytes=0-1", 1000, R_ONE, 0, 2},
    {"BYTES=0-1", 1000, R_ONE, 0, 2},
    {"bytes= 0 - 1 ", 1000, R_ONE, 0, 2},
    {"bytes=00000000000000000000000005-6", 1000, R_ONE, 5, 2},
    {"bytes=5-2,0-1", 1000, R_ONE, 0, 2},
    {"bytes=0-1,5-2", 1000, R_ONE, 0, 2},
    {"bytes=0-1,5000-6000", 1000, R_ONE, 0, 2},
    {"bytes=0-1,2-3", 1000, R_MANY, 0, 2},
    {"bytes=0-0,0-0", 1000, R_MANY, 0, 1},
    {"bytes=0-,0-", 1000, R_IGN, 0, 0}, /* more bytes than the file */
    {"bytes=-0", 1000, R_416, 0, 0},
    {"bytes=5-2", 1000, R_416, 0, 0},
    {"bytes=1000-", 1000, R_416, 0, 0},
    {"bytes=1000-1000", 1000, R_416, 0, 0},
    {"bytes=5000-6000,7000-", 1000, R_416, 0, 0},
    {"bytes=-", 1000, R_416, 0, 0},
    {"bytes=1", 1000, R_416, 0, 0},
    {"bytes=abc", 1000, R_416, 0, 0},
    {"bytes=0-1 x", 1000, R_416, 0, 0},
    {"bytes=0x1-2", 1000, R_416, 0, 0},
    {"bytes=+1-2", 1000, R_416, 0, 0},
    {"bytes=\t0-1", 1000, R_416, 0, 0},
    {"bytes=0-1,,2-3", 1000, R_416, 0, 0},
    {"bytes=0-1,", 1000, R_416, 0, 0},
    {"bytes=,0-1", 1000, R_416, 0, 0},
    {"bytes=0-99999999999999999999", 1000, R_416, 0, 0},
    {"bytes=99999999999999999999-", 1000, R_416, 0, 0},
    {"bytes=9223372036854775808-", 1000, R_416, 0, 0},
    {"bytes=9223372036854775807-", 1000, R_416, 0, 0},
    {"bytes=-99999999999999999999", 1000, R_416, 0, 0},
    {"bytes=0-18446744073709551616", 1000, R_416, 0, 0},
    {"bytes =0-1", 1000, R_IGN, 0, 0},
    {"bytes", 1000, R_IGN, 0, 0},
    {"bytes=", 1000, R_IGN, 0, 0},
    {"", 1000, R_IGN, 0, 0},
    {"items=0-1", 1000, R_IGN, 0, 0},
    {"bytes0-100", 1000, R_IGN, 0, 0},
    /* an empty file is sent whole, whatever the range */
    {"bytes=0-0", 0, R_IGN, 0, 0},
    {"bytes=-5", 0, R_IGN, 0, 0},
    {"bytes=-0", 0, R_IGN, 0, 0},
    {"bytes=5-", 0, R_416, 0, 0},
    /* a file of INT64_MAX bytes: offsets at the limit */
    {"bytes=9223372036854775806-", INT64_MAX, R_ONE, INT64_MAX - 1, 1},
    {"bytes=0-9223372036854775807", INT64_MAX, R_ONE, 0, INT64_MAX},
    {"bytes=0-,1-", INT64_MAX, R_416, 0, 0}, /* the total overflows, as in nginx */
};

static void test_range_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(range_cases) / sizeof(range_cases[0]); i++) {
        const struct range_case *c = &range_cases[i];
        struct http_byte_range r = {12345, 12345};
        int kind = (int)http_range_parse(c->value, strlen(c->value), c->size, &r);
        print_message("case %zu: \"%s\" size %llu\n", i, c->value, (unsigned long long)c->size);
        assert_int_equal(kind, c->kind);
        if (kind == R_ONE || kind == R_MANY) {
            assert_int_equal(r.start, c->start);
            assert_int_equal(r.len, c->len);
        }
    }
}

/* The length is honoured: nothing past it is read, and a cut value parses as the prefix. */
static void test_range_respects_length(void **state)
{
    (void)state;
    struct http_byte_range r;
    const char *v = "bytes=0-9,garbage";
    assert_int_equal(http_range_parse(v, 9, 1000, &r), HTTP_RANGE_SINGLE); /* "bytes=0-9" */
    assert_int_equal(r.len, 10);
    char nul[] = {'b', 'y', 't', 'e', 's', '=', '1', '-', '2', '\0', 'x'};
    assert_int_equal(http_range_parse(nul, sizeof(nul), 1000, &r), HTTP_RANGE_SINGLE);
    assert_int_equal(r.start, 1);
    assert_int_equal(r.len, 2);
}

static void test_date_formats(void **state)
{
    (void)state;
    static const char *forms[] = {
        "Tue, 05 Mar 2024 10:11:12 GMT", "Tuesday, 05-Mar-24 10:11:12 GMT",
        "Tue Mar  5 10:11:12 2024",      "Tue Mar 05 10:11:12 2024",
        "Tue, 05 Mar 2024 10:11:12 UTC", "Xyz, 05 Mar 2024 10:11:12",
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        time_t t = 0;
        print_message("date \"%s\"\n", forms[i]);
        assert_true(http_date_parse(forms[i], strlen(forms[i]), &t));
        assert_int_equal(t, 1709633472);
    }
    time_t t;
    assert_true(http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", 29, &t));
    assert_int_equal(t, 784111777);
    assert_true(http_date_parse("Thu, 01 Jan 1970 00:00:00 GMT", 29, &t));
    assert_int_equal(t, 0);
    assert_true(http_date_parse("Thursday, 01-Jan-70 00:00:00 GMT", 32, &t));
    assert_int_equal(t, 0);
    assert_true(http_date_parse("Thu, 29 Feb 2024 23:59:59 GMT", 29, &t));
    assert_int_equal(t, 1709251199);
    assert_true(http_date_parse("Fri, 31 Dec 9999 23:59:59 GMT", 29, &t));
    assert_int_equal(t, 253402300799LL);
}

static void test_date_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "garbage",
        "Tue,",
        "Tue, 05 Mar 2024",
        "Tue, 05 Mar 2024 10:11",
        "Tue, 5 Mar 2024 10:11:12 GMT",
        "Tue, 05 Foo 2024 10:11:12 GMT",
        "Tue, 05 mar 2024 10:11:12 GMT",
        "Tue, 05-Mar 2024 10:11:12 GMT",
        "Tue, 05 Mar 2024 24:00:00 GMT",
        "Tue, 05 Mar 2024 10:60:00 GMT",
        "Tue, 05 Mar 2024 10:11:60 GMT",
        "Tue, 00 Mar 2024 10:11:12 GMT",
        "Tue, 32 Mar 2024 10:11:12 GMT",
        "Tue, 31 Apr 2024 10:11:12 GMT",
        "Tue, 29 Feb 2023 10:11:12 GMT",
        "Tue, 29 Feb 1900 10:11:12 GMT",
        "Tue, 05 Mar 1969 10:11:12 GMT",
        "Tue, 05 Mar 20x4 10:11:12 GMT",
        "Tue Mar  5 10:11:12",
        "Tue Mar x5 10:11:12 2024",
        "Tue, -5 Mar 2024 10:11:12 GMT",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        time_t t = 42;
        print_message("bad date \"%s\"\n", bad[i]);
        assert_false(http_date_parse(bad[i], strlen(bad[i]), &t));
        assert_int_equal(t, 42);
    }
    /* a length that cuts a valid date short */
    time_t t;
    assert_false(http_date_parse("Tue, 05 Mar 2024 10:11:12 GMT", 20, &t));
}

static void test_date_format_roundtrip(void **state)
{
    (void)state;
    char out[HTTP_DATE_MAX];
    http_date_format(1709633472, out);
    assert_string_equal(out, "Tue, 05 Mar 2024 10:11:12 GMT");
    http_date_format(0, out);
    assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 GMT");
    for (time_t t = 0; t < 4102444800; t += 86400 * 37 + 3671) {
        time_t back = -1;
        http_date_format(t, out);
        assert_true(http_date_parse(out, strlen(out), &back));
        assert_int_equal(back, t);
    }
}

static void test_etag_format(void **state)
{
    (void)state;
    char etag[HTTP_ETAG_MAX];
    http_etag_format(1709633472, 1000, etag);
    assert_string_equal(etag, "\"65e6efc0-3e8\"");
    http_etag_format(0, 0, etag);
    assert_string_equal(etag, "\"0-0\"");
}

struct etag_case {
    const char *list;
    bool weak;
    bool match;
};

static void test_etag_lists(void **state)
{
    (void)state;
    static const struct etag_case cases[] = {
        {"\"65e6efc0-3e8\"", false, true},
        {"\"65e6efc0-3e8\"", true, true},
        {"W/\"65e6efc0-3e8\"", true, true},
        {"W/\"65e6efc0-3e8\"", false, false},
        {"*", false, true},
        {"*", true, true},
        {"\"x\", \"65e6efc0-3e8\"", true, true},
        {"\"x\",\"65e6efc0-3e8\" ,\"y\"", true, true},
        {"\"x\" ,\t\"65e6efc0-3e8\"\t", false, true},
        {"\"x\"", true, false},
        {"\"65e6efc0-3e8\" x", true, false},
        {"\"65e6efc0-3e8\"x", true, false},
        {"65e6efc0-3e8", true, false},
        {"\"65e6efc0-3e8", true, false},
        {"", true, false},
        {",,,", true, false},
        {"W/", true, false},
        {"* ,\"x\"", false, false},
    };
    const char *etag = "\"65e6efc0-3e8\"";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("etag list \"%s\" weak %d\n", cases[i].list, cases[i].weak);
        assert_int_equal(
            http_etag_list_match(cases[i].list, strlen(cases[i].list), etag, cases[i].weak),
            cases[i].match);
    }
}

#define ETAG "\"65e6efc0-3e8\""
#define MTIME_S "Tue, 05 Mar 2024 10:11:12 GMT"
#define BEFORE_S "Tue, 05 Mar 2024 10:11:11 GMT"
#define AFTER_S "Tue, 05 Mar 2024 10:11:13 GMT"

struct decide_case {
    struct http_file_conditions c;
    int status;
    uint64_t start, len;
};

/* Measured against nginx 1.22.1 for a 1000-byte file with ETAG and MTIME_S. */
static const struct decide_case decide_cases[] = {
    {{0}, 200, 0, 1000},
    {{.range = "bytes=0-9"}, 206, 0, 10},
    {{.range = "bytes=5000-"}, 416, 0, 1000},
    {{.range = "bytes=0-1,2-3"}, 200, 0, 1000}, /* our choice; nginx sends multipart */
    {{.if_none_match = ETAG}, 304, 0, 1000},
    {{.if_none_match = "W/" ETAG}, 304, 0, 1000},
    {{.if_none_match = "*"}, 304, 0, 1000},
    {{.if_none_match = "\"x\""}, 200, 0, 1000},
    {{.if_modified_since = MTIME_S}, 304, 0, 1000},
    {{.if_modified_since = AFTER_S}, 200, 0, 1000}, /* nginx: exact match only */
    {{.if_modified_since = BEFORE_S}, 200, 0, 1000},
    {{.if_modified_since = "garbage"}, 200, 0, 1000},
    {{.if_modified_since = MTIME_S, .if_none_match = "\"x\""}, 200, 0, 1000},
    {{.if_modified_since = "garbage", .if_none_match = ETAG}, 200, 0, 1000},
    {{.if_modified_since = MTIME_S, .if_none_match = ETAG}, 304, 0, 1000},
    {{.if_match = ETAG}, 200, 0, 1000},
    {{.if_match = "*"}, 200, 0, 1000},
    {{.if_match = "\"x\""}, 412, 0, 1000},
    {{.if_match = "W/" ETAG}, 412, 0, 1000},
    {{.if_match = "\"x\", " ETAG}, 200, 0, 1000},
    {{.if_unmodified_since = MTIME_S}, 200, 0, 1000},
    {{.if_unmodified_since = AFTER_S}, 200, 0, 1000},
    {{.if_unmodified_since = BEFORE_S}, 412, 0, 1000},
    {{.if_unmodified_since = "garbage"}, 412, 0, 1000},
    {{.range = "bytes=0-9", .if_range = ETAG}, 206, 0, 10},
    {{.range = "bytes=0-9", .if_range = "\"x\""}, 200, 0, 1000},
    {{.range = "bytes=0-9", .if_range = "W/" ETAG}, 200, 0, 1000},
    {{.range = "bytes=0-9", .if_range = MTIME_S}, 206, 0, 10},
    {{.range = "bytes=0-9", .if_range = AFTER_S}, 200, 0, 1000},
    {{.range = "bytes=0-9", .if_range = "garbage"}, 200, 0, 1000},
    {{.range = "bytes=5000-", .if_range = ETAG}, 416, 0, 1000},
    {{.range = "bytes=5000-", .if_range = "\"x\""}, 200, 0, 1000},
    {{.if_range = ETAG}, 200, 0, 1000},
    {{.range = "bytes=0-9", .if_none_match = ETAG}, 304, 0, 1000},
    {{.range = "bytes=0-9", .if_match = "\"x\""}, 412, 0, 1000},
    {{.if_match = "\"x\"", .if_none_match = ETAG}, 412, 0, 1000},
    {{.if_unmodified_since = "garbage", .if_none_match = ETAG}, 412, 0, 1000},
    {{.range = "bytes=990-", .if_match = ETAG, .if_unmodified_since = AFTER_S}, 206, 990, 10},
};

static void test_decide_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(decide_cases) / sizeof(decide_cases[0]); i++) {
        const struct decide_case *d = &decide_cases[i];
        struct http_file_plan plan;
        print_message("decide case %zu\n", i);
        http_file_decide(&d->c, 1709633472, 1000, ETAG, &plan);
        assert_int_equal(plan.status, d->status);
        if (plan.status == 200 || plan.status == 206) {
            assert_int_equal(plan.range.start, d->start);
            assert_int_equal(plan.range.len, d->len);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_table),
        cmocka_unit_test(test_range_respects_length),
        cmocka_unit_test(test_date_formats),
        cmocka_unit_test(test_date_rejects),
        cmocka_unit_test(test_date_format_roundtrip),
        cmocka_unit_test(test_etag_format),
        cmocka_unit_test(test_etag_lists),
        cmocka_unit_test(test_decide_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
