/*
 * media_process(): probe the input, reject what is not a usable video, remux or transcode it to
 * a browser-safe H.264/AAC MP4 with +faststart, make a JPEG poster, and describe it all in a
 * report. Every ffmpeg/ffprobe run is a child process under the task's deadline.
 */
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "media/media.h"
#include "media/probe.h"
#include "media/process_internal.h"
#include "util/os.h"
#include "util/str.h"

#define MEDIA_RLIMIT_AS ((uint64_t)4 << 30)
#define MEDIA_OUTPUT_MAX_DEFAULT ((uint64_t)8 << 30)
#define MEDIA_FPS_MAX 60.0
#define MEDIA_POSTER_MAX_BYTES ((uint64_t)16 << 20)
#define MEDIA_ARGS_MAX 96

void media_proc_opts_init(struct proc_opts *po, const struct media_opts *o, uint64_t fsize_max)
{
    memset(po, 0, sizeof *po);
    po->deadline_ms = o->deadline_ms;
    po->cancel = o->cancel;
    po->rlimit_as_bytes = MEDIA_RLIMIT_AS;
    po->rlimit_fsize_bytes = fsize_max;
    po->started = o->children;
    if (o->deadline_ms) {
        int64_t left_s = (o->deadline_ms - os_monotonic_ms()) / 1000 + 1;
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        po->rlimit_cpu_s = (uint64_t)(left_s > 1 ? left_s : 1) * (uint64_t)(ncpu > 0 ? ncpu : 1);
        po->rlimit_cpu_s += 10;
    }
}

/* An argv under construction; strings made with args_own() are freed by args_free(). */
struct args {
    const char *v[MEDIA_ARGS_MAX];
    size_t n;
    char *owned[MEDIA_ARGS_MAX];
    size_t nowned;
};

