/*
 * The frame pass: one ffmpeg child decodes the normalized video at ANALYSIS_FPS, at most
 * ANALYSIS_WIDTH wide, into a pipe; each frame is judged as it arrives (faces, the candidate's
 * pose, gaze and mouth, objects and identity now and then, picture quality), drawn on, and fed to
 * a second ffmpeg child that encodes the review rendition. Two frame buffers whatever the length.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/scan.h"
#include "core/alloc.h"
#include "media/media.h"
#include "media/probe.h"
#include "media/proc.h"
#include "util/os.h"

#define SMALL_W 64
#define SMALL_H 36
#define FROZEN_DIFF 0.35      /* mean |difference| (0-255) below which two frames are the same */
#define BLACK_LUMA 16.0       /* mean luma below this: black */
#define DARK_LUMA 50.0        /* a face (or picture) darker than this is hard to judge */
#define FACE_SMALL_SHARE 0.10 /* a face shorter than this share of the frame is too small */
#define MOUTH_STILL_RANGE 0.05
#define FOLLOW_MIN_PRESENCE 0.5 /* FaceMesh presence from which a followed face is still there */
#define PERSON_FACE_MARGIN                                                                         \
    0.5 /* face widths around a person box that still make it the candidate's */

static double luma_of(const uint8_t *p) { return 0.114 * p[0] + 0.587 * p[1] + 0.299 * p[2]; }

/* Mean luma, and the mean difference from the previous frame, on a 64x36 grid. */
static void measure_picture(struct scan *s, struct sample *sm)
{
    uint8_t small[SMALL_W * SMALL_H];
    long sum = 0, diff = 0;
    for (int y = 0; y < SMALL_H; y++) {
        for (int x = 0; x < SMALL_W; x++) {
            const uint8_t *p =
                s->frame +
                ((size_t)(y * s->h / SMALL_H) * (size_t)s->w + (size_t)(x * s->w / SMALL_W)) * 3;
            int l = (int)lround(luma_of(p));
            sum += l;
            small[y * SMALL_W + x] = (uint8_t)l;
            diff += labs((long)l - s->prev_small[y * SMALL_W + x]);
        }
    }
    sm->luma = (double)sum / (SMALL_W * SMALL_H);
    sm->diff = s->has_prev ? (double)diff / (SMALL_W * SMALL_H) : 255;
    memcpy(s->prev_small, small, sizeof small);
    s->has_prev = true;
}

/* The moment a condition checked at t changed, when the previous check was at prev: between. */
static double changed_at(double prev, double t) { return prev >= 0 ? (prev + t) / 2 : t; }

static bool person_is_candidate(const struct scan *s, const struct vision_box *p)
{
    if (!s->tr.has_box)
        return false;
    const struct vision_box *f = &s->tr.box;
    float cx = f->x + f->w / 2, cy = f->y + f->h / 2;
    float m = f->w * PERSON_FACE_MARGIN;
    return cx >= p->x - m && cx <= p->x + p->w + m && cy >= p->y - m && cy <= p->y + p->h + m;
}

static bool person_has_face(const struct sample *sm, const struct vision_box *p)
{
    for (int i = 0; i < sm->nfaces; i++) {
        const struct vision_box *f = &sm->faces[i].box;
        float cx = f->x + f->w / 2, cy = f->y + f->h / 2;
        if (cx >= p->x && cx <= p->x + p->w && cy >= p->y && cy <= p->y + p->h)
            return true;
    }
    return false;
}

/* A held condition's new verdict at check time t; `at` dates the change (when it changed). */
static void held_change(struct scan *s, enum ev_kind k, struct held *h, bool now, double t,
                        double at)
{
    if (h->on && !now)
        runs_end(&s->runs, k, at);
    if (!h->on && now)
        h->since = at;
    h->on = now;
    h->checked = t;
}

