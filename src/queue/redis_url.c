/* redis:// URL parsing: user info with percent-decoding, bracketed IPv6 hosts, port and db. */
#include "queue/redis_url.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util/str.h"

static enum ia_err bad(char *err, size_t errlen, const char *why)
{
    if (err && errlen)
        snprintf(err, errlen, "redis URL: %s", why);
    return IA_ERR_INVALID;
}

/* Percent-decodes [p, p+len) into out (cap bytes with the NUL); false if bad or too long. */
static bool pct_decode(const char *p, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c == '%') {
            int hi = i + 2 < len ? str_hex_value(p[i + 1]) : -1;
            int lo = hi >= 0 ? str_hex_value(p[i + 2]) : -1;
            if (lo < 0)
                return false;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

/* Splits "user:password" (either part may be empty) into out. */
static enum ia_err parse_userinfo(struct slice ui, struct redis_url *out, char *err, size_t errlen)
{
    const char *colon = memchr(ui.p, ':', ui.len);
    if (!colon)
        return bad(err, errlen, "user info needs ':' before the password");
    size_t ulen = (size_t)(colon - ui.p);
    if (!pct_decode(ui.p, ulen, out->user, sizeof(out->user)) ||
        !pct_decode(colon + 1, ui.len - ulen - 1, out->password, sizeof(out->password)))
        return bad(err, errlen, "user or password is badly encoded or too long");
    return IA_OK;
}

/* Parses "host", "host:port", "[v6]" or "[v6]:port". */
static enum ia_err parse_hostport(struct slice hp, struct redis_url *out, char *err, size_t errlen)
{
    const char *host = hp.p, *end = hp.p + hp.len, *port = NULL;
    size_t hlen;
    if (hp.len > 0 && hp.p[0] == '[') {
        const char *close = memchr(hp.p, ']', hp.len);
        if (!close)
            return bad(err, errlen, "unclosed '[' in host");
        host = hp.p + 1;
        hlen = (size_t)(close - host);
        if (close + 1 < end && close[1] != ':')
            return bad(err, errlen, "unexpected text after ']'");
        port = close + 1 < end ? close + 2 : NULL;
    } else {
        const char *colon = memchr(hp.p, ':', hp.len);
        hlen = colon ? (size_t)(colon - hp.p) : hp.len;
        port = colon ? colon + 1 : NULL;
    }
    if (hlen == 0 || hlen >= sizeof(out->host))
        return bad(err, errlen, "host is empty or too long");
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    long long v = 6379;
    if (port && !str_to_ll(port, (size_t)(end - port), 1, 65535, &v))
        return bad(err, errlen, "port is not a number from 1 to 65535");
    out->port = (int)v;
    return IA_OK;
}

enum ia_err redis_url_parse(const char *url, struct redis_url *out, char *err, size_t errlen)
{
    static const char scheme[] = "redis://";
    memset(out, 0, sizeof(*out));
    if (!url || strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return bad(err, errlen, "expected redis://[:password@]host[:port][/db]");
    const char *auth = url + sizeof(scheme) - 1;
    if (strpbrk(auth, "?#"))
        return bad(err, errlen, "query strings and fragments are not supported");
    const char *slash = strchr(auth, '/');
    size_t alen = slash ? (size_t)(slash - auth) : strlen(auth);
    const char *at = NULL;
    for (const char *p = auth; p < auth + alen; p++)
        at = *p == '@' ? p : at; /* the last '@': passwords may contain an unencoded '@' */
    enum ia_err rc = IA_OK;
    if (at)
        rc = parse_userinfo((struct slice){auth, (size_t)(at - auth)}, out, err, errlen);
    const char *hp = at ? at + 1 : auth;
    if (!rc)
        rc = parse_hostport((struct slice){hp, (size_t)(auth + alen - hp)}, out, err, errlen);
    long long db = 0;
    if (!rc && slash && slash[1] && !str_to_ll(slash + 1, strlen(slash + 1), 0, 1000000, &db))
        rc = bad(err, errlen, "db is not a number");
    out->db = (int)db;
    if (rc)
        memset(out, 0, sizeof(*out)); /* no password left behind in a half-filled struct */
    return rc;
}
