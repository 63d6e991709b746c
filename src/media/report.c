/*
 * The metadata report of media_process(): what the source was, what the output is (read from
 * the file itself: its length, picture size and frame rate from the MP4's moov box, its hash,
 * and the faststart layout of its top-level boxes), and the ffmpeg version that made it.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "media/probe.h"
#include "media/process_internal.h"
#include "util/crypto.h"
#include "util/os.h"
#include "util/str.h"

static double round3(double x) { return round(x * 1000.0) / 1000.0; }

static uint64_t be_read(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

bool media_mp4_faststart(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    off_t end = lseek(fd, 0, SEEK_END), off = 0;
    bool seen_mdat = false, faststart = false;
    unsigned char h[16];
    while (off + 8 <= end && pread(fd, h, sizeof h, off) >= 8) {
        uint64_t size = be_read(h, 4), hdr = 8;
        if (size == 1) {
            size = be_read(h + 8, 8);
            hdr = 16;
        } else if (size == 0) {
            size = (uint64_t)(end - off);
        }
        if (size < hdr || size > (uint64_t)(end - off))
            break;
        if (memcmp(h + 4, "moov", 4) == 0) {
            faststart = !seen_mdat;
            break;
        }
        seen_mdat |= memcmp(h + 4, "mdat", 4) == 0;
        off += (off_t)size;
    }
    close(fd);
    return faststart;
}

static json_t *source_video(const struct media_info *in)
{
    const struct media_video_info *v = &in->video;
    int dw = (int)lround(v->width * v->sar), dh = v->height;
    if (v->rotation == 90 || v->rotation == 270) {
        int t = dw;
        dw = dh;
        dh = t;
    }
    return json_pack("{s:s?, s:s?, s:s?, s:i, s:i, s:i, s:i, s:f, s:i, s:b}", "codec", v->codec,
                     "profile", v->profile, "pix_fmt", v->pix_fmt, "width", v->width, "height",
                     v->height, "display_width", dw, "display_height", dh, "fps",
                     round3(media_source_fps(in)), "rotation", v->rotation, "vfr", media_is_vfr(v));
}

static json_t *source_audio(const struct media_info *in)
{
    if (!in->has_audio)
        return json_null();
    return json_pack("{s:s?, s:i, s:i}", "codec", in->audio.codec, "sample_rate",
                     in->audio.sample_rate, "channels", in->audio.channels);
}

json_t *media_report_source(const struct media_info *in)
{
    bool computed;
    double duration = media_info_duration(in, &computed);
    /* "o" steals the references made by source_video() and source_audio(). */
    return json_pack("{s:s?, s:f, s:s, s:I, s:o, s:o, s:i}", "container", in->format_name,
                     "duration", round3(duration), "duration_source",
                     computed ? "computed" : "container", "size_bytes", (json_int_t)in->size_bytes,
                     "video", source_video(in), "audio", source_audio(in), "streams",
                     in->nb_streams);
}

/* A box's payload [body, end) in the file. */
struct box {
    char type[4];
    uint64_t body, end;
};

/* Reads the header of the box at off; false when there is none or it does not fit before end. */
static bool box_at(int fd, uint64_t off, uint64_t end, struct box *b)
{
    unsigned char h[16];
    if (off >= end || end - off < 8)
        return false;
    ssize_t n = pread(fd, h, sizeof h, (off_t)off);
    if (n < 8)
        return false;
    uint64_t size = be_read(h, 4), hdr = 8;
    if (size == 1) {
        if (n < 16)
            return false;
        size = be_read(h + 8, 8);
        hdr = 16;
    } else if (size == 0) {
        size = end - off;
    }
    if (size < hdr || size > end - off)
        return false;
    memcpy(b->type, h + 4, 4);
    b->body = off + hdr;
    b->end = off + size;
    return true;
}

/* The first box of the type among those in [off, end) (the children of one box). */
static bool box_find(int fd, uint64_t off, uint64_t end, const char *type, struct box *out)
{
    struct box b;
    for (; box_at(fd, off, end, &b); off = b.end) {
        if (memcmp(b.type, type, 4) == 0) {
            *out = b;
            return true;
        }
    }
    return false;
}

/* Follows a path of box types ("mdia/minf/stbl/stsd") down from the children of *b. */
static bool box_path(int fd, struct box *b, const char *path)
{
    for (const char *p = path; *p; p += p[4] == '/' ? 5 : 4) {
        if (!box_find(fd, b->body, b->end, p, b))
            return false;
    }
    return true;
}

/* Reads n (<= 8) big-endian bytes at box offset rel; false when they are not inside the box. */
static bool box_read(int fd, const struct box *b, uint64_t rel, int n, uint64_t *v)
{
    unsigned char buf[8];
    if (b->end - b->body < rel + (uint64_t)n ||
        pread(fd, buf, (size_t)n, (off_t)(b->body + rel)) != n)
        return false;
    *v = be_read(buf, n);
    return true;
}

/* The timescale and duration of an mvhd or mdhd box (versions 0 and 1), in seconds. */
static bool box_seconds(int fd, const struct box *b, double *seconds)
{
    uint64_t version, scale, duration;
    if (!box_read(fd, b, 0, 1, &version))
        return false;
    bool v1 = version == 1;
    if (!box_read(fd, b, v1 ? 20 : 12, 4, &scale) ||
        !box_read(fd, b, v1 ? 24 : 16, v1 ? 8 : 4, &duration) || scale == 0 ||
        duration == (v1 ? UINT64_MAX : UINT32_MAX))
        return false;
    *seconds = (double)duration / (double)scale;
    return true;
}

