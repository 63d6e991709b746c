/*
 * Tests api/decisions_body.c: the body of PATCH /videos/{id}/events/{id}, the decisions document
 * it changes, and the query and cursor of GET /videos.
 */
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

#define ID "0b6c1f4e-2a3b-4c5d-8e9f-0123456789ab"

/* Parses text; returns the reason of a refusal (NULL when accepted). */
static const char *parse(const char *text, struct api_decision *d)
{
    const char *why = "unset";
    enum ia_err rc = api_parse_decision_body((const unsigned char *)text, strlen(text), d, &why);
    assert_int_equal(rc, why ? IA_ERR_INVALID : IA_OK);
    return why;
}

static void test_good_decisions(void **state)
{
    (void)state;
    struct api_decision d;
    assert_null(parse("{\"decision\": \"dismissed\", \"note\": \"a poster on the wall\"}", &d));
    assert_string_equal(d.decision, "dismissed");
    assert_string_equal(d.note, "a poster on the wall");
    assert_null(parse("{\"decision\": \"confirmed\"}", &d));
    assert_string_equal(d.decision, "confirmed");
    assert_string_equal(d.note, "");
    assert_null(parse("{\"decision\": \"confirmed\", \"note\": null}", &d));
    assert_string_equal(d.note, "");
    assert_null(
        parse("{\"note\": \"line 1\\nline\\t2 \\u00e9\\u4e2d\", \"decision\": \"confirmed\"}", &d));
    assert_string_equal(d.note, "line 1\nline\t2 \xc3\xa9\xe4\xb8\xad");
}

