/* Tests for analysis/vision.cpp on real photographs that Debian packages ship (dlib, skimage). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/vision.h"
#include "../tools/ppm.h"

#define FACES_DIR "/usr/share/doc/libdlib19.1/examples/faces/"
#define JOHNS_DIR "/usr/share/doc/libdlib19.1/examples/johns/"
#define SKIMAGE_DIR "/usr/lib/python3/dist-packages/skimage/data/"
#define MAX_FACES 32
#define MIN_SCORE 0.75f

static struct vision *vis;

static int setup(void **state)
{
    char detail[256] = "";
    (void)state;
    vis = vision_new(IA_MODELS_DIR, 1, detail, sizeof(detail));
    if (!vis)
        fprintf(stderr, "vision_new: %s (run `make models`)\n", detail);
    return vis ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    vision_free(vis);
    return 0;
}

static struct vision_image load(const char *path)
{
    struct vision_image img;
    if (image_load_ffmpeg(path, &img) != 0)
        fail_msg("cannot read %s", path);
    return img;
}

static float box_iou(const struct vision_box *a, const struct vision_box *b)
{
    float x0 = fmaxf(a->x, b->x), y0 = fmaxf(a->y, b->y);
    float x1 = fminf(a->x + a->w, b->x + b->w), y1 = fminf(a->y + a->h, b->y + b->h);
    float inter = fmaxf(0, x1 - x0) * fmaxf(0, y1 - y0);
    return inter / (a->w * a->h + b->w * b->h - inter);
}

/* A copy of img mirrored left to right; the caller frees it with ppm_free. */
static struct vision_image mirror(const struct vision_image *img)
{
    struct vision_image m = *img;
    uint8_t *buf = malloc((size_t)img->height * img->stride);
    assert_non_null(buf);
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++)
            memcpy(buf + y * img->stride + 3 * x,
                   img->bgr + y * img->stride + 3 * (img->width - 1 - x), 3);
    m.bgr = buf;
    return m;
}

/* A copy of img turned clockwise by deg degrees about its centre (nearest pixel, black edges). */
static struct vision_image rotate(const struct vision_image *img, double deg)
{
    struct vision_image r = *img;
    uint8_t *buf = calloc((size_t)img->height, img->stride);
    double c = cos(deg * M_PI / 180), s = sin(deg * M_PI / 180);
    double cx = img->width / 2.0, cy = img->height / 2.0;
    assert_non_null(buf);
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++) {
            int sx = (int)lround(cx + c * (x - cx) + s * (y - cy));
            int sy = (int)lround(cy - s * (x - cx) + c * (y - cy));
            if (sx >= 0 && sy >= 0 && sx < img->width && sy < img->height)
                memcpy(buf + y * img->stride + 3 * x, img->bgr + sy * img->stride + 3 * sx, 3);
        }
    r.bgr = buf;
    return r;
}

/* Reads the next <image file='...'> of a dlib dataset and its boxes; returns the box count. */
static int next_image(FILE *f, char *file, size_t filelen, struct vision_box *boxes, int max)
{
    char line[512];
    int n = -1;
    long pos = ftell(f);
    while (fgets(line, sizeof(line), f)) {
        char *p = strstr(line, "<image file='");
        int top, left, w, h;
        if (p && n >= 0) {
            fseek(f, pos, SEEK_SET); /* the next image: read it on the next call */
            return n;
        }
        if (p) {
            p += strlen("<image file='");
            snprintf(file, filelen, "%.*s", (int)strcspn(p, "'"), p);
            n = 0;
        } else if (n >= 0 && n < max &&
                   sscanf(line, " <box top='%d' left='%d' width='%d' height='%d'", &top, &left,
                          &w, &h) == 4) {
            boxes[n++] = (struct vision_box){(float)left, (float)top, (float)w, (float)h};
        }
        pos = ftell(f);
    }
    return n;
}

