/* The S3 module's bounded text buffer. */
#include "store/s3_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

void s3_buf_init(struct s3_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

void s3_buf_cleanup(struct s3_buf *b)
{
    free(b->p);
    s3_buf_init(b, b->max);
}

bool s3_buf_add(struct s3_buf *b, const void *data, size_t n)
{
    if (n > b->max - b->len) {
        b->overflow = true;
        return false;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

bool s3_buf_adds(struct s3_buf *b, const char *s) { return s3_buf_add(b, s, strlen(s)); }

bool s3_buf_addf(struct s3_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    bool ok = s3_buf_add(b, s, (size_t)n);
    free(s);
    return ok;
}

char *s3_buf_take(struct s3_buf *b)
{
    char *p = b->p ? b->p : xstrdup("");
    b->p = NULL;
    s3_buf_cleanup(b);
    return p;
}
