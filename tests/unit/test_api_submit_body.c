/* Tests api/submit_body.c: the POST /submit body, its analysis flag and the task's kwargs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

/* Parses text; returns the reason of a refusal (NULL when accepted) and fills the outputs. */
static const char *parse(const char *text, char **url, bool *off)
{
    struct submit_fields f;
    const char *why = api_parse_submit((const unsigned char *)text, strlen(text), &f);
    assert_true(why ? f.video_url == NULL : f.video_url != NULL);
    assert_null(f.callback_url);
    *url = f.video_url;
    *off = f.analysis_off;
    return why;
}

static void test_analysis_flag(void **state)
{
    (void)state;
    char *url;
    bool off = true;
    assert_null(parse("{\"video_url\": \"http://a.test/v.mp4\"}", &url, &off));
    assert_string_equal(url, "http://a.test/v.mp4");
    assert_false(off);
    free(url);
    assert_null(parse("{\"video_url\": \"http://a.test/v\", \"analysis\": false}", &url, &off));
    assert_true(off);
    free(url);
    assert_null(parse("{\"analysis\": true, \"video_url\": \"http://a.test/v\"}", &url, &off));
    assert_false(off);
    free(url);
}

static void test_analysis_must_be_boolean(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"video_url\": \"http://a.test/v\", \"analysis\": \"false\"}",
        "{\"video_url\": \"http://a.test/v\", \"analysis\": 0}",
        "{\"video_url\": \"http://a.test/v\", \"analysis\": null}",
        "{\"video_url\": \"http://a.test/v\", \"analysis\": []}",
        "{\"video_url\": \"http://a.test/v\", \"analysis\": {}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char sentinel[] = "unset", *url = sentinel;
        bool off = true;
        assert_string_equal(parse(bad[i], &url, &off), "analysis must be true or false");
        assert_null(url);
        assert_false(off);
    }
    char *url;
    bool off;
    /* A duplicate key is refused as before, whatever its value. */
    assert_string_equal(
        parse("{\"video_url\": \"http://a.test/v\", \"analysis\": false, \"analysis\": true}",
              &url, &off),
        "the body is not valid JSON");
    /* The URL is checked first. */
    assert_string_equal(parse("{\"video_url\": 5, \"analysis\": 1}", &url, &off),
                        "video_url must be a string");
}

static void test_kwargs(void **state)
{
    (void)state;
    json_t *k = api_task_kwargs_new(false);
    assert_true(json_is_object(k));
    assert_int_equal(json_object_size(k), 0);
    json_decref(k);
    k = api_task_kwargs_new(true);
    assert_int_equal(json_object_size(k), 1);
    assert_true(json_is_false(json_object_get(k, "analysis")));
    json_decref(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_analysis_flag),
        cmocka_unit_test(test_analysis_must_be_boolean),
        cmocka_unit_test(test_kwargs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
