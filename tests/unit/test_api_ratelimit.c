/* Tests for the token bucket of api/ratelimit.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#include "api/ratelimit.h"

static int reset(void **state)
{
    (void)state;
    ratelimit_reset();
    return 0;
}

static void test_burst_then_refusal_with_wait(void **state)
{
    (void)state;
    for (int i = 0; i < 6; i++)
        assert_int_equal(ratelimit_take("ip:10.0.0.1", 6, 1000), 0);
    /* 6 a minute: one token every 10 s. */
    unsigned wait = ratelimit_take("ip:10.0.0.1", 6, 1000);
    assert_true(wait >= 9 && wait <= 11);
    assert_true(ratelimit_take("ip:10.0.0.1", 6, 5000) >= 5);
}

static void test_refill_over_time(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        assert_int_equal(ratelimit_take("key:a", 2, 0), 0);
    assert_int_not_equal(ratelimit_take("key:a", 2, 0), 0);
    assert_int_not_equal(ratelimit_take("key:a", 2, 29000), 0);
    assert_int_equal(ratelimit_take("key:a", 2, 30500), 0);
    assert_int_not_equal(ratelimit_take("key:a", 2, 30600), 0);
    /* A long pause refills only up to the burst. */
    assert_int_equal(ratelimit_take("key:a", 2, 10000000), 0);
    assert_int_equal(ratelimit_take("key:a", 2, 10000000), 0);
    assert_int_not_equal(ratelimit_take("key:a", 2, 10000000), 0);
}

static void test_clients_are_independent(void **state)
{
    (void)state;
    assert_int_equal(ratelimit_take("ip:1.1.1.1", 1, 0), 0);
    assert_int_not_equal(ratelimit_take("ip:1.1.1.1", 1, 0), 0);
    assert_int_equal(ratelimit_take("ip:1.1.1.2", 1, 0), 0);
    assert_int_equal(ratelimit_take("key:1.1.1.1", 1, 0), 0);
}

/* A flood of other clients never makes a fresh client wait (eviction only grants). */
static void test_flood_of_clients(void **state)
{
    (void)state;
    char name[32];
    for (int i = 0; i < 50000; i++) {
        snprintf(name, sizeof(name), "ip:flood-%d", i);
        assert_int_equal(ratelimit_take(name, 1, 1000), 0);
    }
    assert_int_equal(ratelimit_take("ip:victim", 1, 1000), 0);
    assert_int_not_equal(ratelimit_take("ip:victim", 1, 1000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_burst_then_refusal_with_wait, reset),
        cmocka_unit_test_setup(test_refill_over_time, reset),
        cmocka_unit_test_setup(test_clients_are_independent, reset),
        cmocka_unit_test_setup(test_flood_of_clients, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
