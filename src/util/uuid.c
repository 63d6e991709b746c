/* UUID generation from the kernel's random source, and canonical-form checks. */
#include "util/uuid.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "util/os.h"
#include "util/str.h"

/*
 * Random bytes from a per-thread buffer filled by getrandom 256 bytes at a time (one system call
 * per 16 ids, not one per id). The buffer belongs to the process that filled it: a forked child
 * never reuses its parent's bytes.
 */
static void random_bytes(uint8_t *out, size_t n)
{
    static _Thread_local uint8_t pool[256];
    static _Thread_local size_t left;
    static _Thread_local pid_t owner;
    pid_t pid = os_pid();
    if (owner != pid)
        left = 0;
    if (left < n) {
        size_t got = 0;
        while (got < sizeof(pool)) {
            ssize_t r = getrandom(pool + got, sizeof(pool) - got, 0);
            if (r < 0)
                abort(); /* getrandom on Linux only fails for bad arguments */
            got += (size_t)r;
        }
        left = sizeof(pool);
        owner = pid;
    }
    memcpy(out, pool + sizeof(pool) - left, n);
    explicit_bzero(pool + sizeof(pool) - left, n); /* used bytes do not stay in memory */
    left -= n;
}

void uuid_v4_new(char out[UUID_STR_LEN + 1])
{
    uint8_t b[16];
    random_bytes(b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    /* 8-4-4-4-12 hex digits */
    static const size_t groups[] = {4, 2, 2, 2, 6};
    size_t in = 0;
    char *o = out;
    for (size_t g = 0; g < 5; g++) {
        if (g)
            *o++ = '-';
        str_hex(o, b + in, groups[g]);
        o += 2 * groups[g];
        in += groups[g];
    }
    *o = '\0';
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool uuid_is_canonical(const char *s, size_t len)
{
    if (len != UUID_STR_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i]))
            return false;
    }
    return true;
}
