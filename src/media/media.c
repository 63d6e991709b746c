/*
 * media_process(): the order of the steps (probe with its packet scan, checks, remux or
 * transcode with the poster as a second output, the output's facts read from the file, a poster
 * run of its own only when the convert could not make it) and the assembly of the report.
 */
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "media/media.h"
#include "media/probe.h"
#include "media/process_internal.h"
#include "util/os.h"

static void report_progress(const struct media_opts *o, const char *stage, double fraction)
{
    if (o->progress)
        o->progress(stage, fraction, o->progress_ctx);
}

/* The probe with its packet scan (one ffprobe), then the not-a-video and length checks. */
static enum ia_err probe_input(const struct media_opts *o, const char *path, struct media_info *in,
                               char *detail, size_t detaillen)
{
    enum ia_err result = probe_file(o, path, in, detail, detaillen);
    if (!result)
        result = probe_check_video(in, o->max_duration_s, detail, detaillen);
    if (!result)
        result = probe_check_scan(in, o->max_duration_s, detail, detaillen);
    return result;
}

static json_t *processing_section(const struct media_plan *plan, int64_t t_probe, int64_t t_process,
                                  int64_t t_poster)
{
    /* "O" adds a reference: the plan keeps its own. */
    return json_pack("{s:s, s:O, s:{s:I, s:I, s:I}, s:s}", "mode",
                     plan->remux ? "remux" : "transcode", "normalizations", plan->normalizations,
                     "timings_ms", "probe", (json_int_t)t_probe, "process", (json_int_t)t_process,
                     "poster", (json_int_t)t_poster, "ffmpeg_version", media_ffmpeg_version());
}

enum ia_err media_process(const struct media_opts *opts, const char *input_path,
                          const char *output_mp4, const char *output_jpg, json_t **report,
                          char *detail, size_t detaillen)
{
    struct media_info in;
    struct media_plan plan = {0};
    json_t *output = NULL;
    *report = NULL;
    detail[0] = '\0';
    int64_t t0 = os_monotonic_ms();
    report_progress(opts, "probing", 0);
    enum ia_err result = probe_input(opts, input_path, &in, detail, detaillen);
    int64_t t1 = os_monotonic_ms();
    if (result)
        goto out;
    media_plan_init(&plan, &in, opts, input_path);
    report_progress(opts, "processing", 0);
    bool computed;
    struct media_poster_out poster = {
        .jpg = output_jpg, .at = media_poster_time(media_info_duration(&in, &computed))};
    result = media_convert(opts, &in, &plan, input_path, output_mp4, &poster, detail, detaillen);
    if (!result)
        result = media_report_output(output_mp4, &output, detail, detaillen);
    int64_t t2 = os_monotonic_ms();
    struct stat sb;
    if (!result && (stat(output_jpg, &sb) < 0 || sb.st_size == 0)) {
        /* The convert got no frame at the poster's time (a video track shorter than declared). */
        double duration = json_real_value(json_object_get(output, "duration"));
        result = media_poster(opts, output_mp4, duration, output_jpg, detail, detaillen);
    }
    if (!result) {
        /* "o" steals the three sections. */
        *report = json_pack("{s:o, s:o, s:o}", "source", media_report_source(&in), "output", output,
                            "processing",
                            processing_section(&plan, t1 - t0, t2 - t1, os_monotonic_ms() - t2));
        output = NULL;
        if (!*report) {
            snprintf(detail, detaillen, "report assembly failed");
            result = IA_ERR_INTERNAL;
        }
    }
out:
    if (result) {
        (void)unlink(output_mp4);
        (void)unlink(output_jpg);
    }
    json_decref(output);
    media_plan_cleanup(&plan);
    media_info_cleanup(&in);
    return result;
}
