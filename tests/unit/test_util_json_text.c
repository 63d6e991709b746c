/* Tests util/json_text.c: JSON text with strings escaped as Python's json.dumps does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "util/json_text.h"

/* The escaped form of s, or NULL when it is refused. */
static char *escaped(const char *s)
{
    struct json_text t;
    json_text_init(&t, 1); /* grows from one byte */
    if (!json_text_string(&t, s)) {
        json_text_cleanup(&t);
        return NULL;
    }
    return json_text_take(&t);
}

static void test_strings_as_python_writes_them(void **state)
{
    (void)state;
    /* python3 -c 'import json; print(json.dumps(S))' for each S */
    static const char *const cases[][2] = {
        {"", "\"\""},
        {"plain http://a/b?c=d", "\"plain http://a/b?c=d\""},
        {"q\"b\\s/", "\"q\\\"b\\\\s/\""},
        {"\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\""},
        {"\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\""},
        {"\xc3\xa9\xe2\x82\xac", "\"\\u00e9\\u20ac\""},
        {"\xf0\x9f\x98\x80", "\"\\ud83d\\ude00\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *e = escaped(cases[i][0]);
        assert_non_null(e);
        assert_string_equal(e, cases[i][1]);
        /* and a JSON parser reads back the same bytes */
        json_t *v = json_loads(e, JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        assert_string_equal(json_string_value(v), cases[i][0]);
        json_decref(v);
        free(e);
    }
}

static void test_what_is_not_utf8_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"\xc3\x28", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                      "\xe2\x82", "\x80", "\xff"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(escaped(bad[i]));
}

static void test_members_and_null(void **state)
{
    (void)state;
    struct json_text t;
    json_text_init(&t, 8);
    json_text_raw(&t, "{", 1);
    assert_true(json_text_member(&t, "a", "x", true));
    assert_true(json_text_member(&t, "b", NULL, false));
    json_text_lit(&t, "}");
    char *s = json_text_take(&t);
    assert_string_equal(s, "{\"a\": \"x\", \"b\": null}");
    assert_null(t.p);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings_as_python_writes_them),
        cmocka_unit_test(test_what_is_not_utf8_is_refused),
        cmocka_unit_test(test_members_and_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