static void args_add(struct args *a, const char *s)
{
    if (a->n + 1 >= MEDIA_ARGS_MAX)
        abort(); /* a programming error: the lists below are fixed */
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static void args_own(struct args *a, char *s)
{
    a->owned[a->nowned++] = s;
    args_add(a, s);
}

static void args_free(struct args *a)
{
    for (size_t i = 0; i < a->nowned; i++)
        free(a->owned[i]);
}

/* The program and its global options: quiet, no stdin. */
static void args_head(struct args *a)
{
    static const char *const head[] = {"ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-v",
                                       "error"};
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        args_add(a, head[i]);
}

/* An untrusted input file, behind the shared safe input options (local file, known demuxers). */
static void args_input(struct args *a, const char *path)
{
    static const char *const safe[] = {MEDIA_SAFE_INPUT_OPTS};
    for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
        args_add(a, safe[i]);
    args_add(a, "-i");
    args_own(a, xasprintf("file:%s", path));
}

bool media_is_vfr(const struct media_video_info *v)
{
    if (v->r_fps <= 0 || v->avg_fps <= 0)
        return true;
    return fabs(v->avg_fps - v->r_fps) / v->r_fps > 0.02;
}

/* The source's average frame rate: declared, else measured by the packet scan. */
double media_source_fps(const struct media_info *in)
{
    if (in->video.avg_fps > 0)
        return in->video.avg_fps;
    if (in->scan_packets > 1 && in->scan_video_duration > 0)
        return (double)in->scan_packets / in->scan_video_duration;
    return in->video.r_fps;
}

static double output_fps(const struct media_info *in)
{
    double fps = media_source_fps(in);
    if (!(fps > 0))
        fps = 30;
    return fmin(fmax(fps, 1.0), MEDIA_FPS_MAX);
}

static bool is_mp4_family(const char *format)
{
    return format && strncmp(format, "mov,mp4", 7) == 0;
}

/*
 * True when the picture is larger than max_height allows: max_height caps the shorter side, as
 * "1080p" does for a portrait phone recording (1080x1920) as much as for a landscape one.
 */
static bool over_max_height(const struct media_video_info *v, int max_height)
{
    return max_height > 0 && (v->width < v->height ? v->width : v->height) > max_height;
}

/* Remux only what browsers play as is: 8-bit 4:2:0 H.264, AAC or no audio, upright, CFR. */
static bool can_remux(const struct media_info *in, int max_height)
{
    const struct media_video_info *v = &in->video;
    return is_mp4_family(in->format_name) && v->codec && strcmp(v->codec, "h264") == 0 &&
           v->pix_fmt && strcmp(v->pix_fmt, "yuv420p") == 0 && v->rotation == 0 &&
           fabs(v->sar - 1.0) < 0.01 && !media_is_vfr(v) && v->width % 2 == 0 &&
           v->height % 2 == 0 && !over_max_height(v, max_height) &&
           (!in->has_audio || (in->audio.codec && strcmp(in->audio.codec, "aac") == 0));
}

/* The list of changes a transcode makes, for the report; the plan's flags follow from it. */
static void plan_normalizations(struct media_plan *p, const struct media_info *in,
                                const struct media_opts *o)
{
    const struct media_video_info *v = &in->video;
    json_t *n = p->normalizations;
    bool src_faststart = p->source_faststart;
    if (!p->remux) {
        if (!v->codec || strcmp(v->codec, "h264") != 0)
            json_array_append_new(n, json_string("video_codec"));
        if (v->rotation)
            json_array_append_new(n, json_string("rotate"));
        if (fabs(v->sar - 1.0) >= 0.01)
            json_array_append_new(n, json_string("square_pixels"));
        if (over_max_height(v, o->max_height) || v->width % 2 || v->height % 2)
            json_array_append_new(n, json_string("scale"));
        if (media_is_vfr(v))
            json_array_append_new(n, json_string("cfr"));
        if (!v->pix_fmt || strcmp(v->pix_fmt, "yuv420p") != 0)
            json_array_append_new(n, json_string("pix_fmt"));
        if (in->has_audio && (!in->audio.codec || strcmp(in->audio.codec, "aac") != 0))
            json_array_append_new(n, json_string("audio_codec"));
        if (in->has_audio && (in->audio.sample_rate != 48000 || in->audio.channels != 2))
            json_array_append_new(n, json_string("audio_resample"));
        if (!is_mp4_family(in->format_name))
            json_array_append_new(n, json_string("container"));
    }
    if (in->nb_streams > (in->has_video ? 1 : 0) + (in->has_audio ? 1 : 0))
        json_array_append_new(n, json_string("drop_streams"));
    if (!src_faststart)
        json_array_append_new(n, json_string("faststart"));
}

void media_plan_init(struct media_plan *p, const struct media_info *in, const struct media_opts *o,
                     const char *input_path)
{
    memset(p, 0, sizeof *p);
    p->remux = can_remux(in, o->max_height);
    p->fps = output_fps(in);
    p->source_faststart = is_mp4_family(in->format_name) && media_mp4_faststart(input_path);
    p->normalizations = json_array();
    plan_normalizations(p, in, o);
}

/*
 * Square pixels first (when the source's are not), then even dimensions whose shorter side is
 * at most max_height (the height of a landscape picture, the width of a portrait one; the other
 * side keeps the aspect: -2). ffmpeg has turned the picture upright before the filters run, so
 * iw and ih are the displayed sides. The scale filter keeps the display aspect by changing the
 * sample aspect ratio (321x241 scaled to 320x240 gets 963:964), so the chain ends with setsar=1:
 * the output has square pixels.
 */
static char *video_filter(const struct media_info *in, int max_height)
{
    const char *square =
        fabs(in->video.sar - 1.0) >= 0.01 ? "scale=w='trunc(iw*sar/2)*2':h=ih," : "";
    if (max_height > 0)
        return xasprintf("%sscale=w='if(lt(iw,ih),trunc(min(%d,iw)/2)*2,-2)'"
                         ":h='if(lt(iw,ih),-2,trunc(min(%d,ih)/2)*2)',setsar=1",
                         square, max_height, max_height);
    return xasprintf("%sscale=w=-2:h='trunc(ih/2)*2',setsar=1", square);
}

static void args_transcode(struct args *a, const struct media_info *in, const struct media_opts *o,
                           const struct media_plan *p)
{
    args_add(a, "-vf");
    args_own(a, video_filter(in, o->max_height));
    static const char *const video[] = {"-c:v", "libx264",   "-pix_fmt", "yuv420p", "-profile:v",
                                        "high", "-fps_mode", "cfr",      "-preset"};
    for (size_t i = 0; i < sizeof video / sizeof video[0]; i++)
        args_add(a, video[i]);
    args_add(a, o->preset && *o->preset ? o->preset : "veryfast");
    args_add(a, "-crf");
    args_own(a, xasprintf("%d", o->crf > 0 ? o->crf : 23));
    args_add(a, "-r");
    args_own(a, xasprintf("%.3f", p->fps));
    static const char *const audio[] = {"-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000"};
    for (size_t i = 0; in->has_audio && i < sizeof audio / sizeof audio[0]; i++)
        args_add(a, audio[i]);
}

/*
 * The poster as the run's second output: the chosen video stream of a second opening of the
 * input, seeked to `at` (the frame shown there, as the output's picture: upright, square pixels,
 * within max_height, then at most 640 px wide). The input is read only for a short window past
 * `at` (a few frames), else ffmpeg would go on decoding it to the end for nothing; a frame
 * missing from the window leaves no poster, and the caller falls back to its own run.
 */
static void args_poster(struct args *a, const struct media_info *in, const struct media_opts *o,
                        const struct media_poster_out *poster)
{
    args_add(a, "-map");
    args_own(a, xasprintf("1:%d", in->video.index));
    args_add(a, "-frames:v");
    args_add(a, "1");
    args_add(a, "-vf");
    char *vf = video_filter(in, o->max_height);
    args_own(a, xasprintf("%s,scale=w='min(640,iw)':h=-2", vf));
    free(vf);
    static const char *const tail[] = {"-q:v", "3", "-f", "image2", "-update", "1", "-y"};
    for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++)
        args_add(a, tail[i]);
    args_own(a, xasprintf("file:%s", poster->jpg));
}

