/*
 * ffprobe runs and their interpretation: JSON into struct media_info, a demux-only packet scan of
 * the chosen video and audio streams, and the not_a_video / decode_error / too_long decisions.
 *
 * Truncation check (documented choice): a demux-only scan reads every packet without decoding.
 * It is I/O bound (seconds for hours of video) and catches the common corruption, a file cut
 * short, by comparing the time covered by readable packets with the declared duration.
 * It does not catch bit errors inside packets; those fail the transcode (transcode_error) or the
 * poster decode (decode_error). An MP4 cut before its moov atom cannot be opened at all; it is
 * reported as decode_error because its first bytes show a video container.
 */
#include "media/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "util/str.h"

#define PROBE_STDOUT_CAP ((size_t)4 << 20)
#define PROBE_FSIZE_MAX ((uint64_t)1 << 20)

/* A copy of text with every occurrence of path (and a "file:" before it) replaced by "<file>". */
static char *scrub_path(const char *text, const char *path)
{
    size_t plen = path ? strlen(path) : 0, count = 0;
    for (const char *p = text; plen && (p = strstr(p, path)); p += plen)
        count++;
    char *out = xmalloc(strlen(text) + count * 6 + 1), *w = out;
    const char *p;
    while (plen && (p = strstr(text, path))) {
        size_t pre = (size_t)(p - text);
        if (pre >= 5 && memcmp(p - 5, "file:", 5) == 0)
            pre -= 5;
        memcpy(w, text, pre);
        memcpy(w + pre, "<file>", 6);
        w += pre + 6;
        text = p + plen;
    }
    memcpy(w, text, strlen(text) + 1);
    return out;
}

void media_stderr_tail(char *out, size_t outlen, const struct proc_result *pr, const char *path1,
                       const char *path2)
{
    char *a = scrub_path(pr->err ? pr->err : "", path1);
    char *b = scrub_path(a, path2);
    size_t len = strlen(b);
    while (len && (b[len - 1] == '\n' || b[len - 1] == '\r' || b[len - 1] == ' '))
        len--;
    size_t keep = outlen / 2, from = len > keep ? len - keep : 0;
    log_escape(out, outlen, b + from, len - from);
    free(a);
    free(b);
}

/* Parses all of s as a finite double; false for "N/A", empty or trailing garbage. */
static bool parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/*
 * Parses "num/den" (frame rates) or "num:den" (ffprobe writes aspect ratios so) into a double;
 * 0 for "0/0", malformed or non-positive.
 */
static double parse_rational(const char *s)
{
    long long num = 0, den = 0;
    const char *slash = s ? strpbrk(s, "/:") : NULL;
    if (!slash || !str_to_ll(s, (size_t)(slash - s), 0, 1000000000, &num) ||
        !str_to_ll(slash + 1, strlen(slash + 1), 1, 1000000000, &den))
        return 0;
    return (double)num / (double)den;
}

