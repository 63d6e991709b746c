/*
 * libFuzzer target for util/netpolicy.c: the input is read as a URL host by netaddr_parse_host
 * (cross-checked against glibc's inet_aton / inet_pton where their grammars coincide) and as
 * FETCH_ALLOW_CIDRS and ALLOWED_PORTS lists by netpolicy_new. Any crash or mismatch aborts.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/netpolicy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* True when text holds a byte that makes libc's grammar differ from ours on purpose. */
static int outside_common_grammar(const char *text)
{
    return strpbrk(text, " \t\n\v\f\r[]%") != NULL;
}

/* Our parser and libc's must accept the same numeric text and agree on the address. */
static void check_against_libc(const char *text, int ret, const struct sockaddr_storage *ss)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (outside_common_grammar(text))
        return;
    if (strchr(text, ':')) {
        int ok = inet_pton(AF_INET6, text, &a6) == 1;
        if (ok != (ret == 1))
            abort();
        if (ok && memcmp(&a6, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16) != 0)
            abort();
        return;
    }
    int ok = inet_aton(text, &a4) != 0;
    if (ok != (ret == 1))
        abort();
    if (ok && a4.s_addr != ((const struct sockaddr_in *)ss)->sin_addr.s_addr)
        abort();
}

/* Runs a parsed address through a policy, which must answer without crashing. */
static void check_policy(const struct netpolicy *p, struct sockaddr_storage *ss)
{
    socklen_t len = ss->ss_family == AF_INET ? (socklen_t)sizeof(struct sockaddr_in)
                                             : (socklen_t)sizeof(struct sockaddr_in6);
    const char *why = netpolicy_refusal(p, (const struct sockaddr *)ss, len);
    if ((why == NULL) != netpolicy_allows_sockaddr(p, (const struct sockaddr *)ss, len))
        abort();
    /* Port 0 is never allowed, whatever the lists say. */
    if (netpolicy_allows_sockaddr(p, (const struct sockaddr *)ss, len))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    char err[256];
    struct sockaddr_storage ss;
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    int ret = netaddr_parse_host(text, &ss);
    if (ret < -1 || ret > 1 || (ret != 1 && ss.ss_family != 0))
        abort();
    check_against_libc(text, ret, &ss);

    struct netpolicy *p = netpolicy_new(text, NULL, err, sizeof(err));
    if (!p && strncmp(err, "FETCH_ALLOW_CIDRS: ", 19) != 0)
        abort();
    if (p && ret == 1)
        check_policy(p, &ss);
    netpolicy_free(p);

    p = netpolicy_new(NULL, text, err, sizeof(err));
    if (!p && strncmp(err, "ALLOWED_PORTS: ", 15) != 0)
        abort();
    netpolicy_free(p);
    free(text);
    return 0;
}