/* How long the poster's input is read past its seek point: three frames, 0.2 to 2 s. */
static double poster_window(const struct media_info *in)
{
    double fps = media_source_fps(in);
    return fps > 0 ? fmin(fmax(3.0 / fps, 0.2), 2.0) : 1.0;
}

/* The full ffmpeg command line for the remux or the transcode, and the poster when asked. */
static void build_convert_args(struct args *a, const struct media_info *in,
                               const struct media_opts *o, const struct media_plan *p,
                               const char *input, const char *output,
                               const struct media_poster_out *poster)
{
    args_head(a);
    args_input(a, input);
    if (poster) {
        args_add(a, "-ss");
        args_own(a, xasprintf("%.3f", poster->at));
        args_add(a, "-t");
        args_own(a, xasprintf("%.3f", poster_window(in)));
        args_input(a, input);
    }
    args_add(a, "-map");
    args_own(a, xasprintf("0:%d", in->video.index));
    if (in->has_audio) {
        args_add(a, "-map");
        args_own(a, xasprintf("0:%d", in->audio.index));
    }
    static const char *const common[] = {"-sn", "-dn",           "-map_metadata",
                                         "-1",  "-map_chapters", "-1"};
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        args_add(a, common[i]);
    if (p->remux) {
        args_add(a, "-c");
        args_add(a, "copy");
    } else {
        args_transcode(a, in, o, p);
    }
    static const char *const tail[] = {"-movflags", "+faststart", "-f", "mp4",
                                       "-progress", "pipe:1",     "-y"};
    for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++)
        args_add(a, tail[i]);
    if (o->max_duration_s > 0) {
        args_add(a, "-t");
        args_own(a, xasprintf("%ld", o->max_duration_s + 1));
    }
    args_own(a, xasprintf("file:%s", output));
    if (poster)
        args_poster(a, in, o, poster);
}

struct progress_state {
    const struct media_opts *opts;
    double duration;
};

/* Lines of ffmpeg's -progress output: out_time_us=N and progress=continue|end. */
static void on_progress_line(const char *line, size_t len, void *ctx)
{
    struct progress_state *s = ctx;
    long long us;
    double fraction;
    if (!s->opts->progress)
        return;
    if (len > 12 && strncmp(line, "out_time_us=", 12) == 0 &&
        str_to_ll(line + 12, len - 12, 0, INT64_MAX, &us) && s->duration > 0)
        fraction = fmin(1.0, (double)us / 1e6 / s->duration);
    else if (strcmp(line, "progress=end") == 0)
        fraction = 1.0;
    else
        return;
    s->opts->progress("processing", fraction, s->opts->progress_ctx);
}

