/* Minimal, bounded reading of S3's XML answers. */
#include "store/s3_xml.h"

#include <string.h>

#include "core/alloc.h"
#include "store/s3_buf.h"

/* The first occurrence of needle (n bytes) in [p, end), or NULL. */
static const char *find(const char *p, const char *end, const char *needle, size_t n)
{
    if (n == 0 || (size_t)(end - p) < n)
        return NULL;
    return memmem(p, (size_t)(end - p), needle, n);
}

bool s3_xml_element(struct slice in, const char *tag, struct slice *content, struct slice *rest)
{
    const char *p = in.p, *end = in.p + in.len;
    size_t tl = strlen(tag);
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (!lt || (size_t)(end - lt) < tl + 2)
            return false;
        const char *after = lt + 1 + tl;
        if (memcmp(lt + 1, tag, tl) != 0 || (*after != '>' && *after != ' ' && *after != '/' &&
                                             *after != '\t' && *after != '\r' && *after != '\n')) {
            p = lt + 1;
            continue;
        }
        const char *gt = memchr(after, '>', (size_t)(end - after));
        if (!gt)
            return false;
        if (gt > after && gt[-1] == '/') {
            content->p = gt + 1;
            content->len = 0;
            rest->p = gt + 1;
            rest->len = (size_t)(end - gt - 1);
            return true;
        }
        const char *body = gt + 1;
        /* The closing tag: "</" tag ">". */
        const char *q = body;
        for (;;) {
            const char *close = find(q, end, "</", 2);
            if (!close || (size_t)(end - close) < tl + 3)
                return false;
            if (memcmp(close + 2, tag, tl) == 0 && close[2 + tl] == '>') {
                content->p = body;
                content->len = (size_t)(close - body);
                rest->p = close + 3 + tl;
                rest->len = (size_t)(end - rest->p);
                return true;
            }
            q = close + 2;
        }
    }
    return false;
}

/* Appends code point cp as UTF-8; false for one XML does not allow, or DEL (refused raw too). */
static bool add_utf8(struct s3_buf *b, unsigned long cp)
{
    char u[4];
    size_t n;
    if (cp == 0 || (cp < 0x20 && cp != 9 && cp != 10 && cp != 13) || cp == 0x7F || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return false;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return s3_buf_add(b, u, n);
}

/* Decodes the entity in [p, semi) (without '&' and ';'). */
static bool add_entity(struct s3_buf *b, const char *p, size_t n)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (n == strlen(named[i].name) && memcmp(p, named[i].name, n) == 0)
            return s3_buf_add(b, &named[i].c, 1);
    if (n < 2 || p[0] != '#')
        return false;
    bool hex = p[1] == 'x';
    size_t i = hex ? 2 : 1;
    if (i == n || n - i > 8)
        return false;
    unsigned long cp = 0;
    for (; i < n; i++) {
        int d = hex ? str_hex_value(p[i]) : (p[i] >= '0' && p[i] <= '9' ? p[i] - '0' : -1);
        if (d < 0)
            return false;
        cp = cp * (hex ? 16 : 10) + (unsigned long)d;
    }
    return add_utf8(b, cp);
}

char *s3_xml_text(struct slice text, size_t max)
{
    struct s3_buf b;
    s3_buf_init(&b, max);
    const char *p = text.p, *end = text.p + text.len;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '<' || c == 0 || (c < 0x20 && c != 9 && c != 10 && c != 13) || c == 0x7F)
            goto bad;
        if (c == '&') {
            const char *semi = memchr(p, ';', (size_t)(end - p) < 12 ? (size_t)(end - p) : 12);
            if (!semi || !add_entity(&b, p + 1, (size_t)(semi - p - 1)))
                goto bad;
            p = semi + 1;
            continue;
        }
        if (!s3_buf_add(&b, p, 1))
            goto bad;
        p++;
    }
    return s3_buf_take(&b);
bad:
    s3_buf_cleanup(&b);
    return NULL;
}

char *s3_xml_get(struct slice in, const char *tag, size_t max)
{
    struct slice content, rest;
    if (!s3_xml_element(in, tag, &content, &rest))
        return NULL;
    return s3_xml_text(content, max);
}

char *s3_xml_escape(const char *s)
{
    struct s3_buf b;
    s3_buf_init(&b, strlen(s) * 6 + 1);
    for (; *s; s++) {
        switch (*s) {
        case '&':
            s3_buf_adds(&b, "&amp;");
            break;
        case '<':
            s3_buf_adds(&b, "&lt;");
            break;
        case '>':
            s3_buf_adds(&b, "&gt;");
            break;
        case '"':
            s3_buf_adds(&b, "&quot;");
            break;
        case '\'':
            s3_buf_adds(&b, "&apos;");
            break;
        default:
            s3_buf_add(&b, s, 1);
        }
    }
    return s3_buf_take(&b);
}
