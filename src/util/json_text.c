/* JSON written as text, with strings escaped as Python's json.dumps (ensure_ascii) does. */
#include "util/json_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

void json_text_init(struct json_text *t, size_t cap)
{
    t->cap = cap ? cap : 64;
    t->p = xmalloc(t->cap);
    t->p[0] = '\0';
    t->n = 0;
}

void json_text_raw(struct json_text *t, const char *s, size_t len)
{
    if (t->n + len + 1 > t->cap) {
        t->cap = (t->n + len + 1) * 2;
        t->p = xrealloc(t->p, t->cap);
    }
    memcpy(t->p + t->n, s, len);
    t->n += len;
    t->p[t->n] = '\0';
}

void json_text_lit(struct json_text *t, const char *s) { json_text_raw(t, s, strlen(s)); }

static void put_u16(struct json_text *t, unsigned cp)
{
    char esc[8];
    snprintf(esc, sizeof(esc), "\\u%04x", cp);
    json_text_raw(t, esc, 6);
}

/* The code point of the UTF-8 sequence at s (n bytes left) and its length; 0 when invalid. */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned *cp)
{
    size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
    if (len == 0 || len > n || s[0] > 0xf4)
        return 0;
    unsigned v = s[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

bool json_text_string(struct json_text *t, const char *s)
{
    static const char short_esc[] = {['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r',
                                     ['\t'] = 't', ['"'] = '"', ['\\'] = '\\'};
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    json_text_raw(t, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t run = i; /* the longest run that needs no escape goes in one copy */
        while (run < n && u[run] >= 0x20 && u[run] < 0x7f && u[run] != '"' && u[run] != '\\')
            run++;
        json_text_raw(t, s + i, run - i);
        if ((i = run) == n)
            break;
        unsigned cp = u[i];
        size_t len = 1;
        if (cp < sizeof(short_esc) && short_esc[cp]) {
            char esc[2] = {'\\', short_esc[cp]};
            json_text_raw(t, esc, 2);
        } else if (cp < 0x80) {
            put_u16(t, cp);
        } else if ((len = utf8_decode(u + i, n - i, &cp)) == 0) {
            return false;
        } else if (cp >= 0x10000) {
            put_u16(t, 0xd800 + ((cp - 0x10000) >> 10));
            put_u16(t, 0xdc00 + ((cp - 0x10000) & 0x3ff));
        } else {
            put_u16(t, cp);
        }
        i += len;
    }
    json_text_raw(t, "\"", 1);
    return true;
}

bool json_text_member(struct json_text *t, const char *key, const char *s, bool first)
{
    if (!first)
        json_text_raw(t, ", ", 2);
    json_text_raw(t, "\"", 1);
    json_text_lit(t, key);
    json_text_raw(t, "\": ", 3);
    if (s)
        return json_text_string(t, s);
    json_text_raw(t, "null", 4);
    return true;
}

char *json_text_take(struct json_text *t)
{
    char *p = t->p;
    t->p = NULL;
    t->n = t->cap = 0;
    return p;
}

void json_text_cleanup(struct json_text *t)
{
    free(t->p);
    t->p = NULL;
    t->n = t->cap = 0;
}