/* What the output's moov says: the movie's length and its first video and audio tracks. */
struct mp4_facts {
    double duration;
    bool video, audio;
    char video_entry[5], audio_entry[5]; /* sample entry types: avc1, mp4a */
    uint64_t width, height;
    double fps; /* samples per second of media time (what ffprobe calls avg_frame_rate) */
};

/* The handler ("vide", "soun") and first sample entry of one trak. */
static void read_trak(int fd, const struct box *trak, struct mp4_facts *f)
{
    struct box hdlr = *trak, stsd = *trak, entry;
    uint64_t handler;
    if (!box_path(fd, &hdlr, "mdia/hdlr") || !box_read(fd, &hdlr, 8, 4, &handler) ||
        !box_path(fd, &stsd, "mdia/minf/stbl/stsd") ||
        !box_at(fd, stsd.body + 8, stsd.end, &entry))
        return;
    if (handler == 0x736f756e /* soun */ && !f->audio) {
        f->audio = true;
        memcpy(f->audio_entry, entry.type, 4);
    } else if (handler == 0x76696465 /* vide */ && !f->video) {
        struct box mdhd = *trak, stsz = *trak;
        uint64_t samples = 0;
        double media_s = 0;
        /* A visual sample entry: 24 bytes of reserved and indexes, then width and height. */
        if (!box_read(fd, &entry, 24, 2, &f->width) || !box_read(fd, &entry, 26, 2, &f->height))
            return;
        f->video = true;
        memcpy(f->video_entry, entry.type, 4);
        if (box_path(fd, &mdhd, "mdia/mdhd") && box_seconds(fd, &mdhd, &media_s) &&
            box_path(fd, &stsz, "mdia/minf/stbl/stsz") && box_read(fd, &stsz, 8, 4, &samples) &&
            media_s > 0)
            f->fps = (double)samples / media_s;
    }
}

/* Reads the facts from the top-level moov box; false when there is no readable one. */
static bool mp4_read(const char *path, struct mp4_facts *f)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    off_t size = lseek(fd, 0, SEEK_END);
    struct box moov, mvhd, trak;
    bool ok = size > 0 && box_find(fd, 0, (uint64_t)size, "moov", &moov) &&
              box_find(fd, moov.body, moov.end, "mvhd", &mvhd) &&
              box_seconds(fd, &mvhd, &f->duration);
    for (uint64_t off = moov.body; ok && box_at(fd, off, moov.end, &trak); off = trak.end) {
        if (memcmp(trak.type, "trak", 4) == 0)
            read_trak(fd, &trak, f);
    }
    close(fd);
    return ok;
}

enum ia_err media_report_output(const char *output, json_t **out, char *detail, size_t detaillen)
{
    struct mp4_facts f;
    struct stat sb;
    char sha[65];
    *out = NULL;
    if (!mp4_read(output, &f) || !f.video || strcmp(f.video_entry, "avc1") != 0 ||
        (f.audio && strcmp(f.audio_entry, "mp4a") != 0)) {
        snprintf(detail, detaillen, "output is not the expected MP4 (video %s, audio %s)",
                 f.video ? f.video_entry : "none", f.audio ? f.audio_entry : "none");
        return IA_ERR_TRANSCODE;
    }
    if (stat(output, &sb) < 0 || !crypto_sha256_file(output, NULL, sha)) {
        snprintf(detail, detaillen, "cannot read the output: %s", strerror(errno));
        return IA_ERR_IO;
    }
    double bitrate = f.duration > 0 ? (double)sb.st_size * 8.0 / f.duration : 0;
    *out = json_pack("{s:I, s:s, s:f, s:i, s:i, s:f, s:s, s:s?, s:I, s:b}", "bytes",
                     (json_int_t)sb.st_size, "sha256", sha, "duration", round3(f.duration),
                     "width", (int)f.width, "height", (int)f.height, "fps", round3(f.fps),
                     "video_codec", "h264", "audio_codec", f.audio ? "aac" : NULL, "bitrate",
                     (json_int_t)(bitrate < 0x1p62 ? bitrate : 0), "faststart",
                     media_mp4_faststart(output));
    return IA_OK;
}

static char ffmpeg_version[64] = "unknown";
static pthread_once_t ffmpeg_version_once = PTHREAD_ONCE_INIT;

/* Reads "ffmpeg version X ..." from `ffmpeg -version`. */
static void find_ffmpeg_version(void)
{
    const char *argv[] = {"ffmpeg", "-hide_banner", "-version", NULL};
    struct proc_opts po = {
        .deadline_ms = os_monotonic_ms() + 10000, .out_mode = PROC_STDOUT_CAPTURE, .stdout_cap = 4096};
    struct proc_result pr;
    char detail[128];
    if (proc_run(argv, &po, &pr, detail, sizeof detail) == IA_OK && proc_result_ok(&pr) &&
        strncmp(pr.out, "ffmpeg version ", 15) == 0) {
        const char *v = pr.out + 15;
        size_t n = strcspn(v, " \n");
        if (n > 0 && n < sizeof ffmpeg_version)
            snprintf(ffmpeg_version, sizeof ffmpeg_version, "%.*s", (int)n, v);
    }
    proc_result_cleanup(&pr);
}

const char *media_ffmpeg_version(void)
{
    pthread_once(&ffmpeg_version_once, find_ffmpeg_version);
    return ffmpeg_version;
}