/* Counts the truth boxes found (IoU >= 0.3) and the faces that match no truth box. */
static void score_image(const char *file, const struct vision_box *truth, int nt, int *found,
                        int *spurious)
{
    char path[512];
    struct vision_face faces[MAX_FACES];
    snprintf(path, sizeof(path), "%s%s", FACES_DIR, file);
    struct vision_image img = load(path);
    int n = vision_detect_faces(vis, &img, MIN_SCORE, faces, MAX_FACES);
    assert_in_range(n, 0, MAX_FACES);
    for (int t = 0; t < nt; t++) {
        int hit = 0;
        for (int i = 0; i < n; i++)
            hit |= box_iou(&truth[t], &faces[i].box) >= 0.3f;
        *found += hit;
        if (!hit)
            printf("# missed in %s: %.0fx%.0f at %.0f,%.0f\n", file, truth[t].w, truth[t].h,
                   truth[t].x, truth[t].y);
    }
    for (int i = 0; i < n; i++) {
        int hit = 0;
        for (int t = 0; t < nt; t++)
            hit |= box_iou(&truth[t], &faces[i].box) >= 0.3f;
        *spurious += !hit;
    }
    ppm_free(&img);
}

/* dlib's ground truth (PASCAL VOC photos, faces 8-25 % of the height): nearly all found. */
static void test_faces_where_the_truth_says(void **state)
{
    const char *sets[] = {FACES_DIR "training.xml", FACES_DIR "testing.xml"};
    int total = 0, found = 0, spurious = 0;
    (void)state;
    for (size_t s = 0; s < 2; s++) {
        FILE *f = fopen(sets[s], "r");
        char file[256];
        struct vision_box truth[MAX_FACES];
        int nt;
        assert_non_null(f);
        while ((nt = next_image(f, file, sizeof(file), truth, MAX_FACES)) >= 0) {
            score_image(file, truth, nt, &found, &spurious);
            total += nt;
        }
        fclose(f);
    }
    printf("# dlib truth: %d of %d faces found, %d spurious\n", found, total, spurious);
    assert_true(total >= 40);
    assert_true(found * 100 >= total * 85);
    assert_int_equal(spurious, 0);
}

static void test_no_face_on_textures(void **state)
{
    const char *files[] = {"brick.png", "grass.png", "text.png", "gravel.png",
                           "chessboard_RGB.png", "coffee.png", "page.png"};
    struct vision_face faces[MAX_FACES];
    (void)state;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s%s", SKIMAGE_DIR, files[i]);
        struct vision_image img = load(path);
        int n = vision_detect_faces(vis, &img, MIN_SCORE, faces, MAX_FACES);
        if (n != 0)
            fail_msg("%d face(s) on %s", n, files[i]);
        /* Told where a face would be, FaceMesh says no face is there. */
        struct vision_face fake = {{100, 100, 200, 200}, 1, {{150, 160}, {250, 160}}};
        struct vision_face_detail d;
        assert_int_equal(vision_describe_face(vis, &img, &fake, &d), 0);
        if (d.presence >= 0.5f)
            fail_msg("FaceMesh presence %.2f on %s", d.presence, files[i]);
        ppm_free(&img);
    }
    static uint8_t grey[360][640][3];
    memset(grey, 128, sizeof(grey));
    struct vision_image flat = {&grey[0][0][0], 640, 360, 640 * 3};
    assert_int_equal(vision_detect_faces(vis, &flat, MIN_SCORE, faces, MAX_FACES), 0);
    /* camera.png shows a man in profile-ish, looking to the picture's right. */
    struct vision_image cam = load(SKIMAGE_DIR "camera.png");
    struct vision_face_detail d;
    assert_int_equal(vision_detect_faces(vis, &cam, 0.5f, faces, MAX_FACES), 1);
    assert_int_equal(vision_describe_face(vis, &cam, &faces[0], &d), 0);
    assert_true(d.yaw > 20);
    ppm_free(&cam);
}

/* The face of img nearest to box, or -1. */
static int nearest_face(const struct vision_face *faces, int n, const struct vision_box *box)
{
    int best = -1;
    float best_iou = 0.3f;
    for (int i = 0; i < n; i++) {
        float iou = box_iou(&faces[i].box, box);
        if (iou >= best_iou) {
            best = i;
            best_iou = iou;
        }
    }
    return best;
}

/* Compares the yaw of every clearly turned face with its mirror image's; returns the pairs. */
static int mirrored_pairs(const char *file, int *flipped)
{
    struct vision_face a[MAX_FACES], b[MAX_FACES];
    struct vision_face_detail da, db;
    struct vision_image img = load(file), m = mirror(&img);
    int na = vision_detect_faces(vis, &img, MIN_SCORE, a, MAX_FACES);
    int nb = vision_detect_faces(vis, &m, MIN_SCORE, b, MAX_FACES), pairs = 0;
    for (int i = 0; i < na && i < MAX_FACES; i++) {
        struct vision_box mb = a[i].box;
        mb.x = img.width - a[i].box.x - a[i].box.w;
        int j = nearest_face(b, nb < MAX_FACES ? nb : MAX_FACES, &mb);
        if (j < 0 || vision_describe_face(vis, &img, &a[i], &da) != 0 ||
            vision_describe_face(vis, &m, &b[j], &db) != 0 || fabsf(da.yaw) < 10)
            continue;
        pairs++;
        *flipped += (da.yaw > 0) != (db.yaw > 0);
        assert_true(fabsf(da.roll + db.roll) < 8); /* roll flips too */
    }
    ppm_free(&m);
    ppm_free(&img);
    return pairs;
}

