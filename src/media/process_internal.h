/*
 * The steps of media_process() after the probe, shared by media.c, process.c and report.c:
 * the remux/transcode plan, the ffmpeg runs, the poster and the report. Internal to media/.
 */
#ifndef IA_MEDIA_PROCESS_INTERNAL_H
#define IA_MEDIA_PROCESS_INTERNAL_H

#include <stdbool.h>

#include "core/error.h"
#include "media/media.h"
#include "media/probe.h"

struct media_plan {
    bool remux;             /* -c copy; otherwise libx264/AAC transcode */
    bool source_faststart;  /* the input is an MP4 whose moov precedes mdat */
    double fps;             /* transcode: constant output frame rate */
    json_t *normalizations; /* owned array of strings for the report */
};

/* Decides remux or transcode and lists the normalizations. Free with media_plan_cleanup(). */
void media_plan_init(struct media_plan *p, const struct media_info *in, const struct media_opts *o,
                     const char *input_path);
void media_plan_cleanup(struct media_plan *p);

/* The poster asked of media_convert(): a JPEG of the frame at `at` seconds. */
struct media_poster_out {
    const char *jpg;
    double at;
};

/*
 * Runs ffmpeg to write output (MP4) from input following the plan; reports "processing". With
 * poster (may be NULL), the same run also writes the poster from the input, as the output shows
 * that frame; a frame it could not get leaves no file (the caller then runs media_poster()).
 */
enum ia_err media_convert(const struct media_opts *o, const struct media_info *in,
                          const struct media_plan *p, const char *input, const char *output,
                          const struct media_poster_out *poster, char *detail, size_t detaillen);

/* When the poster is taken: at 10% of duration, or the first frame of a clip under 1 s. */
double media_poster_time(double duration);

/*
 * Writes a JPEG poster (at most 640 px wide) of video at media_poster_time(duration), or of its
 * first frame when that fails, in a run of its own.
 */
enum ia_err media_poster(const struct media_opts *o, const char *video, double duration,
                         const char *jpg, char *detail, size_t detaillen);

/* True when path is an MP4 whose top-level moov box comes before its mdat box. */
bool media_mp4_faststart(const char *path);

/* True when the declared frame rates disagree (or are unknown): variable frame rate. */
bool media_is_vfr(const struct media_video_info *v);
/* The source's average frame rate, declared or measured; 0 when unknown. */
double media_source_fps(const struct media_info *in);

/* The "source" section of the report (new reference). */
json_t *media_report_source(const struct media_info *in);
/*
 * The "output" section, read from the file ffmpeg wrote (no child): length, picture size and
 * frame rate from its moov box, size, SHA-256, faststart layout. Returns IA_OK with *out set, or
 * IA_ERR_TRANSCODE when it is not an MP4 with an H.264 (avc1) video track and no audio track
 * but an AAC (mp4a) one (the muxer writes no track for a stream that got no packet, so an audio
 * stream without any leaves none: audio_codec null, as ffprobe would say); IA_ERR_IO when it
 * cannot be read.
 */
enum ia_err media_report_output(const char *output, json_t **out, char *detail, size_t detaillen);
/* ffmpeg's version string ("5.1.6-0+deb12u1"), found once per process; "unknown" on failure. */
const char *media_ffmpeg_version(void);

#endif