static const char *jstr(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static char *jdup(const json_t *obj, const char *key)
{
    const char *s = jstr(obj, key);
    return s ? xstrdup(s) : NULL;
}

/* A number that ffprobe writes either as a JSON number or as a decimal string. */
static double jnum(const json_t *obj, const char *key, double dflt)
{
    const json_t *v = json_object_get(obj, key);
    double d;
    if (json_is_number(v))
        return json_number_value(v);
    return parse_double(json_string_value(v), &d) ? d : dflt;
}

/*
 * A count or size that must fit its C type: the number when 0 <= n < limit, else 0 (unknown).
 * A hostile file can make ffprobe print any number, and casting one out of range is undefined.
 */
static double jcount(const json_t *obj, const char *key, double limit)
{
    double n = jnum(obj, key, 0);
    return n >= 0 && n < limit ? n : 0;
}

static int normalize_rotation(double deg)
{
    long r = lround(deg) % 360;
    return (int)(r < 0 ? r + 360 : r);
}

/*
 * Rotation as ffprobe reports the display matrix (counter-clockwise degrees), else from the
 * legacy "rotate" tag of older ffprobe versions, which counts clockwise: hence its minus sign.
 */
static int stream_rotation(const json_t *st)
{
    size_t i;
    const json_t *sd;
    json_array_foreach(json_object_get(st, "side_data_list"), i, sd)
    {
        const json_t *rot = json_object_get(sd, "rotation");
        if (json_is_number(rot))
            return normalize_rotation(json_number_value(rot));
    }
    return normalize_rotation(-jnum(json_object_get(st, "tags"), "rotate", 0));
}

static bool is_cover_art(const json_t *st)
{
    return json_integer_value(
               json_object_get(json_object_get(st, "disposition"), "attached_pic")) == 1;
}

static void parse_video(const json_t *st, struct media_video_info *v)
{
    v->index = (int)json_integer_value(json_object_get(st, "index"));
    v->codec = jdup(st, "codec_name");
    v->profile = jdup(st, "profile");
    v->pix_fmt = jdup(st, "pix_fmt");
    v->width = (int)jcount(st, "width", 0x1p31);
    v->height = (int)jcount(st, "height", 0x1p31);
    v->rotation = stream_rotation(st);
    v->r_fps = parse_rational(jstr(st, "r_frame_rate"));
    v->avg_fps = parse_rational(jstr(st, "avg_frame_rate"));
    v->duration = jnum(st, "duration", -1);
    v->bit_rate = (int64_t)jcount(st, "bit_rate", 0x1p63);
    double s = parse_rational(jstr(st, "sample_aspect_ratio"));
    v->sar = s > 0 ? s : 1.0;
}

static void parse_audio(const json_t *st, struct media_audio_info *a)
{
    a->index = (int)json_integer_value(json_object_get(st, "index"));
    a->codec = jdup(st, "codec_name");
    a->sample_rate = (int)jcount(st, "sample_rate", 0x1p31);
    a->channels = (int)jcount(st, "channels", 0x1p31);
}

static void parse_streams(const json_t *streams, struct media_info *info)
{
    size_t i;
    const json_t *st;
    json_array_foreach(streams, i, st)
    {
        const char *type = jstr(st, "codec_type");
        if (!type)
            continue;
        if (!info->has_video && strcmp(type, "video") == 0 && !is_cover_art(st)) {
            info->has_video = true;
            parse_video(st, &info->video);
        } else if (!info->has_audio && strcmp(type, "audio") == 0) {
            info->has_audio = true;
            parse_audio(st, &info->audio);
        }
    }
}

enum ia_err probe_parse_json(const char *json, size_t len, struct media_info *info, char *detail,
                             size_t detaillen)
{
    memset(info, 0, sizeof *info);
    info->duration = info->scan_duration = info->scan_video_duration = info->video.duration = -1;
    json_error_t jerr = {0};
    json_t *root = json_loadb(json, len, 0, &jerr);
    const json_t *format = json_object_get(root, "format");
    if (!json_is_object(format)) {
        snprintf(detail, detaillen, "ffprobe answer without a format: %s", jerr.text);
        json_decref(root);
        return IA_ERR_NOT_A_VIDEO;
    }
    info->format_name = jdup(format, "format_name");
    info->duration = jnum(format, "duration", -1);
    info->bit_rate = (int64_t)jcount(format, "bit_rate", 0x1p63);
    info->size_bytes = (uint64_t)jcount(format, "size", 0x1p64);
    info->nb_streams = (int)jcount(format, "nb_streams", 0x1p31);
    parse_streams(json_object_get(root, "streams"), info);
    json_decref(root);
    return IA_OK;
}

/* True when the first bytes are those of a container we would process (MP4/MOV, Matroska). */
static bool looks_like_video_container(const char *path)
{
    unsigned char b[12] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, b, sizeof b);
    close(fd);
    if (n < 12)
        return false;
    static const unsigned char ebml[4] = {0x1a, 0x45, 0xdf, 0xa3};
    return memcmp(b + 4, "ftyp", 4) == 0 || memcmp(b + 4, "moov", 4) == 0 ||
           memcmp(b + 4, "mdat", 4) == 0 || memcmp(b, ebml, 4) == 0;
}

/* ffprobe could not open the file: say why in the detail and pick the error. */
static enum ia_err probe_failed(const char *path, const struct proc_result *pr, char *detail,
                                size_t detaillen)
{
    char esc[256];
    media_stderr_tail(esc, sizeof esc, pr, path, NULL);
    if (looks_like_video_container(path)) {
        snprintf(detail, detaillen, "container header present but unreadable: %s", esc);
        return IA_ERR_DECODE;
    }
    snprintf(detail, detaillen, "format not recognised: %s", esc);
    return IA_ERR_NOT_A_VIDEO;
}

