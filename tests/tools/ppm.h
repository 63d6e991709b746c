/*
 * Images for the vision tests and tools: binary PPM (P6) into packed BGR, and any picture ffmpeg
 * reads (JPEG, PNG...) through a PPM pipe. Keeps OpenCV's image codecs out of the library.
 */
#ifndef IA_TESTS_TOOLS_PPM_H
#define IA_TESTS_TOOLS_PPM_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/vision.h"

#define PPM_MAX_SIDE 16384

/* Skips blanks and '#' comments, then reads one header number; returns it or -1. */
static inline int ppm_number(FILE *f)
{
    int c, n = -1;
    while ((c = fgetc(f)) != EOF) {
        if (c == '#')
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
        else if (c < '0' || c > '9') {
            if (n >= 0)
                return n;
        } else if (n < 100000)
            n = (n < 0 ? 0 : n * 10) + (c - '0');
    }
    return n;
}

/* Reads one P6 image (maxval 255) from f into packed BGR; 0, or -1 when it is not one. */
static inline int ppm_read(FILE *f, struct vision_image *out)
{
    if (fgetc(f) != 'P' || fgetc(f) != '6')
        return -1;
    int w = ppm_number(f), h = ppm_number(f), maxval = ppm_number(f);
    if (w < 1 || h < 1 || w > PPM_MAX_SIDE || h > PPM_MAX_SIDE || maxval != 255)
        return -1;
    size_t len = (size_t)w * h * 3;
    uint8_t *buf = malloc(len);
    if (!buf || fread(buf, 1, len, f) != len) {
        free(buf);
        return -1;
    }
    for (size_t i = 0; i < len; i += 3) { /* RGB to BGR */
        uint8_t r = buf[i];
        buf[i] = buf[i + 2];
        buf[i + 2] = r;
    }
    *out = (struct vision_image){buf, w, h, (size_t)w * 3};
    return 0;
}

static inline int ppm_load(const char *path, struct vision_image *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    int rc = ppm_read(f, out);
    fclose(f);
    return rc;
}

/* Decodes any picture ffmpeg reads; path must not contain a single quote. */
static inline int image_load_ffmpeg(const char *path, struct vision_image *out)
{
    char cmd[1024];
    if (strchr(path, '\'') ||
        snprintf(cmd, sizeof(cmd),
                 "ffmpeg -nostdin -v error -i '%s' -frames:v 1 -f image2pipe -c:v ppm "
                 "-pix_fmt rgb24 -",
                 path) >= (int)sizeof(cmd))
        return -1;
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    int rc = ppm_read(p, out);
    return pclose(p) == 0 ? rc : -1;
}

static inline void ppm_free(struct vision_image *img)
{
    free((void *)(uintptr_t)img->bgr);
    img->bgr = NULL;
}

#endif
