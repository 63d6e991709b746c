/*
 * Analysis of a processed interview: what a reviewer wants to know before watching it.
 * Now: is the candidate audible, and where are the long silences (events on the timeline).
 * Works on the normalized MP4; runs ffmpeg as a child like media/. No HTTP, no Redis.
 */
#ifndef IA_ANALYSIS_ANALYSIS_H
#define IA_ANALYSIS_ANALYSIS_H

#include <stddef.h>

#include "core/error.h"

struct media_opts;
typedef struct json_t json_t;

/* Silence shorter than this is not an event (seconds). */
#define ANALYSIS_SILENCE_MIN_S 2.0
/* Quieter than this counts as silence (dBFS). */
#define ANALYSIS_SILENCE_DB (-45)

/*
 * Analyses video_path (duration seconds long) and adds to report: "analysis" (a summary) and
 * "events" (a list of {kind, start, end, label}). Uses opts for the deadline and cancel flag.
 */
enum ia_err analysis_run(const struct media_opts *opts, const char *video_path, double duration,
                         json_t *report, char *detail, size_t detaillen);

/*
 * Reads ffmpeg's silencedetect/volumedetect log text into report (exposed for tests).
 * has_audio tells whether the file has an audio stream at all.
 */
void analysis_read_audio_log(const char *log, double duration, int has_audio, json_t *report);

#endif