static void check_objects(struct scan *s, const struct vision_image *img, struct sample *sm)
{
    if (s->ao->objects_every_s <= 0 || s->t < s->next_objects)
        return;
    s->next_objects = s->t + s->ao->objects_every_s;
    int n =
        vision_detect_objects(s->vis, img, s->ao->object_min_score, s->objects, SCAN_MAX_OBJECTS);
    s->nobjects = n < 0 ? 0 : n < SCAN_MAX_OBJECTS ? n : SCAN_MAX_OBJECTS;
    bool phone = false, object = false, person = false;
    for (int i = 0; i < s->nobjects; i++) {
        const struct vision_object *o = &s->objects[i];
        bool *flag = &s->object_flagged[i];
        if (strcmp(o->label, "cell phone") == 0) {
            phone = *flag = true;
        } else if (strcmp(o->label, "book") == 0 || strcmp(o->label, "laptop") == 0 ||
                   strcmp(o->label, "tv") == 0) {
            if (!object)
                s->object_label = o->label;
            object = *flag = true;
        } else {
            *flag = strcmp(o->label, "person") == 0 && !person_has_face(sm, &o->box) &&
                    !person_is_candidate(s, &o->box);
            person = person || *flag;
        }
    }
    held_change(s, EV_PHONE, &s->phone, phone, s->t, changed_at(s->phone.checked, s->t));
    held_change(s, EV_OBJECT, &s->object, object, s->t, changed_at(s->object.checked, s->t));
    held_change(s, EV_OTHER_PERSON, &s->person, person, s->t, changed_at(s->person.checked, s->t));
}

/* Keeps this sample's frame and candidate face, for dating an identity change afterwards. */
static void ring_push(struct scan *s, const struct sample *sm)
{
    struct recent *r = &s->ring[s->ring_next];
    s->ring_next = (s->ring_next + 1) % s->ring_cap;
    s->ring_count += s->ring_count < s->ring_cap;
    if (!r->frame)
        r->frame = xmalloc(s->bytes);
    memcpy(r->frame, s->frame, s->bytes);
    r->t = s->t;
    r->has_face = sm->cand >= 0;
    if (r->has_face)
        r->face = sm->faces[sm->cand];
}

/* The mismatch verdict of a kept sample, or -1 when it cannot be judged. */
static int recent_mismatch(struct scan *s, const struct recent *r)
{
    struct vision_image img = {r->frame, s->w, s->h, (size_t)s->w * 3};
    float emb[VISION_EMBED_DIM];
    if (!r->has_face || vision_face_embedding(s->vis, &img, &r->face, emb))
        return -1;
    return vision_embedding_similarity(s->tr.ref, emb) < s->ao->face_match_min;
}

/*
 * The identity changed between the previous check and now: bisects the kept samples in between
 * for the first one with the new verdict, and dates the change just before it.
 */
static double identity_changed_at(struct scan *s, bool now)
{
    const struct recent *in[SCAN_RING];
    int n = 0;
    for (int i = 0; i < s->ring_count; i++) {
        const struct recent *r =
            &s->ring[(s->ring_next - s->ring_count + i + s->ring_cap) % s->ring_cap];
        if (r->t > s->mismatch.checked && r->t < s->t)
            in[n++] = r;
    }
    int lo = 0, hi = n; /* in[hi] (or now) has the new verdict; before lo, the old one */
    while (lo < hi) {
        int mid = (lo + hi) / 2, v = recent_mismatch(s, in[mid]);
        if (v == (int)now)
            hi = mid;
        else
            lo = mid + 1;
    }
    double before = lo > 0 ? in[lo - 1]->t : s->mismatch.checked;
    double after = lo < n ? in[lo]->t : s->t;
    return changed_at(before, after);
}

static void check_identity(struct scan *s, const struct vision_image *img, struct sample *sm)
{
    if (s->ao->identity_every_s <= 0)
        return;
    bool due = sm->cand >= 0 && s->t >= s->next_identity;
    float emb[VISION_EMBED_DIM];
    if (due) {
        s->next_identity = s->t + s->ao->identity_every_s;
        float sim = vision_face_embedding(s->vis, img, &sm->faces[sm->cand], emb)
                        ? NAN
                        : tracker_identity(&s->tr, emb);
        if (!isnan(sim)) {
            bool now = sim < s->ao->face_match_min;
            s->similarity = sim;
            double at = now != s->mismatch.on && s->mismatch.checked >= 0
                            ? identity_changed_at(s, now)
                            : s->t;
            held_change(s, EV_FACE_MISMATCH, &s->mismatch, now, s->t, at);
        }
    }
    ring_push(s, sm);
}

