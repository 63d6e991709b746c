/*
 * Drawing for the review rendition and evidence frames, on OpenCV's imgproc; JPEGs through
 * libturbojpeg (OpenCV's imgcodecs would map ~38 MiB of image libraries into the worker).
 */
#include <opencv2/imgproc.hpp>

#include <cstdio>
#include <turbojpeg.h>

#include "analysis/vision_module.h"

static cv::Mat wrap(const struct render_frame *f)
{
    return cv::Mat(f->height, f->width, CV_8UC3, f->bgr, f->stride);
}

static cv::Scalar bgr(uint32_t rgb)
{
    return cv::Scalar(rgb & 0xFF, (rgb >> 8) & 0xFF, (rgb >> 16) & 0xFF);
}

extern "C" void render_text(const struct render_frame *f, int x, int y, float scale, uint32_t color,
                            const char *text)
{
    try {
        cv::Mat m = wrap(f);
        int base = 0;
        double fs = 0.45 * scale;
        cv::Size sz = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, fs, 1, &base);
        cv::Rect back(x, y, sz.width + 6, sz.height + base + 4);
        back &= cv::Rect(0, 0, m.cols, m.rows);
        if (back.area() > 0)
            m(back) *= 0.35;
        cv::putText(m, text, cv::Point(x + 3, y + sz.height + 2), cv::FONT_HERSHEY_SIMPLEX, fs,
                    bgr(color), 1, cv::LINE_AA);
    } catch (const cv::Exception &) {
    }
}

extern "C" void render_box(const struct render_frame *f, const struct vision_box *b, uint32_t color,
                           const char *label)
{
    try {
        cv::Mat m = wrap(f);
        cv::rectangle(m, cv::Rect2f(b->x, b->y, b->w, b->h), bgr(color), 2);
        if (label)
            render_text(f, (int)b->x, (int)b->y - 18 < 0 ? 0 : (int)b->y - 18, 0.8f, color, label);
    } catch (const cv::Exception &) {
    }
}

extern "C" void render_arrow(const struct render_frame *f, float x0, float y0, float x1, float y1,
                             uint32_t color)
{
    try {
        cv::Mat m = wrap(f);
        cv::arrowedLine(m, cv::Point2f(x0, y0), cv::Point2f(x1, y1), bgr(color), 2, cv::LINE_AA, 0,
                        0.2);
    } catch (const cv::Exception &) {
    }
}

extern "C" void render_dot(const struct render_frame *f, float x, float y, uint32_t color)
{
    try {
        cv::Mat m = wrap(f);
        cv::circle(m, cv::Point2f(x, y), 4, bgr(color), cv::FILLED, cv::LINE_AA);
    } catch (const cv::Exception &) {
    }
}

extern "C" void render_bar(const struct render_frame *f, int x, int y, int w, int h, float value,
                           uint32_t color)
{
    try {
        cv::Mat m = wrap(f);
        float v = value < 0 ? 0 : value > 1 ? 1 : value;
        cv::rectangle(m, cv::Rect(x, y, w, h), cv::Scalar(40, 40, 40), cv::FILLED);
        cv::rectangle(m, cv::Rect(x, y, (int)(w * v), h), bgr(color), cv::FILLED);
        cv::rectangle(m, cv::Rect(x, y, w, h), cv::Scalar(230, 230, 230), 1);
    } catch (const cv::Exception &) {
    }
}

static int write_all(const char *path, const unsigned char *data, unsigned long len)
{
    FILE *f = std::fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = std::fwrite(data, 1, len, f);
    return std::fclose(f) == 0 && n == len ? 0 : -1;
}

extern "C" int render_write_jpeg(const struct render_frame *f, const char *path, int quality)
{
    tjhandle tj = tjInitCompress();
    if (!tj)
        return -1;
    unsigned char *jpeg = nullptr;
    unsigned long len = 0;
    int rc = tjCompress2(tj, f->bgr, f->width, (int)f->stride, f->height, TJPF_BGR, &jpeg, &len,
                         TJSAMP_420, quality, TJFLAG_FASTDCT);
    if (rc == 0)
        rc = write_all(path, jpeg, len);
    tjFree(jpeg);
    tjDestroy(tj);
    return rc == 0 ? 0 : -1;
}

/* The module's one export: the table vision_loader.c calls through (vision_module.h). */
extern "C" __attribute__((visibility("default"))) const struct vision_ops *
ia_vision_module_ops(void)
{
    static const struct vision_ops table = {
        VISION_MODULE_ABI,
        vision_new,
        vision_free,
        vision_detect_faces,
        vision_describe_face,
        vision_detect_objects,
        vision_face_embedding,
        vision_embedding_similarity,
        vision_models_manifest,
        render_box,
        render_arrow,
        render_dot,
        render_text,
        render_bar,
        render_write_jpeg,
        vad_new,
        vad_feed,
        vad_take,
        vad_free,
    };
    return &table;
}
