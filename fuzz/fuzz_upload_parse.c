/*
 * libFuzzer target for the direct-upload parsers (api/upload_parse.c). The input is three header
 * lines (a Content-Type, an Upload-Metadata value, an Upload-Offset value) and then a body. A
 * number must round-trip; a found multipart file part must lie inside the body, with terminated
 * names; the analysis flag is off only when the metadata (or the word "false") says so.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Copies the next line (up to '\n') into a fresh terminated string and advances. */
static char *next_line(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    char *line = malloc(n + 1);
    memcpy(line, *p, n);
    line[n] = '\0';
    *p = nl ? nl + 1 : end;
    return line;
}

static void check_number(const char *text)
{
    uint64_t v;
    if (!upload_parse_u64(text, &v))
        return;
    char back[32];
    snprintf(back, sizeof(back), "%" PRIu64, v);
    const char *digits = text;
    while (digits[0] == '0' && digits[1])
        digits++;
    if (strcmp(back, digits) != 0)
        abort();
}

static void check_multipart(const char *content_type, const unsigned char *body, size_t len)
{
    char boundary[128];
    if (!upload_multipart_boundary(content_type, boundary, sizeof(boundary)))
        return;
    if (strlen(boundary) == 0 || strlen(boundary) > 70)
        abort();
    struct upload_file_part part;
    memset(&part, 0x55, sizeof(part));
    if (upload_multipart_parse(body, len, boundary, &part) != NULL)
        return;
    if (part.offset > len || part.length > len - part.offset)
        abort();
    if (!memchr(part.filename, '\0', sizeof(part.filename)) ||
        !memchr(part.content_type, '\0', sizeof(part.content_type)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char *content_type = next_line(&p, end);
    char *metadata = next_line(&p, end);
    char *offset = next_line(&p, end);
    size_t len = (size_t)(end - p);
    unsigned char *body = malloc(len ? len : 1);
    memcpy(body, p, len);
    bool off = true;
    if (upload_metadata_valid(metadata) && upload_metadata_analysis(metadata, &off) && off &&
        !strstr(metadata, "analysis"))
        abort(); /* the analysis is off only when the metadata says so */
    if (upload_parse_flag(offset, &off) && strcmp(offset, off ? "false" : "true") != 0)
        abort();
    char *callback = NULL;
    if (upload_metadata_valid(metadata) && upload_metadata_callback(metadata, &callback) &&
        callback &&
        (callback[0] == '\0' || strlen(callback) > 2048 || !strstr(metadata, "callback_url")))
        abort(); /* a callback URL is 1 to 2048 bytes, named by its key */
    free(callback);
    check_number(offset);
    check_multipart(content_type, body, len);
    free(body);
    free(offset);
    free(metadata);
    free(content_type);
    return 0;
}
