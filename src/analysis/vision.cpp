/* The models behind vision.h (faces, landmarks, pose, gaze, objects, identity) on OpenCV's dnn. */
#include "analysis/vision.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <jansson.h>
#include <malloc.h>
#include <opencv2/calib3d.hpp>
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>
#include <opencv2/imgproc.hpp>

extern "C" {
#include "util/crypto.h"
#include "util/str.h"
}

namespace {

enum model_id { M_FACE, M_MESH, M_IRIS, M_OBJECTS, M_EMBED, M_CANON, M_COUNT };
const char *const model_names[M_COUNT] = {"blazeface", "facemesh", "iris",
                                          "centernet", "faceres",  "canonical_face"};

const int FACE_IN = 256, MESH_IN = 192, IRIS_IN = 64, OBJ_IN = 512, EMBED_IN = 224;
const int ANCHORS = 896, MESH_POINTS = 468, OBJ_GRID = 128, OBJ_CLASSES = 80;
const float FACE_NMS_IOU = 0.3f, OBJ_NMS_IOU = 0.5f;
const float FACE_ROI_SCALE = 1.5f, EYE_ROI_SCALE = 2.3f, EMBED_ROI_SCALE = 1.2f;
const float MIN_EYE_PX = 4.0f;

/* FaceMesh indices: eye corners (image-left eye outer/inner, image-right eye inner/outer),
 * eyelids, lips, nose tip. */
const int EYE_L[2] = {33, 133}, EYE_R[2] = {362, 263};
const int LID_L[2] = {159, 145}, LID_R[2] = {386, 374};
const int LIP_IN[2] = {13, 14}, LIP_CORNER[2] = {61, 291}, NOSE_TIP = 1;

const char *const coco_labels[OBJ_CLASSES] = {
    "person",        "bicycle",      "car",           "motorcycle",    "airplane",
    "bus",           "train",        "truck",         "boat",          "traffic light",
    "fire hydrant",  "stop sign",    "parking meter", "bench",         "bird",
    "cat",           "dog",          "horse",         "sheep",         "cow",
    "elephant",      "bear",         "zebra",         "giraffe",       "backpack",
    "umbrella",      "handbag",      "tie",           "suitcase",      "frisbee",
    "skis",          "snowboard",    "sports ball",   "kite",          "baseball bat",
    "baseball glove", "skateboard",  "surfboard",     "tennis racket", "bottle",
    "wine glass",    "cup",          "fork",          "knife",         "spoon",
    "bowl",          "banana",       "apple",         "sandwich",      "orange",
    "broccoli",      "carrot",       "hot dog",       "pizza",         "donut",
    "cake",          "chair",        "couch",         "potted plant",  "bed",
    "dining table",  "toilet",       "tv",            "laptop",        "mouse",
    "remote",        "keyboard",     "cell phone",    "microwave",     "oven",
    "toaster",       "sink",         "refrigerator",  "book",          "clock",
    "vase",          "scissors",     "teddy bear",    "hair drier",    "toothbrush"};

/* A detector candidate before suppression: box centre and size, then six keypoints. */
struct cand {
    float score;
    float v[16];
};

} // namespace

struct vision {
    cv::dnn::Net net[M_COUNT - 1];
    std::vector<cv::Point3f> canon; /* canonical face, camera axes: x right, y down, z away */
    std::vector<cv::Point2f> anchors;
    std::vector<std::string> face_outs;
    std::string manifest;
    cv::Mat face_small, face_rgb, face_f32; /* reused buffers for the detector's input */
};

namespace {

void set_detail(char *detail, size_t len, const std::string &msg)
{
    if (detail && len)
        snprintf(detail, len, "%s", msg.c_str());
}

bool read_file(const std::string &path, std::vector<char> &out)
{
    std::ifstream f(path, std::ios::binary);
    if (!f)
        return false;
    out.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    return !f.bad();
}

std::string sha256_hex(const std::vector<char> &data)
{
    unsigned char sum[SHA256_LEN];
    char hex[2 * SHA256_LEN + 1];
    crypto_sha256(data.data(), data.size(), sum);
    str_hex(hex, sum, SHA256_LEN);
    return std::string(hex, 2 * SHA256_LEN);
}

/* The manifest entry called name, or NULL. */
json_t *manifest_entry(json_t *models, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m)
    {
        const char *n = json_string_value(json_object_get(m, "name"));
        if (n && strcmp(n, name) == 0)
            return m;
    }
    return NULL;
}

