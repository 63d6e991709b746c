/* The review rendition's overlays: what the analysis saw, drawn on the frame it saw. */
#include <math.h>
#include <stdio.h>

#include "analysis/scan.h"

#define COLOR_CANDIDATE 0x33CC66
#define COLOR_OTHER 0xE04040
#define COLOR_OBJECT 0xFF9900
#define COLOR_HEAD 0xFFFF00
#define COLOR_GAZE 0x00E5FF
#define COLOR_TEXT 0xFFFFFF
#define DEG (3.14159265358979 / 180)

static struct render_frame drawn_frame(const struct scan *s)
{
    return (struct render_frame){s->drawn, s->w, s->h, (size_t)s->w * 3};
}

static void draw_head(const struct render_frame *f, const struct sample *sm)
{
    const struct vision_face_detail *d = &sm->detail;
    float len = d->box.w > 0 ? d->box.w * 0.8f : 40;
    float x1 = d->nose[0] + len * sinf((float)(d->yaw * DEG));
    float y1 = d->nose[1] - len * sinf((float)(d->pitch * DEG));
    render_arrow(f, d->nose[0], d->nose[1], x1, y1, COLOR_HEAD);
    if (d->has_iris) {
        float gx = d->nose[0] + d->gaze_x * len * 0.5f, gy = d->nose[1] + d->gaze_y * len * 0.5f;
        render_dot(f, gx, gy, COLOR_GAZE);
    }
}

void scan_draw_marks(struct scan *s, const struct sample *sm)
{
    struct render_frame f = drawn_frame(s);
    for (int i = 0; i < sm->nfaces; i++) {
        bool cand = i == sm->cand;
        render_box(&f, &sm->faces[i].box, cand ? COLOR_CANDIDATE : COLOR_OTHER,
                   cand ? "candidate" : "other face");
    }
    for (int i = 0; i < s->nobjects; i++) {
        if (s->object_flagged[i])
            render_box(&f, &s->objects[i].box, COLOR_OBJECT, s->objects[i].label);
    }
    if (sm->has_detail)
        draw_head(&f, sm);
}

static uint32_t level_color(int rank)
{
    return rank == 2 ? 0xE04040 : rank == 1 ? 0xFFB000 : 0x33CC66;
}

void scan_draw_status(struct scan *s, const struct sample *sm)
{
    struct render_frame f = drawn_frame(s);
    int rank = score_level_rank(s->ao, sm->score);
    int bw = s->w / 4;
    render_bar(&f, s->w - bw - 8, 8, bw, 10, (float)(sm->score / 100), level_color(rank));
    char text[64];
    snprintf(text, sizeof text, "risk %.0f", sm->score);
    render_text(&f, s->w - bw - 8, 22, 0.9f, COLOR_TEXT, text);
    if (rank > 0) {
        snprintf(text, sizeof text, "%s - please review", score_level(s->ao, sm->score));
        render_text(&f, 8, 8, 1.0f, level_color(rank), text);
    }
    int minutes = (int)(s->t / 60);
    snprintf(text, sizeof text, "%02d:%05.2f", minutes, s->t - minutes * 60);
    render_text(&f, 8, s->h - 22, 0.9f, COLOR_TEXT, text);
}
