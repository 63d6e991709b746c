/*
 * Which addresses and ports the fetcher may connect to: public unicast addresses on ports 80, 443
 * and ALLOWED_PORTS, plus the networks listed in FETCH_ALLOW_CIDRS. No project dependencies.
 */
#ifndef IA_UTIL_NETPOLICY_H
#define IA_UTIL_NETPOLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct netpolicy;

/*
 * Builds a policy from FETCH_ALLOW_CIDRS ("127.0.0.2/32, ::1/128") and ALLOWED_PORTS
 * ("8080,8443"). Returns NULL with a message in err when either does not parse.
 */
struct netpolicy *netpolicy_new(const char *allow_cidrs, const char *allowed_ports, char *err,
                                size_t errlen);
void netpolicy_free(struct netpolicy *p);

/* True when a connection to this address (with its port) is allowed. */
bool netpolicy_allows_sockaddr(const struct netpolicy *p, const struct sockaddr *sa,
                               socklen_t salen);
/* True when the port is allowed (80, 443 or listed). */
bool netpolicy_allows_port(const struct netpolicy *p, unsigned port);
/* True when the policy lifts the address rule for some network (start-up warns loudly). */
bool netpolicy_has_exceptions(const struct netpolicy *p);

#endif
