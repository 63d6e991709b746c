/*
 * Address and port policy for outgoing fetches: a textual host parser that reads numeric hosts
 * the way glibc's resolver does, a classifier built from the IANA special-purpose registries,
 * and the FETCH_ALLOW_CIDRS / ALLOWED_PORTS exceptions. Only libc; allocation failure aborts.
 */
#include "util/netpolicy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/str.h"

enum {
    TOKEN_MAX = 64, /* longest FETCH_ALLOW_CIDRS or ALLOWED_PORTS entry */
    SCOPE_MAX = 15, /* IF_NAMESIZE - 1 */
    PORT_DIGITS_MAX = 5,
};

/* A network; IPv4 networks are stored IPv4-mapped (::ffff:a.b.c.d/96+N). */
struct cidr {
    uint8_t net[16];
    unsigned len;
};

struct netpolicy {
    size_t ncidrs;
    struct cidr cidrs[NETPOLICY_MAX_CIDRS];
    uint8_t ports[65536 / 8]; /* bitmap */
};

/* A refused range: net holds the first len bits (IPv4 ranges use the first 4 bytes). */
struct range {
    uint8_t net[16];
    unsigned len;
    const char *why;
};

/* IANA IPv4 special-purpose registry plus multicast; the first match names the reason. */
static const struct range refused_v4[] = {
    {{0, 0, 0, 0}, 32, "unspecified"},
    {{0}, 8, "this-network"},
    {{10}, 8, "private"},
    {{100, 64}, 10, "shared-cgnat"},
    {{127}, 8, "loopback"},
    {{169, 254}, 16, "link-local"},
    {{172, 16}, 12, "private"},
    {{192, 0, 0}, 24, "ietf-protocol"},
    {{192, 0, 2}, 24, "documentation"},
    {{192, 88, 99}, 24, "6to4-relay"},
    {{192, 168}, 16, "private"},
    {{198, 18}, 15, "benchmarking"},
    {{198, 51, 100}, 24, "documentation"},
    {{203, 0, 113}, 24, "documentation"},
    {{224}, 4, "multicast"},
    {{255, 255, 255, 255}, 32, "broadcast"},
    {{240}, 4, "reserved"},
};

/* IANA IPv6 special-purpose and address-space registries; checked after embedded IPv4 forms. */
static const struct range refused_v6[] = {
    {{0}, 128, "unspecified"},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "loopback"},
    {{0}, 96, "ipv4-compatible"},
    {{0, 0x64, 0xff, 0x9b, 0, 1}, 48, "nat64-local"},
    {{1, 0}, 64, "discard"},
    {{0x20, 0x01, 0, 0}, 32, "teredo"},
    {{0x20, 0x01, 0, 2, 0, 0}, 48, "benchmarking"},
    {{0x20, 0x01, 0, 0x20}, 28, "orchid"},
    {{0x20, 0x01, 0}, 23, "ietf-protocol"},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation"},
    {{0x20, 0x02}, 16, "6to4"},
    {{0x3f, 0xff}, 20, "documentation"},
    {{0xfc}, 7, "unique-local"},
    {{0xfe, 0x80}, 10, "link-local"},
    {{0xfe, 0xc0}, 10, "site-local"},
    {{0xff}, 8, "multicast"},
};

/* 96-bit prefixes whose last 32 bits are an IPv4 address classified by the IPv4 rules. */
static const uint8_t embeds_v4[][12] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff},    /* ::ffff:0:0/96 IPv4-mapped */
    {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0}, /* 64:ff9b::/96 NAT64 */
    {0, 0x64, 0xff, 0x9b, 0, 1, 0, 0, 0, 0, 0, 0}, /* 64:ff9b:1::/96 local NAT64 */
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* ---- IPv4 text ---- */