/* Reads the file of one manifest entry and checks its SHA-256; returns an error or "". */
std::string load_checked(const std::string &dir, json_t *entry, std::vector<char> &data)
{
    const char *file = json_string_value(json_object_get(entry, "file"));
    const char *sum = json_string_value(json_object_get(entry, "sha256"));
    if (!file || !sum || strchr(file, '/'))
        return "manifest entry without a plain file name or sha256";
    if (!read_file(dir + "/" + file, data))
        return std::string("cannot read ") + file;
    if (sha256_hex(data) != sum)
        return std::string(file) + " does not match its sha256 in manifest.json";
    return "";
}

std::string parse_canon(struct vision *v, const std::vector<char> &data)
{
    std::string text(data.begin(), data.end());
    const char *p = text.c_str();
    for (int i = 0; i < MESH_POINTS; i++) {
        float x, y, z;
        int used = 0;
        if (sscanf(p, "%f %f %f%n", &x, &y, &z, &used) != 3)
            return "canonical face: fewer than 468 vertices";
        p += used;
        /* MediaPipe's canonical face has y up and z towards the viewer. */
        v->canon.emplace_back(x, -y, -z);
    }
    return "";
}

std::string load_model(struct vision *v, int id, const std::vector<char> &data)
{
    if (id == M_CANON)
        return parse_canon(v, data);
    v->net[id] = cv::dnn::readNetFromONNX(data.data(), data.size());
    v->net[id].setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    if (v->net[id].empty())
        return std::string(model_names[id]) + ": OpenCV read an empty network";
    return "";
}

