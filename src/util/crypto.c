/* SHA-256, HMAC-SHA256 and constant-time comparison on libcrypto. */
#include "util/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>

void crypto_sha256(const void *data, size_t len, unsigned char out[SHA256_LEN])
{
    unsigned int n = SHA256_LEN;
    if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL))
        abort();
}

void crypto_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len,
                        unsigned char out[SHA256_LEN])
{
    unsigned int n = SHA256_LEN;
    if (!HMAC(EVP_sha256(), key, (int)keylen, msg, len, out, &n))
        abort();
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