/* Reads one inet_aton part at s[*i]: decimal, 0-prefixed octal or 0x-prefixed hex, <= 2^32-1. */
static bool aton_part(const char *s, size_t len, size_t *i, uint32_t *out)
{
    size_t p = *i;
    unsigned base = 10;
    uint64_t v = 0;
    if (p >= len || !is_digit(s[p]))
        return false;
    if (s[p] == '0') {
        base = 8;
        if (p + 1 < len && (s[p + 1] == 'x' || s[p + 1] == 'X')) {
            base = 16;
            p += 2;
            if (p >= len || str_hex_value(s[p]) < 0)
                return false; /* strtoul reads "0", leaving "x" as trailing junk */
        }
    }
    for (; p < len; p++) {
        int d = str_hex_value(s[p]);
        if (d < 0 || (unsigned)d >= base)
            break;
        v = v * base + (unsigned)d;
        if (v > 0xffffffffu)
            return false;
    }
    *i = p;
    *out = (uint32_t)v;
    return true;
}

/* Parses all of s[0..len) as glibc's inet_aton_exact (getaddrinfo) does; host byte order out. */
static bool parse_ipv4_aton(const char *s, size_t len, uint32_t *out)
{
    static const uint32_t max_last[4] = {0xffffffffu, 0xffffffu, 0xffffu, 0xffu};
    uint32_t addr = 0, v;
    size_t n = 0, i = 0;
    for (;;) {
        if (!aton_part(s, len, &i, &v))
            return false;
        if (i == len)
            break;
        if (s[i] != '.' || n == 3 || v > 0xff)
            return false;
        addr |= v << (24 - 8 * n);
        n++;
        i++;
    }
    if (v > max_last[n])
        return false;
    *out = addr | v;
    return true;
}

/* Parses all of s[0..len) as inet_pton(AF_INET): four decimal octets, no leading zeros. */
static bool parse_ipv4_strict(const char *s, size_t len, uint8_t out[4])
{
    uint8_t tmp[4];
    size_t i = 0;
    for (size_t n = 0; n < 4; n++) {
        size_t start = i;
        unsigned v = 0;
        while (i < len && is_digit(s[i]) && i - start < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
            return false;
        tmp[n] = (uint8_t)v;
        if (n < 3) {
            if (i >= len || s[i] != '.')
                return false;
            i++;
        }
    }
    if (i != len)
        return false;
    memcpy(out, tmp, 4);
    return true;
}

/* ---- IPv6 text ---- */

static size_t hex_run(const char *s, size_t len, size_t i)
{
    size_t start = i;
    while (i < len && str_hex_value(s[i]) >= 0)
        i++;
    return i - start;
}

/* Expands "::" (at byte gap, or none when gap < 0) once n bytes were read. */
static bool ipv6_finish(uint8_t buf[16], size_t n, long gap, uint8_t out[16])
{
    if (gap < 0) {
        if (n != 16)
            return false;
    } else {
        if (n == 16)
            return false; /* "::" must stand for at least one group */
        size_t tail = n - (size_t)gap;
        memmove(buf + 16 - tail, buf + gap, tail);
        memset(buf + gap, 0, 16 - tail - (size_t)gap);
    }
    memcpy(out, buf, 16);
    return true;
}

/* Parses all of s[0..len) as inet_pton(AF_INET6), dotted IPv4 tail included. */
static bool parse_ipv6(const char *s, size_t len, uint8_t out[16])
{
    uint8_t buf[16] = {0};
    size_t n = 0, i = 0;
    long gap = -1;
    if (len >= 2 && s[0] == ':' && s[1] == ':') {
        gap = 0;
        i = 2;
    }
    while (i < len) {
        size_t d = hex_run(s, len, i);
        if (i + d < len && s[i + d] == '.') {
            if (n + 4 > 16 || !parse_ipv4_strict(s + i, len - i, buf + n))
                return false;
            n += 4;
            break;
        }
        if (d == 0 || d > 4 || n + 2 > 16)
            return false;
        unsigned v = 0;
        for (size_t k = 0; k < d; k++)
            v = v * 16 + (unsigned)str_hex_value(s[i + k]);
        buf[n++] = (uint8_t)(v >> 8);
        buf[n++] = (uint8_t)v;
        i += d;
        if (i == len)
            break;
        if (s[i++] != ':' || i == len)
            return false;
        if (s[i] == ':') {
            if (gap >= 0)
                return false;
            gap = (long)n;
            i++;
        }
    }
    return ipv6_finish(buf, n, gap, out);
}

/* ---- host text ---- */

/* Checks a zone id: 1..15 of [A-Za-z0-9._-]; *id is its number when all digits, else 0. */
static bool parse_scope(const char *s, size_t len, uint32_t *id)
{
    bool numeric = true;
    uint64_t v = 0;
    if (len == 0 || len > SCOPE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alpha && !is_digit(c) && c != '.' && c != '_' && c != '-')
            return false;
        numeric = numeric && is_digit(c);
        if (numeric)
            v = v * 10 + (unsigned)(c - '0');
    }
    if (numeric && v > UINT32_MAX)
        return false;
    *id = numeric ? (uint32_t)v : 0;
    return true;
}

