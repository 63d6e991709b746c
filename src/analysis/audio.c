/* Audio analysis with ffmpeg's silencedetect and volumedetect filters. */
#include "analysis/analysis.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media/media.h"
#include "media/proc.h"

#define LOG_KEEP (256 * 1024)
#define AUDIBLE_MAX_DB (-50.0)

/* Reads the number after "key" in line; NAN when absent. */
static double number_after(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    if (!p)
        return NAN;
    char *end;
    double v = strtod(p + strlen(key), &end);
    return end == p + strlen(key) ? NAN : v;
}

static void add_silence(json_t *events, double start, double end, double *silent_total)
{
    if (end - start < ANALYSIS_SILENCE_MIN_S)
        return;
    *silent_total += end - start;
    json_array_append_new(events, json_pack("{s:s, s:f, s:f, s:s}", "kind", "silence", "start",
                                            start, "end", end, "label", "no speech"));
}

struct audio_log {
    json_t *events;
    double start, silent, mean_db, max_db, duration;
};

static void read_log_line(struct audio_log *a, const char *line)
{
    double v;
    if (!isnan(v = number_after(line, "silence_start: "))) {
        a->start = v < 0 ? 0 : v;
    } else if (!isnan(v = number_after(line, "silence_end: "))) {
        if (!isnan(a->start))
            add_silence(a->events, a->start, fmin(v, a->duration), &a->silent);
        a->start = NAN;
    } else if (!isnan(v = number_after(line, "mean_volume: "))) {
        a->mean_db = v;
    } else if (!isnan(v = number_after(line, "max_volume: "))) {
        a->max_db = v;
    }
}

void analysis_read_audio_log(const char *log, double duration, int has_audio, json_t *report)
{
    struct audio_log a = {json_array(), NAN, 0, NAN, NAN, duration};
    const char *line = log;
    while (line && *line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char buf[512];
        snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : sizeof(buf) - 1),
                 line);
        read_log_line(&a, buf);
        line = nl ? nl + 1 : NULL;
    }
    if (!isnan(a.start))
        add_silence(a.events, a.start, duration, &a.silent);
    if (!has_audio)
        json_array_append_new(a.events, json_pack("{s:s, s:f, s:f, s:s}", "kind", "silence",
                                                "start", 0.0, "end", duration, "label",
                                                "no audio track"));
    double ratio = !has_audio ? 1.0 : duration > 0 ? fmin(a.silent / duration, 1.0) : 0.0;
    int audible = has_audio && !isnan(a.max_db) && a.max_db > AUDIBLE_MAX_DB && ratio < 0.95;
    json_t *audio = json_pack("{s:b, s:b, s:f}", "present", has_audio, "audible", audible,
                              "silence_ratio", ratio);
    if (!isnan(a.mean_db))
        json_object_set_new(audio, "mean_volume_db", json_real(a.mean_db));
    if (!isnan(a.max_db))
        json_object_set_new(audio, "max_volume_db", json_real(a.max_db));
    json_object_set_new(report, "analysis", json_pack("{s:o}", "audio", audio));
    json_object_set_new(report, "events", a.events);
}

static int has_audio_stream(const json_t *report)
{
    const json_t *codec = json_object_get(json_object_get(report, "output"), "audio_codec");
    return json_is_string(codec);
}

enum ia_err analysis_run(const struct media_opts *opts, const char *video_path, double duration,
                         json_t *report, char *detail, size_t detaillen)
{
    int has_audio = has_audio_stream(report);
    if (!has_audio) {
        analysis_read_audio_log("", duration, 0, report);
        return IA_OK;
    }
    char filter[96];
    snprintf(filter, sizeof(filter), "silencedetect=noise=%ddB:d=%g,volumedetect",
             ANALYSIS_SILENCE_DB, ANALYSIS_SILENCE_MIN_S);
    const char *argv[] = {"ffmpeg", "-nostdin", "-hide_banner", "-v", "info",
                          "-protocol_whitelist", "file", "-i", video_path, "-map", "0:a:0",
                          "-af", filter, "-f", "null", "-", NULL};
    struct proc_opts po = {.deadline_ms = opts->deadline_ms, .cancel = opts->cancel,
                           .out_mode = PROC_STDOUT_DISCARD, .stderr_keep = LOG_KEEP};
    struct proc_result res;
    memset(&res, 0, sizeof(res));
    enum ia_err err = proc_run(argv, &po, &res, detail, detaillen);
    if (!err && !proc_result_ok(&res)) {
        snprintf(detail, detaillen, "audio analysis: ffmpeg exited with %d", res.exit_code);
        err = IA_ERR_DECODE;
    }
    if (!err)
        analysis_read_audio_log(res.err, duration, 1, report);
    proc_result_cleanup(&res);
    return err;
}
