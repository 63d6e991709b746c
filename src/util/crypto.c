/* SHA-256, HMAC-SHA256 and constant-time comparison on libcrypto. */
#include "util/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "util/str.h"

void crypto_sha256(const void *data, size_t len, unsigned char out[SHA256_LEN])
{
    unsigned int n = SHA256_LEN;
    if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL))
        abort();
}

bool crypto_sha256_file(const char *path, uint64_t *bytes, char hex[2 * SHA256_LEN + 1])
{
    hex[0] = '\0';
    if (bytes)
        *bytes = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    unsigned char digest[SHA256_LEN];
    bool ok = fstat(fd, &st) == 0 &&
              crypto_sha256_fd(fd, 0, (unsigned long long)st.st_size, digest) == 0;
    if (ok) {
        str_hex(hex, digest, SHA256_LEN);
        if (bytes)
            *bytes = (uint64_t)st.st_size;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return ok;
}

void crypto_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len,
                        unsigned char out[SHA256_LEN])
{
    unsigned int n = SHA256_LEN;
    if (!HMAC(EVP_sha256(), key, (int)keylen, msg, len, out, &n))
        abort();
}

int crypto_sha256_fd(int fd, unsigned long long off, unsigned long long len,
                     unsigned char out[SHA256_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
        abort();
    static const size_t block = 65536;
    unsigned char *buf = malloc(block);
    if (!buf)
        abort();
    int rc = 0;
    while (len > 0) {
        size_t want = len < block ? (size_t)len : block;
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            rc = -1;
            break;
        }
        EVP_DigestUpdate(md, buf, (size_t)n);
        off += (unsigned long long)n;
        len -= (unsigned long long)n;
    }
    unsigned int dlen = SHA256_LEN;
    if (!rc)
        EVP_DigestFinal_ex(md, out, &dlen);
    free(buf);
    EVP_MD_CTX_free(md);
    return rc;
}

bool crypto_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

bool crypto_str_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char ha[SHA256_LEN], hb[SHA256_LEN];
    crypto_sha256(a, alen, ha);
    crypto_sha256(b, blen, hb);
    return crypto_equal(ha, hb, SHA256_LEN);
}
