/* Hashes and MACs for the project, over OpenSSL's libcrypto (the only includer). */
#ifndef IA_UTIL_CRYPTO_H
#define IA_UTIL_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

void crypto_sha256(const void *data, size_t len, unsigned char out[SHA256_LEN]);
void crypto_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len,
                        unsigned char out[SHA256_LEN]);
/*
 * SHA-256 of a file, read once, as 64 lower-case hex digits; *bytes gets its size (may be NULL).
 * False on an open or read error (errno set).
 */
bool crypto_sha256_file(const char *path, uint64_t *bytes, char hex[2 * SHA256_LEN + 1]);
/*
 * SHA-256 of len bytes of fd from offset off, read with pread in 64 KiB blocks (bounded memory,
 * the file position untouched). -1 with errno on a read error or a file shorter than off+len.
 */
int crypto_sha256_fd(int fd, unsigned long long off, unsigned long long len,
                     unsigned char out[SHA256_LEN]);
/* Compares n bytes in time that does not depend on where they differ. */
bool crypto_equal(const void *a, const void *b, size_t n);
/* Compares two strings of any lengths without revealing where or whether lengths differ. */
bool crypto_str_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