/* Maps a failed ffmpeg run to an error, with the end of its stderr as detail. */
static enum ia_err ffmpeg_failed(const struct proc_result *pr, const char *what, const char *input,
                                 const char *output, const char *jpg, char *detail,
                                 size_t detaillen)
{
    char esc[512];
    media_stderr_tail(esc, sizeof esc, pr, input, output, jpg);
    snprintf(detail, detaillen, "%s failed (exit %d, signal %d): %s", what, pr->exit_code,
             pr->term_signal, esc);
    if (pr->term_signal == SIGXCPU)
        return IA_ERR_TIMEOUT;
    if (pr->err && (strstr(pr->err, "No space left on device") || strstr(pr->err, "Disk quota")))
        return IA_ERR_STORAGE_FULL;
    return IA_ERR_TRANSCODE;
}

enum ia_err media_convert(const struct media_opts *o, const struct media_info *in,
                          const struct media_plan *p, const char *input, const char *output,
                          const struct media_poster_out *poster, char *detail, size_t detaillen)
{
    struct args a = {0};
    struct progress_state ps = {.opts = o};
    bool computed;
    ps.duration = media_info_duration(in, &computed);
    build_convert_args(&a, in, o, p, input, output, poster);
    struct proc_opts po;
    struct proc_result pr;
    media_proc_opts_init(&po, o,
                         o->max_output_bytes ? o->max_output_bytes : MEDIA_OUTPUT_MAX_DEFAULT);
    po.out_mode = PROC_STDOUT_LINES;
    po.on_line = on_progress_line;
    po.line_ctx = &ps;
    enum ia_err result = proc_run(a.v, &po, &pr, detail, detaillen);
    if (!result && !proc_result_ok(&pr))
        result = ffmpeg_failed(&pr, p->remux ? "remux" : "transcode", input, output,
                               poster ? poster->jpg : NULL, detail, detaillen);
    proc_result_cleanup(&pr);
    args_free(&a);
    return result;
}

/* One poster attempt at second `at` of video, in a run of its own. */
static enum ia_err poster_at(const struct media_opts *o, const char *video, const char *jpg,
                             double at, char *detail, size_t detaillen)
{
    struct args a = {0};
    args_head(&a);
    args_add(&a, "-ss");
    args_own(&a, xasprintf("%.3f", at));
    args_input(&a, video);
    static const char *const out[] = {
        "-map", "0:v:0",  "-frames:v", "1", "-vf", "scale=w='min(640,iw)':h=-2", "-q:v", "3",
        "-f",   "image2", "-update",   "1", "-y"};
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        args_add(&a, out[i]);
    args_own(&a, xasprintf("file:%s", jpg));
    struct proc_opts po;
    struct proc_result pr;
    media_proc_opts_init(&po, o, MEDIA_POSTER_MAX_BYTES);
    enum ia_err result = proc_run(a.v, &po, &pr, detail, detaillen);
    struct stat sb;
    if (!result && (!proc_result_ok(&pr) || stat(jpg, &sb) < 0 || sb.st_size == 0)) {
        result = ffmpeg_failed(&pr, "poster", video, jpg, NULL, detail, detaillen);
        if (result == IA_ERR_TRANSCODE)
            result = IA_ERR_DECODE;
    }
    proc_result_cleanup(&pr);
    args_free(&a);
    return result;
}

double media_poster_time(double duration) { return duration >= 1.0 ? duration * 0.1 : 0; }

enum ia_err media_poster(const struct media_opts *o, const char *video, double duration,
                         const char *jpg, char *detail, size_t detaillen)
{
    double at = media_poster_time(duration);
    enum ia_err result = poster_at(o, video, jpg, at, detail, detaillen);
    if (result == IA_ERR_DECODE && at > 0)
        result = poster_at(o, video, jpg, 0, detail, detaillen);
    return result;
}

void media_plan_cleanup(struct media_plan *p)
{
    json_decref(p->normalizations);
    p->normalizations = NULL;
}