/* IPv6 with an optional %scope into out (when not NULL). */
static bool parse_host_ipv6(const char *s, size_t len, struct sockaddr_storage *out)
{
    const char *pct = memchr(s, '%', len);
    size_t alen = pct ? (size_t)(pct - s) : len;
    uint32_t scope = 0;
    uint8_t a[16];
    if (pct && !parse_scope(pct + 1, len - alen - 1, &scope))
        return false;
    if (!parse_ipv6(s, alen, a))
        return false;
    if (out) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, a, 16);
        sin6->sin6_scope_id = scope;
    }
    return true;
}

/* WHATWG "ends in a number": all decimal digits, or 0x/0X and hex digits (maybe none). */
static bool is_number_label(const char *s, size_t len)
{
    size_t i = 0;
    if (len == 0)
        return false;
    if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        for (i = 2; i < len; i++)
            if (str_hex_value(s[i]) < 0)
                return false;
        return true;
    }
    for (; i < len; i++)
        if (!is_digit(s[i]))
            return false;
    return true;
}

/* True when some parser would read a host that is not exact inet_aton text as IPv4. */
static bool looks_numeric_v4(const char *s, size_t len)
{
    size_t ws = 0, end = len, start;
    uint32_t v;
    while (ws < len && !is_space(s[ws]))
        ws++;
    if (ws < len && parse_ipv4_aton(s, ws, &v))
        return true;
    if (end > 1 && s[end - 1] == '.')
        end--;
    for (start = end; start > 0 && s[start - 1] != '.'; start--)
        ;
    return is_number_label(s + start, end - start);
}

int netaddr_parse_host(const char *host, struct sockaddr_storage *out)
{
    size_t len;
    uint32_t v4;
    if (out)
        memset(out, 0, sizeof(*out));
    if (!host || (len = strlen(host)) == 0)
        return -1;
    if (host[0] == '[') {
        if (len < 2 || host[len - 1] != ']')
            return -1;
        return parse_host_ipv6(host + 1, len - 2, out) ? 1 : -1;
    }
    if (memchr(host, ':', len))
        return parse_host_ipv6(host, len, out) ? 1 : -1;
    if (parse_ipv4_aton(host, len, &v4)) {
        if (out) {
            struct sockaddr_in *sin = (struct sockaddr_in *)out;
            sin->sin_family = AF_INET;
            sin->sin_addr.s_addr = htonl(v4);
        }
        return 1;
    }
    return looks_numeric_v4(host, len) ? -1 : 0;
}

/* ---- classification ---- */

static bool prefix_match(const uint8_t *a, const uint8_t *net, unsigned len)
{
    unsigned full = len / 8, rest = len % 8;
    if (memcmp(a, net, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

static const char *match_ranges(const struct range *r, size_t n, const uint8_t *a)
{
    for (size_t i = 0; i < n; i++)
        if (prefix_match(a, r[i].net, r[i].len))
            return r[i].why;
    return NULL;
}

/* Reason an IPv6 (or IPv4-mapped) address is not a public unicast address, or NULL. */
static const char *classify(const uint8_t a[16])
{
    for (size_t i = 0; i < COUNT(embeds_v4); i++)
        if (memcmp(a, embeds_v4[i], 12) == 0)
            return match_ranges(refused_v4, COUNT(refused_v4), a + 12);
    const char *why = match_ranges(refused_v6, COUNT(refused_v6), a);
    if (why)
        return why;
    if ((a[0] & 0xe0) != 0x20)
        return "not-global-unicast";
    return NULL;
}

/* Reads family, address (IPv4 as ::ffff:a.b.c.d) and port of a socket address. */
static bool sockaddr_read(const struct sockaddr *sa, socklen_t salen, uint8_t a[16], unsigned *port)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof(sin));
        memcpy(a, embeds_v4[0], 12);
        memcpy(a + 12, &sin.sin_addr, 4);
        *port = ntohs(sin.sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6 && salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof(sin6));
        memcpy(a, &sin6.sin6_addr, 16);
        *port = ntohs(sin6.sin6_port);
        return true;
    }
    return false;
}

