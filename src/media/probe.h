/*
 * Probing inside media/: one ffprobe of a local file into a struct, with a scan of its packets
 * for the real duration and truncation, and whether it is a video we can process. Internal to
 * media/.
 */
#ifndef IA_MEDIA_PROBE_H
#define IA_MEDIA_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "media/media.h"
#include "media/proc.h"

/* Demuxers ffmpeg and ffprobe may use on untrusted input (no playlists, no concat, no image2). */
#define MEDIA_FORMAT_WHITELIST                                                                     \
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,asf,ogg,gif,apng,mp3,wav,aac,"      \
    "flac,png_pipe,jpeg_pipe,bmp_pipe,webp_pipe,tiff_pipe,gif_pipe"

/* What every ffmpeg or ffprobe run puts before an untrusted input: local files, known demuxers. */
#define MEDIA_SAFE_INPUT_OPTS                                                                      \
    "-protocol_whitelist", "file", "-format_whitelist", MEDIA_FORMAT_WHITELIST

struct media_video_info {
    int index; /* absolute stream index */
    char *codec, *profile, *pix_fmt;
    int width, height;
    int rotation;     /* degrees in [0, 360), from the display matrix or the rotate tag */
    double sar;       /* sample aspect ratio; 1 when unknown */
    double r_fps;     /* ffprobe r_frame_rate (0 unknown) */
    double avg_fps;   /* ffprobe avg_frame_rate (0 unknown) */
    double duration;  /* the stream's declared duration, < 0 unknown */
    int64_t bit_rate; /* 0 unknown */
};

struct media_audio_info {
    int index;
    char *codec;
    int sample_rate, channels;
};

struct media_info {
    char *format_name;
    double duration;  /* container duration, < 0 unknown */
    int64_t bit_rate; /* container bit rate, 0 unknown */
    uint64_t size_bytes;
    int nb_streams;
    bool has_video, has_audio;
    struct media_video_info video; /* the first video stream that is not cover art */
    struct media_audio_info audio; /* the first audio stream */
    /* filled by the packet scan of probe_file(), over the streams chosen above (first video, first
     * audio) */
    long scan_packets;          /* video packets read */
    double scan_video_duration; /* video packets' latest end minus earliest pts; < 0 unknown */
    double scan_duration;       /* the same over video and audio packets; < 0 unknown */
};

/* Options for running ffprobe or ffmpeg under the task's deadline, cancel flag and limits. */
void media_proc_opts_init(struct proc_opts *po, const struct media_opts *o, uint64_t fsize_max);

/*
 * Parses ffprobe's -show_format -show_streams JSON into info (cleared first). Returns IA_OK, or
 * IA_ERR_NOT_A_VIDEO when the text is not the expected JSON.
 */
enum ia_err probe_parse_json(const char *json, size_t len, struct media_info *info, char *detail,
                             size_t detaillen);

/*
 * Runs ffprobe once on path: format, streams and a demux-only scan of every packet (nothing is
 * decoded; I/O bound). Fills info, the scan fields included: the chosen video stream's packet
 * count and the time its packets cover, alone and together with the chosen audio stream's (a
 * video track may end before the audio: a camera turned off). When ffprobe cannot open the
 * file, returns IA_ERR_DECODE if the first bytes are those of a video container (an MP4 whose
 * moov atom was cut off, say) and IA_ERR_NOT_A_VIDEO otherwise. IA_ERR_TIMEOUT on deadline or
 * cancel.
 */
enum ia_err probe_file(const struct media_opts *o, const char *path, struct media_info *info,
                       char *detail, size_t detaillen);

/*
 * The reader of that run's output (ffprobe -print_format json=compact=1 with packets), exposed
 * for tests and fuzzing: feed it stdout in pieces of any size; packet lines are counted as they
 * come and never kept, the rest (at most 4 MiB) is parsed by probe_reader_finish(), which
 * returns what probe_parse_json() returns and fills the scan fields of the chosen streams.
 */
struct probe_reader;
struct probe_reader *probe_reader_new(void);
void probe_reader_feed(struct probe_reader *r, const char *data, size_t len);
enum ia_err probe_reader_finish(struct probe_reader *r, struct media_info *info, char *detail,
                                size_t detaillen);
void probe_reader_free(struct probe_reader *r);

/*
 * Decisions on the format and streams: not a video (image, audio only), or a declared duration
 * over max_duration_s (> 0).
 */
enum ia_err probe_check_video(const struct media_info *info, long max_duration_s, char *detail,
                              size_t detaillen);
/* Decisions on the scan: no packets, a still GIF, truncated, too long (max_duration_s > 0). */
enum ia_err probe_check_scan(const struct media_info *info, long max_duration_s, char *detail,
                             size_t detaillen);

/* The duration to use: the container's when known, else the scanned one; *computed says which. */
double media_info_duration(const struct media_info *info, bool *computed);
void media_info_cleanup(struct media_info *info);

/*
 * Escapes the end of a child's stderr for a log line, with path1, path2 and path3 (each may be
 * NULL) replaced by "<file>" so that details never name local paths.
 */
void media_stderr_tail(char *out, size_t outlen, const struct proc_result *pr, const char *path1,
                       const char *path2, const char *path3);

#endif
