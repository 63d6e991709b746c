/*
 * The audio pass: one ffmpeg child measures loudness (ebur128) and hands 16 kHz mono PCM through
 * a pipe to WebRTC's voice activity detector; clipping is counted on the same samples. Memory
 * stays flat whatever the length: only speech segments are kept.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"
#include "core/alloc.h"
#include "media/media.h"
#include "media/probe.h"
#include "media/proc.h"

#define AUDIO_RATE 16000
#define AUDIO_CHUNK 4096          /* samples per read */
#define CLIP_LEVEL 32600          /* |sample| at or above this is at full scale */
#define CLIPPING_MIN_RATIO 0.0005 /* share of clipped samples that is worth a flag */
#define SILENT_PEAK_DBFS (-50.0)  /* a track whose true peak stays below this is silent */
#define AUDIO_LOG_KEEP (64 * 1024)

static double number_after(const char *text, const char *key)
{
    const char *p = text ? strstr(text, key) : NULL;
    if (!p)
        return NAN;
    char *end;
    double v = strtod(p + strlen(key), &end);
    return end == p + strlen(key) ? NAN : v;
}

/*
 * Reads the integrated loudness and true peak from ebur128's summary in ffmpeg's stderr: the last
 * "Summary:", since the file's own metadata (printed earlier) may contain the word.
 */
static void read_loudness(const char *log, struct audio_result *out)
{
    const char *summary = NULL;
    for (const char *p = log; p && (p = strstr(p, "Summary:")); p++)
        summary = p;
    out->integrated_lufs = number_after(summary, "I:");
    out->true_peak_dbfs = number_after(summary, "Peak:");
    if (isinf(out->true_peak_dbfs))
        out->true_peak_dbfs = -INFINITY;
}

struct pcm_stats {
    uint64_t samples, clipped;
    double first_clip_s;
};

static void count_clipping(struct pcm_stats *st, const int16_t *pcm, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (pcm[i] >= CLIP_LEVEL || pcm[i] <= -CLIP_LEVEL) {
            if (!st->clipped)
                st->first_clip_s = (double)(st->samples + i) / AUDIO_RATE;
            st->clipped++;
        }
    }
    st->samples += n;
}

static enum ia_err read_pcm(struct proc_stream *ps, struct vad *vad, struct pcm_stats *st)
{
    int16_t buf[AUDIO_CHUNK];
    for (;;) {
        ssize_t got = proc_stream_read(ps, buf, sizeof buf);
        if (got < 0)
            return IA_ERR_TIMEOUT;
        size_t n = (size_t)got / sizeof buf[0];
        vad_feed(vad, buf, n);
        count_clipping(st, buf, n);
        if ((size_t)got < sizeof buf)
            return IA_OK;
    }
}

enum ia_err audio_analyse(const struct analysis_opts *ao, const struct media_opts *mo,
                          const char *video, bool has_audio, struct audio_result *out, char *detail,
                          size_t detaillen)
{
    (void)ao;
    memset(out, 0, sizeof *out);
    out->integrated_lufs = out->true_peak_dbfs = out->first_clip_s = NAN;
    if (!has_audio)
        return IA_OK;
    out->present = true;
    const char *argv[] = {"ffmpeg",
                          "-nostdin",
                          "-hide_banner",
                          "-nostats",
                          "-v",
                          "info",
                          MEDIA_SAFE_INPUT_OPTS,
                          "-i",
                          video,
                          "-map",
                          "0:a:0",
                          "-af",
                          "ebur128=peak=true:framelog=verbose,aresample=16000,"
                          "aformat=sample_fmts=s16:channel_layouts=mono",
                          "-f",
                          "s16le",
                          "pipe:1",
                          NULL};
    struct proc_opts po;
    media_proc_opts_init(&po, mo, 0);
    po.stderr_keep = AUDIO_LOG_KEEP;
    struct proc_stream *ps;
    enum ia_err err = proc_stream_start(argv, &po, false, &ps, detail, detaillen);
    if (err)
        return err;
    struct vad *vad = vad_new();
    struct pcm_stats st = {.first_clip_s = NAN};
    enum ia_err rerr = read_pcm(ps, vad, &st);
    struct proc_result res;
    err = proc_stream_finish(ps, rerr != IA_OK, &res, detail, detaillen);
    if (!err)
        err = rerr;
    if (!err && !proc_result_ok(&res)) {
        snprintf(detail, detaillen, "audio pass: ffmpeg exited with %d", res.exit_code);
        err = IA_ERR_DECODE;
    }
    if (!err)
        read_loudness(res.err, out);
    out->speech = vad_take(vad, &out->nspeech);
    vad_free(vad);
    for (size_t i = 0; i < out->nspeech; i++)
        out->speech_s += out->speech[i].end - out->speech[i].start;
    out->duration = (double)st.samples / AUDIO_RATE;
    out->clipped_ratio = st.samples ? (double)st.clipped / (double)st.samples : 0;
    out->first_clip_s = st.first_clip_s;
    proc_result_cleanup(&res);
    return err;
}