static bool allow_listed(const struct netpolicy *p, const uint8_t a[16])
{
    for (size_t i = 0; p && i < p->ncidrs; i++)
        if (prefix_match(a, p->cidrs[i].net, p->cidrs[i].len))
            return true;
    return false;
}

const char *netpolicy_refusal(const struct netpolicy *p, const struct sockaddr *sa, socklen_t salen)
{
    uint8_t a[16];
    unsigned port;
    if (!sockaddr_read(sa, salen, a, &port))
        return "family";
    if (!netpolicy_allows_port(p, port))
        return "port";
    if (allow_listed(p, a))
        return NULL;
    return classify(a);
}

bool netpolicy_allows_sockaddr(const struct netpolicy *p, const struct sockaddr *sa,
                               socklen_t salen)
{
    return netpolicy_refusal(p, sa, salen) == NULL;
}

bool netpolicy_allows_port(const struct netpolicy *p, unsigned port)
{
    if (port == 80 || port == 443)
        return true;
    if (!p || port == 0 || port > 65535)
        return false;
    return (p->ports[port / 8] >> (port % 8)) & 1;
}

bool netpolicy_has_exceptions(const struct netpolicy *p) { return p && p->ncidrs > 0; }

/* ---- configuration lists ---- */

/* Next entry of a comma/whitespace separated list, from *pos; false at the end. */
static bool next_token(const char *s, size_t *pos, struct slice *tok)
{
    size_t i = *pos;
    while (s[i] && (s[i] == ',' || is_space(s[i])))
        i++;
    if (!s[i])
        return false;
    tok->p = s + i;
    while (s[i] && s[i] != ',' && !is_space(s[i]))
        i++;
    tok->len = (size_t)(s + i - tok->p);
    *pos = i;
    return true;
}

/* Writes "VAR: "token" why" into err, with the token cut short and non-printables as '?'. */
static void set_err(char *err, size_t errlen, const char *var, struct slice tok, const char *why)
{
    char shown[41];
    size_t n = tok.len < 40 ? tok.len : 37;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)tok.p[i];
        shown[i] = c >= 0x20 && c < 0x7f && c != '"' ? (char)c : '?';
    }
    if (n < tok.len) {
        memcpy(shown + n, "...", 3);
        n += 3;
    }
    shown[n] = '\0';
    if (err && errlen)
        snprintf(err, errlen, "%s: \"%s\" %s", var, shown, why);
}

