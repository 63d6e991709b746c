/*
 * The candidate across samples: the face that stays where the candidate was (so a visitor never
 * takes their place by being larger for a moment), the candidate's own baseline pose and gaze
 * (a camera to one side is not "looking away" all interview), and their identity reference.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"

#define TRACK_BASELINE_S 10.0 /* the baseline is learnt over this much time with a face */
#define TRACK_FORGET_S 3.0    /* after this long unseen, the largest face is the candidate again */
#define TRACK_MIN_IOU 0.2
#define TRACK_SMOOTH 0.5      /* weight of the new box in the remembered one */
#define IDENTITY_REF_CHECKS 3 /* embeddings averaged into the reference */

void tracker_init(struct tracker *tr, const struct analysis_opts *ao)
{
    memset(tr, 0, sizeof *tr);
    int cap = (int)(TRACK_BASELINE_S * ao->fps);
    tr->base_cap = cap < TRACK_BASELINE_MAX ? cap : TRACK_BASELINE_MAX;
}

static float iou(const struct vision_box *a, const struct vision_box *b)
{
    float x0 = fmaxf(a->x, b->x), y0 = fmaxf(a->y, b->y);
    float x1 = fminf(a->x + a->w, b->x + b->w), y1 = fminf(a->y + a->h, b->y + b->h);
    float inter = fmaxf(0, x1 - x0) * fmaxf(0, y1 - y0);
    float uni = a->w * a->h + b->w * b->h - inter;
    return uni > 0 ? inter / uni : 0;
}

static int largest(const struct vision_face *faces, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (faces[i].box.w * faces[i].box.h > faces[best].box.w * faces[best].box.h)
            best = i;
    return best;
}

int tracker_pick(struct tracker *tr, const struct vision_face *faces, int n, double t)
{
    if (n <= 0)
        return -1;
    int pick = -1;
    if (tr->has_box && t - tr->last_seen <= TRACK_FORGET_S) {
        float best = TRACK_MIN_IOU;
        for (int i = 0; i < n; i++) {
            float o = iou(&faces[i].box, &tr->box);
            if (o >= best)
                best = o, pick = i;
        }
    }
    if (pick < 0)
        pick = largest(faces, n);
    const struct vision_box *b = &faces[pick].box;
    if (!tr->has_box) {
        tr->box = *b;
    } else {
        tr->box.x += TRACK_SMOOTH * (b->x - tr->box.x);
        tr->box.y += TRACK_SMOOTH * (b->y - tr->box.y);
        tr->box.w += TRACK_SMOOTH * (b->w - tr->box.w);
        tr->box.h += TRACK_SMOOTH * (b->h - tr->box.h);
    }
    tr->has_box = true;
    tr->last_seen = t;
    return pick;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float median(const float *v, int n)
{
    float tmp[TRACK_BASELINE_MAX];
    memcpy(tmp, v, (size_t)n * sizeof *v);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_float);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

void tracker_learn(struct tracker *tr, const struct vision_face_detail *d)
{
    if (tr->nbase >= tr->base_cap)
        return;
    tr->yaw[tr->nbase] = d->yaw;
    tr->pitch[tr->nbase] = d->pitch;
    tr->nbase++;
    tr->base_yaw = median(tr->yaw, tr->nbase);
    tr->base_pitch = median(tr->pitch, tr->nbase);
    if (d->has_iris) {
        tr->gx[tr->ngaze] = d->gaze_x;
        tr->gy[tr->ngaze] = d->gaze_y;
        tr->ngaze++;
        tr->base_gx = median(tr->gx, tr->ngaze);
        tr->base_gy = median(tr->gy, tr->ngaze);
    }
}

float tracker_identity(struct tracker *tr, const float *embedding)
{
    if (tr->nref < IDENTITY_REF_CHECKS) {
        for (int i = 0; i < VISION_EMBED_DIM; i++)
            tr->ref[i] += embedding[i];
        if (++tr->nref < IDENTITY_REF_CHECKS)
            return NAN;
        float norm = 0;
        for (int i = 0; i < VISION_EMBED_DIM; i++)
            norm += tr->ref[i] * tr->ref[i];
        norm = sqrtf(norm);
        for (int i = 0; i < VISION_EMBED_DIM && norm > 0; i++)
            tr->ref[i] /= norm;
    }
    return vision_embedding_similarity(tr->ref, embedding);
}
