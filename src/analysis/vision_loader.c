/*
 * vision.h, render_* and vad_* for the rest of the program: each call goes through the table of
 * interview-vision.so, loaded (once per process) from the directory of the running program.
 */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "analysis/vision_module.h"

static const struct vision_ops *ops;
/* A struct vision is shared by the worker's slots; its networks run one call at a time. */
static pthread_mutex_t call_lock = PTHREAD_MUTEX_INITIALIZER;
static char load_error[256];
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

/* The module lies beside the program (build/ or build-asan/ beside their own binaries). */
static void module_path(char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    snprintf(out, len, "%s/%s", slash ? exe : ".", VISION_MODULE_FILE);
}

static void load_module(void)
{
    char path[PATH_MAX + 32];
    module_path(path, sizeof path);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(load_error, sizeof load_error, "analysis module: %s", dlerror());
        return;
    }
    const struct vision_ops *(*get)(void);
    *(void **)&get = dlsym(h, VISION_MODULE_SYMBOL);
    const struct vision_ops *table = get ? get() : NULL;
    if (!table || table->abi != VISION_MODULE_ABI) {
        snprintf(load_error, sizeof load_error, "analysis module: not version %d",
                 VISION_MODULE_ABI);
        dlclose(h);
        return;
    }
    ops = table; /* the module stays loaded for the life of the process */
}

struct vision *vision_new(const char *models_dir, int threads, char *detail, size_t detaillen)
{
    pthread_once(&load_once, load_module);
    if (!ops) {
        snprintf(detail, detaillen, "%s", load_error);
        return NULL;
    }
    return ops->vision_new(models_dir, threads, detail, detaillen);
}

/* Every other call needs a struct vision, so the module is loaded by then. */
void vision_free(struct vision *v)
{
    if (v)
        ops->vision_free(v);
}

int vision_detect_faces(struct vision *v, const struct vision_image *img, float min_score,
                        struct vision_face *out, int max)
{
    pthread_mutex_lock(&call_lock);
    int n = ops->vision_detect_faces(v, img, min_score, out, max);
    pthread_mutex_unlock(&call_lock);
    return n;
}

int vision_describe_face(struct vision *v, const struct vision_image *img,
                         const struct vision_face *face, struct vision_face_detail *out)
{
    pthread_mutex_lock(&call_lock);
    int n = ops->vision_describe_face(v, img, face, out);
    pthread_mutex_unlock(&call_lock);
    return n;
}

int vision_detect_objects(struct vision *v, const struct vision_image *img, float min_score,
                          struct vision_object *out, int max)
{
    pthread_mutex_lock(&call_lock);
    int n = ops->vision_detect_objects(v, img, min_score, out, max);
    pthread_mutex_unlock(&call_lock);
    return n;
}

int vision_face_embedding(struct vision *v, const struct vision_image *img,
                          const struct vision_face *face, float *out)
{
    pthread_mutex_lock(&call_lock);
    int n = ops->vision_face_embedding(v, img, face, out);
    pthread_mutex_unlock(&call_lock);
    return n;
}

float vision_embedding_similarity(const float *a, const float *b)
{
    return ops->vision_embedding_similarity(a, b);
}

const char *vision_models_manifest(const struct vision *v)
{
    return ops->vision_models_manifest(v);
}

void render_box(const struct render_frame *f, const struct vision_box *b, uint32_t color,
                const char *label)
{
    ops->render_box(f, b, color, label);
}

void render_arrow(const struct render_frame *f, float x0, float y0, float x1, float y1,
                  uint32_t color)
{
    ops->render_arrow(f, x0, y0, x1, y1, color);
}

void render_dot(const struct render_frame *f, float x, float y, uint32_t color)
{
    ops->render_dot(f, x, y, color);
}

void render_text(const struct render_frame *f, int x, int y, float scale, uint32_t color,
                 const char *text)
{
    ops->render_text(f, x, y, scale, color, text);
}

void render_bar(const struct render_frame *f, int x, int y, int w, int h, float value,
                uint32_t color)
{
    ops->render_bar(f, x, y, w, h, value, color);
}

int render_write_jpeg(const struct render_frame *f, const char *path, int quality)
{
    return ops->render_write_jpeg(f, path, quality);
}

/* The analysis loads the models (vision_new) before it feeds any audio, so the module is there. */
struct vad *vad_new(void) { return ops->vad_new(); }

void vad_feed(struct vad *v, const int16_t *pcm, size_t n) { ops->vad_feed(v, pcm, n); }

struct span *vad_take(struct vad *v, size_t *n) { return ops->vad_take(v, n); }

void vad_free(struct vad *v)
{
    if (v)
        ops->vad_free(v);
}
