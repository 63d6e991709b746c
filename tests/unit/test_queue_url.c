/* Tests queue/redis_url.c: redis:// URLs with user info, IPv6 hosts, ports and dbs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "queue/redis_url.h"

static void test_defaults_and_full(void **state)
{
    (void)state;
    struct redis_url u;
    char err[128];
    assert_int_equal(redis_url_parse("redis://localhost", &u, err, sizeof(err)), IA_OK);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");
    assert_int_equal(redis_url_parse("redis://:p%40ss@10.0.0.5:6380/2", &u, err, sizeof(err)),
                     IA_OK);
    assert_string_equal(u.host, "10.0.0.5");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "p@ss");
    assert_int_equal(redis_url_parse("redis://bob:a:b@c@[::1]:7000/", &u, err, sizeof(err)), IA_OK);
    assert_string_equal(u.user, "bob");
    assert_string_equal(u.password, "a:b@c");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 0);
    assert_int_equal(redis_url_parse("redis://[::1]/15", &u, err, sizeof(err)), IA_OK);
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 15);
}

static void test_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "rediss://h:1/0",
        "http://h",
        "redis://",
        "redis://:pw@/0",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:12x",
        "redis://h/abc",
        "redis://h/-1",
        "redis://h/0?x=1",
        "redis://secretonly@h",
        "redis://:%zz@h",
        "redis://:%00@h",
        "redis://[::1",
        "redis://[::1]x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct redis_url u;
        char err[128] = "";
        if (redis_url_parse(bad[i], &u, err, sizeof(err)) != IA_ERR_INVALID)
            fail_msg("accepted %s", bad[i]);
        assert_non_null(strstr(err, "redis URL"));
        assert_string_equal(u.password, "");
    }
    struct redis_url u;
    char err[128] = "";
    assert_int_equal(redis_url_parse("redis://:hunter2@h:99999", &u, err, sizeof(err)),
                     IA_ERR_INVALID);
    assert_null(strstr(err, "hunter2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_full),
        cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
