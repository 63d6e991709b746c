/*
 * libFuzzer target for http/head.c: the input is a request head as a client sends it. The parser
 * must not crash or leak, what it accepts must hold what internal.h promises, and the quick
 * check (http_head_may_have_body) must never say "no body" for a head the parser gives a body.
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
    if (ok) {
        if (!h.method || !h.target || !h.target[0] || h.content_length < 0)
            abort();
        if (!h.body_possible && (h.chunked || h.content_length))
            abort();
        if ((h.chunked || h.content_length > 0) && !http_head_may_have_body(p, size))
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
