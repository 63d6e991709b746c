/*
 * libFuzzer target for store/s3_xml.c, the reader of S3's answers (hostile input). The input
 * is read as a ListObjectsV2 page the way s3_ops.c reads it; every decoded text must be
 * terminated, within its bound, and free of NUL and markup; escaping then decoding gives it back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/s3_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(char *t, size_t max)
{
    if (!t)
        return;
    size_t n = strlen(t);
    if (n > max || strchr(t, '\x01'))
        abort();
    char *e = s3_xml_escape(t);
    char *back = s3_xml_text((struct slice){e, strlen(e)}, 6 * n + 1);
    if (!back || strcmp(back, t) != 0)
        abort();
    free(e);
    free(back);
    free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct slice in = {(const char *)data, size}, c, rest;
    unsigned guard = 0;
    while (s3_xml_element(in, "Contents", &c, &rest)) {
        if (rest.p < in.p || rest.p + rest.len != in.p + in.len || c.p < in.p ||
            c.p + c.len > in.p + in.len || ++guard > size + 1)
            abort();
        check_text(s3_xml_get(c, "Key", 1024), 1024);
        check_text(s3_xml_get(c, "Size", 24), 24);
        check_text(s3_xml_get(c, "ETag", 128), 128);
        in = rest;
    }
    struct slice all = {(const char *)data, size};
    check_text(s3_xml_get(all, "NextContinuationToken", 4096), 4096);
    check_text(s3_xml_get(all, "Code", 64), 64);
    check_text(s3_xml_get(all, "UploadId", 1024), 1024);
    return 0;
}
