/*
 * Analysis of a processed interview, offline and in video time: is the candidate present, alone,
 * facing the screen, speaking; is it the same person throughout; and the recording's quality.
 * One audio pass and one frame pass over the normalized MP4 (ffmpeg children feeding pipes), the
 * models of vision.h, then events, a score, evidence frames, WebVTT cues and a review rendition.
 * No HTTP, no Redis: the worker publishes what this writes into the scratch directory.
 */
#ifndef IA_ANALYSIS_ANALYSIS_H
#define IA_ANALYSIS_ANALYSIS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

struct config;
struct media_opts;
typedef struct json_t json_t;

struct analysis_opts {
    const char *models_dir;
    int fps;                 /* frames analysed per second of video */
    int width;               /* widest frame analysed */
    int threads;             /* model threads (0: cores) */
    double objects_every_s;  /* 0: no object search */
    double identity_every_s; /* 0: no identity check */
    float face_min_score;
    double absent_min_s, multiple_min_s, away_min_s, silence_min_s;
    double yaw_deg, pitch_deg; /* head away from the baseline by more than these */
    double gaze_away;          /* iris off the baseline by more than this (share of half an eye) */
    float object_min_score;
    float face_match_min; /* cosine similarity below which the face is someone else */
    int suspicious_score, cheating_score;
    bool review;          /* also write the review rendition */
    const char *work_dir; /* where outputs are written */
};

/* Fills ao from the option table; work_dir is left NULL. */
void analysis_opts_from_config(struct analysis_opts *ao, const struct config *cfg);

struct analysis_evidence {
    char id[24]; /* the event's id */
    char *path;  /* JPEG in work_dir */
};

/* Files written into work_dir, for the caller to publish. Paths are owned. */
struct analysis_outputs {
    char *vtt_path;    /* WebVTT cues of the events */
    char *review_path; /* the review rendition, or NULL */
    struct analysis_evidence *evidence;
    size_t nevidence;
};

/*
 * Analyses video_path (the normalized MP4 described by report's "output" section) and sets
 * report's "analysis" section; writes the outputs into ao->work_dir. Returns IA_ERR_TIMEOUT when
 * the deadline or a stop interrupted it, another error when the models or ffmpeg failed (detail
 * says why, for logs); out is filled only on IA_OK.
 */
enum ia_err analysis_run(const struct analysis_opts *ao, const struct media_opts *mo,
                         const char *video_path, json_t *report, struct analysis_outputs *out,
                         char *detail, size_t detaillen);
void analysis_outputs_cleanup(struct analysis_outputs *out);

/* Frees the models (loaded by the first analysis, kept for the process); call once no analysis
 * runs any more. */
void analysis_global_cleanup(void);

#endif