enum ia_err probe_file(const struct media_opts *o, const char *path, struct media_info *info,
                       char *detail, size_t detaillen)
{
    struct stat sb;
    memset(info, 0, sizeof *info);
    if (stat(path, &sb) < 0) {
        snprintf(detail, detaillen, "input missing: %s", strerror(errno));
        return IA_ERR_IO;
    }
    if (sb.st_size == 0) {
        snprintf(detail, detaillen, "empty file");
        return IA_ERR_NOT_A_VIDEO;
    }
    char *input = xasprintf("file:%s", path);
    const char *argv[] = {"ffprobe",
                          "-v",
                          "error",
                          MEDIA_SAFE_INPUT_OPTS,
                          "-print_format",
                          "json",
                          "-show_format",
                          "-show_streams",
                          input,
                          NULL};
    struct proc_opts po;
    struct proc_result pr;
    media_proc_opts_init(&po, o, PROBE_FSIZE_MAX);
    po.out_mode = PROC_STDOUT_CAPTURE;
    po.stdout_cap = PROBE_STDOUT_CAP;
    enum ia_err result = proc_run(argv, &po, &pr, detail, detaillen);
    if (!result && !proc_result_ok(&pr))
        result = probe_failed(path, &pr, detail, detaillen);
    else if (!result && pr.stdout_truncated) {
        snprintf(detail, detaillen, "ffprobe answer larger than %zu bytes", PROBE_STDOUT_CAP);
        result = IA_ERR_NOT_A_VIDEO;
    } else if (!result) {
        result = probe_parse_json(pr.out, pr.out_len, info, detail, detaillen);
    }
    if (!info->size_bytes)
        info->size_bytes = (uint64_t)sb.st_size;
    proc_result_cleanup(&pr);
    free(input);
    return result;
}

/* The time covered by some packets: the earliest pts and the latest pts + duration. */
struct span {
    bool have;
    double first, end;
};

static void span_add(struct span *s, double pts, double dur)
{
    if (!s->have || pts < s->first)
        s->first = pts;
    if (!s->have || pts + dur > s->end)
        s->end = pts + dur;
    s->have = true;
}

static double span_length(const struct span *s) { return s->have ? s->end - s->first : -1; }

struct scan_state {
    long long video_index, audio_index; /* audio_index -1: none */
    long video_packets;
    struct span video, all;
};

/* Splits s in place at commas into at most n fields (the last one cut at its comma too). */
static size_t split_csv(char *s, char **fields, size_t n)
{
    size_t count = 0;
    for (;;) {
        fields[count++] = s;
        char *comma = strchr(s, ',');
        if (comma)
            *comma = '\0';
        if (!comma || count == n)
            return count;
        s = comma + 1;
    }
}

/* One "stream_index,pts_time,duration_time[,...]" line of the packet scan. */
static void on_scan_line(const char *line, size_t len, void *ctx)
{
    struct scan_state *s = ctx;
    char buf[128], *f[3];
    long long index;
    double pts, dur = 0;
    if (len >= sizeof buf)
        return;
    memcpy(buf, line, len + 1);
    size_t n = split_csv(buf, f, 3);
    if (n < 2 || !str_to_ll(f[0], strlen(f[0]), 0, INT_MAX, &index))
        return;
    bool video = index == s->video_index;
    if (!video && index != s->audio_index)
        return;
    if (video)
        s->video_packets++;
    if (!parse_double(f[1], &pts))
        return;
    if (n == 3 && !parse_double(f[2], &dur))
        dur = 0;
    if (video)
        span_add(&s->video, pts, dur);
    span_add(&s->all, pts, dur);
}

enum ia_err probe_scan_packets(const struct media_opts *o, const char *path,
                               struct media_info *info, char *detail, size_t detaillen)
{
    char *input = xasprintf("file:%s", path);
    const char *argv[] = {"ffprobe",
                          "-v",
                          "error",
                          MEDIA_SAFE_INPUT_OPTS,
                          "-show_entries",
                          "packet=stream_index,pts_time,duration_time",
                          "-of",
                          "csv=p=0",
                          input,
                          NULL};
    struct scan_state s = {.video_index = info->video.index,
                           .audio_index = info->has_audio ? info->audio.index : -1};
    struct proc_opts po;
    struct proc_result pr;
    media_proc_opts_init(&po, o, PROBE_FSIZE_MAX);
    po.out_mode = PROC_STDOUT_LINES;
    po.on_line = on_scan_line;
    po.line_ctx = &s;
    enum ia_err result = proc_run(argv, &po, &pr, detail, detaillen);
    info->scan_packets = s.video_packets;
    info->scan_video_duration = span_length(&s.video);
    info->scan_duration = span_length(&s.all);
    if (!result && pr.err_len) {
        char esc[256];
        media_stderr_tail(esc, sizeof esc, &pr, path, NULL);
        snprintf(detail, detaillen, "packet scan: %s", esc);
    }
    proc_result_cleanup(&pr);
    free(input);
    return result;
}

