/* String helpers with no project dependencies: slices and checked number parsing. */
#ifndef IA_UTIL_STR_H
#define IA_UTIL_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A borrowed run of bytes, not necessarily terminated. */
struct slice {
    const char *p;
    size_t len;
};

/* Parses all of [p, p+len) as a base-10 integer in [min, max]; false on anything else. */
bool str_to_ll(const char *p, size_t len, long long min, long long max, long long *out);
/* Parses all of [p, p+len) as unsigned decimal digits only (no sign, no space); false on overflow. */
bool str_to_u64(const char *p, size_t len, uint64_t *out);
/* ASCII case-insensitive equality of a slice and a C string. */
bool slice_eq_nocase(struct slice s, const char *lit);
/* The value of an ASCII hex digit, or -1. */
int str_hex_value(char c);
/* Hex-encodes len bytes into out, which holds 2*len+1 bytes. */
void str_hex(char *out, const unsigned char *in, size_t len);

#endif
