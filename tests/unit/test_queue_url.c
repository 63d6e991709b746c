/*
 * Tests queue/redis_url.c: redis:// URLs with user info, IPv6 hosts, ports and dbs, and kombu's
 * sentinel:// lists (several sentinels, the master's password and db from the first entry).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
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

static void test_sentinel_list(void **state)
{
    (void)state;
    struct redis_sentinel_url s;
    char err[160];
    assert_true(redis_url_is_sentinel("sentinel://h"));
    assert_false(redis_url_is_sentinel("redis://h"));
    assert_int_equal(redis_sentinel_url_parse("sentinel://:p%40ss@127.0.0.1:26379/1;"
                                              "sentinel://127.0.0.2:26380;sentinel://[::1]",
                                              &s, err, sizeof(err)),
                     IA_OK);
    assert_int_equal(s.count, 3);
    assert_string_equal(s.sentinel[0].host, "127.0.0.1");
    assert_int_equal(s.sentinel[0].port, 26379);
    assert_string_equal(s.sentinel[1].host, "127.0.0.2");
    assert_int_equal(s.sentinel[1].port, 26380);
    assert_string_equal(s.sentinel[2].host, "::1");
    assert_int_equal(s.sentinel[2].port, 26379); /* kombu's default port for sentinel:// */
    assert_string_equal(s.master.password, "p@ss");
    assert_string_equal(s.master.user, "");
    assert_int_equal(s.master.db, 1);
    assert_string_equal(s.master.host, ""); /* the sentinels name it */
    assert_int_equal(s.master.port, 0);
    /* One sentinel, no password; later entries may repeat the first's password and db. */
    assert_int_equal(redis_sentinel_url_parse("sentinel://[::1]:7000", &s, err, sizeof(err)),
                     IA_OK);
    assert_int_equal(s.count, 1);
    assert_string_equal(s.sentinel[0].host, "::1");
    assert_int_equal(s.sentinel[0].port, 7000);
    assert_string_equal(s.master.password, "");
    assert_int_equal(s.master.db, 0);
    assert_int_equal(redis_sentinel_url_parse("sentinel://u:pw@a:1/3;sentinel://u:pw@b:2/3;"
                                              "sentinel://:pw@c:3;sentinel://d:4/3",
                                              &s, err, sizeof(err)),
                     IA_OK);
    assert_int_equal(s.count, 4);
    assert_string_equal(s.master.user, "u");
    assert_string_equal(s.master.password, "pw");
    assert_int_equal(s.master.db, 3);
    assert_string_equal(s.sentinel[3].host, "d");
    assert_int_equal(s.sentinel[3].port, 4);
}

/* Each bad form, with the error text it gives (stable: the docs and operators read it). */
static void test_sentinel_rejects(void **state)
{
    (void)state;
    static const struct {
        const char *url, *err;
    } bad[] = {
        {"redis://h:26379", "sentinel URL: expected sentinel://[:password@]host[:port][/db], "
                            "entries joined by ';'"},
        {"sentinel://", "sentinel URL: entry 1: host is empty or too long"},
        {"sentinel://h1;", "sentinel URL: entry 2: empty entry (two ';' in a row, or one at the "
                           "end)"},
        {"sentinel://h1;;sentinel://h2", "sentinel URL: entry 2: empty entry (two ';' in a row, "
                                         "or one at the end)"},
        {"sentinel://h1;redis://h2", "sentinel URL: entry 2: expected "
                                     "sentinel://[:password@]host[:port][/db]"},
        {"sentinel://h1;sentinel://h2:0", "sentinel URL: entry 2: port is not a number from 1 "
                                          "to 65535"},
        {"sentinel://h1:x", "sentinel URL: entry 1: port is not a number from 1 to 65535"},
        {"sentinel://h1/x", "sentinel URL: entry 1: db is not a number"},
        {"sentinel://[::1;sentinel://h2", "sentinel URL: entry 1: unclosed '[' in host"},
        {"sentinel://h1?master_name=m", "sentinel URL: entry 1: query strings and fragments "
                                        "are not supported"},
        {"sentinel://:hunter2@h1;sentinel://:other@h2", "sentinel URL: entry 2: user, password "
                                                        "and db must be those of the first "
                                                        "entry, or none"},
        {"sentinel://h1/1;sentinel://h2/2", "sentinel URL: entry 2: user, password and db must "
                                            "be those of the first entry, or none"},
        {"sentinel://hunter2@h1", "sentinel URL: entry 1: user info needs ':' before the "
                                  "password"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct redis_sentinel_url s;
        char err[160] = "";
        if (redis_sentinel_url_parse(bad[i].url, &s, err, sizeof(err)) != IA_ERR_INVALID)
            fail_msg("accepted %s", bad[i].url);
        assert_string_equal(err, bad[i].err);
        assert_null(strstr(err, "hunter2"));
        assert_int_equal(s.count, 0);
        assert_string_equal(s.master.password, "");
    }
    /* More than 16 sentinels. */
    char many[17 * 16 + 1];
    size_t len = 0;
    for (int i = 0; i < 17; i++)
        len += (size_t)snprintf(many + len, sizeof(many) - len, "%ssentinel://h", i ? ";" : "");
    struct redis_sentinel_url s;
    char err[160];
    assert_int_equal(redis_sentinel_url_parse(many, &s, err, sizeof(err)), IA_ERR_INVALID);
    assert_string_equal(err, "sentinel URL: entry 17: more than 16 sentinels");
    many[strlen(many) - strlen(";sentinel://h")] = '\0';
    assert_int_equal(redis_sentinel_url_parse(many, &s, err, sizeof(err)), IA_OK);
    assert_int_equal(s.count, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_full),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_sentinel_list),
        cmocka_unit_test(test_sentinel_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
