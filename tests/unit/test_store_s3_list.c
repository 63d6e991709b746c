/*
 * Tests the pure parts of store/store_s3_list.c (the dates of listings and HEADs, the stamp of
 * an object) and store_read_small() on a directory (store/store_list.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "store/store.h"

#define A "aaaaaaaa-1111-4111-8111-111111111111"

static void test_dates_of_listings_and_heads(void **state)
{
    (void)state;
    long long t = 1796003160; /* 2026-11-30T01:46:00Z */
    assert_int_equal(store_time_parse("2026-11-30T01:46:00.000Z"), t);
    assert_int_equal(store_time_parse("2026-11-30T01:46:00.987Z"), t);
    assert_int_equal(store_time_parse("2026-11-30T01:46:00Z"), t);
    assert_int_equal(store_time_parse("Mon, 30 Nov 2026 01:46:00 GMT"), t);
    assert_int_equal(store_time_parse("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
    static const char *const bad[] = {
        "", "2026-11-30", "2026-11-30T01:46:00", "2026-11-30T01:46:00.000+01:00",
        "2026-13-30T01:46:00Z", "2026-11-30T25:46:00Z", "2026-11-30T01:46:00.Z",
        "Mon, 30 Foo 2026 01:46:00 GMT", "Mon, 30 Nov 2026 01:46:00 UTC",
        "Mon, 30 ovD 2026 01:46:00 GMT", "Mon, 30 Nov 2026 01:46:00 GMT x", "1969-12-31T23:59:59Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(store_time_parse(bad[i]), -1);
}

static void test_a_listing_and_a_head_give_the_same_stamp(void **state)
{
    (void)state;
    struct store_stamp listed, headed, other;
    store_stamp_of_object(&listed, "\"9b2cf535f27731c974343645a3985328\"", 1234,
                          "2026-11-30T01:46:00.512Z");
    store_stamp_of_object(&headed, "\"9b2cf535f27731c974343645a3985328\"", 1234,
                          "Mon, 30 Nov 2026 01:46:00 GMT");
    assert_int_equal(listed.ino, headed.ino);
    assert_int_equal(listed.size, headed.size);
    assert_int_equal(listed.mtime_ns, headed.mtime_ns);
    assert_int_equal(listed.mtime_ns, 1796003160LL * 1000000000LL);
    assert_true(listed.ino != 0);
    store_stamp_of_object(&other, "9b2cf535f27731c974343645a3985328", 1234, "");
    assert_int_equal(other.ino, listed.ino); /* quotes or not */
    assert_int_equal(other.mtime_ns, 0);     /* no date: 0, still a stamp */
    store_stamp_of_object(&other, "\"9b2cf535f27731c974343645a3985329\"", 1234,
                          "2026-11-30T01:46:00.512Z");
    assert_true(other.ino != listed.ino);
    store_stamp_of_object(&other, "", 0, "");
    assert_true(other.ino != 0); /* a stamp of an object is never "no file" */
}

static void test_read_small_from_a_directory(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/ia-s3list-XXXXXX";
    char *dir = mkdtemp(tmpl), err[128];
    assert_non_null(dir);
    struct store *s = store_new(dir, err, sizeof(err));
    assert_non_null(s);
    char *text = (char *)1;
    size_t len = 1;
    struct store_stamp st = {0};
    assert_int_equal(store_read_small(s, A, "json", 100, &text, &len, &st), IA_ERR_NOT_FOUND);
    assert_null(text);
    assert_int_equal(len, 0);
    assert_int_equal(store_read_small(s, "../x", "json", 100, &text, &len, &st),
                     IA_ERR_NOT_FOUND);
    char *path = store_path(s, A, "json");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"a\": 1}", f);
    fclose(f);
    assert_int_equal(store_read_small(s, A, "json", 100, &text, &len, &st), IA_OK);
    assert_int_equal(len, 8);
    assert_string_equal(text, "{\"a\": 1}");
    assert_int_equal(st.size, 8);
    assert_true(st.ino != 0);
    free(text);
    assert_int_equal(store_read_small(s, A, "json", 7, &text, &len, NULL), IA_ERR_TOO_LARGE);
    assert_null(text);
    unlink(path);
    free(path);
    store_free(s);
    rmdir(dir);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dates_of_listings_and_heads),
        cmocka_unit_test(test_a_listing_and_a_head_give_the_same_stamp),
        cmocka_unit_test(test_read_small_from_a_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
