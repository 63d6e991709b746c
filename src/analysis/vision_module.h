/*
 * The boundary of interview-vision.so, the module that holds everything linked with OpenCV or
 * WebRTC (vision.cpp, render.cpp, vad.c). Only the worker loads it, on its first analysis, so that
 * serve, run and the CLI do not map those C++ libraries (OpenCV brings a hundred-odd). The module
 * exports one function that returns this table; vision_loader.c turns the table back into vision.h
 * and render_* calls.
 */
#ifndef IA_ANALYSIS_VISION_MODULE_H
#define IA_ANALYSIS_VISION_MODULE_H

#include "analysis/internal.h"

#define VISION_MODULE_FILE "interview-vision.so"
#define VISION_MODULE_SYMBOL "ia_vision_module_ops"
#define VISION_MODULE_ABI 2

struct vision_ops {
    int abi; /* VISION_MODULE_ABI */
    struct vision *(*vision_new)(const char *, int, char *, size_t);
    void (*vision_free)(struct vision *);
    int (*vision_detect_faces)(struct vision *, const struct vision_image *, float,
                               struct vision_face *, int);
    int (*vision_describe_face)(struct vision *, const struct vision_image *,
                                const struct vision_face *, struct vision_face_detail *);
    int (*vision_detect_objects)(struct vision *, const struct vision_image *, float,
                                 struct vision_object *, int);
    int (*vision_face_embedding)(struct vision *, const struct vision_image *,
                                 const struct vision_face *, float *);
    float (*vision_embedding_similarity)(const float *, const float *);
    const char *(*vision_models_manifest)(const struct vision *);
    void (*render_box)(const struct render_frame *, const struct vision_box *, uint32_t,
                       const char *);
    void (*render_arrow)(const struct render_frame *, float, float, float, float, uint32_t);
    void (*render_dot)(const struct render_frame *, float, float, uint32_t);
    void (*render_text)(const struct render_frame *, int, int, float, uint32_t, const char *);
    void (*render_bar)(const struct render_frame *, int, int, int, int, float, uint32_t);
    int (*render_write_jpeg)(const struct render_frame *, const char *, int);
    struct vad *(*vad_new)(void);
    void (*vad_feed)(struct vad *, const int16_t *, size_t);
    struct span *(*vad_take)(struct vad *, size_t *);
    void (*vad_free)(struct vad *);
};

#ifdef __cplusplus
extern "C" {
#endif
/* The module's one export. */
const struct vision_ops *ia_vision_module_ops(void);
#ifdef __cplusplus
}
#endif

#endif
