/*
 * The parts of the analysis, shared inside analysis/: the audio pass, the frame pass, the
 * candidate tracker, event runs, the score and the report. Everything is in video time (seconds
 * from the start of the normalized video) and belongs to one task.
 */
#ifndef IA_ANALYSIS_INTERNAL_H
#define IA_ANALYSIS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "analysis/analysis.h"
#include "analysis/vision.h"

typedef struct json_t json_t;

#ifdef __cplusplus
extern "C" {
#endif

/* Event kinds, in the order reports list them. */
enum ev_kind {
    EV_FACE_ABSENT,
    EV_MULTIPLE_FACES,
    EV_OTHER_PERSON,
    EV_LOOKING_AWAY,
    EV_GAZE_AWAY,
    EV_PHONE,
    EV_OBJECT,
    EV_FACE_MISMATCH,
    EV_SPEECH_WITHOUT_CANDIDATE,
    EV_SILENCE,
    EV_NO_AUDIO,
    EV_SILENT_AUDIO,
    EV_CLIPPING,
    EV_BLACK_VIDEO,
    EV_FROZEN_VIDEO,
    EV_DARK_VIDEO,
    EV_FACE_TOO_SMALL,
    EV__COUNT
};

const char *ev_kind_name(enum ev_kind k);
/* True for kinds that describe the recording, not the candidate's behaviour. */
bool ev_kind_is_quality(enum ev_kind k);

/* One event, in video time. details is owned. */
struct event {
    enum ev_kind kind;
    double start, end;
    double confidence; /* 0..1 */
    json_t *details;
    char id[24];         /* "e1", "e2", ... in order of start, given at the end */
    char *evidence_path; /* JPEG in the scratch directory, or NULL */
};

struct event_list {
    struct event *v;
    size_t n, cap;
};

/* Appends an event; takes details. */
struct event *event_list_add(struct event_list *l, enum ev_kind kind, double start, double end,
                             double confidence, json_t *details);
/* Sorts by start (then kind) and names the events e1, e2, ... */
void event_list_finish(struct event_list *l);
void event_list_cleanup(struct event_list *l);

/* A speech segment found by the voice activity detector. */
struct span {
    double start, end;
};

/* What the audio pass found. */
struct audio_result {
    bool present;        /* the video has an audio track */
    double duration;     /* seconds of audio read */
    struct span *speech; /* sorted, merged */
    size_t nspeech;
    double speech_s;
    double integrated_lufs; /* EBU R128; NAN when unknown */
    double true_peak_dbfs;  /* NAN when unknown */
    double clipped_ratio;   /* share of samples at full scale */
    double first_clip_s;    /* NAN when none */
};

/*
 * Reads the audio track of video once (16 kHz mono through a pipe) and fills out: speech
 * segments (WebRTC's voice activity detector), loudness (ffmpeg's ebur128) and clipping.
 * A video without audio gives present = false and IA_OK.
 */
enum ia_err audio_analyse(const struct analysis_opts *ao, const struct media_opts *mo,
                          const char *video, bool has_audio, struct audio_result *out, char *detail,
                          size_t detaillen);
/* True when t falls inside a speech segment. */
bool audio_speech_at(const struct audio_result *a, double t);
void audio_result_cleanup(struct audio_result *a);
/* Adds silence, no_audio, silent_audio and clipping events. */
void audio_events(const struct analysis_opts *ao, const struct audio_result *a, double duration,
                  struct event_list *events);
/* The "audio" section of the report (new reference). */
json_t *audio_report(const struct audio_result *a);

/* Voice activity over 16 kHz mono samples: speech segments (exposed for tests). */
struct vad;
struct vad *vad_new(void);
/* Feeds n samples; frames of 30 ms are judged as they fill. */
void vad_feed(struct vad *v, const int16_t *pcm, size_t n);
/* Ends the input and hands over the merged speech segments. */
struct span *vad_take(struct vad *v, size_t *n);
void vad_free(struct vad *v);

/* Drawing and JPEG (render.cpp, OpenCV). colors are 0xRRGGBB. */
struct render_frame {
    uint8_t *bgr;
    int width, height;
    size_t stride;
};
void render_box(const struct render_frame *f, const struct vision_box *b, uint32_t color,
                const char *label);
void render_arrow(const struct render_frame *f, float x0, float y0, float x1, float y1,
                  uint32_t color);
void render_dot(const struct render_frame *f, float x, float y, uint32_t color);
/* Text with a dark backing at (x, y) = top-left; scale 1.0 is about 14 px tall. */
void render_text(const struct render_frame *f, int x, int y, float scale, uint32_t color,
                 const char *text);
/* A filled bar: value 0..1 of a w x h rectangle at (x, y). */
void render_bar(const struct render_frame *f, int x, int y, int w, int h, float value,
                uint32_t color);
/* Writes the frame as a JPEG (quality 0-100). Returns 0 or -1. */
int render_write_jpeg(const struct render_frame *f, const char *path, int quality);

/*
 * Runs: for each kind, the stretch of samples where its condition holds, bridged over short
 * gaps; a run that lasts its kind's minimum becomes an event, with the frame of its most telling
 * sample as evidence.
 */
struct run {
    bool active;
    double start, last_true;
    int n_true, n_total;
    double conf_sum;
    double best;     /* strength of the evidence frame */
    json_t *details; /* of the best sample */
    uint8_t *frame;  /* copy of the best sample's drawn frame */
};

struct runs {
    struct run r[EV__COUNT];
    double min_s[EV__COUNT];
    double dt;    /* seconds between samples */
    double gap_s; /* a condition false for longer than this ends its run */
    int width, height;
    size_t frame_bytes;
    const char *work_dir;
    unsigned evidence_seq;
    struct event_list *events;
};

void runs_init(struct runs *rs, const struct analysis_opts *ao, int width, int height,
               struct event_list *events);
/*
 * One sample's verdict for kind k at time t: cond holds (since `since`, earlier than t for a
 * condition checked only now and then), with a strength (which sample makes the best evidence)
 * and a confidence 0..1; details is taken (may be NULL). frame is the sample's drawn picture.
 */
void runs_update(struct runs *rs, enum ev_kind k, double t, double since, bool cond,
                 double strength, double confidence, json_t *details, const uint8_t *frame);
/* Ends kind k's run at a known time (a condition checked now and then stopped holding). */
void runs_end(struct runs *rs, enum ev_kind k, double end);
/* Seconds kind k has held without a break so far at time t (0 when not active). */
double runs_active_for(const struct runs *rs, enum ev_kind k, double t);
/* Ends every run at time t (the end of the video). */
void runs_finish(struct runs *rs, double t);
void runs_cleanup(struct runs *rs);
/* Writes frame as the evidence JPEG of e (in work_dir); false when it could not. */
bool runs_write_evidence(struct runs *rs, struct event *e, const uint8_t *frame);

/* The suspicion score 0..100 of a moment, from how long each behaviour kind has held. */
double score_at(const struct runs *rs, double t);
/* "NO_ALERT", "SUSPICIOUS_BEHAVIOR" or "CHEATING_DETECTED". */
const char *score_level(const struct analysis_opts *ao, double score);
/* The level's rank 0..2, for comparing levels. */
int score_level_rank(const struct analysis_opts *ao, double score);

/* The candidate: which face is theirs, their usual pose and gaze, their identity. */
#define TRACK_BASELINE_MAX 512
struct tracker {
    bool has_box;
    struct vision_box box; /* where the candidate's face was last seen */
    double last_seen;
    /* baseline: medians of the first seconds with a face */
    float yaw[TRACK_BASELINE_MAX], pitch[TRACK_BASELINE_MAX];
    float gx[TRACK_BASELINE_MAX], gy[TRACK_BASELINE_MAX];
    int nbase, ngaze, base_cap;
    float base_yaw, base_pitch, base_gx, base_gy;
    /* identity: the mean embedding of the first checks */
    float ref[VISION_EMBED_DIM];
    int nref;
};

void tracker_init(struct tracker *tr, const struct analysis_opts *ao);
/* The index of the candidate's face among faces (n of them) at time t, or -1. */
int tracker_pick(struct tracker *tr, const struct vision_face *faces, int n, double t);
/* Adds a pose to the baseline while it is still being learnt. */
void tracker_learn(struct tracker *tr, const struct vision_face_detail *d);
/*
 * Compares an embedding with the candidate's reference (learnt from the first ones).
 * Returns the similarity, or NAN while the reference is still being learnt.
 */
float tracker_identity(struct tracker *tr, const float *embedding);

#ifdef __cplusplus
}
#endif

#endif
