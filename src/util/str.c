/* Slices and checked number parsing. */
#include "util/str.h"

#include <strings.h>

bool str_to_u64(const char *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool str_to_ll(const char *p, size_t len, long long min, long long max, long long *out)
{
    bool neg = len > 0 && p[0] == '-';
    uint64_t mag;
    if (!str_to_u64(p + neg, len - neg, &mag))
        return false;
    long long v;
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1)
            return false;
        v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(long long)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX)
            return false;
        v = (long long)mag;
    }
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool slice_eq_nocase(struct slice s, const char *lit)
{
    size_t n = 0;
    while (lit[n])
        n++;
    return n == s.len && strncasecmp(s.p, lit, n) == 0;
}

int str_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void str_hex(char *out, const unsigned char *in, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}
