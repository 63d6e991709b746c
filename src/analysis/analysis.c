/*
 * analysis_run(): the audio pass, then the frame pass (decoder child -> judge -> encoder child),
 * then the events, their evidence files, the WebVTT cues and the report. The models are loaded
 * once per worker slot (thread) and kept; everything else belongs to one task.
 */
#include "analysis/analysis.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/report.h"
#include "core/alloc.h"
#include "core/config.h"
#include "media/media.h"
#include "media/probe.h"
#include "media/proc.h"

#define REVIEW_CRF "30"
#define ANALYSIS_SCHEMA 1

/* One set of models per process, shared by the worker's slots (vision_loader.c serializes calls):
 * a second copy would cost its full memory for little speed on a machine of few cores. */
static struct vision *models_loaded;
static pthread_mutex_t models_lock = PTHREAD_MUTEX_INITIALIZER;

void analysis_opts_from_config(struct analysis_opts *ao, const struct config *cfg)
{
    memset(ao, 0, sizeof *ao);
    ao->models_dir = cfg->models_dir[0] ? cfg->models_dir : IA_MODELS_DIR;
    ao->fps = (int)cfg->analysis_fps;
    ao->width = (int)cfg->analysis_width;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ao->threads = cfg->analysis_threads ? (int)cfg->analysis_threads : cores > 0 ? (int)cores : 1;
    ao->objects_every_s = (double)cfg->analysis_objects_every_s;
    ao->identity_every_s = (double)cfg->analysis_identity_every_s;
    ao->face_min_score = (float)cfg->face_min_score_pct / 100;
    ao->absent_min_s = (double)cfg->face_absent_min_s;
    ao->multiple_min_s = (double)cfg->multiple_faces_min_s;
    ao->away_min_s = (double)cfg->look_away_min_s;
    ao->silence_min_s = (double)cfg->silence_min_s;
    ao->yaw_deg = (double)cfg->look_away_yaw_deg;
    ao->pitch_deg = (double)cfg->look_away_pitch_deg;
    ao->gaze_away = (double)cfg->gaze_away_pct / 100;
    ao->object_min_score = (float)cfg->object_min_score_pct / 100;
    ao->face_match_min = (float)cfg->face_match_min_pct / 100;
    ao->suspicious_score = (int)cfg->alert_suspicious_score;
    ao->cheating_score = (int)cfg->alert_cheating_score;
    ao->review = cfg->review_video != 0;
}

void analysis_global_cleanup(void)
{
    vision_free(models_loaded);
    models_loaded = NULL;
}

static struct vision *models(const struct analysis_opts *ao, char *detail, size_t detaillen)
{
    pthread_mutex_lock(&models_lock);
    if (!models_loaded)
        models_loaded = vision_new(ao->models_dir, ao->threads, detail, detaillen);
    struct vision *v = models_loaded;
    pthread_mutex_unlock(&models_lock);
    return v;
}

/* The frame size the analysis works at: at most ao->width wide, even, same shape. */
static void frame_size(const struct analysis_opts *ao, const json_t *output, int *w, int *h)
{
    int ow = (int)json_integer_value(json_object_get(output, "width"));
    int oh = (int)json_integer_value(json_object_get(output, "height"));
    if (ow <= 0 || oh <= 0)
        ow = 640, oh = 360;
    int width = ow < ao->width ? ow : ao->width;
    width &= ~1;
    int height = (int)lround((double)oh * width / ow) & ~1;
    *w = width < 2 ? 2 : width;
    *h = height < 2 ? 2 : height;
}

static enum ia_err start_decoder(const struct analysis_opts *ao, const struct media_opts *mo,
                                 const char *video, int w, int h, struct proc_stream **out,
                                 char *detail, size_t detaillen)
{
    char vf[96];
    snprintf(vf, sizeof vf, "fps=%d,scale=%d:%d:flags=bilinear", ao->fps, w, h);
    const char *argv[] = {"ffmpeg",
                          "-nostdin",
                          "-hide_banner",
                          "-nostats",
                          "-v",
                          "error",
                          MEDIA_SAFE_INPUT_OPTS,
                          "-i",
                          video,
                          "-map",
                          "0:v:0",
                          "-an",
                          "-vf",
                          vf,
                          "-pix_fmt",
                          "bgr24",
                          "-f",
                          "rawvideo",
                          "pipe:1",
                          NULL};
    struct proc_opts po;
    media_proc_opts_init(&po, mo, 0);
    return proc_stream_start(argv, &po, false, out, detail, detaillen);
}

