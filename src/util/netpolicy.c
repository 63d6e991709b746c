/*
 * Address and port policy for outgoing fetches: a classifier of socket addresses built from the
 * IANA special-purpose registries, and the FETCH_ALLOW_CIDRS / ALLOWED_PORTS exceptions. It reads
 * no host text: the fetcher checks the address curl connects to. Only libc; allocation failure
 * aborts.
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

/*
 * Parses the address part of a CIDR into c->net with inet_pton, which reads IPv4 as a strict
 * dotted quad and IPv6 without brackets or scope; *max is 32 for IPv4, 128 for IPv6.
 */
static bool parse_cidr_addr(const char *s, size_t len, struct cidr *c, unsigned *max)
{
    char text[TOKEN_MAX + 1];
    if (len > TOKEN_MAX)
        return false;
    memcpy(text, s, len);
    text[len] = '\0';
    if (memchr(s, ':', len)) {
        *max = 128;
        return inet_pton(AF_INET6, text, c->net) == 1;
    }
    *max = 32;
    memcpy(c->net, embeds_v4[0], 12);
    return inet_pton(AF_INET, text, c->net + 12) == 1;
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
