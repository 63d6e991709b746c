/* UUIDs: random version 4 ids, and the check that an id is canonical before it names a file. */
#ifndef IA_UTIL_UUID_H
#define IA_UTIL_UUID_H

#include <stdbool.h>
#include <stddef.h>

#define UUID_STR_LEN 36

/* Writes a random v4 UUID in lower-case canonical form into out (37 bytes with the NUL). */
void uuid_v4_new(char out[UUID_STR_LEN + 1]);
/* True for exactly 36 bytes of 8-4-4-4-12 lower- or upper-case hex with dashes. */
bool uuid_is_canonical(const char *s, size_t len);

#endif