static void test_yaw_sign_flips_on_mirrored_faces(void **state)
{
    const char *files[] = {"2007_007763.jpg", "2008_001009.jpg", "2008_002079.jpg",
                           "2008_002506.jpg", "2008_004176.jpg", "2009_004587.jpg"};
    int pairs = 0, flipped = 0;
    (void)state;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s%s", FACES_DIR, files[i]);
        pairs += mirrored_pairs(path, &flipped);
    }
    printf("# yaw sign flipped on %d of %d mirrored faces (|yaw| >= 10)\n", flipped, pairs);
    assert_true(pairs >= 10);
    assert_int_equal(flipped, pairs);
}

static void test_detail_of_a_face(void **state)
{
    struct vision_face f[MAX_FACES];
    struct vision_face_detail d, r;
    struct vision_image img = load(FACES_DIR "Tom_Cruise_avp_2014_4.jpg");
    (void)state;
    assert_int_equal(vision_detect_faces(vis, &img, MIN_SCORE, f, MAX_FACES), 1);
    assert_int_equal(vision_describe_face(vis, &img, &f[0], &d), 0);
    assert_true(d.presence > 0.9f);
    assert_true(d.has_iris);
    assert_true(fabsf(d.yaw) < 15 && fabsf(d.pitch) < 20 && fabsf(d.roll) < 15);
    assert_true(d.eye_open > 0.15f && d.eye_open < 0.5f);
    assert_true(d.mouth_open >= 0 && d.mouth_open < 0.5f);
    assert_true(fabsf(d.gaze_x) <= 1 && fabsf(d.gaze_y) <= 1);
    assert_true(box_iou(&d.box, &f[0].box) > 0.3f);
    /* In the mirror image the eyes look the other way. */
    struct vision_image mir = mirror(&img);
    assert_int_equal(vision_detect_faces(vis, &mir, MIN_SCORE, f, MAX_FACES), 1);
    assert_int_equal(vision_describe_face(vis, &mir, &f[0], &r), 0);
    printf("# gaze_x %.2f, mirrored %.2f\n", d.gaze_x, r.gaze_x);
    assert_true(fabsf(d.gaze_x) > 0.1f && (d.gaze_x > 0) != (r.gaze_x > 0));
    assert_true(fabsf(d.gaze_x + r.gaze_x) < 0.1f);
    ppm_free(&mir);
    assert_int_equal(vision_detect_faces(vis, &img, MIN_SCORE, f, MAX_FACES), 1);
    /* Turning the picture clockwise turns the head clockwise: roll grows by that angle. */
    struct vision_image rot = rotate(&img, 20);
    assert_int_equal(vision_detect_faces(vis, &rot, MIN_SCORE, f, MAX_FACES), 1);
    assert_int_equal(vision_describe_face(vis, &rot, &f[0], &r), 0);
    printf("# roll %.1f, turned 20 degrees clockwise: %.1f\n", d.roll, r.roll);
    assert_true(fabsf(r.roll - d.roll - 20) < 7);
    ppm_free(&rot);
    ppm_free(&img);
}

static int jpeg_only(const struct dirent *e)
{
    return strstr(e->d_name, ".jpg") != NULL;
}

/* The embedding of the first face of the index-th photo (by name) of a person in johns/. */
static void embed(const char *person, int index, float *out)
{
    char dir[256], path[512];
    struct dirent **names;
    struct vision_face f[MAX_FACES];
    snprintf(dir, sizeof(dir), "%s%s", JOHNS_DIR, person);
    int n = scandir(dir, &names, jpeg_only, alphasort);
    assert_true(n > index);
    snprintf(path, sizeof(path), "%s/%s", dir, names[index]->d_name);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    struct vision_image img = load(path);
    assert_true(vision_detect_faces(vis, &img, MIN_SCORE, f, MAX_FACES) >= 1);
    assert_int_equal(vision_face_embedding(vis, &img, &f[0], out), 0);
    ppm_free(&img);
}

