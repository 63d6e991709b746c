/*
 * vision-eval: runs the vision models on images and prints one JSON line per image, for the
 * accuracy benchmark. Usage: vision-eval [--models DIR] [--min-score S] FILE.ppm...
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analysis/vision.h"
#include "ppm.h"

#define EVAL_MAX_FACES 32
#define EVAL_MAX_OBJECTS 64
#define EVAL_OBJECT_MIN_SCORE 0.3f

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static json_t *box_json(json_t *o, const struct vision_box *b)
{
    json_object_set_new(o, "x", json_real(b->x));
    json_object_set_new(o, "y", json_real(b->y));
    json_object_set_new(o, "w", json_real(b->w));
    json_object_set_new(o, "h", json_real(b->h));
    return o;
}

static json_t *face_json(const struct vision_face *f, const struct vision_face_detail *d)
{
    json_t *o = box_json(json_object(), &f->box);
    json_object_set_new(o, "score", json_real(f->score));
    if (!d)
        return o;
    json_object_set_new(o, "yaw", json_real(d->yaw));
    json_object_set_new(o, "pitch", json_real(d->pitch));
    json_object_set_new(o, "roll", json_real(d->roll));
    json_object_set_new(o, "gaze_x", json_real(d->gaze_x));
    json_object_set_new(o, "gaze_y", json_real(d->gaze_y));
    json_object_set_new(o, "eye_open", json_real(d->eye_open));
    json_object_set_new(o, "mouth_open", json_real(d->mouth_open));
    json_object_set_new(o, "presence", json_real(d->presence));
    return o;
}

/* Faces with their details; adds the time of each step to ms. */
static json_t *eval_faces(struct vision *v, const struct vision_image *img, float min_score,
                          json_t *ms)
{
    struct vision_face faces[EVAL_MAX_FACES];
    struct vision_face_detail d;
    double t0 = now_ms();
    int n = vision_detect_faces(v, img, min_score, faces, EVAL_MAX_FACES);
    double t1 = now_ms();
    json_t *arr = json_array();
    for (int i = 0; i < n && i < EVAL_MAX_FACES; i++) {
        int ok = vision_describe_face(v, img, &faces[i], &d) == 0;
        json_array_append_new(arr, face_json(&faces[i], ok ? &d : NULL));
    }
    json_object_set_new(ms, "detect", json_real(t1 - t0));
    json_object_set_new(ms, "detail", json_real(now_ms() - t1));
    return arr;
}

static json_t *eval_objects(struct vision *v, const struct vision_image *img, json_t *ms)
{
    struct vision_object objs[EVAL_MAX_OBJECTS];
    double t0 = now_ms();
    int n = vision_detect_objects(v, img, EVAL_OBJECT_MIN_SCORE, objs, EVAL_MAX_OBJECTS);
    json_object_set_new(ms, "objects", json_real(now_ms() - t0));
    json_t *arr = json_array();
    for (int i = 0; i < n && i < EVAL_MAX_OBJECTS; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "label", json_string(objs[i].label));
        json_object_set_new(o, "score", json_real(objs[i].score));
        json_array_append_new(arr, box_json(o, &objs[i].box));
    }
    return arr;
}

static int eval_file(struct vision *v, const char *path, float min_score)
{
    struct vision_image img;
    if (ppm_load(path, &img) != 0) {
        fprintf(stderr, "vision-eval: %s is not a binary PPM (P6)\n", path);
        return -1;
    }
    json_t *line = json_object(), *ms = json_object();
    json_object_set_new(line, "file", json_string(path));
    json_object_set_new(line, "faces", eval_faces(v, &img, min_score, ms));
    json_object_set_new(line, "objects", eval_objects(v, &img, ms));
    json_object_set_new(line, "ms", ms);
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("%s\n", text);
    fflush(stdout);
    free(text);
    json_decref(line);
    ppm_free(&img);
    return 0;
}

int main(int argc, char **argv)
{
    const char *models = IA_MODELS_DIR;
    float min_score = 0.75f;
    int i = 1, rc = 0;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--models") == 0)
            models = argv[i + 1];
        else if (strcmp(argv[i], "--min-score") == 0)
            min_score = strtof(argv[i + 1], NULL);
        else
            break;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: vision-eval [--models DIR] [--min-score S] FILE.ppm...\n");
        return 2;
    }
    char detail[256];
    struct vision *v = vision_new(models, getenv("VISION_THREADS") ? atoi(getenv("VISION_THREADS")) : 1, detail, sizeof(detail));
    if (!v) {
        fprintf(stderr, "vision-eval: %s\n", detail);
        return 1;
    }
    for (; i < argc; i++)
        rc |= eval_file(v, argv[i], min_score) != 0;
    vision_free(v);
    return rc;
}