static enum ia_err start_encoder(const struct analysis_opts *ao, const struct media_opts *mo,
                                 const char *video, int w, int h, const char *out_path,
                                 struct proc_stream **out, char *detail, size_t detaillen)
{
    char size[32], rate[16];
    snprintf(size, sizeof size, "%dx%d", w, h);
    snprintf(rate, sizeof rate, "%d", ao->fps);
    const char *argv[] = {
        "ffmpeg",   "-nostdin",   "-hide_banner", "-nostats", "-v",        "error",
        "-y",       "-f",         "rawvideo",     "-pix_fmt", "bgr24",     "-s",
        size,       "-framerate", rate,           "-i",       "pipe:0",    MEDIA_SAFE_INPUT_OPTS,
        "-i",       video,        "-map",         "0:v:0",    "-map",      "1:a:0?",
        "-c:v",     "libx264",    "-preset",      "veryfast", "-crf",      REVIEW_CRF,
        "-pix_fmt", "yuv420p",    "-c:a",         "copy",     "-movflags", "+faststart",
        "-f",       "mp4",        out_path,       NULL};
    struct proc_opts po;
    media_proc_opts_init(&po, mo, mo->max_output_bytes ? mo->max_output_bytes : 0);
    return proc_stream_start(argv, &po, true, out, detail, detaillen);
}

/* Reads frames until the decoder ends; each is judged. */
static enum ia_err read_frames(struct scan *s, struct proc_stream *dec, const struct media_opts *mo,
                               double duration)
{
    for (long index = 0;; index++) {
        ssize_t got = proc_stream_read(dec, s->frame, s->bytes);
        if (got < 0)
            return IA_ERR_TIMEOUT;
        if ((size_t)got < s->bytes)
            return IA_OK;
        s->t = (double)index / s->ao->fps;
        scan_sample(s);
        if (mo->progress && duration > 0)
            mo->progress("analysing", fmin(0.99, s->t / duration), mo->progress_ctx);
    }
}

static enum ia_err finish_child(struct proc_stream *ps, bool kill, const char *what, char *detail,
                                size_t detaillen)
{
    struct proc_result res;
    enum ia_err err = proc_stream_finish(ps, kill, &res, detail, detaillen);
    if (!err && !kill && !proc_result_ok(&res)) {
        snprintf(detail, detaillen, "%s: ffmpeg exited with %d", what, res.exit_code);
        err = IA_ERR_DECODE;
    }
    proc_result_cleanup(&res);
    return err;
}

struct pass {
    const struct analysis_opts *ao;
    const struct media_opts *mo;
    const char *video;
    double duration;
    char *review_path;
};

/* The frame pass; s is set up by the caller. Leaves the review file only when it is whole. */
static enum ia_err frame_pass(struct pass *p, struct scan *s, char *detail, size_t detaillen)
{
    struct proc_stream *dec;
    enum ia_err err = start_decoder(p->ao, p->mo, p->video, s->w, s->h, &dec, detail, detaillen);
    if (err)
        return err;
    if (p->ao->review && start_encoder(p->ao, p->mo, p->video, s->w, s->h, p->review_path, &s->enc,
                                       detail, detaillen))
        s->enc = NULL; /* no review rendition; the analysis goes on */
    enum ia_err rerr = read_frames(s, dec, p->mo, p->duration);
    err = finish_child(dec, rerr != IA_OK, "frame pass", detail, detaillen);
    if (!err)
        err = rerr;
    if (s->enc) {
        char edetail[256];
        enum ia_err eerr = finish_child(s->enc, err != IA_OK, "review", edetail, sizeof edetail);
        s->enc = NULL;
        if (eerr || s->enc_failed || s->samples == 0) {
            unlink(p->review_path);
            free(p->review_path);
            p->review_path = NULL;
        }
    } else {
        free(p->review_path);
        p->review_path = NULL;
    }
    return err;
}

static void scan_init(struct scan *s, const struct analysis_opts *ao, struct vision *vis,
                      const struct audio_result *audio, struct event_list *events, int w, int h)
{
    memset(s, 0, sizeof *s);
    s->ao = ao, s->vis = vis, s->audio = audio, s->events = events;
    s->w = w, s->h = h;
    s->bytes = (size_t)w * (size_t)h * 3;
    s->frame = xmalloc(s->bytes);
    s->drawn = xmalloc(s->bytes);
    s->rows = json_array();
    s->phone.checked = s->object.checked = s->person.checked = s->mismatch.checked = -1;
    s->similarity = 1;
    double ring = ao->fps * ao->identity_every_s;
    s->ring_cap = ring < 1 ? 1 : ring > SCAN_RING ? SCAN_RING : (int)ring;
    runs_init(&s->runs, ao, w, h, events);
    tracker_init(&s->tr, ao);
}

static void scan_cleanup(struct scan *s)
{
    for (int i = 0; i < SCAN_RING; i++)
        free(s->ring[i].frame);
    runs_cleanup(&s->runs);
    free(s->frame);
    free(s->drawn);
    json_decref(s->rows);
}

/* Audio events not reached by the frame pass (past the last frame) take its last frame. */
static void late_evidence(struct scan *s)
{
    for (size_t i = 0; i < s->events->n && s->samples; i++)
        if (!s->events->v[i].evidence_path)
            runs_write_evidence(&s->runs, &s->events->v[i], s->drawn);
}

static json_t *models_json(struct vision *vis)
{
    json_t *m = json_loads(vision_models_manifest(vis), 0, NULL);
    json_t *list = json_incref(json_object_get(m, "models"));
    json_decref(m);
    return list ? list : json_array();
}

