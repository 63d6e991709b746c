/*
 * The ffprobe run and its interpretation: one child prints the format, the streams and every
 * packet (a demux-only scan, nothing decoded) as compact JSON; the packet lines are counted as
 * they arrive and the rest is parsed into struct media_info; then the not_a_video /
 * decode_error / too_long decisions.
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
#define PROBE_SCAN_STREAMS 1024 /* libavformat opens at most 1000 streams (max_streams) */

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
                       const char *path2, const char *path3)
{
    char *a = scrub_path(pr->err ? pr->err : "", path1);
    char *b = scrub_path(a, path2);
    char *c = scrub_path(b, path3);
    size_t len = strlen(c);
    while (len && (c[len - 1] == '\n' || c[len - 1] == '\r' || c[len - 1] == ' '))
        len--;
    size_t keep = outlen / 2, from = len > keep ? len - keep : 0;
    log_escape(out, outlen, c + from, len - from);
    free(a);
    free(b);
    free(c);
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
    media_stderr_tail(esc, sizeof esc, pr, path, NULL, NULL);
    if (looks_like_video_container(path)) {
        snprintf(detail, detaillen, "container header present but unreadable: %s", esc);
        return IA_ERR_DECODE;
    }
    snprintf(detail, detaillen, "format not recognised: %s", esc);
    return IA_ERR_NOT_A_VIDEO;
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

static void span_merge(struct span *into, const struct span *from)
{
    if (from->have) {
        span_add(into, from->first, 0);
        span_add(into, from->end, 0);
    }
}

static double span_length(const struct span *s) { return s->have ? s->end - s->first : -1; }

/* The packets seen of one stream (by absolute index). */
struct scan_stream {
    long packets;
    struct span span;
};

struct probe_reader {
    char *json; /* ffprobe's answer without its packet lines */
    size_t json_len, json_cap;
    char *line; /* the line being read */
    size_t line_len, line_cap;
    bool too_large; /* the answer (packets aside) or one line went over PROBE_STDOUT_CAP */
    bool in_packets;
    struct scan_stream *streams;
    size_t nstreams;
};

static void grow(char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c *= 2;
    *p = xrealloc(*p, c);
    *cap = c;
}

/* The value of "key": "value" in a packet line, parsed as a double; false when absent or N/A. */
static bool packet_field(const char *line, const char *key, double *out)
{
    const char *p = strstr(line, key);
    if (!p)
        return false;
    p += strlen(key);
    const char *q = strchr(p, '"');
    char buf[64];
    if (!q || (size_t)(q - p) >= sizeof buf)
        return false;
    memcpy(buf, p, (size_t)(q - p));
    buf[q - p] = '\0';
    return parse_double(buf, out);
}

/* One packet: { "stream_index": N, "pts_time": "T", "duration_time": "D" ... */
static void scan_packet(struct probe_reader *r, const char *line)
{
    static const char key[] = "{ \"stream_index\": ";
    long long index;
    const char *p = line + strlen(key), *end = p;
    while (*end >= '0' && *end <= '9')
        end++;
    if (!str_to_ll(p, (size_t)(end - p), 0, PROBE_SCAN_STREAMS - 1, &index))
        return;
    if ((size_t)index >= r->nstreams) {
        r->streams = xrealloc(r->streams, ((size_t)index + 1) * sizeof *r->streams);
        memset(r->streams + r->nstreams, 0, ((size_t)index + 1 - r->nstreams) * sizeof *r->streams);
        r->nstreams = (size_t)index + 1;
    }
    struct scan_stream *st = &r->streams[index];
    double pts, dur;
    st->packets++;
    if (!packet_field(line, "\"pts_time\": \"", &pts))
        return;
    if (!packet_field(line, "\"duration_time\": \"", &dur))
        dur = 0;
    span_add(&st->span, pts, dur);
}

/*
 * One line of ffprobe's compact JSON. Its writer indents by structure (strings are escaped, so
 * a file's bytes never start a line): the packet array opens at indent 4, each packet is one
 * line at indent 8 (its side data follows deeper), and the array closes at indent 4.
 */
static void reader_line(struct probe_reader *r, const char *line, size_t len)
{
    static const char packet[] = "{ \"stream_index\": ";
    size_t indent = strspn(line, " ");
    if (r->in_packets && indent > 4) {
        if (indent == 8 && strncmp(line + 8, packet, strlen(packet)) == 0)
            scan_packet(r, line + 8);
        return;
    }
    r->in_packets = indent == 4 && strncmp(line + 4, "\"packets\": [", 12) == 0 &&
                    !memchr(line, ']', len);
    if (r->json_len + len + 1 > PROBE_STDOUT_CAP) {
        r->too_large = true;
        return;
    }
    grow(&r->json, &r->json_cap, r->json_len + len + 2);
    memcpy(r->json + r->json_len, line, len);
    r->json_len += len;
    r->json[r->json_len++] = '\n';
    r->json[r->json_len] = '\0';
}

void probe_reader_feed(struct probe_reader *r, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n' || data[i] == '\0') {
            grow(&r->line, &r->line_cap, r->line_len + 1);
            r->line[r->line_len] = '\0';
            reader_line(r, r->line, r->line_len);
            r->line_len = 0;
        } else if (r->line_len + 2 > PROBE_STDOUT_CAP) {
            r->too_large = true;
        } else {
            grow(&r->line, &r->line_cap, r->line_len + 2);
            r->line[r->line_len++] = data[i];
        }
    }
}