/* 1 to 5 decimal digits in 1..65535. */
static bool parse_port(struct slice t, unsigned *out)
{
    unsigned v = 0;
    if (t.len == 0 || t.len > PORT_DIGITS_MAX)
        return false;
    for (size_t i = 0; i < t.len; i++) {
        if (!is_digit(t.p[i]))
            return false;
        v = v * 10 + (unsigned)(t.p[i] - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *out = v;
    return true;
}

static bool parse_ports(struct netpolicy *p, const char *list, char *err, size_t errlen)
{
    size_t pos = 0;
    struct slice tok;
    unsigned port;
    while (list && next_token(list, &pos, &tok)) {
        if (!parse_port(tok, &port)) {
            set_err(err, errlen, "ALLOWED_PORTS", tok, "is not a port number (1-65535)");
            return false;
        }
        p->ports[port / 8] |= (uint8_t)(1u << (port % 8));
    }
    return true;
}

/* 1 to 3 decimal digits, at most max. */
static bool parse_prefix_len(const char *s, size_t len, unsigned max, unsigned *out)
{
    unsigned v = 0;
    if (len == 0 || len > 3)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

/* Parses the address part of a CIDR into c->net; *max is 32 for IPv4, 128 for IPv6. */
static bool parse_cidr_addr(const char *s, size_t len, struct cidr *c, unsigned *max)
{
    if (memchr(s, ':', len)) {
        *max = 128;
        return parse_ipv6(s, len, c->net);
    }
    *max = 32;
    memcpy(c->net, embeds_v4[0], 12);
    return parse_ipv4_strict(s, len, c->net + 12);
}

static bool host_bits_clear(const uint8_t a[16], unsigned len)
{
    for (unsigned bit = len; bit < 128; bit++)
        if (a[bit / 8] & (0x80 >> (bit % 8)))
            return false;
    return true;
}

/* Explains a CIDR with host bits set, naming the network it most likely meant. */
static void host_bits_err(const struct cidr *c, unsigned max, struct slice tok, char *err,
                          size_t errlen)
{
    uint8_t net[16];
    char text[INET6_ADDRSTRLEN], why[128];
    memcpy(net, c->net, sizeof(net));
    for (unsigned bit = c->len; bit < 128; bit++)
        net[bit / 8] &= (uint8_t) ~(0x80 >> (bit % 8));
    if (max == 32)
        inet_ntop(AF_INET, net + 12, text, sizeof(text));
    else
        inet_ntop(AF_INET6, net, text, sizeof(text));
    snprintf(why, sizeof(why), "has host bits set (the network is %s/%u)", text,
             c->len - (128 - max));
    set_err(err, errlen, "FETCH_ALLOW_CIDRS", tok, why);
}

/* Parses one "address[/len]" entry; on failure writes the reason into err. */
static bool parse_cidr(struct slice tok, struct cidr *c, char *err, size_t errlen)
{
    const char *slash = memchr(tok.p, '/', tok.len);
    size_t alen = slash ? (size_t)(slash - tok.p) : tok.len;
    unsigned max, len;
    if (tok.len > TOKEN_MAX || !parse_cidr_addr(tok.p, alen, c, &max)) {
        set_err(err, errlen, "FETCH_ALLOW_CIDRS", tok,
                "is not an IPv4 or IPv6 address with an optional /prefix-length");
        return false;
    }
    len = max;
    if (slash && !parse_prefix_len(slash + 1, tok.len - alen - 1, max, &len)) {
        set_err(err, errlen, "FETCH_ALLOW_CIDRS", tok,
                max == 32 ? "has a bad prefix length (0-32)" : "has a bad prefix length (0-128)");
        return false;
    }
    c->len = len + (128 - max);
    if (!host_bits_clear(c->net, c->len)) {
        host_bits_err(c, max, tok, err, errlen);
        return false;
    }
    return true;
}

static bool parse_cidrs(struct netpolicy *p, const char *list, char *err, size_t errlen)
{
    size_t pos = 0;
    struct slice tok;
    while (list && next_token(list, &pos, &tok)) {
        if (p->ncidrs == NETPOLICY_MAX_CIDRS) {
            set_err(err, errlen, "FETCH_ALLOW_CIDRS", tok,
                    "is one entry too many (at most " STRINGIFY(NETPOLICY_MAX_CIDRS) " networks)");
            return false;
        }
        if (!parse_cidr(tok, &p->cidrs[p->ncidrs], err, errlen))
            return false;
        p->ncidrs++;
    }
    return true;
}

struct netpolicy *netpolicy_new(const char *allow_cidrs, const char *allowed_ports, char *err,
                                size_t errlen)
{
    struct netpolicy *p = calloc(1, sizeof(*p));
    if (!p)
        abort();
    if (err && errlen)
        err[0] = '\0';
    if (!parse_cidrs(p, allow_cidrs, err, errlen) || !parse_ports(p, allowed_ports, err, errlen)) {
        free(p);
        return NULL;
    }
    return p;
}

void netpolicy_free(struct netpolicy *p) { free(p); }
