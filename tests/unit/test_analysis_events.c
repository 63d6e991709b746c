/* Tests for analysis/runs.c, events.c, audio.c's events and report.c: from conditions to events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/report.h"

static struct analysis_opts opts(void)
{
    struct analysis_opts ao = {.fps = 5,
                               .absent_min_s = 2,
                               .multiple_min_s = 1,
                               .away_min_s = 2,
                               .silence_min_s = 2,
                               .suspicious_score = 40,
                               .cheating_score = 70};
    return ao;
}

/* Feeds kind k a condition that holds on [on, off) over samples at 5 fps up to end. */
static void feed(struct runs *rs, enum ev_kind k, double on, double off, double end)
{
    for (int i = 0; i * 0.2 < end - 1e-9; i++) {
        double t = i * 0.2;
        runs_update(rs, k, t, t, t >= on - 1e-9 && t < off - 1e-9, 1, 1, NULL, NULL);
    }
    runs_finish(rs, end);
}

static void test_a_long_run_becomes_one_event(void **state)
{
    (void)state;
    struct analysis_opts ao = opts();
    struct event_list l = {0};
    struct runs rs;
    runs_init(&rs, &ao, 4, 4, &l);
    feed(&rs, EV_FACE_ABSENT, 4.0, 8.0, 12.0);
    assert_int_equal(l.n, 1);
    assert_true(fabs(l.v[0].start - 4.0) < 0.01);
    assert_true(fabs(l.v[0].end - 8.0) < 0.01);
    runs_cleanup(&rs);
    event_list_cleanup(&l);
}

static void test_a_short_run_is_no_event(void **state)
{
    (void)state;
    struct analysis_opts ao = opts();
    struct event_list l = {0};
    struct runs rs;
    runs_init(&rs, &ao, 4, 4, &l);
    feed(&rs, EV_FACE_ABSENT, 4.0, 5.0, 12.0); /* 1 s < FACE_ABSENT_MIN_S */
    assert_int_equal(l.n, 0);
    runs_cleanup(&rs);
    event_list_cleanup(&l);
}

static void test_one_missed_sample_does_not_split_a_run(void **state)
{
    (void)state;
    struct analysis_opts ao = opts();
    struct event_list l = {0};
    struct runs rs;
    runs_init(&rs, &ao, 4, 4, &l);
    for (int i = 0; i < 60; i++) {
        double t = i * 0.2;
        bool on = t >= 2.0 - 1e-9 && t < 9.0 - 1e-9 && i != 25; /* 5.0 s is missed */
        runs_update(&rs, EV_LOOKING_AWAY, t, t, on, 1, 1, NULL, NULL);
    }
    runs_finish(&rs, 12.0);
    assert_int_equal(l.n, 1);
    assert_true(fabs(l.v[0].start - 2.0) < 0.01 && fabs(l.v[0].end - 9.0) < 0.01);
    runs_cleanup(&rs);
    event_list_cleanup(&l);
}

static void test_a_run_open_at_the_end_is_closed(void **state)
{
    (void)state;
    struct analysis_opts ao = opts();
    struct event_list l = {0};
    struct runs rs;
    runs_init(&rs, &ao, 4, 4, &l);
    feed(&rs, EV_FACE_MISMATCH, 6.0, 99, 12.0);
    assert_int_equal(l.n, 1);
    assert_true(fabs(l.v[0].end - 12.0) < 0.01);
    runs_cleanup(&rs);
    event_list_cleanup(&l);
}

static void test_score_ramps_with_time_and_sets_levels(void **state)
{
    (void)state;
    struct analysis_opts ao = opts();
    struct event_list l = {0};
    struct runs rs;
    runs_init(&rs, &ao, 4, 4, &l);
    double first = -1, later = -1;
    for (int i = 0; i <= 20; i++) {
        double t = i * 0.2;
        runs_update(&rs, EV_MULTIPLE_FACES, t, t, t >= 1.0, 2, 1, NULL, NULL);
        double sc = score_at(&rs, t);
        if (i == 5)
            first = sc;
        if (i == 20)
            later = sc;
    }
    assert_true(first > 0 && first < later);
    assert_string_equal(score_level(&ao, later), "CHEATING_DETECTED");
    assert_string_equal(score_level(&ao, 0), "NO_ALERT");
    assert_string_equal(score_level(&ao, 45), "SUSPICIOUS_BEHAVIOR");
    runs_cleanup(&rs);
    event_list_cleanup(&l);
}

