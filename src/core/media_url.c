/* Public media URLs, signed when SIGNING_KEY is set (see media_url.h). */
#include "core/media_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/config.h"
#include "util/crypto.h"
#include "util/str.h"

void media_url_sign(const char *key, const char *path, long long expires, char *out)
{
    char *msg = xasprintf("%s\n%lld", path, expires);
    unsigned char mac[SHA256_LEN];
    crypto_hmac_sha256(key, strlen(key), msg, strlen(msg), mac);
    free(msg);
    str_hex(out, mac, SHA256_LEN);
}

char *media_url_public(const struct config *cfg, const char *prefix, const char *id,
                       const char *suffix)
{
    char *path = xasprintf("%s%s%s", prefix, id, suffix);
    char *url;
    if (!cfg->signing_key[0]) {
        url = xasprintf("%s%s", cfg->public_base_url, path);
    } else {
        long long expires = (long long)time(NULL) + cfg->signed_url_ttl_s;
        char sig[2 * SHA256_LEN + 1];
        media_url_sign(cfg->signing_key, path, expires, sig);
        url = xasprintf("%s%s?expires=%lld&sig=%s", cfg->public_base_url, path, expires, sig);
    }
    free(path);
    return url;
}