static void test_bad_decisions(void **state)
{
    (void)state;
    static const struct {
        const char *body, *why;
    } cases[] = {
        {"", "the body is not valid JSON"},
        {"{", "the body is not valid JSON"},
        {"[]", "the body must be a JSON object"},
        {"\"confirmed\"", "the body is not valid JSON"},
        {"{}", "decision must be \"confirmed\" or \"dismissed\""},
        {"{\"decision\": \"maybe\"}", "decision must be \"confirmed\" or \"dismissed\""},
        {"{\"decision\": \"Confirmed\"}", "decision must be \"confirmed\" or \"dismissed\""},
        {"{\"decision\": true}", "decision must be \"confirmed\" or \"dismissed\""},
        {"{\"decision\": null}", "decision must be \"confirmed\" or \"dismissed\""},
        {"{\"decision\": \"confirmed\", \"note\": 3}", "note must be a string"},
        {"{\"decision\": \"confirmed\", \"note\": [\"x\"]}", "note must be a string"},
        {"{\"decision\": \"confirmed\", \"note\": \"a\\u0007b\"}",
         "note must not contain control characters"},
        {"{\"decision\": \"confirmed\", \"note\": \"a\\rb\"}",
         "note must not contain control characters"},
        {"{\"decision\": \"confirmed\", \"note\": \"\\u007f\"}",
         "note must not contain control characters"},
        {"{\"decision\": \"confirmed\", \"who\": \"me\"}", "only decision and note may be given"},
        {"{\"decision\": \"confirmed\", \"decision\": \"dismissed\"}",
         "the body is not valid JSON"},
        {"{\"decision\": \"confirmed\", \"note\": \"\\u0000\"}", "the body is not valid JSON"},
        {"{\"decision\": \"confirmed\", \"note\": \"\\ud800\"}", "the body is not valid JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct api_decision d;
        memset(&d, 'x', sizeof(d));
        const char *why = parse(cases[i].body, &d);
        assert_non_null(why);
        assert_string_equal(why, cases[i].why);
        assert_string_equal(d.decision, ""); /* zeroed on refusal */
    }
}

/* A note of n copies of a UTF-8 character (bytes long) in a body. */
static char *note_body(const char *ch, size_t n)
{
    size_t len = strlen(ch);
    char *body = malloc(64 + n * len);
    char *p = body + sprintf(body, "{\"decision\": \"dismissed\", \"note\": \"");
    for (size_t i = 0; i < n; i++, p += len)
        memcpy(p, ch, len);
    strcpy(p, "\"}");
    return body;
}

static void test_note_length_counts_characters(void **state)
{
    (void)state;
    struct api_decision d;
    const char *chars[] = {"a", "\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80"};
    for (size_t i = 0; i < sizeof(chars) / sizeof(chars[0]); i++) {
        char *ok = note_body(chars[i], API_DECISION_NOTE_MAX);
        assert_null(parse(ok, &d));
        assert_int_equal(strlen(d.note), API_DECISION_NOTE_MAX * strlen(chars[i]));
        free(ok);
        char *over = note_body(chars[i], API_DECISION_NOTE_MAX + 1);
        assert_string_equal(parse(over, &d), "note is longer than 500 characters");
        free(over);
    }
}

static void test_apply_keeps_the_other_decisions(void **state)
{
    (void)state;
    struct api_decision a = {"dismissed", "poster"}, b = {"confirmed", ""};
    json_t *doc = api_decisions_apply(NULL, ID, "e1", &a, "alice", "2026-01-01T00:00:00.000000Z");
    json_t *doc2 = api_decisions_apply(doc, ID, "e2", &b, NULL, "2026-01-01T00:00:01.000000Z");
    json_t *doc3 = api_decisions_apply(doc2, ID, "e1", &b, "bob", "2026-01-01T00:00:02.000000Z");
    assert_int_equal(json_integer_value(json_object_get(doc3, "schema")), 1);
    assert_string_equal(json_string_value(json_object_get(doc3, "video_id")), ID);
    json_t *all = json_object_get(doc3, "decisions");
    assert_int_equal(json_object_size(all), 2);
    json_t *e1 = json_object_get(all, "e1"), *e2 = json_object_get(all, "e2");
    assert_string_equal(json_string_value(json_object_get(e1, "decision")), "confirmed");
    assert_string_equal(json_string_value(json_object_get(e1, "decided_by")), "bob");
    assert_true(json_is_null(json_object_get(e2, "decided_by")));
    assert_string_equal(json_string_value(json_object_get(e2, "decided_at")),
                        "2026-01-01T00:00:01.000000Z");
    /* The input documents are not changed. */
    json_t *old = json_object_get(json_object_get(doc, "decisions"), "e1");
    assert_string_equal(json_string_value(json_object_get(old, "decision")), "dismissed");
    json_t *junk = json_pack("{s:[]}", "decisions");
    json_t *doc4 = api_decisions_apply(junk, ID, "e3", &a, NULL, "t");
    assert_int_equal(json_object_size(json_object_get(doc4, "decisions")), 1);
    json_decref(doc);
    json_decref(doc2);
    json_decref(doc3);
    json_decref(doc4);
    json_decref(junk);
}

static void test_list_query(void **state)
{
    (void)state;
    struct api_list_query q;
    assert_null(api_parse_list_query(NULL, NULL, NULL, NULL, NULL, &q));
    assert_int_equal(q.status, REVIEW_ANY);
    assert_int_equal(q.level, -1);
    assert_int_equal(q.sort, LIST_NEWEST);
    assert_int_equal(q.limit, API_LIST_DEFAULT);
    assert_false(q.has_cursor);
    assert_null(api_parse_list_query("to_review", "CHEATING_DETECTED", "score", "100", NULL, &q));
    assert_int_equal(q.status, REVIEW_TO_REVIEW);
    assert_string_equal(api_level_name(q.level), "CHEATING_DETECTED");
    assert_int_equal(q.sort, LIST_SCORE);
    assert_int_equal(q.limit, 100);
    assert_null(api_parse_list_query("no_events", "none", "newest", "1", NULL, &q));
    assert_int_equal(q.level, api_level_index(NULL));
    assert_int_equal(api_level_index("NO_ALERT"), 0);
    assert_int_equal(api_level_index("SOMETHING_ELSE"), -1);
    const char *bad[][5] = {
        {"done", NULL, NULL, NULL, NULL},   {"", "LOW", NULL, NULL, NULL},
        {NULL, NULL, "oldest", NULL, NULL}, {NULL, NULL, NULL, "0", NULL},
        {NULL, NULL, NULL, "101", NULL},    {NULL, NULL, NULL, "ten", NULL},
        {NULL, NULL, NULL, "", NULL},       {NULL, NULL, NULL, NULL, "garbage"},
        {NULL, NULL, NULL, NULL, ""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_non_null(
            api_parse_list_query(bad[i][0], bad[i][1], bad[i][2], bad[i][3], bad[i][4], &q));
}

static void test_cursor_round_trip(void **state)
{
    (void)state;
    struct api_list_cursor c = {83, 1796000000123456LL, ID}, none = {-1, 5, ID};
    char text[128];
    struct api_list_query q;
    api_list_cursor(LIST_SCORE, &c, text, sizeof(text));
    assert_null(api_parse_list_query(NULL, NULL, "score", NULL, text, &q));
    assert_true(q.has_cursor);
    assert_int_equal(q.cursor.score, 83);
    assert_int_equal(q.cursor.completed_us, 1796000000123456LL);
    assert_string_equal(q.cursor.id, ID);
    /* A cursor of one sort is refused by the other. */
    assert_non_null(api_parse_list_query(NULL, NULL, NULL, NULL, text, &q));
    api_list_cursor(LIST_SCORE, &none, text, sizeof(text));
    assert_null(api_parse_list_query(NULL, NULL, "score", NULL, text, &q));
    assert_int_equal(q.cursor.score, -1);
    api_list_cursor(LIST_NEWEST, &c, text, sizeof(text));
    assert_null(api_parse_list_query(NULL, NULL, "newest", NULL, text, &q));
    assert_int_equal(q.cursor.completed_us, 1796000000123456LL);
    const char *bad[] = {"n.1." ID "x", "n.1.0b6c1f4e_2a3b-4c5d-8e9f-0123456789ab",
                         "n.-1." ID,    "n." ID,
                         "n.1",         "n..",
                         "x.1." ID};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_non_null(api_parse_list_query(NULL, NULL, NULL, NULL, bad[i], &q));
    assert_non_null(api_parse_list_query(NULL, NULL, "score", NULL, "s.1001.1." ID, &q));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_decisions),
        cmocka_unit_test(test_bad_decisions),
        cmocka_unit_test(test_note_length_counts_characters),
        cmocka_unit_test(test_apply_keeps_the_other_decisions),
        cmocka_unit_test(test_list_query),
        cmocka_unit_test(test_cursor_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
