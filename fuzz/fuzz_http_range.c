/*
 * libFuzzer target for http/range.c. The whole input is read as a Range header for files of
 * several sizes (empty to UINT64_MAX), as an HTTP date and as an If-Match / If-None-Match list;
 * then it is cut into request headers for http_file_decide. Every answer is checked against the
 * contracts in range.h; a crash or a broken contract aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint64_t file_sizes[] = {
    0, 1, 2, 7, 100, 1000, 1 << 20, (uint64_t)1 << 32, (uint64_t)INT64_MAX, UINT64_MAX,
};

/* Sun, 06 Nov 1994 08:49:37 GMT: the seeds' dates name it. */
#define FUZZ_MTIME ((time_t)784111777)

/* A range the parser returns must be non-empty and lie inside the file. */
static void check_inside(const struct http_byte_range *r, uint64_t fsize)
{
    if (r->len == 0 || r->start >= fsize || r->len > fsize - r->start)
        abort();
}

static void fuzz_range(const char *text, size_t len)
{
    for (size_t k = 0; k < sizeof(file_sizes) / sizeof(file_sizes[0]); k++) {
        struct http_byte_range r = {0, 0};
        enum http_range_kind kind = http_range_parse(text, len, file_sizes[k], &r);
        if (kind == HTTP_RANGE_SINGLE || kind == HTTP_RANGE_MULTI)
            check_inside(&r, file_sizes[k]);
        else if (kind != HTTP_RANGE_IGNORE && kind != HTTP_RANGE_UNSATISFIABLE)
            abort();
        if (len < 7 && kind != HTTP_RANGE_IGNORE)
            abort();
    }
}

/* A parsed date is not before 1970, and formatting it and parsing again gives it back. */
static void fuzz_date(const char *text, size_t len)
{
    time_t t;
    if (!http_date_parse(text, len, &t))
        return;
    if (t < 0)
        abort();
    char buf[HTTP_DATE_MAX], etag[HTTP_ETAG_MAX];
    http_date_format(t, buf);
    time_t again;
    if (!http_date_parse(buf, strlen(buf), &again) || again != t)
        abort();
    http_etag_format(t, (uint64_t)len, etag);
    if (etag[0] != '"' || etag[strlen(etag) - 1] != '"')
        abort();
}

/* A strong match is also a weak one: weak comparison only strips "W/" prefixes. */
static void fuzz_etag_list(const char *text, size_t len)
{
    char etag[HTTP_ETAG_MAX];
    http_etag_format(FUZZ_MTIME, 1000, etag);
    bool strong = http_etag_list_match(text, len, etag, false);
    bool weak = http_etag_list_match(text, len, etag, true);
    if (strong && !weak)
        abort();
    (void)http_etag_list_match(text, len, "W/\"1\"", true);
    (void)http_etag_list_match(text, len, "\"\"", false);
}

/*
 * Input: one control byte, then up to six header values separated by '\n'. Bit k of the control
 * byte says whether header k is present; the top two bits pick the file size.
 */
static void fuzz_decide(const char *text, size_t len)
{
    if (len == 0)
        return;
    unsigned ctl = (unsigned char)text[0];
    char *copy = malloc(len);
    if (len > 1)
        memcpy(copy, text + 1, len - 1);
    copy[len - 1] = '\0';
    const char *fields[6] = {NULL};
    char *p = copy;
    for (int k = 0; k < 6 && p; k++) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        fields[k] = (ctl >> k) & 1 ? p : NULL;
        p = nl ? nl + 1 : NULL;
    }
    static const uint64_t sizes[4] = {0, 1, 1000, (uint64_t)1 << 40};
    uint64_t fsize = sizes[ctl >> 6];
    struct http_file_conditions c = {fields[0], fields[1], fields[2],
                                     fields[3], fields[4], fields[5]};
    char etag[HTTP_ETAG_MAX];
    http_etag_format(FUZZ_MTIME, fsize, etag);
    struct http_file_plan plan;
    http_file_decide(&c, FUZZ_MTIME, fsize, etag, &plan);
    if (plan.status == 206)
        check_inside(&plan.range, fsize);
    else if (plan.status == 200 && (plan.range.start != 0 || plan.range.len != fsize))
        abort();
    else if (plan.status != 200 && plan.status != 304 && plan.status != 412 && plan.status != 416)
        abort();
    if (plan.status == 206 && !c.range)
        abort();
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy, so that ASan sees any read past the end of the value. */
    char *text = malloc(size ? size : 1);
    if (size)
        memcpy(text, data, size);
    fuzz_range(text, size);
    fuzz_date(text, size);
    fuzz_etag_list(text, size);
    fuzz_decide(text, size);
    free(text);
    return 0;
}
