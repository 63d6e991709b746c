/*
 * Runs of a condition over samples, turned into events; and the score of a moment. All times are
 * video times, so the same video always gives the same events.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"
#include "core/alloc.h"

#define RUN_GAP_SAMPLES 2.5 /* bridge up to two missed samples */
#define EVIDENCE_JPEG_QUALITY 80

void runs_init(struct runs *rs, const struct analysis_opts *ao, int width, int height,
               struct event_list *events)
{
    memset(rs, 0, sizeof *rs);
    rs->dt = 1.0 / ao->fps;
    rs->gap_s = RUN_GAP_SAMPLES * rs->dt;
    rs->width = width;
    rs->height = height;
    rs->frame_bytes = (size_t)width * (size_t)height * 3;
    rs->work_dir = ao->work_dir;
    rs->events = events;
    double *m = rs->min_s;
    m[EV_FACE_ABSENT] = ao->absent_min_s;
    m[EV_MULTIPLE_FACES] = m[EV_OTHER_PERSON] = ao->multiple_min_s;
    m[EV_LOOKING_AWAY] = m[EV_GAZE_AWAY] = ao->away_min_s;
    m[EV_SPEECH_WITHOUT_CANDIDATE] = 1.0;
    m[EV_BLACK_VIDEO] = m[EV_FROZEN_VIDEO] = m[EV_DARK_VIDEO] = m[EV_FACE_TOO_SMALL] = 2.0;
    /* phone, object and face_mismatch are checked now and then: one check is enough */
}

bool runs_write_evidence(struct runs *rs, struct event *e, const uint8_t *frame)
{
    if (!frame || !rs->work_dir)
        return false;
    char *path = xasprintf("%s/ev-%u.jpg", rs->work_dir, ++rs->evidence_seq);
    struct render_frame f = {(uint8_t *)(uintptr_t)frame, rs->width, rs->height,
                             (size_t)rs->width * 3};
    if (render_write_jpeg(&f, path, EVIDENCE_JPEG_QUALITY)) {
        free(path);
        return false;
    }
    free(e->evidence_path);
    e->evidence_path = path;
    return true;
}

static void run_close(struct runs *rs, enum ev_kind k, double end)
{
    struct run *r = &rs->r[k];
    if (r->active && end - r->start >= rs->min_s[k] - 1e-9) {
        double share = r->n_total ? (double)r->n_true / r->n_total : 1.0;
        double conf = r->n_true ? r->conf_sum / r->n_true * share : share;
        struct event *e = event_list_add(rs->events, k, r->start, end, conf, r->details);
        r->details = NULL;
        runs_write_evidence(rs, e, r->frame);
    }
    json_decref(r->details);
    free(r->frame);
    memset(r, 0, sizeof *r);
}

static void run_keep_best(struct runs *rs, struct run *r, double strength, json_t *details,
                          const uint8_t *frame)
{
    if (r->frame && strength <= r->best) {
        json_decref(details);
        return;
    }
    r->best = strength;
    json_decref(r->details);
    r->details = details;
    if (frame) {
        if (!r->frame)
            r->frame = xmalloc(rs->frame_bytes);
        memcpy(r->frame, frame, rs->frame_bytes);
    }
}

void runs_update(struct runs *rs, enum ev_kind k, double t, double since, bool cond,
                 double strength, double confidence, json_t *details, const uint8_t *frame)
{
    struct run *r = &rs->r[k];
    if (!cond) {
        json_decref(details);
        if (r->active) {
            r->n_total++;
            if (t - r->last_true > rs->gap_s)
                run_close(rs, k, r->last_true + rs->dt);
        }
        return;
    }
    if (!r->active) {
        r->active = true;
        r->start = since < t ? since : t;
    }
    r->last_true = t;
    r->n_true++;
    r->n_total++;
    r->conf_sum += confidence;
    run_keep_best(rs, r, strength, details ? details : json_object(), frame);
}

void runs_end(struct runs *rs, enum ev_kind k, double end)
{
    if (rs->r[k].active)
        run_close(rs, k, end);
}

double runs_active_for(const struct runs *rs, enum ev_kind k, double t)
{
    const struct run *r = &rs->r[k];
    return r->active && t - r->last_true <= rs->gap_s ? t - r->start + rs->dt : 0;
}

void runs_finish(struct runs *rs, double t)
{
    for (int k = 0; k < EV__COUNT; k++) {
        struct run *r = &rs->r[k];
        if (r->active)
            run_close(rs, (enum ev_kind)k, fmin(t, r->last_true + rs->dt));
    }
}

void runs_cleanup(struct runs *rs)
{
    for (int k = 0; k < EV__COUNT; k++) {
        json_decref(rs->r[k].details);
        free(rs->r[k].frame);
    }
    memset(rs->r, 0, sizeof rs->r);
}

/* How much each behaviour weighs once it has held for its minimum duration. */
static const double kind_weight[EV__COUNT] = {
    [EV_FACE_ABSENT] = 60,  [EV_MULTIPLE_FACES] = 75, [EV_OTHER_PERSON] = 70,
    [EV_LOOKING_AWAY] = 50, [EV_GAZE_AWAY] = 45,      [EV_PHONE] = 80,
    [EV_OBJECT] = 40,       [EV_FACE_MISMATCH] = 90,  [EV_SPEECH_WITHOUT_CANDIDATE] = 30,
};

#define SCORE_CONCURRENT_BONUS 10.0
#define SCORE_BONUS_MIN_WEIGHT 40.0 /* a weaker kind (a heuristic) adds nothing to another */
#define SCORE_RAMP_MIN_S 0.5

/*
 * The heaviest kind under way, ramped up over its minimum duration, plus a bonus for each other
 * kind under way that weighs at least SCORE_BONUS_MIN_WEIGHT.
 */
double score_at(const struct runs *rs, double t)
{
    double top = 0, top_bonus = 0, bonus = 0;
    for (int k = 0; k < EV__COUNT; k++) {
        double held = kind_weight[k] > 0 ? runs_active_for(rs, (enum ev_kind)k, t) : 0;
        if (held <= 0)
            continue;
        double ramp = fmin(1.0, held / fmax(rs->min_s[k], SCORE_RAMP_MIN_S));
        double own = kind_weight[k] >= SCORE_BONUS_MIN_WEIGHT ? SCORE_CONCURRENT_BONUS * ramp : 0;
        bonus += own;
        if (kind_weight[k] * ramp > top) {
            top = kind_weight[k] * ramp;
            top_bonus = own;
        }
    }
    return fmin(100.0, top + bonus - top_bonus);
}

int score_level_rank(const struct analysis_opts *ao, double score)
{
    return score >= ao->cheating_score ? 2 : score >= ao->suspicious_score ? 1 : 0;
}

const char *score_level(const struct analysis_opts *ao, double score)
{
    static const char *const names[] = {"NO_ALERT", "SUSPICIOUS_BEHAVIOR", "CHEATING_DETECTED"};
    return names[score_level_rank(ao, score)];
}