std::string load_all(struct vision *v, const std::string &dir)
{
    json_error_t jerr;
    json_t *root = json_load_file((dir + "/manifest.json").c_str(), 0, &jerr);
    if (!root)
        return std::string("manifest.json: ") + jerr.text;
    json_t *models = json_object_get(root, "models");
    std::string err;
    for (int id = 0; id < M_COUNT && err.empty(); id++) {
        json_t *entry = manifest_entry(models, model_names[id]);
        std::vector<char> data;
        if (!entry)
            err = std::string(model_names[id]) + " is not in manifest.json";
        else if ((err = load_checked(dir, entry, data)).empty())
            err = load_model(v, id, data);
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
    v->manifest = text ? text : "";
    free(text);
    json_decref(root);
    return err;
}

/* BlazeFace (back camera) anchors: 16x16 cells with 2 anchors, 8x8 cells with 6. */
void make_anchors(struct vision *v)
{
    const int grids[2] = {16, 8}, per[2] = {2, 6};
    for (int l = 0; l < 2; l++)
        for (int y = 0; y < grids[l]; y++)
            for (int x = 0; x < grids[l]; x++)
                for (int k = 0; k < per[l]; k++)
                    v->anchors.emplace_back((x + 0.5f) / grids[l], (y + 0.5f) / grids[l]);
}

bool image_ok(const struct vision_image *img)
{
    return img && img->bgr && img->width > 0 && img->height > 0 &&
           img->stride >= (size_t)img->width * 3;
}

cv::Mat wrap(const struct vision_image *img)
{
    return cv::Mat(img->height, img->width, CV_8UC3, const_cast<uint8_t *>(img->bgr),
                   img->stride);
}

float sigmoid(float x)
{
    return 1.0f / (1.0f + std::exp(-std::max(-80.0f, std::min(80.0f, x))));
}

float iou(const float *a, const float *b) /* centre-size boxes */
{
    float x0 = std::max(a[0] - a[2] / 2, b[0] - b[2] / 2);
    float y0 = std::max(a[1] - a[3] / 2, b[1] - b[3] / 2);
    float x1 = std::min(a[0] + a[2] / 2, b[0] + b[2] / 2);
    float y1 = std::min(a[1] + a[3] / 2, b[1] + b[3] / 2);
    float inter = std::max(0.0f, x1 - x0) * std::max(0.0f, y1 - y0);
    float uni = a[2] * a[3] + b[2] * b[3] - inter;
    return uni > 0 ? inter / uni : 0;
}

/* Letterboxes img into the detector's 256x256 input (top-left aligned); returns the scale. */
float face_input(struct vision *v, const cv::Mat &img, cv::Mat &blob)
{
    float s = (float)FACE_IN / std::max(img.cols, img.rows);
    cv::Size sz(std::max(1, (int)std::lround(img.cols * s)),
                std::max(1, (int)std::lround(img.rows * s)));
    cv::resize(img, v->face_small, sz, 0, 0, cv::INTER_AREA);
    v->face_rgb.create(FACE_IN, FACE_IN, CV_8UC3);
    v->face_rgb.setTo(cv::Scalar::all(0));
    cv::cvtColor(v->face_small, v->face_rgb(cv::Rect(0, 0, sz.width, sz.height)),
                 cv::COLOR_BGR2RGB);
    v->face_rgb.convertTo(v->face_f32, CV_32F, 1.0 / 127.5, -1.0);
    const int dims[4] = {1, FACE_IN, FACE_IN, 3}; /* the model takes NHWC */
    blob = cv::Mat(4, dims, CV_32F, v->face_f32.data);
    return s;
}

void face_candidates(const struct vision *v, const std::vector<cv::Mat> &outs, float min_score,
                     std::vector<cand> &c)
{
    CV_Assert(outs.size() == 4 && outs[0].total() == 512 && outs[1].total() == 384 &&
              outs[2].total() == 512 * 16 && outs[3].total() == 384 * 16);
    const float *scores[2] = {outs[0].ptr<float>(), outs[1].ptr<float>()};
    const float *boxes[2] = {outs[2].ptr<float>(), outs[3].ptr<float>()};
    for (int i = 0; i < ANCHORS; i++) {
        int l = i < 512 ? 0 : 1, j = l ? i - 512 : i;
        float score = sigmoid(scores[l][j]);
        if (score < min_score)
            continue;
        const float *r = boxes[l] + j * 16;
        cand k;
        k.score = score;
        for (int e = 0; e < 16; e++)
            k.v[e] = r[e] / FACE_IN;
        k.v[0] += v->anchors[i].x;
        k.v[1] += v->anchors[i].y;
        for (int p = 0; p < 6; p++) {
            k.v[4 + 2 * p] += v->anchors[i].x;
            k.v[5 + 2 * p] += v->anchors[i].y;
        }
        c.push_back(k);
    }
}

/* Weighted suppression as MediaPipe does: each kept face is the score-weighted mean of the
 * candidates that overlap it. */
std::vector<cand> suppress(std::vector<cand> c)
{
    std::sort(c.begin(), c.end(), [](const cand &a, const cand &b) { return a.score > b.score; });
    std::vector<cand> kept;
    std::vector<bool> used(c.size(), false);
    for (size_t i = 0; i < c.size(); i++) {
        if (used[i])
            continue;
        cand sum = {c[i].score, {0}};
        float wsum = 0;
        for (size_t j = i; j < c.size(); j++) {
            if (used[j] || (j != i && iou(c[i].v, c[j].v) < FACE_NMS_IOU))
                continue;
            used[j] = true;
            wsum += c[j].score;
            for (int e = 0; e < 16; e++)
                sum.v[e] += c[j].v[e] * c[j].score;
        }
        for (int e = 0; e < 16; e++)
            sum.v[e] = wsum > 0 ? sum.v[e] / wsum : c[i].v[e];
        kept.push_back(sum);
    }
    return kept;
}

void face_out(const cand &k, float scale, struct vision_face *f)
{
    float u = FACE_IN / scale; /* normalised detector units to image pixels */
    f->box.x = (k.v[0] - k.v[2] / 2) * u;
    f->box.y = (k.v[1] - k.v[3] / 2) * u;
    f->box.w = k.v[2] * u;
    f->box.h = k.v[3] * u;
    f->score = k.score;
    for (int p = 0; p < 6; p++) {
        f->keypoints[p][0] = k.v[4 + 2 * p] * u;
        f->keypoints[p][1] = k.v[5 + 2 * p] * u;
    }
}

/* The affine map from a size x size crop to the image: a square of side `side` centred on c,
 * turned by angle (radians); mirrored horizontally when flip. Coordinates are continuous (a
 * pixel's centre is at +0.5), as the models' outputs and the detector's boxes are. */
cv::Matx23d crop_map(cv::Point2f c, float side, float angle, int size, bool flip)
{
    double k = side / size, co = std::cos(angle) * k, si = std::sin(angle) * k, h = size / 2.0;
    double fx = flip ? -1 : 1;
    /* image = R * (fx * (u - h), v - h) + c */
    return cv::Matx23d(co * fx, -si, c.x - co * fx * h + si * h, si * fx, co,
                       c.y - si * fx * h - co * h);
}

cv::Point2f apply(const cv::Matx23d &m, float x, float y)
{
    return cv::Point2f((float)(m(0, 0) * x + m(0, 1) * y + m(0, 2)),
                       (float)(m(1, 0) * x + m(1, 1) * y + m(1, 2)));
}

/* Crops through m into a size x size RGB blob (NCHW) with values scale * pixel. warpAffine
 * works on pixel indices (centres at integers): shift the continuous map by half a pixel. */
cv::Mat crop_blob(const cv::Mat &img, const cv::Matx23d &m, int size, double scale, int border)
{
    cv::Matx23d w = m;
    w(0, 2) += 0.5 * (m(0, 0) + m(0, 1)) - 0.5;
    w(1, 2) += 0.5 * (m(1, 0) + m(1, 1)) - 0.5;
    cv::Mat crop;
    cv::warpAffine(img, crop, w, cv::Size(size, size), cv::INTER_LINEAR | cv::WARP_INVERSE_MAP,
                   border, cv::Scalar::all(0));
    return cv::dnn::blobFromImage(crop, scale, cv::Size(), cv::Scalar(), true, false, CV_32F);
}

float dist(cv::Point2f a, cv::Point2f b)
{
    return std::hypot(a.x - b.x, a.y - b.y);
}

/* The crop map of a detected face as MediaPipe makes it: the square of its box, scale times
 * larger, turned so that the detector's eye keypoints lie level. */
cv::Matx23d face_map(const struct vision_face *f, float scale, int size)
{
    float angle = std::atan2(f->keypoints[1][1] - f->keypoints[0][1],
                             f->keypoints[1][0] - f->keypoints[0][0]);
    cv::Point2f c(f->box.x + f->box.w / 2, f->box.y + f->box.h / 2);
    return crop_map(c, std::max(f->box.w, f->box.h) * scale, angle, size, false);
}

/* Runs FaceMesh on the face's rotated square; fills pts (image pixels) and the presence. */
void run_mesh(struct vision *v, const cv::Mat &img, const struct vision_face *f,
              std::vector<cv::Point2f> &pts, float *presence)
{
    cv::Matx23d m = face_map(f, FACE_ROI_SCALE, MESH_IN);
    v->net[M_MESH].setInput(crop_blob(img, m, MESH_IN, 1.0 / 255, cv::BORDER_CONSTANT));
    std::vector<cv::Mat> outs;
    v->net[M_MESH].forward(outs, std::vector<std::string>{"mesh", "presence"});
    CV_Assert(outs[0].total() == MESH_POINTS * 3 && outs[1].total() == 1);
    const float *p = outs[0].ptr<float>();
    pts.resize(MESH_POINTS);
    for (int i = 0; i < MESH_POINTS; i++)
        pts[i] = apply(m, p[3 * i], p[3 * i + 1]);
    *presence = outs[1].ptr<float>()[0];
}

/* The rotation that turns the camera's axis (0, 0, 1) onto the ray towards t. */
cv::Matx33d ray_rotation(const cv::Vec3d &t)
{
    cv::Vec3d z(0, 0, 1), d = t / std::max(cv::norm(t), 1e-9), axis = z.cross(d);
    double s = cv::norm(axis), c = z.dot(d);
    cv::Matx33d r = cv::Matx33d::eye();
    if (s > 1e-9)
        cv::Rodrigues(axis * (std::atan2(s, c) / s), r);
    return r;
}

/*
 * Yaw, pitch and roll (degrees, vision.h's signs) from solvePnP against the canonical face,
 * relative to the line of sight: a face looking straight at the camera is 0 wherever it sits
 * in the picture.
 */
bool head_pose(const struct vision *v, const cv::Mat &img, const std::vector<cv::Point2f> &pts,
               struct vision_face_detail *out)
{
    double fl = std::max(img.cols, img.rows);
    cv::Matx33d cam(fl, 0, img.cols / 2.0, 0, fl, img.rows / 2.0, 0, 0, 1);
    cv::Vec3d rvec, tvec;
    if (!cv::solvePnP(v->canon, pts, cam, cv::noArray(), rvec, tvec, false, cv::SOLVEPNP_SQPNP))
        return false;
    cv::Matx33d rot;
    cv::Rodrigues(rvec, rot);
    cv::Matx33d r = ray_rotation(tvec).t() * rot;
    /* The face looks along its -z (towards the camera); its x axis runs to the picture's right. */
    cv::Vec3d fwd(-r(0, 2), -r(1, 2), -r(2, 2)), right(r(0, 0), r(1, 0), r(2, 0));
    const double deg = 180.0 / M_PI;
    out->yaw = (float)(std::atan2(fwd[0], -fwd[2]) * deg);
    out->pitch = (float)(std::atan2(-fwd[1], std::hypot(fwd[0], fwd[2])) * deg);
    out->roll = (float)(std::atan2(right[1], right[0]) * deg);
    return true;
}

/* Eyelid or lip gap over the width between two corners. */
float opening(const std::vector<cv::Point2f> &p, const int gap[2], const int corner[2])
{
    float w = dist(p[corner[0]], p[corner[1]]);
    return w > 0 ? dist(p[gap[0]], p[gap[1]]) / w : 0;
}

/* Runs Iris on one eye; writes the iris centre's offset from the midpoint of the eye corners,
 * in half eye widths, along the eye (x) and across it (y, down), clamped to -1..1. */
bool run_iris(struct vision *v, const cv::Mat &img, const std::vector<cv::Point2f> &pts,
              const int corner[2], bool flip, float gaze[2])
{
    cv::Point2f a = pts[corner[0]], b = pts[corner[1]];
    float w = dist(a, b);
    if (w < MIN_EYE_PX)
        return false;
    cv::Point2f mid = (a + b) * 0.5f;
    cv::Matx23d m = crop_map(mid, w * EYE_ROI_SCALE, std::atan2(b.y - a.y, b.x - a.x), IRIS_IN,
                             flip);
    v->net[M_IRIS].setInput(crop_blob(img, m, IRIS_IN, 1.0 / 255, cv::BORDER_REPLICATE));
    cv::Mat out = v->net[M_IRIS].forward();
    CV_Assert(out.total() == (71 + 5) * 3);
    const float *o = out.ptr<float>() + 71 * 3; /* eye contour first, then 5 iris points */
    cv::Point2f d = apply(m, o[0], o[1]) - mid;
    cv::Point2f along((b.x - a.x) / w, (b.y - a.y) / w), down(-along.y, along.x);
    gaze[0] = std::max(-1.0f, std::min(1.0f, d.dot(along) / (w / 2)));
    gaze[1] = std::max(-1.0f, std::min(1.0f, d.dot(down) / (w / 2)));
    return true;
}

void mesh_box(const std::vector<cv::Point2f> &pts, struct vision_face_detail *out)
{
    cv::Rect2f r = cv::boundingRect(pts);
    out->box.x = r.x;
    out->box.y = r.y;
    out->box.w = r.width;
    out->box.h = r.height;
    out->nose[0] = pts[NOSE_TIP].x;
    out->nose[1] = pts[NOSE_TIP].y;
}

void eyes(struct vision *v, const cv::Mat &img, const std::vector<cv::Point2f> &pts,
          struct vision_face_detail *out)
{
    float gl[2], gr[2];
    /* The model knows the image-left eye; the other one is mirrored into that shape. */
    out->has_iris =
        run_iris(v, img, pts, EYE_L, false, gl) && run_iris(v, img, pts, EYE_R, true, gr);
    out->gaze_x = out->has_iris ? (gl[0] + gr[0]) / 2 : 0;
    out->gaze_y = out->has_iris ? (gl[1] + gr[1]) / 2 : 0;
    out->eye_open = (opening(pts, LID_L, EYE_L) + opening(pts, LID_R, EYE_R)) / 2;
    out->mouth_open = opening(pts, LIP_IN, LIP_CORNER);
}

/* Objects: the 3x3 peaks of CenterNet's heatmap, boxes from its (left, top, right, bottom). */
void object_candidates(const cv::Mat &heat, const cv::Mat &wh, float min_score, float sx,
                       float sy, std::vector<struct vision_object> &c)
{
    const int g = OBJ_GRID, plane = g * g;
    CV_Assert(heat.total() == (size_t)OBJ_CLASSES * plane && wh.total() == 4u * plane);
    const float *h = heat.ptr<float>(), *d = wh.ptr<float>();
    for (int k = 0; k < OBJ_CLASSES; k++) {
        const float *hk = h + (size_t)k * plane;
        for (int i = 0; i < plane; i++) {
            if (hk[i] < min_score)
                continue;
            int x = i % g, y = i / g;
            bool peak = true;
            for (int dy = -1; dy <= 1 && peak; dy++)
                for (int dx = -1; dx <= 1 && peak; dx++) {
                    int xx = x + dx, yy = y + dy;
                    if (xx >= 0 && yy >= 0 && xx < g && yy < g && hk[yy * g + xx] > hk[i])
                        peak = false;
                }
            if (!peak)
                continue;
            float cx = x * 4.0f, cy = y * 4.0f;
            float l = d[i], t = d[plane + i], r = d[2 * plane + i], b = d[3 * plane + i];
            struct vision_object o = {k, coco_labels[k], hk[i], {(cx - l) * sx, (cy - t) * sy,
                                                                 (l + r) * sx, (t + b) * sy}};
            c.push_back(o);
        }
    }
}

float box_iou(const struct vision_box &a, const struct vision_box &b)
{
    float ca[4] = {a.x + a.w / 2, a.y + a.h / 2, a.w, a.h};
    float cb[4] = {b.x + b.w / 2, b.y + b.h / 2, b.w, b.h};
    return iou(ca, cb);
}

std::vector<struct vision_object> object_suppress(std::vector<struct vision_object> c)
{
    std::sort(c.begin(), c.end(), [](const struct vision_object &a,
                                     const struct vision_object &b) { return a.score > b.score; });
    std::vector<struct vision_object> kept;
    for (const auto &o : c) {
        bool dup = false;
        for (const auto &k : kept)
            dup = dup || (k.class_id == o.class_id && box_iou(k.box, o.box) >= OBJ_NMS_IOU);
        if (!dup)
            kept.push_back(o);
    }
    return kept;
}

} // namespace