/* Image demuxers: a file they open is a still picture (an animated GIF is checked later). */
static bool is_image_format(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n && (strcmp(name, "image2") == 0 ||
                 (n > 5 && strcmp(name + n - 5, "_pipe") == 0 && strcmp(name, "gif_pipe") != 0));
}

enum ia_err probe_check_video(const struct media_info *info, long max_duration_s, char *detail,
                              size_t detaillen)
{
    if (is_image_format(info->format_name)) {
        snprintf(detail, detaillen, "still image (%s)", info->format_name);
        return IA_ERR_NOT_A_VIDEO;
    }
    if (!info->has_video) {
        snprintf(detail, detaillen, "no video stream (%s, %s)",
                 info->format_name ? info->format_name : "?",
                 info->has_audio ? "audio only" : "no audio");
        return IA_ERR_NOT_A_VIDEO;
    }
    if (info->video.width <= 0 || info->video.height <= 0) {
        snprintf(detail, detaillen, "video stream without dimensions");
        return IA_ERR_DECODE;
    }
    if (max_duration_s > 0 && info->duration > (double)max_duration_s) {
        snprintf(detail, detaillen, "declared duration %.3f s over the limit of %ld s",
                 info->duration, max_duration_s);
        return IA_ERR_TOO_LONG;
    }
    return IA_OK;
}

static bool is_animation_format(const char *name)
{
    return name &&
           (strcmp(name, "gif") == 0 || strcmp(name, "gif_pipe") == 0 || strcmp(name, "apng") == 0);
}

/*
 * True when the readable packets end well before the declared duration: the video packets
 * against the video stream's own duration when the container declares one (MP4), else the video
 * and audio packets together against the container's duration (Matroska declares only that one,
 * and a video track may rightly end before the audio).
 */
static bool looks_truncated(const struct media_info *info)
{
    bool per_stream = info->video.duration > 0;
    double declared = per_stream ? info->video.duration : info->duration;
    double covered = per_stream ? info->scan_video_duration : info->scan_duration;
    if (declared <= 0 || covered < 0)
        return false;
    double tolerance = fmax(per_stream ? 0.5 : 1.0, 0.1 * declared);
    return covered < declared - tolerance;
}

enum ia_err probe_check_scan(const struct media_info *info, long max_duration_s, char *detail,
                             size_t detaillen)
{
    bool computed;
    double duration = media_info_duration(info, &computed);
    if (info->scan_packets == 0) {
        snprintf(detail, detaillen, "no readable video packet");
        return IA_ERR_DECODE;
    }
    if (is_animation_format(info->format_name) && info->scan_packets < 2) {
        snprintf(detail, detaillen, "still image (%s, one frame)", info->format_name);
        return IA_ERR_NOT_A_VIDEO;
    }
    if (looks_truncated(info)) {
        bool per_stream = info->video.duration > 0;
        snprintf(detail, detaillen, "packets cover %.3f s of a declared %.3f s",
                 per_stream ? info->scan_video_duration : info->scan_duration,
                 per_stream ? info->video.duration : info->duration);
        return IA_ERR_DECODE;
    }
    if (max_duration_s > 0 &&
        (duration > (double)max_duration_s || info->scan_duration > (double)max_duration_s)) {
        snprintf(detail, detaillen, "duration %.3f s over the limit of %ld s",
                 fmax(duration, info->scan_duration), max_duration_s);
        return IA_ERR_TOO_LONG;
    }
    return IA_OK;
}

double media_info_duration(const struct media_info *info, bool *computed)
{
    *computed = !(info->duration > 0) && info->scan_duration >= 0;
    if (info->duration > 0)
        return info->duration;
    return info->scan_duration >= 0 ? info->scan_duration : 0;
}

void media_info_cleanup(struct media_info *info)
{
    free(info->format_name);
    free(info->video.codec);
    free(info->video.profile);
    free(info->video.pix_fmt);
    free(info->audio.codec);
    memset(info, 0, sizeof *info);
}