static void test_same_person_more_similar(void **state)
{
    const char *people[] = {"John_Salley", "John_Savage", "John_Schneider", "John_Shimkus",
                            "John_Simm"};
    enum { N = 5 };
    static float e0[N][VISION_EMBED_DIM], e1[N][VISION_EMBED_DIM];
    (void)state;
    for (int i = 0; i < N; i++) {
        embed(people[i], 0, e0[i]);
        embed(people[i], 1, e1[i]);
        assert_true(fabsf(vision_embedding_similarity(e0[i], e0[i]) - 1) < 1e-4);
    }
    for (int i = 0; i < N; i++) {
        float same = vision_embedding_similarity(e0[i], e1[i]);
        for (int j = 0; j < N; j++) {
            float other = vision_embedding_similarity(e0[i], e0[j]);
            if (j != i && other >= same)
                fail_msg("%s: same %.3f, vs %s %.3f", people[i], same, people[j], other);
        }
    }
}

static void test_person_on_astronaut(void **state)
{
    struct vision_object o[64];
    struct vision_image img = load(SKIMAGE_DIR "astronaut.png");
    struct vision_box truth = {0, 0, 360, 512}; /* she fills the left two thirds */
    int n = vision_detect_objects(vis, &img, 0.3f, o, 64), person = 0;
    (void)state;
    assert_true(n >= 1);
    for (int i = 0; i < n && i < 64; i++)
        if (strcmp(o[i].label, "person") == 0 && o[i].class_id == 0)
            person |= box_iou(&o[i].box, &truth) > 0.5f;
    assert_true(person);
    ppm_free(&img);
    struct vision_image brick = load(SKIMAGE_DIR "brick.png");
    n = vision_detect_objects(vis, &brick, 0.3f, o, 64);
    for (int i = 0; i < n && i < 64; i++)
        assert_string_not_equal(o[i].label, "person");
    ppm_free(&brick);
}

static void run(const char *cmd)
{
    assert_int_equal(system(cmd), 0);
}

static void test_refuses_altered_model(void **state)
{
    char dir[] = "/tmp/ia-vision-test.XXXXXX", cmd[1024], detail[256] = "";
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof(cmd), "cp %s/* %s/ && sed -i '1s/^0/1/' %s/canonical_face.txt",
             IA_MODELS_DIR, dir, dir);
    run(cmd);
    assert_null(vision_new(dir, 1, detail, sizeof(detail)));
    assert_non_null(strstr(detail, "canonical_face.txt"));
    snprintf(cmd, sizeof(cmd), "rm -f %s/* && cp %s/* %s/ && rm %s/iris.onnx", dir,
             IA_MODELS_DIR, dir, dir);
    run(cmd);
    assert_null(vision_new(dir, 1, detail, sizeof(detail)));
    assert_non_null(strstr(detail, "iris.onnx"));
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    run(cmd);
    assert_null(vision_new("/nonexistent", 1, detail, sizeof(detail)));
    assert_non_null(strstr(detail, "manifest.json"));
    const char *manifest = vision_models_manifest(vis);
    assert_non_null(strstr(manifest, "\"blazeface\""));
    assert_non_null(strstr(manifest, "\"sha256\""));
}

static void test_bad_input(void **state)
{
    struct vision_face f[1];
    struct vision_image none = {NULL, 640, 360, 640 * 3};
    uint8_t px[3] = {0, 0, 0};
    struct vision_image tiny = {px, 1, 1, 3};
    (void)state;
    assert_int_equal(vision_detect_faces(vis, &none, MIN_SCORE, f, 1), -1);
    assert_int_equal(vision_detect_faces(vis, &tiny, MIN_SCORE, f, 1), 0);
    assert_int_equal(vision_detect_objects(vis, &tiny, 0.3f, NULL, 0), 0);
    struct vision_face zero = {{0, 0, 0, 0}, 1, {{0}}};
    struct vision_face_detail d;
    assert_int_equal(vision_describe_face(vis, &tiny, &zero, &d), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faces_where_the_truth_says),
        cmocka_unit_test(test_no_face_on_textures),
        cmocka_unit_test(test_yaw_sign_flips_on_mirrored_faces),
        cmocka_unit_test(test_detail_of_a_face),
        cmocka_unit_test(test_same_person_more_similar),
        cmocka_unit_test(test_person_on_astronaut),
        cmocka_unit_test(test_refuses_altered_model),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
