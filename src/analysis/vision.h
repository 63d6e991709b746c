/*
 * The models behind a C API: faces (BlazeFace), landmarks (FaceMesh + Iris) with head pose, gaze,
 * eye and mouth openness, objects (CenterNet, COCO classes) and a face embedding (FaceRes).
 * OpenCV's dnn module runs them; it is C++ and stays inside vision.cpp. Images are packed BGR
 * (what ffmpeg's bgr24 gives), any size; coordinates are pixels of that image.
 * One struct vision belongs to one thread at a time.
 */
#ifndef IA_ANALYSIS_VISION_H
#define IA_ANALYSIS_VISION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vision;

struct vision_image {
    const uint8_t *bgr;
    int width, height;
    size_t stride; /* bytes per row */
};

struct vision_box {
    float x, y, w, h; /* top-left corner and size */
};

/* One face found by the detector. */
struct vision_face {
    struct vision_box box;
    float score;          /* 0..1 */
    float keypoints[6][2]; /* BlazeFace's: right eye, left eye, nose, mouth, right ear, left ear */
};

/*
 * What the landmarks say about one face. Directions are as seen in the picture:
 * yaw > 0: the face turns towards the picture's right; pitch > 0: it turns up; roll > 0: the
 * head tilts clockwise. A mirrored picture gives the opposite yaw.
 */
struct vision_face_detail {
    float presence;           /* FaceMesh's face score, 0..1 */
    float yaw, pitch, roll;   /* degrees, 0 = facing the camera */
    int has_iris;             /* 0 when the eye crops were unusable; gaze is 0 then */
    float gaze_x, gaze_y;     /* iris centre within the eye, -1..1: x > 0 towards the picture's
                                 right, y > 0 down; the mean of both eyes (offset from the
                                 middle of the eye corners, in half eye widths) */
    float eye_open;           /* eyelid gap / eye width, mean of both eyes (about 0.25-0.35 open) */
    float mouth_open;         /* inner lip gap / mouth width (about 0 closed, > 0.3 wide open) */
    struct vision_box box;    /* the face as the landmarks bound it */
    float nose[2];            /* nose tip, for drawing the head direction */
};

struct vision_object {
    int class_id;      /* COCO class index, 0..79 */
    const char *label; /* COCO name ("person", "cell phone", "book", "laptop", "tv", ...) */
    float score;
    struct vision_box box;
};

/* The embedding's length (vision_face_embedding writes this many floats). */
#define VISION_EMBED_DIM 1024

/*
 * Loads every model from models_dir (the build's models/ folder, see scripts/models.sh) and checks
 * each file's SHA-256 against models_dir/manifest.json. threads: OpenCV threads (0: its default).
 * Returns NULL with a reason in detail when a model is missing, altered or cannot be read.
 */
struct vision *vision_new(const char *models_dir, int threads, char *detail, size_t detaillen);
void vision_free(struct vision *v);

/*
 * Faces with a score of at least min_score (0.75 recommended), after non-maximum suppression,
 * best first. Writes up to max faces into out and returns how many were found (may exceed max),
 * or -1 on an internal error.
 */
int vision_detect_faces(struct vision *v, const struct vision_image *img, float min_score,
                        struct vision_face *out, int max);

/* Landmarks, pose, gaze, eyes and mouth of one detected face. Returns 0, or -1 when it failed. */
int vision_describe_face(struct vision *v, const struct vision_image *img,
                       const struct vision_face *face, struct vision_face_detail *out);

/*
 * Objects of COCO's 80 classes with a score of at least min_score, best first; same counting
 * rule as vision_detect_faces.
 */
int vision_detect_objects(struct vision *v, const struct vision_image *img, float min_score,
                          struct vision_object *out, int max);

/*
 * An L2-normalised identity embedding of VISION_EMBED_DIM floats for one face.
 * Returns 0, or -1 when it failed.
 */
int vision_face_embedding(struct vision *v, const struct vision_image *img,
                          const struct vision_face *face, float *out);

/* Cosine similarity of two embeddings (dot product of normalised vectors), -1..1. */
float vision_embedding_similarity(const float *a, const float *b);

/* The manifest of the loaded models as JSON text (name, version, package, sha256), owned by v. */
const char *vision_models_manifest(const struct vision *v);

#ifdef __cplusplus
}
#endif

#endif
