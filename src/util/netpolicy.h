/*
 * Which addresses and ports the fetcher may connect to: public unicast addresses on ports 80, 443
 * and ALLOWED_PORTS, plus the networks listed in FETCH_ALLOW_CIDRS. No project dependencies.
 *
 * The policy judges socket addresses, never host text: curl resolves the URL's host (numeric
 * spellings such as "0x7f.1" or "[::ffff:127.0.0.1]" included) and media/fetch.c asks
 * netpolicy_allows_sockaddr about each address curl is about to connect to, so every spelling of
 * a host meets the same rules. The only text read here is the two configuration lists.
 *
 * Address rules (source of truth: the IANA IPv4/IPv6 special-purpose address registries, the
 * multicast registries and the IPv6 address space registry). Refused:
 *   IPv4: 0/8 (0.0.0.0 "unspecified", rest "this-network"), 10/8, 172.16/12, 192.168/16
 *     ("private"), 100.64/10 ("shared-cgnat"), 127/8 ("loopback"), 169.254/16 ("link-local"),
 *     192.0.0/24 ("ietf-protocol", whole block, including its anycast /32s), 192.0.2/24,
 *     198.51.100/24, 203.0.113/24 ("documentation"), 192.88.99/24 ("6to4-relay"), 198.18/15
 *     ("benchmarking"), 224/4 ("multicast"), 255.255.255.255 ("broadcast"), 240/4 ("reserved").
 *   IPv6: only 2000::/3 (global unicast) is allowed natively; everything else is refused
 *     ("not-global-unicast" unless named below). Named refusals: :: ("unspecified"), ::1
 *     ("loopback"), the rest of ::/96 ("ipv4-compatible": deprecated, refused outright, the
 *     stricter choice), 100::/64 ("discard"), 2001::/32 ("teredo"), 2001:2::/48 ("benchmarking"),
 *     2001:20::/28 ("orchid"), the rest of 2001::/23 ("ietf-protocol", whole block),
 *     2001:db8::/32 and 3fff::/20 ("documentation"), 2002::/16 ("6to4", refused outright rather
 *     than classifying the embedded IPv4), fc00::/7 ("unique-local"), fe80::/10 ("link-local"),
 *     fec0::/10 ("site-local"), ff00::/8 ("multicast").
 *   Embedded IPv4, classified by the IPv4 rules: ::ffff:0:0/96 (IPv4-mapped), 64:ff9b::/96
 *     (NAT64), and 64:ff9b:1::/96 only; the rest of 64:ff9b:1::/48 is refused ("nat64-local")
 *     because its prefix length is a local choice and the embedded bits are ambiguous.
 *
 * Exceptions: an address inside a FETCH_ALLOW_CIDRS network skips the address rules (never the
 * port rule). IPv4 addresses and networks are compared in their IPv4-mapped IPv6 form, so
 * ::ffff:127.0.0.2 matches 127.0.0.2/32, and an IPv6 network that covers ::ffff:0:0/96 (such as
 * ::/0) covers IPv4 too. NAT64 and IPv4-compatible forms do NOT match IPv4 entries.
 */
#ifndef IA_UTIL_NETPOLICY_H
#define IA_UTIL_NETPOLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct netpolicy;

/* Most networks FETCH_ALLOW_CIDRS may list. */
#define NETPOLICY_MAX_CIDRS 64

/*
 * Builds a policy from FETCH_ALLOW_CIDRS ("127.0.0.2/32, ::1/128") and ALLOWED_PORTS
 * ("8080,8443"). Returns NULL with a message in err when either does not parse.
 * Both lists are separated by commas and/or ASCII whitespace; NULL or empty means none.
 * A CIDR is an address as inet_pton reads it (IPv4: a strict dotted quad, four decimal octets
 * without leading zeros; IPv6 when it contains ':', without brackets or scope), optionally
 * followed by /N (0..32 or 0..128); a bare address means /32 or /128.
 * An entry with bits set beyond its prefix ("10.0.0.1/8") is rejected, not masked, because it
 * is most likely a typo for a single host. A port is 1 to 5 decimal digits in 1..65535.
 * Error messages start with the variable's name; err may be NULL when errlen is 0.
 * Allocation failure aborts.
 */
struct netpolicy *netpolicy_new(const char *allow_cidrs, const char *allowed_ports, char *err,
                                size_t errlen);
void netpolicy_free(struct netpolicy *p);

/* True when a connection to this address (with its port) is allowed. p may be NULL (defaults). */
bool netpolicy_allows_sockaddr(const struct netpolicy *p, const struct sockaddr *sa,
                               socklen_t salen);
/*
 * Why a connection to sa is refused: NULL when it is allowed, else a static string: "family"
 * (not AF_INET/AF_INET6, NULL or short salen), "port", or an address reason listed above.
 * p may be NULL (no exceptions, ports 80 and 443 only).
 */
const char *netpolicy_refusal(const struct netpolicy *p, const struct sockaddr *sa,
                              socklen_t salen);
/* True when the port is allowed (80, 443 or listed). p may be NULL. */
bool netpolicy_allows_port(const struct netpolicy *p, unsigned port);
/* True when the policy lifts the address rule for some network (start-up warns loudly). */
bool netpolicy_has_exceptions(const struct netpolicy *p);

#endif
