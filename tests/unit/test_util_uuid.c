/* Tests for util/uuid.c and util/str.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "util/str.h"
#include "util/uuid.h"

static void test_uuid_v4_is_canonical_and_random(void **state)
{
    (void)state;
    char a[UUID_STR_LEN + 1], b[UUID_STR_LEN + 1];
    uuid_v4_new(a);
    uuid_v4_new(b);
    assert_true(uuid_is_canonical(a, strlen(a)));
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
    assert_string_not_equal(a, b);
}

static void test_uuid_rejects_non_canonical(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "../../etc/passwd",
        "0123456789abcdef0123456789abcdef",
        "01234567-89ab-cdef-0123-456789abcde",
        "01234567-89ab-cdef-0123-456789abcdef0",
        "01234567_89ab-cdef-0123-456789abcdef",
        "0123456g-89ab-cdef-0123-456789abcdef",
        "{1234567-89ab-cdef-0123-456789abcdef}",
        "01234567-89ab-cdef-0123-456789abcd/f",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(uuid_is_canonical(bad[i], strlen(bad[i])));
    assert_true(uuid_is_canonical("01234567-89AB-cdef-0123-456789abcdef", 36));
    assert_false(uuid_is_canonical("01234567-89ab-cdef-0123-456789ab\0def", 36));
}

static void test_str_to_u64(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_true(str_to_u64("18446744073709551615", 20, &v));
    assert_true(v == UINT64_MAX);
    assert_false(str_to_u64("18446744073709551616", 20, &v));
    assert_false(str_to_u64("", 0, &v));
    assert_false(str_to_u64("1 ", 2, &v));
    assert_false(str_to_u64("-1", 2, &v));
    assert_true(str_to_u64("0042", 4, &v));
    assert_true(v == 42);
}

static void test_str_to_ll(void **state)
{
    (void)state;
    long long v = 0;
    assert_true(str_to_ll("-9223372036854775808", 20, INT64_MIN, INT64_MAX, &v));
    assert_true(v == INT64_MIN);
    assert_false(str_to_ll("9223372036854775808", 19, INT64_MIN, INT64_MAX, &v));
    assert_false(str_to_ll("11", 2, 0, 10, &v));
    assert_true(str_to_ll("10", 2, 0, 10, &v));
    assert_int_equal(v, 10);
    assert_false(str_to_ll("-", 1, -5, 5, &v));
}

static void test_slice_and_hex(void **state)
{
    (void)state;
    struct slice s = {"Bytes=", 5};
    assert_true(slice_eq_nocase(s, "bytes"));
    assert_false(slice_eq_nocase(s, "byte"));
    char hex[7];
    const unsigned char in[] = {0x00, 0xab, 0xff};
    str_hex(hex, in, 3);
    assert_string_equal(hex, "00abff");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid_v4_is_canonical_and_random),
        cmocka_unit_test(test_uuid_rejects_non_canonical),
        cmocka_unit_test(test_str_to_u64),
        cmocka_unit_test(test_str_to_ll),
        cmocka_unit_test(test_slice_and_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