extern "C" {

struct vision *vision_new(const char *models_dir, int threads, char *detail, size_t detaillen)
{
    struct vision *v = nullptr;
    try {
        v = new vision();
        if (threads > 0)
            cv::setNumThreads(threads);
        std::string err = load_all(v, models_dir ? models_dir : "");
        if (!err.empty()) {
            set_detail(detail, detaillen, err);
            delete v;
            return NULL;
        }
        make_anchors(v);
        malloc_trim(0); /* hand back the parser's temporary memory: RSS counts it otherwise */
        v->face_outs = {"Identity:0", "Identity_1:0", "Identity_2:0", "Identity_3:0"};
        return v;
    } catch (const std::exception &e) {
        set_detail(detail, detaillen, std::string("loading models: ") + e.what());
        delete v;
        return NULL;
    } catch (...) {
        set_detail(detail, detaillen, "loading models: unknown exception");
        delete v;
        return NULL;
    }
}

void vision_free(struct vision *v)
{
    delete v;
}

int vision_detect_faces(struct vision *v, const struct vision_image *img, float min_score,
                        struct vision_face *out, int max)
{
    if (!v || !image_ok(img) || max < 0)
        return -1;
    try {
        cv::Mat blob;
        float scale = face_input(v, wrap(img), blob);
        v->net[M_FACE].setInput(blob);
        std::vector<cv::Mat> outs;
        v->net[M_FACE].forward(outs, v->face_outs);
        std::vector<cand> c;
        face_candidates(v, outs, min_score, c);
        std::vector<cand> kept = suppress(c);
        for (int i = 0; i < (int)kept.size() && i < max; i++)
            face_out(kept[i], scale, &out[i]);
        return (int)kept.size();
    } catch (...) { /* cv::Exception, std::bad_alloc: nothing may reach C */
        return -1;
    }
}

int vision_describe_face(struct vision *v, const struct vision_image *img,
                         const struct vision_face *face, struct vision_face_detail *out)
{
    if (!v || !image_ok(img) || !face || !out || face->box.w <= 0 || face->box.h <= 0)
        return -1;
    try {
        cv::Mat m = wrap(img);
        std::vector<cv::Point2f> pts;
        memset(out, 0, sizeof(*out));
        run_mesh(v, m, face, pts, &out->presence);
        if (!head_pose(v, m, pts, out))
            return -1;
        eyes(v, m, pts, out);
        mesh_box(pts, out);
        return 0;
    } catch (...) { /* cv::Exception, std::bad_alloc: nothing may reach C */
        return -1;
    }
}

int vision_detect_objects(struct vision *v, const struct vision_image *img, float min_score,
                          struct vision_object *out, int max)
{
    if (!v || !image_ok(img) || max < 0)
        return -1;
    try {
        cv::Mat blob = cv::dnn::blobFromImage(wrap(img), 1.0, cv::Size(OBJ_IN, OBJ_IN),
                                              cv::Scalar(), true, false, CV_32F);
        v->net[M_OBJECTS].setInput(blob);
        std::vector<cv::Mat> outs;
        v->net[M_OBJECTS].forward(outs, std::vector<std::string>{"heatmap", "wh"});
        std::vector<struct vision_object> c;
        object_candidates(outs[0], outs[1], std::max(min_score, 0.01f),
                          (float)img->width / OBJ_IN, (float)img->height / OBJ_IN, c);
        std::vector<struct vision_object> kept = object_suppress(c);
        for (int i = 0; i < (int)kept.size() && i < max; i++)
            out[i] = kept[i];
        return (int)kept.size();
    } catch (...) { /* cv::Exception, std::bad_alloc: nothing may reach C */
        return -1;
    }
}

int vision_face_embedding(struct vision *v, const struct vision_image *img,
                          const struct vision_face *face, float *out)
{
    if (!v || !image_ok(img) || !face || !out || face->box.w <= 0 || face->box.h <= 0)
        return -1;
    try {
        cv::Matx23d m = face_map(face, EMBED_ROI_SCALE, EMBED_IN);
        v->net[M_EMBED].setInput(crop_blob(wrap(img), m, EMBED_IN, 1.0, /* raw 0..255 */
                                           cv::BORDER_REPLICATE));
        cv::Mat e = v->net[M_EMBED].forward();
        if (e.total() != VISION_EMBED_DIM)
            return -1;
        double n = cv::norm(e);
        const float *p = e.ptr<float>();
        for (int i = 0; i < VISION_EMBED_DIM; i++)
            out[i] = n > 0 ? (float)(p[i] / n) : 0.0f;
        return 0;
    } catch (...) { /* cv::Exception, std::bad_alloc: nothing may reach C */
        return -1;
    }
}

float vision_embedding_similarity(const float *a, const float *b)
{
    double s = 0;
    for (int i = 0; i < VISION_EMBED_DIM; i++)
        s += (double)a[i] * b[i];
    return (float)std::max(-1.0, std::min(1.0, s));
}

const char *vision_models_manifest(const struct vision *v)
{
    return v ? v->manifest.c_str() : "";
}

} /* extern "C" */
