/* The frame pass's state, shared by scan.c (judging), draw.c (overlays) and analysis.c (pipes). */
#ifndef IA_ANALYSIS_SCAN_H
#define IA_ANALYSIS_SCAN_H

#include "analysis/internal.h"

#define SCAN_MAX_FACES 16
#define SCAN_MAX_OBJECTS 32

struct proc_stream;

/* What one analysed frame showed. */
struct sample {
    double luma, diff;
    struct vision_face faces[SCAN_MAX_FACES];
    int nfaces;       /* kept in faces */
    int nfaces_found; /* found (may exceed SCAN_MAX_FACES) */
    int cand;         /* the candidate's index in faces, or -1 */
    bool has_detail;
    struct vision_face_detail detail;
    bool looking_away, gaze_away;
    double score;
};

/* A recent sample kept to date an identity change between two checks. */
#define SCAN_RING 16 /* at most; ANALYSIS_FPS x ANALYSIS_IDENTITY_EVERY_S are needed */
struct recent {
    double t;
    bool has_face;
    struct vision_face face;
    uint8_t *frame;
};

/* A condition checked now and then (objects, identity), held between checks. */
struct held {
    bool on;
    double since;   /* when it began, dated between two checks */
    double checked; /* time of the last check, -1 before the first */
};

struct scan {
    const struct analysis_opts *ao;
    struct vision *vis;
    const struct audio_result *audio;
    struct event_list *events;
    struct runs runs;
    struct tracker tr;
    int w, h;
    size_t bytes;
    uint8_t *frame; /* as decoded */
    uint8_t *drawn; /* with the overlays */
    uint8_t prev_small[64 * 36];
    bool has_prev;
    double t;
    struct sample cur;
    bool detected_last;           /* the last frame went through the face detector */
    bool follow_ok;               /* ... and found the candidate alone: the next may follow */
    struct vision_face followed;  /* the candidate's face at that detection */
    double next_objects, next_identity;
    struct vision_object objects[SCAN_MAX_OBJECTS];
    int nobjects;
    bool object_flagged[SCAN_MAX_OBJECTS]; /* a phone, book, screen or faceless person */
    const char *object_label;              /* the first book or screen of the last search */
    struct held phone, object, person, mismatch;
    struct recent ring[SCAN_RING]; /* the samples since the last identity check */
    int ring_cap, ring_next, ring_count;
    float similarity;
    float mouth[30];
    int nmouth, mouth_pos;
    long samples, present, facing, away;
    double score_sum, score_max;
    json_t *rows;
    struct proc_stream *enc;
    bool enc_failed;
    /* where the time goes (ms), for the report */
    double ms_faces, ms_objects, ms_identity, ms_rest;
};

/* Judges the frame in s->frame at time s->t: runs, score, overlays, timeline, encoder. */
void scan_sample(struct scan *s);
/* Overlays on s->drawn: face boxes by role, head direction, gaze, objects (draw.c). */
void scan_draw_marks(struct scan *s, const struct sample *sm);
/* Overlays that need the score: risk bar, alert banner, time (draw.c). */
void scan_draw_status(struct scan *s, const struct sample *sm);

#endif
