/* Tests for analysis/audio.c: reading ffmpeg's silencedetect and volumedetect output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>

#include "analysis/analysis.h"

static const char log_text[] =
    "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'video.mp4':\n"
    "[silencedetect @ 0x55] silence_start: 2.00054\n"
    "[silencedetect @ 0x55] silence_end: 5.0001 | silence_duration: 2.99956\n"
    "[silencedetect @ 0x55] silence_start: 6.1\n"
    "[silencedetect @ 0x55] silence_end: 7.0 | silence_duration: 0.9\n"
    "[silencedetect @ 0x55] silence_start: 8.5\n"
    "[Parsed_volumedetect_1 @ 0x56] mean_volume: -21.3 dB\n"
    "[Parsed_volumedetect_1 @ 0x56] max_volume: -3.0 dB\n";

static double num(const json_t *obj, const char *key)
{
    return json_number_value(json_object_get(obj, key));
}

static void test_silences_become_events(void **state)
{
    (void)state;
    json_t *report = json_object();
    analysis_read_audio_log(log_text, 11.0, 1, report);
    json_t *events = json_object_get(report, "events");
    assert_int_equal(json_array_size(events), 2); /* the 0.9 s silence is too short */
    json_t *first = json_array_get(events, 0), *last = json_array_get(events, 1);
    assert_string_equal(json_string_value(json_object_get(first, "kind")), "silence");
    assert_true(fabs(num(first, "start") - 2.00054) < 1e-9);
    assert_true(fabs(num(first, "end") - 5.0001) < 1e-9);
    assert_true(fabs(num(last, "start") - 8.5) < 1e-9); /* open at the end: runs to the end */
    assert_true(fabs(num(last, "end") - 11.0) < 1e-9);
    json_t *audio = json_object_get(json_object_get(report, "analysis"), "audio");
    assert_true(json_is_true(json_object_get(audio, "present")));
    assert_true(json_is_true(json_object_get(audio, "audible")));
    assert_true(fabs(num(audio, "mean_volume_db") + 21.3) < 1e-9);
    assert_true(fabs(num(audio, "silence_ratio") - (2.99956 + 2.5) / 11.0) < 1e-3);
    json_decref(report);
}

static void test_silent_and_missing_audio(void **state)
{
    (void)state;
    json_t *report = json_object();
    analysis_read_audio_log("[x] silence_start: 0\n[y] max_volume: -91.0 dB\n", 4.0, 1, report);
    json_t *audio = json_object_get(json_object_get(report, "analysis"), "audio");
    assert_true(json_is_false(json_object_get(audio, "audible")));
    json_decref(report);

    report = json_object();
    analysis_read_audio_log("", 3.0, 0, report);
    audio = json_object_get(json_object_get(report, "analysis"), "audio");
    assert_true(json_is_false(json_object_get(audio, "present")));
    assert_int_equal(json_array_size(json_object_get(report, "events")), 1);
    json_decref(report);
}

static void test_garbage_log(void **state)
{
    (void)state;
    json_t *report = json_object();
    analysis_read_audio_log("silence_end: 3\nsilence_start: x\nmax_volume: \n\n\n", 5.0, 1,
                            report);
    assert_int_equal(json_array_size(json_object_get(report, "events")), 0);
    json_t *audio = json_object_get(json_object_get(report, "analysis"), "audio");
    assert_true(json_is_false(json_object_get(audio, "audible")));
    json_decref(report);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_silences_become_events),
        cmocka_unit_test(test_silent_and_missing_audio),
        cmocka_unit_test(test_garbage_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
