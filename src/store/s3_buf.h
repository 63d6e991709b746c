/*
 * A growing text buffer with a maximum size (curl's dynbuf), for the S3 module's requests and
 * responses. Past the maximum, appends are dropped and the buffer remembers it overflowed.
 */
#ifndef IA_STORE_S3_BUF_H
#define IA_STORE_S3_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct s3_buf {
    char *p; /* always terminated once anything was added; NULL before */
    size_t len;
    size_t cap;
    size_t max;    /* most bytes it may hold (not counting the terminator) */
    bool overflow; /* an append went past max */
};

void s3_buf_init(struct s3_buf *b, size_t max);
void s3_buf_cleanup(struct s3_buf *b);
/* Appends n bytes; false (and nothing appended) past the maximum. */
bool s3_buf_add(struct s3_buf *b, const void *data, size_t n);
bool s3_buf_adds(struct s3_buf *b, const char *s);
bool s3_buf_addf(struct s3_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the text to the caller ("" when empty) and resets the buffer. */
char *s3_buf_take(struct s3_buf *b);

#endif