static void reader_chunk(const char *data, size_t len, void *ctx)
{
    probe_reader_feed(ctx, data, len);
}

struct probe_reader *probe_reader_new(void) { return xcalloc(1, sizeof(struct probe_reader)); }

void probe_reader_free(struct probe_reader *r)
{
    if (!r)
        return;
    free(r->json);
    free(r->line);
    free(r->streams);
    free(r);
}

static const struct scan_stream *reader_stream(const struct probe_reader *r, int index)
{
    return index >= 0 && (size_t)index < r->nstreams ? &r->streams[index] : NULL;
}

enum ia_err probe_reader_finish(struct probe_reader *r, struct media_info *info, char *detail,
                                size_t detaillen)
{
    if (r->line_len)
        probe_reader_feed(r, "\n", 1);
    if (r->too_large) {
        memset(info, 0, sizeof *info);
        snprintf(detail, detaillen, "ffprobe answer larger than %zu bytes", PROBE_STDOUT_CAP);
        return IA_ERR_NOT_A_VIDEO;
    }
    enum ia_err result =
        probe_parse_json(r->json ? r->json : "", r->json_len, info, detail, detaillen);
    if (result || !info->has_video)
        return result;
    const struct scan_stream *v = reader_stream(r, info->video.index);
    const struct scan_stream *a = info->has_audio ? reader_stream(r, info->audio.index) : NULL;
    struct span all = {0};
    if (v) {
        info->scan_packets = v->packets;
        info->scan_video_duration = span_length(&v->span);
        span_merge(&all, &v->span);
    }
    if (a)
        span_merge(&all, &a->span);
    info->scan_duration = span_length(&all);
    return IA_OK;
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
    /* One run: format and streams, and every packet's stream, time and duration (no decoding). */
    const char *argv[] = {"ffprobe",
                          "-v",
                          "error",
                          MEDIA_SAFE_INPUT_OPTS,
                          "-print_format",
                          "json=compact=1",
                          "-show_format",
                          "-show_streams",
                          "-show_entries",
                          "packet=stream_index,pts_time,duration_time",
                          input,
                          NULL};
    struct probe_reader *r = probe_reader_new();
    struct proc_opts po;
    struct proc_result pr;
    media_proc_opts_init(&po, o, PROBE_FSIZE_MAX);
    po.out_mode = PROC_STDOUT_CHUNKS;
    po.on_data = reader_chunk;
    po.line_ctx = r;
    enum ia_err result = proc_run(argv, &po, &pr, detail, detaillen);
    if (!result && !proc_result_ok(&pr))
        result = probe_failed(path, &pr, detail, detaillen);
    else if (!result)
        result = probe_reader_finish(r, info, detail, detaillen);
    if (!info->size_bytes)
        info->size_bytes = (uint64_t)sb.st_size;
    probe_reader_free(r);
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