bool audio_speech_at(const struct audio_result *a, double t)
{
    size_t lo = 0, hi = a->nspeech;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a->speech[mid].end <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < a->nspeech && a->speech[lo].start <= t;
}

void audio_result_cleanup(struct audio_result *a)
{
    free(a->speech);
    a->speech = NULL;
    a->nspeech = 0;
}

static json_t *finite_or_null(double v)
{
    return isfinite(v) ? json_real(round(v * 10) / 10) : json_null();
}

static bool audio_silent(const struct audio_result *a)
{
    return a->present && (isnan(a->true_peak_dbfs) || a->true_peak_dbfs < SILENT_PEAK_DBFS);
}

static void add_silence(const struct analysis_opts *ao, double start, double end,
                        struct event_list *events)
{
    if (end - start >= ao->silence_min_s)
        event_list_add(events, EV_SILENCE, start, end, 1.0,
                       json_pack("{s:s}", "label", "no speech"));
}

void audio_events(const struct analysis_opts *ao, const struct audio_result *a, double duration,
                  struct event_list *events)
{
    if (!a->present) {
        event_list_add(events, EV_NO_AUDIO, 0, duration, 1.0,
                       json_pack("{s:s}", "label", "the recording has no sound track"));
        return;
    }
    if (audio_silent(a)) {
        event_list_add(events, EV_SILENT_AUDIO, 0, duration, 1.0,
                       json_pack("{s:s, s:o}", "label", "the sound track is silent",
                                 "true_peak_dbfs", finite_or_null(a->true_peak_dbfs)));
        return;
    }
    double from = 0;
    for (size_t i = 0; i < a->nspeech; i++) {
        add_silence(ao, from, a->speech[i].start, events);
        from = a->speech[i].end;
    }
    add_silence(ao, from, duration, events);
    if (a->clipped_ratio >= CLIPPING_MIN_RATIO)
        event_list_add(events, EV_CLIPPING, a->first_clip_s, duration, 1.0,
                       json_pack("{s:s, s:f}", "label", "the sound is clipped (distorted)",
                                 "clipped_ratio", a->clipped_ratio));
}

json_t *audio_report(const struct audio_result *a)
{
    json_t *r = json_pack(
        "{s:b, s:b, s:f, s:f, s:o, s:o, s:f, s:s}", "present", a->present, "audible",
        a->present && !audio_silent(a), "speech_s", round(a->speech_s * 100) / 100, "speech_ratio",
        a->duration > 0 ? round(a->speech_s / a->duration * 1000) / 1000 : 0.0, "integrated_lufs",
        finite_or_null(a->integrated_lufs), "true_peak_dbfs", finite_or_null(a->true_peak_dbfs),
        "clipped_ratio", round(a->clipped_ratio * 1e5) / 1e5, "vad",
        "WebRTC VAD, mode 3, 30 ms frames");
    json_t *segs = json_array();
    for (size_t i = 0; i < a->nspeech; i++)
        json_array_append_new(segs, json_pack("[f, f]", round(a->speech[i].start * 100) / 100,
                                              round(a->speech[i].end * 100) / 100));
    json_object_set_new(r, "speech_segments", segs);
    return r;
}