static json_t *analysis_section(const struct analysis_opts *ao, struct scan *s,
                                const struct audio_result *audio, struct event_list *events,
                                struct vision *vis)
{
    json_t *fields = json_pack("[s,s,s,s,s,s,s,s,s]", "t", "faces", "yaw", "pitch", "roll",
                               "gaze_x", "gaze_y", "mouth", "score");
    json_t *sampling = json_pack(
        "{s:i, s:i, s:i, s:i, s:f, s:f, s:{s:i, s:i, s:i, s:i}}", "fps", ao->fps, "width", s->w,
        "height", s->h, "samples", (int)s->samples, "objects_every_s", ao->objects_every_s,
        "identity_every_s", ao->identity_every_s, "wall_ms", "faces", (int)s->ms_faces, "objects",
        (int)s->ms_objects, "identity", (int)s->ms_identity, "judge_draw_encode", (int)s->ms_rest);
    json_t *baseline =
        json_pack("{s:f, s:f, s:f, s:f, s:i}", "yaw", round(s->tr.base_yaw * 10) / 10, "pitch",
                  round(s->tr.base_pitch * 10) / 10, "gaze_x", round(s->tr.base_gx * 100) / 100,
                  "gaze_y", round(s->tr.base_gy * 100) / 100, "samples", s->tr.nbase);
    json_t *a =
        json_pack("{s:i, s:o, s:o, s:o, s:{s:o, s:O}, s:o, s:o, s:o}", "schema", ANALYSIS_SCHEMA,
                  "models", models_json(vis), "sampling", sampling, "baseline", baseline,
                  "timeline", "fields", fields, "rows", s->rows, "events", report_events(events),
                  "summary", report_summary(ao, s, events), "audio", audio_report(audio));
    return a;
}

/* Names the evidence files after their events and lists them. */
static void collect_evidence(const struct analysis_opts *ao, struct event_list *events,
                             struct analysis_outputs *out)
{
    out->evidence = xcalloc(events->n ? events->n : 1, sizeof *out->evidence);
    for (size_t i = 0; i < events->n; i++) {
        struct event *e = &events->v[i];
        if (!e->evidence_path)
            continue;
        char *path = xasprintf("%s/evidence-%s.jpg", ao->work_dir, e->id);
        if (rename(e->evidence_path, path)) {
            free(path);
            continue;
        }
        struct analysis_evidence *ev = &out->evidence[out->nevidence++];
        snprintf(ev->id, sizeof ev->id, "%s", e->id);
        ev->path = path;
    }
}

static enum ia_err run_passes(struct pass *p, struct vision *vis, json_t *report,
                              struct analysis_outputs *out, char *detail, size_t detaillen)
{
    const json_t *output = json_object_get(report, "output");
    struct audio_result audio;
    struct event_list events = {0};
    struct scan s;
    int w, h;
    frame_size(p->ao, output, &w, &h);
    enum ia_err err = audio_analyse(p->ao, p->mo, p->video,
                                    json_is_string(json_object_get(output, "audio_codec")), &audio,
                                    detail, detaillen);
    if (!err)
        audio_events(p->ao, &audio, p->duration, &events);
    scan_init(&s, p->ao, vis, &audio, &events, w, h);
    if (!err)
        err = frame_pass(p, &s, detail, detaillen);
    if (!err) {
        runs_finish(&s.runs, fmax(p->duration, (double)s.samples / p->ao->fps));
        late_evidence(&s);
        event_list_finish(&events);
        out->vtt_path = xasprintf("%s/events.vtt", p->ao->work_dir);
        if (report_write_vtt(&events, out->vtt_path)) {
            snprintf(detail, detaillen, "cannot write the WebVTT file");
            err = IA_ERR_IO;
        }
    }
    if (!err) {
        collect_evidence(p->ao, &events, out);
        out->review_path = p->review_path;
        p->review_path = NULL;
        json_object_set_new(report, "analysis", analysis_section(p->ao, &s, &audio, &events, vis));
    }
    scan_cleanup(&s);
    event_list_cleanup(&events);
    audio_result_cleanup(&audio);
    return err;
}

enum ia_err analysis_run(const struct analysis_opts *ao, const struct media_opts *mo,
                         const char *video_path, json_t *report, struct analysis_outputs *out,
                         char *detail, size_t detaillen)
{
    memset(out, 0, sizeof *out);
    struct vision *vis = models(ao, detail, detaillen);
    if (!vis)
        return IA_ERR_INTERNAL;
    struct pass p = {ao, mo, video_path, 0, xasprintf("%s/review.mp4", ao->work_dir)};
    p.duration = json_number_value(json_object_get(json_object_get(report, "output"), "duration"));
    enum ia_err err = run_passes(&p, vis, report, out, detail, detaillen);
    if (p.review_path)
        unlink(p.review_path);
    free(p.review_path);
    if (err)
        analysis_outputs_cleanup(out);
    return err;
}

void analysis_outputs_cleanup(struct analysis_outputs *out)
{
    free(out->vtt_path);
    free(out->review_path);
    for (size_t i = 0; i < out->nevidence; i++)
        free(out->evidence[i].path);
    free(out->evidence);
    memset(out, 0, sizeof *out);
}