static bool mouth_still(struct scan *s, const struct sample *sm)
{
    if (!sm->has_detail)
        return false;
    s->mouth[s->mouth_pos] = sm->detail.mouth_open;
    s->mouth_pos = (s->mouth_pos + 1) % s->ao->fps;
    if (s->nmouth < s->ao->fps)
        s->nmouth++;
    float lo = 1e9f, hi = -1e9f;
    for (int i = 0; i < s->nmouth; i++)
        lo = fminf(lo, s->mouth[i]), hi = fmaxf(hi, s->mouth[i]);
    return s->nmouth * 2 >= s->ao->fps && hi - lo < MOUTH_STILL_RANGE;
}

/*
 * Between two detector runs, a candidate who was alone at the last one is followed by FaceMesh on
 * the same crop: the detector runs on every other frame at least, a second face shows one frame
 * later at most, and a face that left (FaceMesh's presence drops) sends this frame to the
 * detector at once.
 */
static bool follow_candidate(struct scan *s, const struct vision_image *img, struct sample *sm)
{
    if (!s->follow_ok || !s->detected_last)
        return false;
    if (vision_describe_face(s->vis, img, &s->followed, &sm->detail) ||
        sm->detail.presence < FOLLOW_MIN_PRESENCE)
        return false;
    sm->faces[0] = s->followed;
    sm->nfaces = sm->nfaces_found = 1;
    sm->cand = tracker_pick(&s->tr, sm->faces, 1, s->t);
    sm->has_detail = true;
    return true;
}

static void sample_faces(struct scan *s, const struct vision_image *img, struct sample *sm)
{
    bool followed = follow_candidate(s, img, sm);
    s->detected_last = !followed;
    if (!followed) {
        int n = vision_detect_faces(s->vis, img, s->ao->face_min_score, sm->faces,
                                    SCAN_MAX_FACES);
        sm->nfaces_found = n < 0 ? 0 : n;
        sm->nfaces = n < 0 ? 0 : n < SCAN_MAX_FACES ? n : SCAN_MAX_FACES;
        sm->cand = tracker_pick(&s->tr, sm->faces, sm->nfaces, s->t);
        sm->has_detail = sm->cand >= 0 && vision_describe_face(s->vis, img, &sm->faces[sm->cand],
                                                               &sm->detail) == 0;
        s->follow_ok = sm->nfaces_found == 1 && sm->has_detail &&
                       sm->detail.presence >= FOLLOW_MIN_PRESENCE;
        if (s->follow_ok)
            s->followed = sm->faces[0];
    }
    if (sm->has_detail)
        tracker_learn(&s->tr, &sm->detail);
}

/* Head away from the candidate's baseline: the strength (1 = at the threshold) and direction. */
static double head_away(const struct scan *s, const struct sample *sm, const char **dir)
{
    double dy = sm->detail.yaw - s->tr.base_yaw, dp = sm->detail.pitch - s->tr.base_pitch;
    double ky = fabs(dy) / s->ao->yaw_deg, kp = fabs(dp) / s->ao->pitch_deg;
    *dir = ky >= kp ? (dy > 0 ? "right" : "left") : (dp > 0 ? "up" : "down");
    return fmax(ky, kp);
}

static double round2(double v) { return round(v * 100) / 100; }

