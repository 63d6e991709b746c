/* Event kinds and the list of events: one place that names them and orders them. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"
#include "core/alloc.h"

static const char *const kind_names[EV__COUNT] = {
    [EV_FACE_ABSENT] = "face_absent",
    [EV_MULTIPLE_FACES] = "multiple_faces",
    [EV_OTHER_PERSON] = "other_person",
    [EV_LOOKING_AWAY] = "looking_away",
    [EV_GAZE_AWAY] = "gaze_away",
    [EV_PHONE] = "phone",
    [EV_OBJECT] = "object",
    [EV_FACE_MISMATCH] = "face_mismatch",
    [EV_SPEECH_WITHOUT_CANDIDATE] = "speech_without_candidate",
    [EV_SILENCE] = "silence",
    [EV_NO_AUDIO] = "no_audio",
    [EV_SILENT_AUDIO] = "silent_audio",
    [EV_CLIPPING] = "clipping",
    [EV_BLACK_VIDEO] = "black_video",
    [EV_FROZEN_VIDEO] = "frozen_video",
    [EV_DARK_VIDEO] = "dark_video",
    [EV_FACE_TOO_SMALL] = "face_too_small",
};

const char *ev_kind_name(enum ev_kind k) { return k < EV__COUNT ? kind_names[k] : "unknown"; }

bool ev_kind_is_quality(enum ev_kind k) { return k >= EV_NO_AUDIO; }

struct event *event_list_add(struct event_list *l, enum ev_kind kind, double start, double end,
                             double confidence, json_t *details)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    struct event *e = &l->v[l->n++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->start = start < 0 ? 0 : start;
    e->end = end < e->start ? e->start : end;
    e->confidence = confidence < 0 ? 0 : confidence > 1 ? 1 : confidence;
    e->details = details ? details : json_object();
    return e;
}

static int by_start(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return (int)x->kind - (int)y->kind;
}

void event_list_finish(struct event_list *l)
{
    if (l->n)
        qsort(l->v, l->n, sizeof *l->v, by_start);
    for (size_t i = 0; i < l->n; i++)
        snprintf(l->v[i].id, sizeof l->v[i].id, "e%zu", i + 1);
}

void event_list_cleanup(struct event_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        json_decref(l->v[i].details);
        free(l->v[i].evidence_path);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}
