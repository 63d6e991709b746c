/*
 * Tests of probe_parse_json() and probe_check_scan() (src/media/probe.c) on ffprobe answers and
 * scan results written by hand: sample aspect ratios as ffprobe prints them ("4:3"), the two
 * rotation conventions, and the truncation check when a video track ends before the audio; and
 * the reader of the one ffprobe run (probe_reader_*), fed its compact JSON in pieces of any size.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ffprobe -print_format json=compact=1 -show_format -show_streams -show_entries packet=...: */
static const char answer_head[] =
    "{\n"
    "    \"packets\": [\n"
    "        { \"stream_index\": 0, \"pts_time\": \"0.000000\", \"duration_time\": \"0.040000\" },\n"
    "        { \"stream_index\": 1, \"pts_time\": \"-0.023220\", \"duration_time\": \"0.023220\",\n"
    "            \"side_data_list\": [\n"
    "                {  }\n"
    "            ] },\n"
    "        { \"stream_index\": 2, \"pts_time\": \"9.000000\", \"duration_time\": \"1.000000\" },\n"
    "        { \"stream_index\": 0, \"pts_time\": \"N/A\", \"duration_time\": \"0.040000\" },\n";
static const char answer_tail[] =
    "        { \"stream_index\": 0, \"pts_time\": \"1.960000\", \"duration_time\": \"0.040000\" },\n"
    "        { \"stream_index\": 1, \"pts_time\": \"2.500000\", \"duration_time\": \"0.023220\" }\n"
    "    ],\n"
    "    \"streams\": [\n"
    "        { \"index\": 0, \"codec_name\": \"h264\", \"codec_type\": \"video\", \"width\": 320, "
    "\"height\": 240, \"avg_frame_rate\": \"25/1\", \"duration\": \"2.000000\",\n"
    "            \"tags\": { \"title\": \"],\\n    \\\"packets\\\": [\" } },\n"
    "        { \"index\": 1, \"codec_name\": \"aac\", \"codec_type\": \"audio\", \"sample_rate\": \"48000\", "
    "\"channels\": 2 },\n"
    "        { \"index\": 2, \"codec_type\": \"data\" }\n"
    "    ],\n"
    "    \"format\": { \"format_name\": \"mov,mp4,m4a,3gp,3g2,mj2\", \"duration\": \"2.600000\", "
    "\"nb_streams\": 3 }\n"
    "}\n";

/* Feeds the answer (with `extra` packet lines of stream 0 in the middle) in pieces of `piece`. */
static enum ia_err read_answer(size_t piece, long extra, struct media_info *info)
{
    struct probe_reader *r = probe_reader_new();
    char line[128];
    for (size_t i = 0; i < strlen(answer_head); i += piece)
        probe_reader_feed(r, answer_head + i, strnlen(answer_head + i, piece));
    for (long i = 0; i < extra; i++) {
        int n = snprintf(line, sizeof line,
                         "        { \"stream_index\": 0, \"pts_time\": \"1.000000\", "
                         "\"duration_time\": \"0.040000\" },\n");
        probe_reader_feed(r, line, (size_t)n);
    }
    for (size_t i = 0; i < strlen(answer_tail); i += piece)
        probe_reader_feed(r, answer_tail + i, strnlen(answer_tail + i, piece));
    enum ia_err e = probe_reader_finish(r, info, detail, sizeof detail);
    probe_reader_free(r);
    return e;
}

static void test_reader_counts_packets_of_the_chosen_streams(void **state)
{
    (void)state;
    static const size_t pieces[] = {1, 7, 4096, 1 << 20};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        struct media_info info;
        assert_int_equal(read_answer(pieces[i], 0, &info), IA_OK);
        assert_true(info.has_video && info.has_audio);
        assert_int_equal(info.nb_streams, 3);
        assert_string_equal(info.video.codec, "h264");
        assert_int_equal(info.audio.sample_rate, 48000);
        assert_true(fabs(info.duration - 2.6) < 1e-9);
        /* Stream 2 (data) is not counted; a packet without a time counts but covers nothing. */
        assert_int_equal(info.scan_packets, 3);
        assert_true(fabs(info.scan_video_duration - 2.0) < 1e-9);
        assert_true(fabs(info.scan_duration - (2.52322 + 0.02322)) < 1e-9);
        media_info_cleanup(&info);
    }
}

/* Packet lines are never kept: hours of packets do not reach the 4 MiB cap of the answer. */
static void test_reader_packets_do_not_count_against_the_cap(void **state)
{
    (void)state;
    struct media_info info;
    assert_int_equal(read_answer(65536, 200000, &info), IA_OK); /* about 15 MB of packets */
    assert_int_equal(info.scan_packets, 200003);
    media_info_cleanup(&info);
}

static void test_reader_refuses_an_answer_over_the_cap(void **state)
{
    (void)state;
    size_t n = (size_t)5 << 20;
    char *big = malloc(n + 64);
    assert_non_null(big);
    int head = snprintf(big, 64, "{\n    \"format\": { \"format_name\": \"");
    memset(big + head, 'a', n);
    memcpy(big + head + n, "\" }\n}\n", 7);
    struct probe_reader *r = probe_reader_new();
    probe_reader_feed(r, big, (size_t)head + n + 7);
    struct media_info info;
    assert_int_equal(probe_reader_finish(r, &info, detail, sizeof detail), IA_ERR_NOT_A_VIDEO);
    assert_non_null(strstr(detail, "larger than"));
    probe_reader_free(r);
    media_info_cleanup(&info);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sar_as_ffprobe_prints_it),
        cmocka_unit_test(test_rotation_conventions_agree),
        cmocka_unit_test(test_scan_fields_start_unknown),
        cmocka_unit_test(test_truncation_counts_the_audio_too),
        cmocka_unit_test(test_reader_counts_packets_of_the_chosen_streams),
        cmocka_unit_test(test_reader_packets_do_not_count_against_the_cap),
        cmocka_unit_test(test_reader_refuses_an_answer_over_the_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