static void judge_behaviour(struct scan *s, struct sample *sm)
{
    const uint8_t *f = s->drawn;
    double t = s->t;
    struct runs *rs = &s->runs;
    runs_update(rs, EV_FACE_ABSENT, t, t, sm->cand < 0, 1, 1,
                json_pack("{s:s}", "label", "the candidate's face is not in view"), f);
    runs_update(
        rs, EV_MULTIPLE_FACES, t, t, sm->nfaces_found >= 2, sm->nfaces_found, 1,
        json_pack("{s:s, s:i}", "label", "more than one face in view", "faces", sm->nfaces_found),
        f);
    const char *dir = "";
    double away = sm->has_detail ? head_away(s, sm, &dir) : 0;
    sm->looking_away = away > 1;
    runs_update(rs, EV_LOOKING_AWAY, t, t, sm->looking_away, away, fmin(1, sm->detail.presence),
                json_pack("{s:s, s:s, s:f, s:f}", "label", "head turned away from the screen",
                          "direction", dir, "yaw", round2(sm->detail.yaw - s->tr.base_yaw), "pitch",
                          round2(sm->detail.pitch - s->tr.base_pitch)),
                f);
    double gaze = sm->has_detail && sm->detail.has_iris && !sm->looking_away
                      ? hypot(sm->detail.gaze_x - s->tr.base_gx, sm->detail.gaze_y - s->tr.base_gy)
                      : 0;
    sm->gaze_away = gaze > s->ao->gaze_away;
    runs_update(rs, EV_GAZE_AWAY, t, t, sm->gaze_away, gaze, 0.6,
                json_pack("{s:s, s:f, s:f}", "label", "eyes off the screen, head facing it",
                          "gaze_x", round2(sm->detail.gaze_x - s->tr.base_gx), "gaze_y",
                          round2(sm->detail.gaze_y - s->tr.base_gy)),
                f);
    bool speech = s->audio && audio_speech_at(s->audio, t);
    bool still = mouth_still(s, sm);
    runs_update(rs, EV_SPEECH_WITHOUT_CANDIDATE, t, t, speech && (sm->cand < 0 || still), 1, 0.5,
                json_pack("{s:s, s:s}", "label", "speech while the candidate is away or silent",
                          "heuristic", sm->cand < 0 ? "candidate not in view" : "mouth still"),
                f);
}

static void judge_held(struct scan *s)
{
    const uint8_t *f = s->drawn;
    double t = s->t;
    runs_update(&s->runs, EV_PHONE, t, s->phone.since, s->phone.on, 1, 0.7,
                json_pack("{s:s}", "label", "a phone in view"), f);
    runs_update(&s->runs, EV_OBJECT, t, s->object.since, s->object.on, 1, 0.5,
                json_pack("{s:s, s:s}", "label", "a book or a second screen in view", "object",
                          s->object_label ? s->object_label : ""),
                f);
    runs_update(&s->runs, EV_OTHER_PERSON, t, s->person.since, s->person.on, 1, 0.6,
                json_pack("{s:s}", "label", "a person without a visible face"), f);
    runs_update(&s->runs, EV_FACE_MISMATCH, t, s->mismatch.since, s->mismatch.on, 1 - s->similarity,
                0.7,
                json_pack("{s:s, s:f}", "label", "the face may belong to someone else",
                          "similarity", round2(s->similarity)),
                f);
}

/* Mean luma of the candidate's face (of the whole frame without one), on a coarse grid. */
static double face_luma(const struct scan *s, const struct sample *sm)
{
    if (sm->cand < 0)
        return sm->luma;
    const struct vision_box *b = &sm->faces[sm->cand].box;
    int x0 = (int)fmaxf(0, b->x), y0 = (int)fmaxf(0, b->y);
    int x1 = (int)fminf((float)s->w, b->x + b->w), y1 = (int)fminf((float)s->h, b->y + b->h);
    double sum = 0;
    long n = 0;
    for (int y = y0; y < y1; y += 4)
        for (int x = x0; x < x1; x += 4, n++)
            sum += luma_of(s->frame + ((size_t)y * (size_t)s->w + (size_t)x) * 3);
    return n ? sum / (double)n : sm->luma;
}

