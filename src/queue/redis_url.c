/*
 * redis:// URL parsing: user info with percent-decoding, bracketed IPv6 hosts, port and db; and
 * kombu's sentinel:// lists, each entry parsed the same way.
 */
#include "queue/redis_url.h"

#include <stdio.h>
#include <string.h>

#include "util/str.h"

/* Keeps the reason (a string literal, never user input) for the caller to word. */
static enum ia_err bad(const char **why, const char *reason)
{
    *why = reason;
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
static enum ia_err parse_userinfo(struct slice ui, struct redis_url *out, const char **why)
{
    const char *colon = memchr(ui.p, ':', ui.len);
    if (!colon)
        return bad(why, "user info needs ':' before the password");
    size_t ulen = (size_t)(colon - ui.p);
    if (!pct_decode(ui.p, ulen, out->user, sizeof(out->user)) ||
        !pct_decode(colon + 1, ui.len - ulen - 1, out->password, sizeof(out->password)))
        return bad(why, "user or password is badly encoded or too long");
    return IA_OK;
}

/* Parses "host", "host:port", "[v6]" or "[v6]:port"; default_port when no port is given. */
static enum ia_err parse_hostport(struct slice hp, int default_port, struct redis_url *out,
                                  const char **why)
{
    const char *host = hp.p, *end = hp.p + hp.len, *port = NULL;
    size_t hlen;
    if (hp.len > 0 && hp.p[0] == '[') {
        const char *close = memchr(hp.p, ']', hp.len);
        if (!close)
            return bad(why, "unclosed '[' in host");
        host = hp.p + 1;
        hlen = (size_t)(close - host);
        if (close + 1 < end && close[1] != ':')
            return bad(why, "unexpected text after ']'");
        port = close + 1 < end ? close + 2 : NULL;
    } else {
        const char *colon = memchr(hp.p, ':', hp.len);
        hlen = colon ? (size_t)(colon - hp.p) : hp.len;
        port = colon ? colon + 1 : NULL;
    }
    if (hlen == 0 || hlen >= sizeof(out->host))
        return bad(why, "host is empty or too long");
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    long long v = default_port;
    if (port && !str_to_ll(port, (size_t)(end - port), 1, 65535, &v))
        return bad(why, "port is not a number from 1 to 65535");
    out->port = (int)v;
    return IA_OK;
}

/* Parses what follows the scheme (NUL-terminated) into out; the reason in *why on failure. */
static enum ia_err parse_after_scheme(const char *auth, int default_port, struct redis_url *out,
                                      const char **why)
{
    memset(out, 0, sizeof(*out));
    if (strpbrk(auth, "?#"))
        return bad(why, "query strings and fragments are not supported");
    const char *slash = strchr(auth, '/');
    size_t alen = slash ? (size_t)(slash - auth) : strlen(auth);
    const char *at = NULL;
    for (const char *p = auth; p < auth + alen; p++)
        at = *p == '@' ? p : at; /* the last '@': passwords may contain an unencoded '@' */
    enum ia_err rc = IA_OK;
    if (at)
        rc = parse_userinfo((struct slice){auth, (size_t)(at - auth)}, out, why);
    const char *hp = at ? at + 1 : auth;
    if (!rc)
        rc = parse_hostport((struct slice){hp, (size_t)(auth + alen - hp)}, default_port, out, why);
    long long db = 0;
    if (!rc && slash && slash[1] && !str_to_ll(slash + 1, strlen(slash + 1), 0, 1000000, &db))
        rc = bad(why, "db is not a number");
    out->db = (int)db;
    if (rc)
        memset(out, 0, sizeof(*out)); /* no password left behind in a half-filled struct */
    return rc;
}

enum ia_err redis_url_parse(const char *url, struct redis_url *out, char *err, size_t errlen)
{
    static const char scheme[] = "redis://";
    const char *why = "expected redis://[:password@]host[:port][/db]";
    enum ia_err rc = IA_ERR_INVALID;
    memset(out, 0, sizeof(*out));
    if (url && strncmp(url, scheme, sizeof(scheme) - 1) == 0)
        rc = parse_after_scheme(url + sizeof(scheme) - 1, 6379, out, &why);
    if (rc && err && errlen)
        snprintf(err, errlen, "redis URL: %s", why);
    return rc;
}

static const char sentinel_scheme[] = "sentinel://";

bool redis_url_is_sentinel(const char *url)
{
    return url && strncmp(url, sentinel_scheme, sizeof(sentinel_scheme) - 1) == 0;
}

/* True when a later entry u names no user, password or db (db 0) but those of the first. */
static bool same_master(const struct redis_url *u, const struct redis_url *first)
{
    return (!u->user[0] || strcmp(u->user, first->user) == 0) &&
           (!u->password[0] || strcmp(u->password, first->password) == 0) &&
           (!u->db || u->db == first->db);
}

/* Parses one entry [p, p+len) of a sentinel list into *u (the reason in *why). */
static enum ia_err parse_sentinel_entry(const char *p, size_t len, struct redis_url *u,
                                        const char **why)
{
    char buf[1024];
    size_t skip = sizeof(sentinel_scheme) - 1;
    if (len == 0)
        return bad(why, "empty entry (two ';' in a row, or one at the end)");
    if (len < skip || memcmp(p, sentinel_scheme, skip) != 0)
        return bad(why, "expected sentinel://[:password@]host[:port][/db]");
    if (len - skip >= sizeof(buf))
        return bad(why, "entry too long");
    memcpy(buf, p + skip, len - skip);
    buf[len - skip] = '\0';
    enum ia_err rc = parse_after_scheme(buf, 26379, u, why);
    memset(buf, 0, sizeof(buf)); /* the password, if any */
    return rc;
}

enum ia_err redis_sentinel_url_parse(const char *url, struct redis_sentinel_url *out, char *err,
                                     size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *why = "expected sentinel://[:password@]host[:port][/db], entries joined by ';'";
    enum ia_err rc = redis_url_is_sentinel(url) ? IA_OK : IA_ERR_INVALID;
    const char *p = url;
    int n = 0;
    while (!rc) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        struct redis_url u;
        n++;
        if (n > REDIS_SENTINELS_MAX)
            rc = bad(&why, "more than 16 sentinels");
        else
            rc = parse_sentinel_entry(p, len, &u, &why);
        if (!rc && n == 1)
            out->master = u;
        else if (!rc && !same_master(&u, &out->master))
            rc = bad(&why, "user, password and db must be those of the first entry, or none");
        if (!rc) {
            memcpy(out->sentinel[n - 1].host, u.host, sizeof(u.host));
            out->sentinel[n - 1].port = u.port;
            out->count = n;
        }
        memset(&u, 0, sizeof(u));
        if (!semi)
            break;
        p = semi + 1;
    }
    out->master.host[0] = '\0';
    out->master.port = 0;
    if (rc) {
        memset(out, 0, sizeof(*out));
        if (err && errlen && n > 0)
            snprintf(err, errlen, "sentinel URL: entry %d: %s", n, why);
        else if (err && errlen)
            snprintf(err, errlen, "sentinel URL: %s", why);
    }
    return rc;
}
