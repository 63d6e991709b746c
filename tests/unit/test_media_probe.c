/*
 * Tests of probe_parse_json() and probe_check_scan() (src/media/probe.c) on ffprobe answers and
 * scan results written by hand: sample aspect ratios as ffprobe prints them ("4:3"), the two
 * rotation conventions, and the truncation check when a video track ends before the audio.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "media/probe.h"

static char detail[256];

/* Parses one video stream whose extra JSON members are `video`, in an MP4 of 2 s. */
static void parse_video(const char *video, struct media_info *info)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"streams\":[{\"index\":0,\"codec_type\":\"video\",\"codec_name\":\"h264\","
             "\"width\":320,\"height\":240%s}],\"format\":{\"format_name\":\"mov,mp4\","
             "\"duration\":\"2.000000\",\"nb_streams\":1}}",
             video);
    assert_int_equal(probe_parse_json(json, strlen(json), info, detail, sizeof detail), IA_OK);
    assert_true(info->has_video);
}

static void test_sar_as_ffprobe_prints_it(void **state)
{
    (void)state;
    struct media_info info;
    parse_video(",\"sample_aspect_ratio\":\"4:3\"", &info);
    assert_true(fabs(info.video.sar - 4.0 / 3.0) < 1e-9);
    media_info_cleanup(&info);
    parse_video(",\"sample_aspect_ratio\":\"0:1\"", &info);
    assert_true(info.video.sar == 1.0);
    media_info_cleanup(&info);
    parse_video(",\"sample_aspect_ratio\":\"N/A\"", &info);
    assert_true(info.video.sar == 1.0);
    media_info_cleanup(&info);
    parse_video("", &info);
    assert_true(info.video.sar == 1.0);
    media_info_cleanup(&info);
}

static void test_rotation_conventions_agree(void **state)
{
    (void)state;
    struct media_info info;
    /* A phone held upright: display matrix -90 (counter-clockwise), legacy tag rotate=90. */
    parse_video(",\"side_data_list\":[{\"rotation\":-90}]", &info);
    assert_int_equal(info.video.rotation, 270);
    media_info_cleanup(&info);
    parse_video(",\"tags\":{\"rotate\":\"90\"}", &info);
    assert_int_equal(info.video.rotation, 270);
    media_info_cleanup(&info);
    parse_video(",\"tags\":{\"rotate\":\"180\"}", &info);
    assert_int_equal(info.video.rotation, 180);
    media_info_cleanup(&info);
    parse_video(",\"side_data_list\":[{\"rotation\":90}],\"tags\":{\"rotate\":\"270\"}", &info);
    assert_int_equal(info.video.rotation, 90);
    media_info_cleanup(&info);
}

static void test_scan_fields_start_unknown(void **state)
{
    (void)state;
    struct media_info info;
    parse_video("", &info);
    assert_true(info.scan_duration < 0);
    assert_true(info.scan_video_duration < 0);
    assert_int_equal(info.scan_packets, 0);
    media_info_cleanup(&info);
}

/* A scanned file: container duration, video stream duration, and what the scan covered. */
static enum ia_err check_scan(double container, double video, double scan_video, double scan_all)
{
    struct media_info info;
    memset(&info, 0, sizeof info);
    info.duration = container;
    info.video.duration = video;
    info.scan_packets = 25;
    info.scan_video_duration = scan_video;
    info.scan_duration = scan_all;
    return probe_check_scan(&info, 0, detail, sizeof detail);
}

static void test_truncation_counts_the_audio_too(void **state)
{
    (void)state;
    /* Matroska declares only the container's duration: the audio may outlast the video. */
    assert_int_equal(check_scan(3.0, -1, 1.0, 3.0), IA_OK);
    assert_int_equal(check_scan(3.0, -1, 1.0, 1.05), IA_ERR_DECODE);
    /* MP4 declares the video stream's own: its packets must cover it. */
    assert_int_equal(check_scan(2.0, 2.0, 0.8, 2.0), IA_ERR_DECODE);
    assert_int_equal(check_scan(2.0, 2.0, 1.96, 2.0), IA_OK);
    /* Nothing declared (MediaRecorder WebM): nothing to compare with. */
    assert_int_equal(check_scan(-1, -1, 1.0, 3.0), IA_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sar_as_ffprobe_prints_it),
        cmocka_unit_test(test_rotation_conventions_agree),
        cmocka_unit_test(test_scan_fields_start_unknown),
        cmocka_unit_test(test_truncation_counts_the_audio_too),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
