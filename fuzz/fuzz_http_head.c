/*
 * libFuzzer target for http/head.c: the input is a request head as a client sends it. The parser
 * must not crash or leak, what it accepts must hold what internal.h promises, and the quick
 * look (http_head_body) must never say "no body" for a head the parser gives a body, nor a length
 * other than the parser's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    struct http_head h;
    struct evkeyvalq headers;
    TAILQ_INIT(&headers);
    bool ok = http_head_parse(p, size, &h, &headers);
    uint64_t length = 0;
    enum http_head_body body = http_head_body(p, size, &length);
    if (ok) {
        if (!h.method || !h.target || !h.target[0] || h.content_length < 0)
            abort();
        if (!h.body_possible && (h.chunked || h.content_length))
            abort();
        if ((h.chunked || h.content_length > 0) && body == HTTP_HEAD_BODY_NONE)
            abort();
        if (h.body_possible && body == HTTP_HEAD_BODY_LENGTH &&
            (h.chunked || (uint64_t)h.content_length != length))
            abort();
        const struct evkeyval *kv;
        TAILQ_FOREACH(kv, &headers, next)
        if (!kv->key[0] || strchr(kv->key, ':') || strchr(kv->value, '\n'))
            abort();
    }
    http_head_cleanup(&h);
    evhttp_clear_headers(&headers);
    return 0;
}