static void test_a_heuristic_alone_raises_no_alert_but_adds_to_nothing(void **state)
{
    (void)state;
    struct analysis_opts ao = opts();
    struct event_list l = {0};
    struct runs rs;
    runs_init(&rs, &ao, 4, 4, &l);
    double alone = 0, both = 0, three = 0;
    for (int i = 0; i <= 40; i++) {
        double t = i * 0.2;
        runs_update(&rs, EV_SPEECH_WITHOUT_CANDIDATE, t, t, true, 1, 1, NULL, NULL);
        runs_update(&rs, EV_FACE_ABSENT, t, t, t >= 3.0, 1, 1, NULL, NULL);
        runs_update(&rs, EV_MULTIPLE_FACES, t, t, t >= 6.0, 1, 1, NULL, NULL);
        double sc = score_at(&rs, t);
        if (i == 10)
            alone = sc;
        if (i == 28)
            both = sc;
        if (i == 40)
            three = sc;
    }
    assert_string_equal(score_level(&ao, alone), "NO_ALERT");
    assert_true(fabs(both - 60) < 1e-9);  /* the heuristic adds nothing to face_absent */
    assert_true(fabs(three - 85) < 1e-9); /* multiple_faces 75 + 10 for face_absent */
    runs_finish(&rs, 8.0);
    runs_cleanup(&rs);
    event_list_cleanup(&l);
}

static void test_silences_are_the_gaps_between_speech(void **state)
{
    (void)state;
    struct analysis_opts ao = opts();
    struct span speech[] = {{0.5, 3.0}, {3.5, 4.0}, {8.0, 10.0}};
    struct audio_result a = {.present = true,
                             .speech = speech,
                             .nspeech = 3,
                             .true_peak_dbfs = -3,
                             .integrated_lufs = -20};
    struct event_list l = {0};
    audio_events(&ao, &a, 12.0, &l);
    assert_int_equal(l.n, 2); /* 4-8 and 10-12; 0-0.5 and 3-3.5 are too short */
    assert_int_equal(l.v[0].kind, EV_SILENCE);
    assert_true(fabs(l.v[0].start - 4.0) < 1e-9 && fabs(l.v[0].end - 8.0) < 1e-9);
    assert_true(fabs(l.v[1].start - 10.0) < 1e-9 && fabs(l.v[1].end - 12.0) < 1e-9);
    assert_true(audio_speech_at(&a, 9.0));
    assert_false(audio_speech_at(&a, 5.0));
    event_list_cleanup(&l);
}

static void test_no_audio_and_silent_audio_are_flags(void **state)
{
    (void)state;
    struct analysis_opts ao = opts();
    struct audio_result none = {.present = false};
    struct audio_result quiet = {.present = true, .true_peak_dbfs = -70};
    struct event_list l = {0};
    audio_events(&ao, &none, 5.0, &l);
    audio_events(&ao, &quiet, 5.0, &l);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.v[0].kind, EV_NO_AUDIO);
    assert_int_equal(l.v[1].kind, EV_SILENT_AUDIO);
    event_list_cleanup(&l);
}

static void test_events_are_ordered_and_named_and_the_vtt_is_safe(void **state)
{
    (void)state;
    struct event_list l = {0};
    event_list_add(&l, EV_SILENCE, 5, 7, 1, json_pack("{s:s}", "label", "a <b>&\nc"));
    event_list_add(&l, EV_FACE_ABSENT, 1, 3.5, 1, NULL);
    event_list_finish(&l);
    assert_string_equal(l.v[0].id, "e1");
    assert_int_equal(l.v[0].kind, EV_FACE_ABSENT);
    assert_string_equal(l.v[1].id, "e2");
    char path[] = "/tmp/ia-test-vtt-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(report_write_vtt(&l, path), 0);
    char buf[512] = {0};
    FILE *f = fdopen(fd, "r");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    unlink(path);
    buf[n] = 0;
    assert_non_null(strstr(buf, "WEBVTT\n\ne1\n00:00:01.000 --> 00:00:03.500\nface_absent\n"));
    assert_non_null(strstr(buf, "00:00:05.000 --> 00:00:07.000\nsilence: a &lt;b>&amp; c\n"));
    json_t *j = report_events(&l);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 1), "kind")),
                        "silence");
    json_decref(j);
    event_list_cleanup(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_long_run_becomes_one_event),
        cmocka_unit_test(test_a_short_run_is_no_event),
        cmocka_unit_test(test_one_missed_sample_does_not_split_a_run),
        cmocka_unit_test(test_a_run_open_at_the_end_is_closed),
        cmocka_unit_test(test_score_ramps_with_time_and_sets_levels),
        cmocka_unit_test(test_a_heuristic_alone_raises_no_alert_but_adds_to_nothing),
        cmocka_unit_test(test_silences_are_the_gaps_between_speech),
        cmocka_unit_test(test_no_audio_and_silent_audio_are_flags),
        cmocka_unit_test(test_events_are_ordered_and_named_and_the_vtt_is_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
