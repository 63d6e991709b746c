/*
 * libFuzzer target for media/probe.c: the input stands for ffprobe's -show_format -show_streams
 * JSON about a hostile file (and, fed to probe_reader, for the whole stdout of the one ffprobe
 * run with its packet lines). probe_parse_json must fill struct media_info within its documented
 * ranges, and what the worker does with it afterwards (the checks, the remux/transcode plan, the
 * report's source section) must not crash. Any crash or broken range aborts.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "media/probe.h"
#include "media/process_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The worker's default MAX_DURATION_S; the option's minimum is 1, so 0 never reaches a task. */
#define FUZZ_MAX_DURATION_S 14400

static void check_info(const struct media_info *info)
{
    if (info->has_video) {
        const struct media_video_info *v = &info->video;
        if (v->rotation < 0 || v->rotation >= 360 || !(v->sar > 0))
            abort();
        if (v->r_fps < 0 || v->avg_fps < 0 || v->width < 0 || v->height < 0)
            abort();
    }
    if (info->scan_packets != 0 || info->scan_duration != -1)
        abort(); /* only the packet scan (probe_reader_finish) fills these */
}

/* Plans the conversion and writes the report's source section, as the worker does next. */
static void run_plan(const struct media_info *info)
{
    struct media_opts o = {
        .max_height = 1080, .max_duration_s = FUZZ_MAX_DURATION_S, .preset = "veryfast"};
    struct media_plan plan;
    media_plan_init(&plan, info, &o, "/nonexistent/fuzz-input");
    if (!json_is_array(plan.normalizations) || !(plan.fps > 0))
        abort();
    media_plan_cleanup(&plan);
    json_t *src = media_report_source(info);
    if (!json_is_object(src))
        abort();
    json_decref(src);
}

/*
 * Runs the decisions the worker takes, with a few packet-scan outcomes; like the worker, plans
 * and reports only on a probe that passed both checks.
 */
static void run_decisions(struct media_info *info)
{
    char detail[256];
    bool computed;
    static const long packets[] = {0, 1, 1000, 1000};
    static const double scanned[] = {-1, 0, 0.5, 1e9};
    (void)probe_check_video(info, 0, detail, sizeof(detail));
    for (size_t k = 0; k < sizeof(packets) / sizeof(packets[0]); k++) {
        info->scan_packets = packets[k];
        info->scan_duration = scanned[k];
        (void)probe_check_scan(info, 0, detail, sizeof(detail));
        (void)media_info_duration(info, &computed);
        if (probe_check_video(info, FUZZ_MAX_DURATION_S, detail, sizeof(detail)) == IA_OK &&
            probe_check_scan(info, FUZZ_MAX_DURATION_S, detail, sizeof(detail)) == IA_OK)
            run_plan(info);
    }
}

/*
 * The same bytes as the stdout of the one ffprobe run, fed to its reader in two pieces: the
 * reader must end as probe_parse_json does (answer or not_a_video with a detail), with its scan
 * fields in range, and must not crash on lines it half recognises.
 */
static void run_reader(const uint8_t *data, size_t size)
{
    struct probe_reader *r = probe_reader_new();
    size_t cut = size ? data[0] % (size + 1) : 0;
    probe_reader_feed(r, (const char *)data, cut);
    probe_reader_feed(r, (const char *)data + cut, size - cut);
    struct media_info info;
    char detail[256] = "";
    enum ia_err rc = probe_reader_finish(r, &info, detail, sizeof(detail));
    if (rc == IA_OK) {
        if (info.scan_packets < 0 || (info.scan_packets == 0 && info.scan_video_duration != -1))
            abort();
        run_decisions(&info);
    } else if (rc != IA_ERR_NOT_A_VIDEO || !detail[0]) {
        abort();
    }
    media_info_cleanup(&info);
    probe_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_reader(data, size);
    char *text = malloc(size ? size : 1);
    if (size)
        memcpy(text, data, size);
    struct media_info info;
    char detail[256] = "";
    enum ia_err rc = probe_parse_json(text, size, &info, detail, sizeof(detail));
    if (rc == IA_OK) {
        check_info(&info);
        run_decisions(&info);
    } else if (rc != IA_ERR_NOT_A_VIDEO || !detail[0]) {
        abort();
    }
    media_info_cleanup(&info);
    free(text);
    return 0;
}
