/* Tests for util/uuid.c and util/str.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/str.h"
#include "util/os.h"
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

/* Ids across several refills of the per-thread buffer are all canonical and all different. */
static void test_uuid_v4_many_are_distinct(void **state)
{
    (void)state;
    enum { N = 100 };
    static char ids[N][UUID_STR_LEN + 1];
    for (int i = 0; i < N; i++) {
        uuid_v4_new(ids[i]);
        assert_true(uuid_is_canonical(ids[i], strlen(ids[i])));
        assert_int_equal(ids[i][14], '4');
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
}

/* A forked child never takes the ids its parent would: the buffer is the parent's. */
static void test_uuid_v4_child_does_not_repeat_parent(void **state)
{
    (void)state;
    char first[UUID_STR_LEN + 1], parent[UUID_STR_LEN + 1], child[UUID_STR_LEN + 1];
    uuid_v4_new(first); /* the buffer now holds bytes for the next ids */
    assert_int_equal(os_pid(), getpid());
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* os_pid() was looked up in the parent: the child sees its own */
        uuid_v4_new(child);
        ssize_t n = write(fds[1], child, sizeof(child));
        _exit(n == (ssize_t)sizeof(child) && os_pid() == getpid() ? 0 : 1);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], child, sizeof(child)), (ssize_t)sizeof(child));
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    uuid_v4_new(parent);
    assert_true(uuid_is_canonical(child, strlen(child)));
    assert_string_not_equal(child, parent);
    assert_string_not_equal(child, first);
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
        cmocka_unit_test(test_uuid_v4_many_are_distinct),
        cmocka_unit_test(test_uuid_v4_child_does_not_repeat_parent),
        cmocka_unit_test(test_uuid_rejects_non_canonical),
        cmocka_unit_test(test_str_to_u64),
        cmocka_unit_test(test_str_to_ll),
        cmocka_unit_test(test_slice_and_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
