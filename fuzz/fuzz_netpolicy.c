/*
 * libFuzzer target for util/netpolicy.c. The whole input is read as a FETCH_ALLOW_CIDRS list and
 * as an ALLOWED_PORTS list by netpolicy_new. When it is long enough, it is also read as a socket
 * address followed by a policy: byte 0 picks the family (even: AF_INET, odd: AF_INET6), the next
 * 4 or 16 bytes are the address and 2 bytes the port (network order); the rest is
 * "cidrs[|ports]". The policy must then answer consistently on that address (check_sockaddr),
 * and a policy listing that address alone must allow it (check_listed). The policy never reads host
 * text (curl resolves it), so addresses are built from raw bytes. Any crash or broken check aborts.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/netpolicy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every reason netpolicy.h documents, each between spaces; a refusal outside it is a bug. */
static const char reasons[] =
    " family port unspecified this-network private shared-cgnat loopback link-local"
    " ietf-protocol documentation 6to4-relay benchmarking multicast broadcast reserved"
    " not-global-unicast ipv4-compatible discard teredo orchid 6to4 unique-local site-local"
    " nat64-local ";

static void check_reason(const char *why)
{
    char word[32];
    if (!why)
        return;
    size_t n = strlen(why);
    if (n + 3 > sizeof(word))
        abort();
    word[0] = ' ';
    memcpy(word + 1, why, n);
    word[n + 1] = ' ';
    word[n + 2] = '\0';
    if (!strstr(reasons, word))
        abort();
}

/* Builds the socket address the header of the input describes; false when the input is short. */
static bool read_sockaddr(const uint8_t *data, size_t size, struct sockaddr_storage *ss,
                          socklen_t *len, size_t *used)
{
    memset(ss, 0, sizeof(*ss));
    if (size < 1)
        return false;
    if (data[0] % 2 == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        if (size < 1 + 4 + 2)
            return false;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, data + 1, 4);
        memcpy(&sin->sin_port, data + 5, 2);
        *len = sizeof(*sin);
        *used = 7;
        return true;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (size < 1 + 16 + 2)
        return false;
    sin6->sin6_family = AF_INET6;
    memcpy(&sin6->sin6_addr, data + 1, 16);
    memcpy(&sin6->sin6_port, data + 17, 2);
    *len = sizeof(*sin6);
    *used = 19;
    return true;
}

/* The IPv4-mapped IPv6 form of an IPv4 address, with the same port. */
static void map_v4(const struct sockaddr_in *sin, struct sockaddr_in6 *sin6)
{
    memset(sin6, 0, sizeof(*sin6));
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = sin->sin_port;
    sin6->sin6_addr.s6_addr[10] = 0xff;
    sin6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&sin6->sin6_addr.s6_addr[12], &sin->sin_addr, 4);
}

/*
 * The policy's answers on one address agree with each other and with its documented rules:
 * refusal and allows agree, reasons are documented ones, the port rule comes first, exceptions
 * only widen the defaults, an IPv4 address is judged as its IPv4-mapped form, a short length is
 * "family".
 */
static void check_sockaddr(const struct netpolicy *p, const struct sockaddr_storage *ss,
                           socklen_t len)
{
    const struct sockaddr *sa = (const struct sockaddr *)ss;
    unsigned port = ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
                                             : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    const char *why = netpolicy_refusal(p, sa, len);
    const char *why_default = netpolicy_refusal(NULL, sa, len);
    check_reason(why);
    check_reason(why_default);
    if ((why == NULL) != netpolicy_allows_sockaddr(p, sa, len))
        abort();
    if (!netpolicy_allows_port(p, port) != (why && strcmp(why, "port") == 0))
        abort();
    if (port == 0 && !why)
        abort();
    if (!why_default && why)
        abort();
    if (!netpolicy_has_exceptions(p) && why && why_default && strcmp(why, "port") != 0 &&
        strcmp(why_default, "port") != 0 && strcmp(why, why_default) != 0)
        abort();
    if (strcmp(netpolicy_refusal(p, sa, len - 1), "family") != 0)
        abort();
    if (ss->ss_family == AF_INET) {
        struct sockaddr_in6 mapped;
        map_v4((const struct sockaddr_in *)ss, &mapped);
        const char *why6 = netpolicy_refusal(p, (const struct sockaddr *)&mapped, sizeof(mapped));
        if ((why == NULL) != (why6 == NULL) || (why && strcmp(why, why6) != 0))
            abort();
    }
}

/* An address listed alone in FETCH_ALLOW_CIDRS (as inet_ntop writes it) is allowed on port 443. */
static void check_listed(const struct sockaddr_storage *ss, socklen_t len)
{
    struct sockaddr_storage copy = *ss;
    char text[INET6_ADDRSTRLEN], err[256];
    if (ss->ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&copy;
        inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
        sin->sin_port = htons(443);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&copy;
        inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
        sin6->sin6_port = htons(443);
    }
    struct netpolicy *p = netpolicy_new(text, NULL, err, sizeof(err));
    if (!p || !netpolicy_allows_sockaddr(p, (const struct sockaddr *)&copy, len))
        abort();
    netpolicy_free(p);
}

/* Both list parsers on text: they succeed or name their variable. */
static void check_lists(const char *text)
{
    char err[256];
    struct netpolicy *p = netpolicy_new(text, NULL, err, sizeof(err));
    if (!p && strncmp(err, "FETCH_ALLOW_CIDRS: ", 19) != 0)
        abort();
    netpolicy_free(p);
    p = netpolicy_new(NULL, text, err, sizeof(err));
    if (!p && strncmp(err, "ALLOWED_PORTS: ", 15) != 0)
        abort();
    netpolicy_free(p);
}

/* The address in the header against the policy in the rest ("cidrs|ports"), and the defaults. */
static void check_policy_on_header(const uint8_t *data, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len;
    size_t used;
    char err[256];
    if (!read_sockaddr(data, size, &ss, &len, &used))
        return;
    char *cidrs = malloc(size - used + 1);
    if (!cidrs)
        return;
    memcpy(cidrs, data + used, size - used);
    cidrs[size - used] = '\0';
    char *ports = strchr(cidrs, '|');
    if (ports)
        *ports++ = '\0';
    struct netpolicy *p = netpolicy_new(cidrs, ports, err, sizeof(err));
    check_sockaddr(NULL, &ss, len);
    check_listed(&ss, len);
    if (p)
        check_sockaddr(p, &ss, len);
    netpolicy_free(p);
    free(cidrs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    check_lists(text);
    free(text);
    check_policy_on_header(data, size);
    return 0;
}