static void judge_quality(struct scan *s, const struct sample *sm)
{
    const uint8_t *f = s->drawn;
    double t = s->t;
    bool black = sm->luma < BLACK_LUMA;
    runs_update(&s->runs, EV_BLACK_VIDEO, t, t, black, 1, 1,
                json_pack("{s:s}", "label", "the picture is black"), f);
    double lit = face_luma(s, sm);
    runs_update(&s->runs, EV_DARK_VIDEO, t, t, !black && lit < DARK_LUMA, DARK_LUMA - lit, 1,
                json_pack("{s:s, s:f}", "label",
                          sm->cand >= 0 ? "the face is poorly lit" : "the picture is dark", "luma",
                          round2(lit)),
                f);
    runs_update(&s->runs, EV_FROZEN_VIDEO, t, t, !black && sm->diff < FROZEN_DIFF, 1, 1,
                json_pack("{s:s}", "label", "the picture does not change"), f);
    double share = sm->cand >= 0 ? sm->faces[sm->cand].box.h / s->h : 1;
    runs_update(&s->runs, EV_FACE_TOO_SMALL, t, t, share < FACE_SMALL_SHARE, -share, 1,
                json_pack("{s:s, s:f}", "label", "the face is too small to judge",
                          "face_height_share", round2(share)),
                f);
}

/* Audio events get the frame from their middle as evidence, once the pass reaches it. */
static void audio_evidence(struct scan *s)
{
    for (size_t i = 0; i < s->events->n; i++) {
        struct event *e = &s->events->v[i];
        if (!e->evidence_path && s->t >= (e->start + e->end) / 2 &&
            (e->kind == EV_SILENCE || e->kind == EV_NO_AUDIO || e->kind == EV_SILENT_AUDIO ||
             e->kind == EV_CLIPPING))
            runs_write_evidence(&s->runs, e, s->drawn);
    }
}

static void add_row(struct scan *s, const struct sample *sm)
{
    const struct vision_face_detail *d = &sm->detail;
    json_t *row = json_pack("[f, i]", round2(s->t), sm->nfaces_found);
    if (sm->has_detail) {
        double v[] = {d->yaw, d->pitch, d->roll, d->gaze_x, d->gaze_y, d->mouth_open};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
            json_array_append_new(row, json_real(round2(v[i])));
    } else {
        for (int i = 0; i < 6; i++)
            json_array_append_new(row, json_null());
    }
    json_array_append_new(row, json_real(round(sm->score)));
    json_array_append_new(s->rows, row);
}

static void tally(struct scan *s, const struct sample *sm)
{
    s->samples++;
    s->present += sm->cand >= 0;
    s->facing += sm->cand >= 0 && !sm->looking_away && !sm->gaze_away;
    s->away += sm->looking_away || sm->gaze_away;
    s->score_sum += sm->score;
    s->score_max = fmax(s->score_max, sm->score);
}

void scan_sample(struct scan *s)
{
    struct vision_image img = {s->frame, s->w, s->h, (size_t)s->w * 3};
    struct sample *sm = &s->cur;
    memset(sm, 0, sizeof *sm);
    sm->cand = -1;
    int64_t t0 = os_monotonic_ms();
    measure_picture(s, sm);
    sample_faces(s, &img, sm);
    int64_t t1 = os_monotonic_ms();
    check_objects(s, &img, sm);
    int64_t t2 = os_monotonic_ms();
    check_identity(s, &img, sm);
    int64_t t3 = os_monotonic_ms();
    memcpy(s->drawn, s->frame, s->bytes);
    scan_draw_marks(s, sm);
    judge_behaviour(s, sm);
    judge_held(s);
    judge_quality(s, sm);
    sm->score = score_at(&s->runs, s->t);
    scan_draw_status(s, sm);
    audio_evidence(s);
    add_row(s, sm);
    tally(s, sm);
    if (s->enc && !s->enc_failed && proc_stream_write(s->enc, s->drawn, s->bytes))
        s->enc_failed = true; /* proc_stream_finish() tells a stop from a failed encoder */
    s->ms_faces += (double)(t1 - t0);
    s->ms_objects += (double)(t2 - t1);
    s->ms_identity += (double)(t3 - t2);
    s->ms_rest += (double)(os_monotonic_ms() - t3);
}
