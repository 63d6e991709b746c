/*
 * The metadata report of media_process(): what the source was, what the output is (probed and
 * hashed from the file itself, with the faststart layout checked on its top-level MP4 boxes),
 * and the ffmpeg version that made it.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
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

enum ia_err media_report_output(const struct media_opts *o, const char *output, json_t **out,
                                char *detail, size_t detaillen)
{
    struct media_info info;
    char sha[65];
    *out = NULL;
    enum ia_err result = probe_file(o, output, &info, detail, detaillen);
    if (result == IA_ERR_NOT_A_VIDEO || result == IA_ERR_DECODE || (!result && !info.has_video))
        result = IA_ERR_TRANSCODE;
    if (!result && !crypto_sha256_file(output, NULL, sha)) {
        snprintf(detail, detaillen, "cannot read the output: %s", strerror(errno));
        result = IA_ERR_IO;
    }
    if (!result) {
        *out = json_pack("{s:I, s:s, s:f, s:i, s:i, s:f, s:s?, s:s?, s:I, s:b}", "bytes",
                         (json_int_t)info.size_bytes, "sha256", sha, "duration",
                         round3(info.duration > 0 ? info.duration : 0), "width", info.video.width,
                         "height", info.video.height, "fps", round3(info.video.avg_fps),
                         "video_codec", info.video.codec, "audio_codec",
                         info.has_audio ? info.audio.codec : NULL, "bitrate",
                         (json_int_t)info.bit_rate, "faststart", media_mp4_faststart(output));
    }
    media_info_cleanup(&info);
    return result;
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
