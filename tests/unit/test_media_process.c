/*
 * Tests of media_process() (src/media/media.c, probe.c, process.c, report.c) on small clips that
 * ffmpeg generates from lavfi sources into a private temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "media/media.h"
#include "media/probe.h"
#include "media/proc.h"
#include "media/process_internal.h"
#include "util/os.h"

static char dir[] = "/tmp/test_media_process.XXXXXX";
static char detail[1024];

static const char *in_dir(const char *name)
{
    static char paths[8][256];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", dir, name);
    return p;
}

/* Runs a fixture command (not the code under test) and fails the test when it fails. */
static void run(const char *const argv[])
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        execvp(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

#define FF "ffmpeg", "-nostdin", "-v", "error", "-y"
#define SRC_V(rate) "-f", "lavfi", "-i", "testsrc2=s=160x120:r=" rate ":d=2"
#define SRC_A "-f", "lavfi", "-i", "sine=d=2"

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void truncate_copy(const char *from, const char *to, long keep)
{
    FILE *f = fopen(from, "rb");
    assert_non_null(f);
    char *buf = malloc((size_t)keep);
    assert_int_equal(fread(buf, 1, (size_t)keep, f), (size_t)keep);
    fclose(f);
    write_bytes(to, buf, (size_t)keep);
    free(buf);
}

static void make_fixtures(void)
{
    const char *mp4[] = {FF,        SRC_V("25"), SRC_A,           "-c:v",    "libx264",
                         "-preset", "ultrafast", "-pix_fmt",      "yuv420p", "-c:a",
                         "aac",     "-shortest", in_dir("a.mp4"), NULL};
    run(mp4);
    const char *fast[] = {FF,          "-i",         in_dir("a.mp4"),    "-c", "copy",
                          "-movflags", "+faststart", in_dir("fast.mp4"), NULL};
    run(fast);
    const char *webm[] = {
        FF,     SRC_V("25"), SRC_A,   "-c:v", "libvpx",    "-deadline",         "realtime",
        "-c:a", "libopus",   "-live", "1",    "-shortest", in_dir("live.webm"), NULL};
    run(webm);
    const char *rot[] = {
        FF,  "-i", in_dir("a.mp4"), "-c", "copy", "-metadata:s:v", "rotate=90", in_dir("rot.mp4"),
        NULL};
    run(rot);
    const char *portrait[] = {
        FF,        "-i",        in_dir("a.mp4"), "-vf",  "transpose=1",          "-c:v", "libx264",
        "-preset", "ultrafast", "-c:a",          "copy", in_dir("portrait.mp4"), NULL};
    run(portrait);
    const char *audio[] = {FF, SRC_A, "-c:a", "aac", in_dir("audio.m4a"), NULL};
    run(audio);
    const char *png[] = {
        FF, "-f", "lavfi", "-i", "testsrc2=s=64x48", "-frames:v", "1", in_dir("still.png"), NULL};
    run(png);
    const char *gif[] = {FF,  "-f", "lavfi", "-i", "testsrc2=s=64x48:r=10:d=1", in_dir("anim.gif"),
                         NULL};
    run(gif);
    const char *gif1[] = {
        FF, "-f", "lavfi", "-i", "testsrc2=s=64x48", "-frames:v", "1", in_dir("still.gif"), NULL};
    run(gif1);
    unsigned char rnd[5000];
    for (size_t i = 0; i < sizeof rnd; i++)
        rnd[i] = (unsigned char)(i * 7919u >> 3 ^ i * 31u);
    write_bytes(in_dir("random.bin"), rnd, sizeof rnd);
    write_bytes(in_dir("empty.mp4"), "", 0);
    const char html[] = "<!doctype html><html><body><video src=x></video></body></html>\n";
    write_bytes(in_dir("page.html"), html, sizeof html - 1);
    truncate_copy(in_dir("fast.mp4"), in_dir("cut.mp4"), 40000);
    truncate_copy(in_dir("a.mp4"), in_dir("nomoov.mp4"), 30000);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    make_fixtures();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

struct progress_seen {
    int calls;
    double last;
};

static void on_progress(const char *stage, double progress, void *ctx)
{
    struct progress_seen *s = ctx;
    assert_true(progress >= 0.0 && progress <= 1.0);
    if (strcmp(stage, "processing") == 0) {
        s->calls++;
        s->last = progress;
    }
}

static struct media_opts default_opts(void)
{
    return (struct media_opts){.max_duration_s = 60,
                               .max_height = 720,
                               .preset = "ultrafast",
                               .crf = 30,
                               .deadline_ms = os_monotonic_ms() + 50000};
}

static enum ia_err process(const char *name, const struct media_opts *o, json_t **report)
{
    unlink(in_dir("out.mp4"));
    unlink(in_dir("out.jpg"));
    enum ia_err e = media_process(o, in_dir(name), in_dir("out.mp4"), in_dir("out.jpg"), report,
                                  detail, sizeof detail);
    if (e)
        print_message("%s: %s (%s)\n", name, ia_err_code(e), detail);
    return e;
}

static const json_t *path(const json_t *root, const char *a, const char *b)
{
    const json_t *v = json_object_get(root, a);
    return b ? json_object_get(v, b) : v;
}

static bool has_normalization(const json_t *report, const char *name)
{
    size_t i;
    const json_t *v;
    json_array_foreach(path(report, "processing", "normalizations"), i, v)
    {
        if (strcmp(json_string_value(v), name) == 0)
            return true;
    }
    return false;
}

/* The output and poster exist and play: checked by probing them again. */
static void assert_output_plays(const json_t *report, double duration)
{
    const json_t *out = json_object_get(report, "output");
    assert_string_equal(json_string_value(json_object_get(out, "video_codec")), "h264");
    assert_true(json_is_true(json_object_get(out, "faststart")));
    assert_int_equal(strlen(json_string_value(json_object_get(out, "sha256"))), 64);
    double d = json_real_value(json_object_get(out, "duration"));
    assert_true(fabs(d - duration) < 0.15);
    struct media_opts o = default_opts();
    struct media_info info;
    assert_int_equal(probe_file(&o, in_dir("out.mp4"), &info, detail, sizeof detail), IA_OK);
    assert_true(info.has_video);
    assert_int_equal(info.video.rotation, 0);
    /* The facts read from the output's boxes are those ffprobe finds in it. */
    assert_int_equal(json_integer_value(json_object_get(out, "width")), info.video.width);
    assert_int_equal(json_integer_value(json_object_get(out, "height")), info.video.height);
    assert_true(fabs(d - info.duration) < 0.0015);
    assert_true(fabs(json_real_value(json_object_get(out, "fps")) - info.video.avg_fps) < 0.0015);
    assert_int_equal(json_is_string(json_object_get(out, "audio_codec")), info.has_audio);
    assert_true(llabs(json_integer_value(json_object_get(out, "bitrate")) - info.bit_rate) <= 1);
    assert_int_equal(json_integer_value(json_object_get(out, "bytes")), info.size_bytes);
    assert_true(media_mp4_faststart(in_dir("out.mp4")));
    media_info_cleanup(&info);
    /* The poster is a JPEG at most 640 px wide. */
    const char *argv[] = {"ffprobe",
                          "-v",
                          "error",
                          "-select_streams",
                          "v:0",
                          "-show_entries",
                          "stream=codec_name,width",
                          "-of",
                          "csv=p=0",
                          in_dir("out.jpg"),
                          NULL};
    struct proc_opts po = {.out_mode = PROC_STDOUT_CAPTURE};
    struct proc_result pr;
    assert_int_equal(proc_run(argv, &po, &pr, detail, sizeof detail), IA_OK);
    assert_true(proc_result_ok(&pr));
    assert_int_equal(strncmp(pr.out, "mjpeg,", 6), 0);
    long width = strtol(pr.out + 6, NULL, 10);
    assert_true(width > 0 && width <= 640);
    proc_result_cleanup(&pr);
}

static void test_h264_aac_mp4_is_remuxed(void **state)
{
    (void)state;
    struct progress_seen seen = {0};
    struct media_opts o = default_opts();
    o.progress = on_progress;
    o.progress_ctx = &seen;
    json_t *report = NULL;
    assert_int_equal(process("a.mp4", &o, &report), IA_OK);
    assert_string_equal(json_string_value(path(report, "processing", "mode")), "remux");
    assert_true(has_normalization(report, "faststart"));
    assert_string_equal(json_string_value(path(report, "source", "duration_source")), "container");
    assert_string_equal(json_string_value(path(report, "output", "audio_codec")), "aac");
    assert_output_plays(report, 2.0);
    assert_true(seen.calls > 0);
    assert_true(seen.last == 1.0);
    assert_non_null(json_string_value(path(report, "processing", "ffmpeg_version")));
    json_decref(report);
}

static void test_live_webm_is_transcoded_with_computed_duration(void **state)
{
    (void)state;
    struct media_opts o = default_opts();
    json_t *report = NULL;
    assert_int_equal(process("live.webm", &o, &report), IA_OK);
    assert_string_equal(json_string_value(path(report, "processing", "mode")), "transcode");
    assert_string_equal(json_string_value(path(report, "source", "duration_source")), "computed");
    double d = json_real_value(path(report, "source", "duration"));
    assert_true(fabs(d - 2.0) < 0.1);
    assert_true(has_normalization(report, "audio_resample"));
    assert_true(has_normalization(report, "container"));
    const json_t *audio = path(report, "source", "audio");
    assert_string_equal(json_string_value(json_object_get(audio, "codec")), "opus");
    assert_output_plays(report, 2.0);
    json_decref(report);
}

static void test_rotated_mp4_swaps_display_dims(void **state)
{
    (void)state;
    struct media_opts o = default_opts();
    json_t *report = NULL;
    assert_int_equal(process("rot.mp4", &o, &report), IA_OK);
    const json_t *video = path(report, "source", "video");
    assert_int_equal(json_integer_value(json_object_get(video, "rotation")), 90);
    assert_int_equal(json_integer_value(json_object_get(video, "display_width")), 120);
    assert_int_equal(json_integer_value(json_object_get(video, "display_height")), 160);
    assert_string_equal(json_string_value(path(report, "processing", "mode")), "transcode");
    assert_true(has_normalization(report, "rotate"));
    assert_int_equal(json_integer_value(path(report, "output", "width")), 120);
    assert_int_equal(json_integer_value(path(report, "output", "height")), 160);
    assert_output_plays(report, 2.0);
    json_decref(report);
}

static void test_scale_to_max_height(void **state)
{
    (void)state;
    struct media_opts o = default_opts();
    o.max_height = 61; /* odd on purpose: the output must still have even dimensions */
    json_t *report = NULL;
    assert_int_equal(process("fast.mp4", &o, &report), IA_OK);
    assert_string_equal(json_string_value(path(report, "processing", "mode")), "transcode");
    assert_true(has_normalization(report, "scale"));
    assert_false(has_normalization(report, "faststart"));
    assert_int_equal(json_integer_value(path(report, "output", "height")), 60);
    assert_int_equal(json_integer_value(path(report, "output", "width")), 80);
    json_decref(report);
}

/* MAX_HEIGHT caps the shorter side: a portrait video within it keeps its size (remuxed). */
static void test_portrait_within_max_height_keeps_its_size(void **state)
{
    (void)state;
    struct media_opts o = default_opts();
    o.max_height = 120; /* "120p": the portrait 120x160 is within it */
    json_t *report = NULL;
    assert_int_equal(process("portrait.mp4", &o, &report), IA_OK);
    assert_string_equal(json_string_value(path(report, "processing", "mode")), "remux");
    assert_false(has_normalization(report, "scale"));
    assert_int_equal(json_integer_value(path(report, "output", "width")), 120);
    assert_int_equal(json_integer_value(path(report, "output", "height")), 160);
    json_decref(report);
}

/* A portrait video above MAX_HEIGHT gets MAX_HEIGHT as its width, upright or rotated. */
static void test_portrait_above_max_height_is_scaled_by_its_width(void **state)
{
    (void)state;
    static const char *const inputs[] = {"portrait.mp4", "rot.mp4"}; /* both show 120x160 */
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        struct media_opts o = default_opts();
        o.max_height = 60;
        json_t *report = NULL;
        assert_int_equal(process(inputs[i], &o, &report), IA_OK);
        assert_string_equal(json_string_value(path(report, "processing", "mode")), "transcode");
        assert_true(has_normalization(report, "scale"));
        assert_int_equal(json_integer_value(path(report, "output", "width")), 60);
        assert_int_equal(json_integer_value(path(report, "output", "height")), 80);
        json_decref(report);
    }
}

static void test_animated_gif_is_a_video(void **state)
{
    (void)state;
    struct media_opts o = default_opts();
    json_t *report = NULL;
    assert_int_equal(process("anim.gif", &o, &report), IA_OK);
    assert_string_equal(json_string_value(path(report, "processing", "mode")), "transcode");
    assert_true(json_is_null(path(report, "source", "audio")));
    assert_true(json_is_null(path(report, "output", "audio_codec")));
    json_decref(report);
}

static void expect_error(const char *name, enum ia_err want)
{
    struct media_opts o = default_opts();
    json_t *report = NULL;
    assert_int_equal(process(name, &o, &report), want);
    assert_null(report);
    assert_int_equal(access(in_dir("out.mp4"), F_OK), -1);
    assert_null(strstr(detail, dir)); /* details name no local paths */
}

static void test_not_a_video(void **state)
{
    (void)state;
    expect_error("audio.m4a", IA_ERR_NOT_A_VIDEO);
    expect_error("random.bin", IA_ERR_NOT_A_VIDEO);
    expect_error("empty.mp4", IA_ERR_NOT_A_VIDEO);
    expect_error("still.png", IA_ERR_NOT_A_VIDEO);
    expect_error("still.gif", IA_ERR_NOT_A_VIDEO);
    expect_error("page.html", IA_ERR_NOT_A_VIDEO);
}

static void test_truncated_is_decode_error(void **state)
{
    (void)state;
    expect_error("cut.mp4", IA_ERR_DECODE);    /* moov first, mdat cut short */
    expect_error("nomoov.mp4", IA_ERR_DECODE); /* moov at the end, cut off */
}

static void test_too_long(void **state)
{
    (void)state;
    struct media_opts o = default_opts();
    o.max_duration_s = 1;
    json_t *report = NULL;
    assert_int_equal(process("a.mp4", &o, &report), IA_ERR_TOO_LONG);
    /* A file without a declared duration is measured before any transcode. */
    assert_int_equal(process("live.webm", &o, &report), IA_ERR_TOO_LONG);
    assert_null(report);
    assert_int_equal(access(in_dir("out.mp4"), F_OK), -1);
}

static void test_deadline_in_the_past(void **state)
{
    (void)state;
    struct media_opts o = default_opts();
    o.deadline_ms = os_monotonic_ms() - 1;
    json_t *report = NULL;
    assert_int_equal(process("a.mp4", &o, &report), IA_ERR_TIMEOUT);
    assert_null(report);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_parse_json_rotation_and_rates(void **state)
{
    (void)state;
    const char *json =
        "{\"streams\":[{\"index\":0,\"codec_type\":\"video\",\"codec_name\":\"mjpeg\","
        "\"disposition\":{\"attached_pic\":1}},{\"index\":1,\"codec_type\":\"video\","
        "\"codec_name\":\"h264\",\"width\":1920,\"height\":1080,\"r_frame_rate\":\"30/1\","
        "\"avg_frame_rate\":\"30000/1001\",\"sample_aspect_ratio\":\"1:1\","
        "\"side_data_list\":[{\"rotation\":-90}]},{\"index\":2,\"codec_type\":\"audio\","
        "\"codec_name\":\"aac\",\"sample_rate\":\"44100\",\"channels\":1}],"
        "\"format\":{\"format_name\":\"mov,mp4,m4a,3gp,3g2,mj2\",\"duration\":\"N/A\","
        "\"size\":\"123\",\"nb_streams\":3}}";
    struct media_info info;
    assert_int_equal(probe_parse_json(json, strlen(json), &info, detail, sizeof detail), IA_OK);
    assert_int_equal(info.video.index, 1); /* cover art skipped */
    assert_int_equal(info.video.rotation, 270);
    assert_true(info.duration < 0);
    assert_true(fabs(info.video.avg_fps - 29.97) < 0.01);
    assert_false(media_is_vfr(&info.video));
    assert_int_equal(info.audio.sample_rate, 44100);
    assert_int_equal(info.size_bytes, 123);
    media_info_cleanup(&info);
    assert_int_equal(probe_parse_json("[1]", 3, &info, detail, sizeof detail), IA_ERR_NOT_A_VIDEO);
    media_info_cleanup(&info);
}

static void cancel_on_processing(const char *stage, double progress, void *ctx)
{
    (void)progress;
    if (strcmp(stage, "processing") == 0)
        atomic_store((atomic_bool *)ctx, true);
}

static void test_cancel_during_processing(void **state)
{
    (void)state;
    atomic_bool cancel = false;
    struct media_opts o = default_opts();
    o.cancel = &cancel;
    o.progress = cancel_on_processing;
    o.progress_ctx = &cancel;
    json_t *report = NULL;
    assert_int_equal(process("live.webm", &o, &report), IA_ERR_TIMEOUT);
    assert_null(report);
    assert_int_equal(access(in_dir("out.mp4"), F_OK), -1);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* Copies the first n bytes of src to dst (n 0: all of it, then appends `tail`). */
static void copy_prefix(const char *src, const char *dst, size_t n, const char *tail)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t got, total = 0;
    while ((got = fread(buf, 1, sizeof buf, in)) > 0 && (!n || total < n)) {
        size_t put = n && got > n - total ? n - total : got;
        assert_int_equal(fwrite(buf, 1, put, out), put);
        total += put;
    }
    if (tail)
        fputs(tail, out);
    fclose(in);
    fclose(out);
}

/* The output's facts come from its moov box: a file without a readable one is refused. */
static void test_output_without_a_readable_moov_is_refused(void **state)
{
    (void)state;
    struct media_opts o = default_opts();
    json_t *report = NULL, *out = NULL;
    assert_int_equal(process("a.mp4", &o, &report), IA_OK); /* faststart: moov first */
    json_decref(report);
    static const size_t cuts[] = {7, 40, 200, 1000};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        copy_prefix(in_dir("out.mp4"), in_dir("cut-out.mp4"), cuts[i], NULL);
        assert_int_equal(media_report_output(in_dir("cut-out.mp4"), &out, detail, sizeof detail),
                         IA_ERR_TRANSCODE);
        assert_null(out);
    }
    /* Whole boxes, then bytes that claim a box larger than the file: still read. */
    copy_prefix(in_dir("out.mp4"), in_dir("cut-out.mp4"), 0, "\xff\xff\xff\xf0" "free");
    assert_int_equal(media_report_output(in_dir("cut-out.mp4"), &out, detail, sizeof detail),
                     IA_OK);
    json_decref(out);
    assert_int_equal(media_report_output(in_dir("page.html"), &out, detail, sizeof detail),
                     IA_ERR_TRANSCODE);
    unlink(in_dir("cut-out.mp4"));
}

static void test_report_shape(void **state)
{
    (void)state;
    struct media_opts o = default_opts();
    json_t *report = NULL;
    assert_int_equal(process("live.webm", &o, &report), IA_OK);
    if (getenv("MEDIA_TEST_DUMP"))
        json_dumpf(report, stderr, JSON_INDENT(2));
    const json_t *video = path(report, "source", "video");
    assert_string_equal(json_string_value(json_object_get(video, "codec")), "vp8");
    assert_true(fabs(json_real_value(json_object_get(video, "fps")) - 25.0) < 0.5);
    assert_int_equal(json_integer_value(path(report, "source", "streams")), 2);
    assert_true(json_integer_value(path(report, "source", "size_bytes")) > 0);
    assert_true(json_integer_value(path(report, "output", "bitrate")) > 0);
    assert_true(fabs(json_real_value(path(report, "output", "fps")) - 25.0) < 0.01);
    const json_t *t = path(report, "processing", "timings_ms");
    assert_true(json_is_integer(json_object_get(t, "probe")));
    assert_true(json_integer_value(json_object_get(t, "process")) > 0);
    assert_true(json_is_integer(json_object_get(t, "poster")));
    json_decref(report);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_json_rotation_and_rates),
        cmocka_unit_test(test_h264_aac_mp4_is_remuxed),
        cmocka_unit_test(test_live_webm_is_transcoded_with_computed_duration),
        cmocka_unit_test(test_rotated_mp4_swaps_display_dims),
        cmocka_unit_test(test_scale_to_max_height),
        cmocka_unit_test(test_portrait_within_max_height_keeps_its_size),
        cmocka_unit_test(test_portrait_above_max_height_is_scaled_by_its_width),
        cmocka_unit_test(test_animated_gif_is_a_video),
        cmocka_unit_test(test_not_a_video),
        cmocka_unit_test(test_truncated_is_decode_error),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_deadline_in_the_past),
        cmocka_unit_test(test_cancel_during_processing),
        cmocka_unit_test(test_report_shape),
        cmocka_unit_test(test_output_without_a_readable_moov_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
