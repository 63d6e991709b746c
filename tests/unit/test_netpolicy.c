/* Tests util/netpolicy.c: the refused ranges in many spellings of each host, ports, exceptions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "util/netpolicy.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static socklen_t sa_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? (socklen_t)sizeof(struct sockaddr_in)
                                    : (socklen_t)sizeof(struct sockaddr_in6);
}

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

/*
 * Converts a numeric host, as it appears in a URL, to the socket address a connection to it uses.
 * This mirrors the fetcher: curl hands a URL's host to getaddrinfo (or inet_pton for a bracketed
 * IPv6 host; its URL parser rewrites numeric IPv4 spellings such as "0x7f.1" to the address
 * inet_aton reads), and the policy only ever sees the address that results, in curl's
 * open-socket callback. glibc's getaddrinfo reads IPv4 as inet_aton does (1 to 4 parts, each
 * decimal, 0-octal or 0x-hex) and IPv6 as inet_pton with an optional %scope. AI_NUMERICHOST
 * makes sure no name is ever looked up; a host that is not numeric fails the test.
 */
static void host_to_sockaddr(const char *host, unsigned port, struct sockaddr_storage *ss,
                             socklen_t *len)
{
    char text[128];
    const char *start = host;
    size_t n = strlen(host);
    struct addrinfo hints, *res = NULL;
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        start++;
        n -= 2;
    }
    assert_true(n < sizeof(text));
    memcpy(text, start, n);
    text[n] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    int rc = getaddrinfo(text, NULL, &hints, &res);
    if (rc != 0) {
        print_error("not a numeric host: %s (%s)\n", host, gai_strerror(rc));
        fail();
    }
    assert_true(res->ai_addrlen <= sizeof(*ss));
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    set_port(ss, port);
}

/* Returns the policy's refusal for host:port (host must be numeric). */
static const char *refusal(const struct netpolicy *p, const char *host, unsigned port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    host_to_sockaddr(host, port, &ss, &len);
    assert_int_equal(len, sa_len(&ss));
    const char *why = netpolicy_refusal(p, (const struct sockaddr *)&ss, len);
    bool ok = netpolicy_allows_sockaddr(p, (const struct sockaddr *)&ss, len);
    assert_int_equal(ok, why == NULL);
    return why;
}

static void expect_refusal(const struct netpolicy *p, const char *host, unsigned port,
                           const char *want)
{
    const char *got = refusal(p, host, port);
    if (want == NULL && got != NULL)
        print_error("%s:%u refused (%s), expected allowed\n", host, port, got);
    if (want != NULL && (got == NULL || strcmp(got, want) != 0))
        print_error("%s:%u gave %s, expected %s\n", host, port, got ? got : "allowed", want);
    if (want == NULL)
        assert_null(got);
    else
        assert_non_null(got);
    if (want)
        assert_string_equal(got, want);
}

/* ---- address classification ---- */

struct class_case {
    const char *host;
    const char *why; /* NULL: allowed */
};

static const struct class_case class_cases[] = {
    /* loopback, in every spelling */
    {"127.0.0.1", "loopback"},
    {"127.1", "loopback"},
    {"127.0.1", "loopback"},
    {"2130706433", "loopback"},
    {"0x7f000001", "loopback"},
    {"0X7F000001", "loopback"},
    {"0177.0.0.1", "loopback"},
    {"017700000001", "loopback"},
    {"0x7f.1", "loopback"},
    {"0177.1", "loopback"},
    {"127.255.255.255", "loopback"},
    {"127.0.0.2", "loopback"},
    {"::ffff:127.0.0.1", "loopback"},
    {"[::ffff:127.0.0.1]", "loopback"},
    {"::ffff:7f00:1", "loopback"},
    {"::FFFF:7F00:0001", "loopback"},
    {"0:0:0:0:0:ffff:7f00:1", "loopback"},
    {"0000:0000:0000:0000:0000:FFFF:127.0.0.1", "loopback"},
    {"64:ff9b::7f00:1", "loopback"},
    {"64:ff9b::127.0.0.1", "loopback"},
    {"0064:FF9B:0000:0000:0000:0000:7F00:0001", "loopback"},
    {"64:ff9b:1::7f00:1", "loopback"},
    {"::127.0.0.1", "ipv4-compatible"},
    {"::7f00:1", "ipv4-compatible"},
    {"::1", "loopback"},
    {"[::1]", "loopback"},
    {"0:0:0:0:0:0:0:1", "loopback"},
    {"0000:0000:0000:0000:0000:0000:0000:0001", "loopback"},
    {"::0.0.0.1", "loopback"},
    {"126.255.255.255", NULL},
    {"128.0.0.0", NULL},
    /* unspecified and "this network" */
    {"0.0.0.0", "unspecified"},
    {"0", "unspecified"},
    {"0x0", "unspecified"},
    {"00.0", "unspecified"},
    {"0.0.0.1", "this-network"},
    {"0.1", "this-network"},
    {"0.255.255.255", "this-network"},
    {"0xffffff", "this-network"},
    {"::ffff:0.0.0.0", "unspecified"},
    {"::ffff:0:0", "unspecified"},
    {"::ffff:0.1.2.3", "this-network"},
    {"64:ff9b::", "unspecified"},
    {"1.0.0.0", NULL},
    {"::", "unspecified"},
    {"[::]", "unspecified"},
    {"0:0:0:0:0:0:0:0", "unspecified"},
    {"0000:0000:0000:0000:0000:0000:0000:0000", "unspecified"},
    /* 10/8 */
    {"10.0.0.0", "private"},
    {"10.255.255.255", "private"},
    {"167772161", "private"},
    {"0xa000001", "private"},
    {"012.0.0.1", "private"},
    {"10.1", "private"},
    {"::ffff:10.0.0.1", "private"},
    {"::ffff:a00:1", "private"},
    {"64:ff9b::a00:1", "private"},
    {"9.255.255.255", NULL},
    {"11.0.0.0", NULL},
    /* 172.16/12 */
    {"172.16.0.0", "private"},
    {"172.31.255.255", "private"},
    {"2886729729", "private"},
    {"0xac100001", "private"},
    {"0254.020.0.1", "private"},
    {"172.16.1", "private"},
    {"::ffff:ac10:1", "private"},
    {"::ffff:172.31.255.255", "private"},
    {"172.15.255.255", NULL},
    {"172.32.0.0", NULL},
    {"::ffff:172.32.0.0", NULL},
    /* 192.168/16 */
    {"192.168.0.1", "private"},
    {"192.168.255.255", "private"},
    {"3232235521", "private"},
    {"0xc0a80001", "private"},
    {"0300.0250.0.1", "private"},
    {"192.168.1", "private"},
    {"::ffff:c0a8:101", "private"},
    {"64:ff9b::192.168.1.1", "private"},
    {"192.167.255.255", NULL},
    {"192.169.0.0", NULL},
    /* link-local, metadata endpoint */
    {"169.254.169.254", "link-local"},
    {"169.254.0.0", "link-local"},
    {"169.254.255.255", "link-local"},
    {"2852039166", "link-local"},
    {"0xa9fea9fe", "link-local"},
    {"0XA9FEA9FE", "link-local"},
    {"0251.0376.0251.0376", "link-local"},
    {"169.254.43518", "link-local"},
    {"0xa9.0xfe.0xa9.0xfe", "link-local"},
    {"::ffff:a9fe:a9fe", "link-local"},
    {"::ffff:169.254.169.254", "link-local"},
    {"64:ff9b::a9fe:a9fe", "link-local"},
    {"64:ff9b:1::a9fe:a9fe", "link-local"},
    {"169.253.255.255", NULL},
    {"169.255.0.0", NULL},
    {"fe80::1", "link-local"},
    {"FE80::1", "link-local"},
    {"fe80::1%1", "link-local"},
    {"[fe80::1%2]", "link-local"},
    {"fe80:0000:0000:0000:0000:0000:0000:0001", "link-local"},
    {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local"},
    {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "not-global-unicast"},
    /* CGNAT 100.64/10 */
    {"100.64.0.0", "shared-cgnat"},
    {"100.127.255.255", "shared-cgnat"},
    {"1681915905", "shared-cgnat"},
    {"0x64400001", "shared-cgnat"},
    {"0144.0100.0.1", "shared-cgnat"},
    {"100.64.1", "shared-cgnat"},
    {"::ffff:6440:1", "shared-cgnat"},
    {"100.63.255.255", NULL},
    {"100.128.0.0", NULL},
    /* multicast */
    {"224.0.0.1", "multicast"},
    {"224.0.0.0", "multicast"},
    {"239.255.255.255", "multicast"},
    {"3758096385", "multicast"},
    {"0xe0000001", "multicast"},
    {"::ffff:224.0.0.1", "multicast"},
    {"223.255.255.255", NULL},
    {"ff02::1", "multicast"},
    {"FF05::2", "multicast"},
    {"ff00::", "multicast"},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "multicast"},
    /* broadcast and 240/4 */
    {"255.255.255.255", "broadcast"},
    {"4294967295", "broadcast"},
    {"0xffffffff", "broadcast"},
    {"0377.0377.0377.0377", "broadcast"},
    {"255.16777215", "broadcast"},
    {"::ffff:ffff:ffff", "broadcast"},
    {"240.0.0.0", "reserved"},
    {"255.255.255.254", "reserved"},
    {"0xf0000000", "reserved"},
    {"::ffff:240.0.0.1", "reserved"},
    /* documentation */
    {"192.0.2.0", "documentation"},
    {"192.0.2.255", "documentation"},
    {"0xc0000201", "documentation"},
    {"192.0.3.0", NULL},
    {"198.51.100.1", "documentation"},
    {"198.51.99.255", NULL},
    {"198.51.101.0", NULL},
    {"203.0.113.7", "documentation"},
    {"203.0.112.255", NULL},
    {"203.0.114.0", NULL},
    {"2001:db8::1", "documentation"},
    {"2001:DB8:FFFF::", "documentation"},
    {"2001:0db8:0000:0000:0000:0000:0000:0001", "documentation"},
    {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
    {"2001:db9::", NULL},
    {"3fff::1", "documentation"},
    {"3fff:fff:ffff::", "documentation"},
    {"3fff:1000::", NULL},
    /* benchmarking */
    {"198.18.0.0", "benchmarking"},
    {"198.19.255.255", "benchmarking"},
    {"198.17.255.255", NULL},
    {"198.20.0.0", NULL},
    {"2001:2::1", "benchmarking"},
    /* IETF protocol assignments */
    {"192.0.0.0", "ietf-protocol"},
    {"192.0.0.9", "ietf-protocol"},
    {"192.0.0.255", "ietf-protocol"},
    {"191.255.255.255", NULL},
    {"192.0.1.0", NULL},
    {"2001:1::1", "ietf-protocol"},
    {"2001:1ff:ffff::", "ietf-protocol"},
    {"2001:200::1", NULL},
    /* 6to4 relay anycast */
    {"192.88.99.1", "6to4-relay"},
    {"::ffff:192.88.99.255", "6to4-relay"},
    {"192.88.98.255", NULL},
    {"192.88.100.0", NULL},
    /* globally reachable special-purpose blocks stay allowed */
    {"192.31.196.1", NULL},
    {"192.52.193.1", NULL},
    {"192.175.48.1", NULL},
    /* IPv6 unique-local, site-local, discard, ORCHIDv2, Teredo, 6to4 */
    {"fc00::1", "unique-local"},
    {"fd12:3456::1", "unique-local"},
    {"FDFF:FFFF::", "unique-local"},
    {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "not-global-unicast"},
    {"fec0::1", "site-local"},
    {"feff::1", "site-local"},
    {"100::", "discard"},
    {"100::ffff:ffff:ffff:ffff", "discard"},
    {"0100:0000:0000:0000:0000:0000:0000:0001", "discard"},
    {"100:0:0:1::", "not-global-unicast"},
    {"2001:20::1", "orchid"},
    {"2001:2f:ffff::", "orchid"},
    {"2001:10::1", "ietf-protocol"},
    {"2001::1", "teredo"},
    {"2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo"},
    {"2002::1", "6to4"},
    {"2002:c000:0204::1", "6to4"},
    {"2002:0808:0808::1", "6to4"},
    {"2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "6to4"},
    {"2003::1", NULL},
    {"2001:ffff::1", NULL},
    /* IPv4-compatible, NAT64 and other embedded forms */
    {"::8.8.8.8", "ipv4-compatible"},
    {"::808:808", "ipv4-compatible"},
    {"::2", "ipv4-compatible"},
    {"::ffff:8.8.8.8", NULL},
    {"::ffff:808:808", NULL},
    {"::fffe:808:808", "not-global-unicast"},
    {"::1:ffff:808:808", "not-global-unicast"},
    {"64:ff9b::8.8.8.8", NULL},
    {"64:ff9b::808:808", NULL},
    {"64:ff9b::10.0.0.1", "private"},
    {"64:ff9b:1::808:808", NULL},
    {"64:ff9b:1:1::808:808", "nat64-local"},
    {"64:ff9b:1:ffff::", "nat64-local"},
    {"64:ff9b:0:0:0:1::", "not-global-unicast"},
    {"64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", "not-global-unicast"},
    /* outside 2000::/3 */
    {"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "not-global-unicast"},
    {"4000::1", "not-global-unicast"},
    {"e000::", "not-global-unicast"},
    {"2000::1", NULL},
    {"3fff:ffff::", NULL},
    /* public */
    {"8.8.8.8", NULL},
    {"1.1.1.1", NULL},
    {"134744072", NULL},
    {"0x08080808", NULL},
    {"010.010.010.010", NULL},
    {"8.8.2056", NULL},
    {"8.526344", NULL},
    {"223.255.255.254", NULL},
    {"2606:4700::1111", NULL},
    {"[2606:4700::1111]", NULL},
    {"2606:4700:4700::1111", NULL},
    {"2606:4700:0:0:0:0:0:1111", NULL},
    {"2001:4860:4860::8888", NULL},
    {"2A00:1450:4001::1", NULL},
};

static void test_classify_table(void **state)
{
    char err[128];
    struct netpolicy *empty = netpolicy_new("", "", err, sizeof(err));
    (void)state;
    assert_non_null(empty);
    assert_false(netpolicy_has_exceptions(empty));
    for (size_t i = 0; i < COUNT(class_cases); i++) {
        expect_refusal(NULL, class_cases[i].host, 443, class_cases[i].why);
        expect_refusal(empty, class_cases[i].host, 80, class_cases[i].why);
    }
    netpolicy_free(empty);
}

/* A refused address stays refused with a port that is also refused: the port is reported. */
static void test_port_checked_first(void **state)
{
    (void)state;
    expect_refusal(NULL, "127.0.0.1", 22, "port");
    expect_refusal(NULL, "8.8.8.8", 22, "port");
    expect_refusal(NULL, "8.8.8.8", 0, "port");
    expect_refusal(NULL, "2606:4700::1111", 8080, "port");
}

/* ---- ports ---- */

static void test_ports_default(void **state)
{
    (void)state;
    assert_true(netpolicy_allows_port(NULL, 80));
    assert_true(netpolicy_allows_port(NULL, 443));
    assert_false(netpolicy_allows_port(NULL, 22));
    assert_false(netpolicy_allows_port(NULL, 0));
    assert_false(netpolicy_allows_port(NULL, 8080));
    assert_false(netpolicy_allows_port(NULL, 65535));
    assert_false(netpolicy_allows_port(NULL, 65536));
    assert_false(netpolicy_allows_port(NULL, 65536 + 80));
    assert_false(netpolicy_allows_port(NULL, 4294967295u));
    expect_refusal(NULL, "8.8.8.8", 80, NULL);
    expect_refusal(NULL, "8.8.8.8", 443, NULL);
    expect_refusal(NULL, "8.8.8.8", 8080, "port");
}

static void test_ports_listed(void **state)
{
    char err[128];
    struct netpolicy *p = netpolicy_new(NULL, "8080, 8443", err, sizeof(err));
    (void)state;
    assert_non_null(p);
    assert_true(netpolicy_allows_port(p, 80));
    assert_true(netpolicy_allows_port(p, 443));
    assert_true(netpolicy_allows_port(p, 8080));
    assert_true(netpolicy_allows_port(p, 8443));
    assert_false(netpolicy_allows_port(p, 8081));
    assert_false(netpolicy_allows_port(p, 8079));
    assert_false(netpolicy_allows_port(p, 22));
    assert_false(netpolicy_allows_port(p, 0));
    assert_false(netpolicy_allows_port(p, 8080 + 65536));
    assert_false(netpolicy_has_exceptions(p));
    expect_refusal(p, "8.8.8.8", 8080, NULL);
    expect_refusal(p, "127.0.0.1", 8080, "loopback");
    netpolicy_free(p);

    p = netpolicy_new(NULL, " 1,65535\t9000,,8081 ", err, sizeof(err));
    assert_non_null(p);
    assert_true(netpolicy_allows_port(p, 1));
    assert_true(netpolicy_allows_port(p, 65535));
    assert_true(netpolicy_allows_port(p, 9000));
    assert_true(netpolicy_allows_port(p, 8081));
    assert_false(netpolicy_allows_port(p, 2));
    assert_false(netpolicy_allows_port(p, 65534));
    netpolicy_free(p);
}

/* ---- FETCH_ALLOW_CIDRS ---- */

static struct netpolicy *policy(const char *cidrs)
{
    char err[160];
    struct netpolicy *p = netpolicy_new(cidrs, NULL, err, sizeof(err));
    if (!p)
        print_error("\"%s\" rejected: %s\n", cidrs, err);
    assert_non_null(p);
    assert_true(netpolicy_has_exceptions(p));
    return p;
}

static void test_allow_host_exceptions(void **state)
{
    struct netpolicy *p = policy("127.0.0.2/32, ::1/128");
    (void)state;
    expect_refusal(p, "127.0.0.2", 80, NULL);
    expect_refusal(p, "127.0.0.2", 443, NULL);
    expect_refusal(p, "2130706434", 80, NULL);
    expect_refusal(p, "127.0.0.1", 80, "loopback");
    expect_refusal(p, "127.0.0.3", 80, "loopback");
    expect_refusal(p, "127.0.0.2", 22, "port");
    expect_refusal(p, "::1", 80, NULL);
    expect_refusal(p, "[0:0:0:0:0:0:0:1]", 443, NULL);
    expect_refusal(p, "::1", 22, "port");
    expect_refusal(p, "::2", 80, "ipv4-compatible");
    expect_refusal(p, "::ffff:127.0.0.2", 80, NULL);
    expect_refusal(p, "::ffff:7f00:2", 80, NULL);
    expect_refusal(p, "::ffff:127.0.0.1", 80, "loopback");
    expect_refusal(p, "64:ff9b::127.0.0.2", 80, "loopback");
    expect_refusal(p, "::127.0.0.2", 80, "ipv4-compatible");
    expect_refusal(p, "8.8.8.8", 80, NULL);
    netpolicy_free(p);

    p = policy("127.0.0.2");
    expect_refusal(p, "127.0.0.2", 80, NULL);
    expect_refusal(p, "127.0.0.1", 80, "loopback");
    netpolicy_free(p);

    p = policy("::1");
    expect_refusal(p, "::1", 80, NULL);
    expect_refusal(p, "127.0.0.1", 80, "loopback");
    netpolicy_free(p);
}

static void test_allow_networks(void **state)
{
    struct netpolicy *p = policy("172.16.0.0/16,fd00::/8 fe80::/10\t192.168.1.0/24");
    (void)state;
    expect_refusal(p, "172.16.0.0", 80, NULL);
    expect_refusal(p, "172.16.255.255", 80, NULL);
    expect_refusal(p, "::ffff:172.16.9.9", 80, NULL);
    expect_refusal(p, "172.17.0.0", 80, "private");
    expect_refusal(p, "172.15.255.255", 80, NULL);
    expect_refusal(p, "fd12::1", 80, NULL);
    expect_refusal(p, "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 80, NULL);
    expect_refusal(p, "fc00::1", 80, "unique-local");
    expect_refusal(p, "fe80::1%3", 80, NULL);
    expect_refusal(p, "fec0::1", 80, "site-local");
    expect_refusal(p, "192.168.1.77", 80, NULL);
    expect_refusal(p, "192.168.2.1", 80, "private");
    netpolicy_free(p);

    p = policy("::ffff:127.0.0.0/104");
    expect_refusal(p, "127.0.0.5", 80, NULL);
    expect_refusal(p, "127.255.255.255", 80, NULL);
    expect_refusal(p, "128.0.0.1", 80, NULL);
    expect_refusal(p, "10.0.0.1", 80, "private");
    netpolicy_free(p);

    p = policy("0.0.0.0/0");
    expect_refusal(p, "127.0.0.1", 80, NULL);
    expect_refusal(p, "::ffff:10.0.0.1", 80, NULL);
    expect_refusal(p, "::1", 80, "loopback");
    expect_refusal(p, "fe80::1", 80, "link-local");
    expect_refusal(p, "10.0.0.1", 25, "port");
    netpolicy_free(p);

    p = policy("::/0");
    expect_refusal(p, "::1", 80, NULL);
    expect_refusal(p, "127.0.0.1", 80, NULL);
    expect_refusal(p, "ff02::1", 443, NULL);
    netpolicy_free(p);

    p = policy("10.0.0.0/8 10.0.0.0/8");
    expect_refusal(p, "10.200.0.1", 80, NULL);
    netpolicy_free(p);
}

static void test_allow_max_entries(void **state)
{
    char list[NETPOLICY_MAX_CIDRS * 20 + 32], err[160];
    size_t n = 0;
    (void)state;
    for (int i = 0; i < NETPOLICY_MAX_CIDRS; i++)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "10.0.%d.0/24,", i);
    struct netpolicy *p = netpolicy_new(list, NULL, err, sizeof(err));
    assert_non_null(p);
    expect_refusal(p, "10.0.63.9", 80, NULL);
    expect_refusal(p, "10.0.64.9", 80, "private");
    netpolicy_free(p);
    snprintf(list + n, sizeof(list) - n, "10.0.64.0/24");
    p = netpolicy_new(list, NULL, err, sizeof(err));
    assert_null(p);
    assert_non_null(strstr(err, "FETCH_ALLOW_CIDRS"));
    assert_non_null(strstr(err, "10.0.64.0/24"));
}

/* ---- configuration errors ---- */

static void expect_config_error(const char *cidrs, const char *ports, const char *var,
                                const char *needle)
{
    char err[200] = "unchanged";
    struct netpolicy *p = netpolicy_new(cidrs, ports, err, sizeof(err));
    if (p)
        print_error("accepted cidrs=\"%s\" ports=\"%s\"\n", cidrs ? cidrs : "", ports ? ports : "");
    assert_null(p);
    assert_int_equal(strncmp(err, var, strlen(var)), 0);
    if (needle && !strstr(err, needle))
        print_error("\"%s\" lacks \"%s\"\n", err, needle);
    if (needle)
        assert_non_null(strstr(err, needle));
}

static void test_config_errors_ports(void **state)
{
    static const char *const bad[] = {
        "abc",       "0",
        "65536",     "80x",
        "-1",        "+80",
        "0x50",      "99999999999999999999",
        "8080;8443", "80.5",
        "123456",    "8080,abc",
        "1e3",       "\xef\xbc\x98\xef\xbc\x90",
    };
    (void)state;
    for (size_t i = 0; i < COUNT(bad); i++)
        expect_config_error(NULL, bad[i], "ALLOWED_PORTS", "ALLOWED_PORTS");
    expect_config_error(NULL, "8080 junk", "ALLOWED_PORTS", "\"junk\"");
    expect_config_error(NULL, "0", "ALLOWED_PORTS", "1-65535");
}

static void test_config_errors_cidrs(void **state)
{
    static const char *const bad[] = {
        "10.0.0.0/33",  "::/129",
        "10.0.0.0/",    "/8",
        "10.0.0.0/8/8", "10.0.0.0/-1",
        "10.0.0.0/+8",  "10.0.0.0/1000",
        "10.0.0.0/0x8", "10.0.0.0/ 8",
        "127.1",        "0x7f000001",
        "2130706433",   "010.0.0.1",
        "fe80::1%eth0", "[::1]",
        "[::1]/128",    "example.com",
        "1.2.3.4.5",    "256.0.0.0/8",
        "garbage",      "127.0.0.2/32,junk",
        "::1/128;",     "1:2::3::4",
        "::1/",         "/",
        "10.0.0.0/8.0", "1.2.3.4/32x",
    };
    (void)state;
    for (size_t i = 0; i < COUNT(bad); i++)
        expect_config_error(bad[i], NULL, "FETCH_ALLOW_CIDRS", "FETCH_ALLOW_CIDRS");
    expect_config_error("10.0.0.0/33", NULL, "FETCH_ALLOW_CIDRS", "0-32");
    expect_config_error("::/129", NULL, "FETCH_ALLOW_CIDRS", "0-128");
    expect_config_error("10.0.0.1/8", NULL, "FETCH_ALLOW_CIDRS", "10.0.0.0/8");
    expect_config_error("172.16.5.0/12", NULL, "FETCH_ALLOW_CIDRS", "172.16.0.0/12");
    expect_config_error("2001:db8::1/32", NULL, "FETCH_ALLOW_CIDRS", "2001:db8::/32");
    expect_config_error("::1/0", NULL, "FETCH_ALLOW_CIDRS", "::/0");
    expect_config_error("ok.bad", "80", "FETCH_ALLOW_CIDRS", "\"ok.bad\"");
    /* the CIDR list is reported even when the port list is bad too */
    expect_config_error("nope", "nope", "FETCH_ALLOW_CIDRS", NULL);
}

static void test_config_error_text_is_safe(void **state)
{
    char long_tok[300];
    (void)state;
    memset(long_tok, '9', sizeof(long_tok) - 1);
    long_tok[sizeof(long_tok) - 1] = '\0';
    expect_config_error(long_tok, NULL, "FETCH_ALLOW_CIDRS", "...\"");
    expect_config_error(NULL, long_tok, "ALLOWED_PORTS", "...\"");
    expect_config_error("a\x01\x1b[31m\"b", NULL, "FETCH_ALLOW_CIDRS", "\"a??[31m?b\"");

    char small[10];
    assert_null(netpolicy_new("bad", NULL, small, sizeof(small)));
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_int_equal(strncmp(small, "FETCH_ALL", 9), 0);
    assert_null(netpolicy_new("bad", NULL, NULL, 0));
    assert_null(netpolicy_new(NULL, "bad", NULL, 0));
}

static void test_config_empty_lists(void **state)
{
    static const char *const empty[] = {NULL, "", " ", ",", " , ,\t\n", ",,,"};
    char err[64];
    (void)state;
    for (size_t i = 0; i < COUNT(empty); i++) {
        snprintf(err, sizeof(err), "x");
        struct netpolicy *p = netpolicy_new(empty[i], empty[i], err, sizeof(err));
        assert_non_null(p);
        assert_string_equal(err, "");
        assert_false(netpolicy_has_exceptions(p));
        assert_false(netpolicy_allows_port(p, 8080));
        netpolicy_free(p);
    }
    assert_false(netpolicy_has_exceptions(NULL));
    netpolicy_free(NULL);
}

/* ---- socket address shapes ---- */

static void test_sockaddr_shapes(void **state)
{
    struct sockaddr_storage ss;
    struct sockaddr_in sin;
    (void)state;
    assert_string_equal(netpolicy_refusal(NULL, NULL, 0), "family");
    assert_false(netpolicy_allows_sockaddr(NULL, NULL, 0));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(443);
    sin.sin_addr.s_addr = htonl(0x08080808);
    const struct sockaddr *sa = (const struct sockaddr *)&sin;
    assert_null(netpolicy_refusal(NULL, sa, sizeof(sin)));
    assert_string_equal(netpolicy_refusal(NULL, sa, sizeof(sin) - 1), "family");
    assert_false(netpolicy_allows_sockaddr(NULL, sa, 0));

    socklen_t len;
    host_to_sockaddr("2606:4700::1111", 443, &ss, &len);
    sa = (const struct sockaddr *)&ss;
    assert_null(netpolicy_refusal(NULL, sa, len));
    assert_null(netpolicy_refusal(NULL, sa, sizeof(ss)));
    assert_null(netpolicy_refusal(NULL, sa, sizeof(struct sockaddr_in6)));
    assert_string_equal(netpolicy_refusal(NULL, sa, sizeof(struct sockaddr_in)), "family");

    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    assert_string_equal(netpolicy_refusal(NULL, sa, sizeof(ss)), "family");
    ss.ss_family = AF_UNSPEC;
    assert_false(netpolicy_allows_sockaddr(NULL, sa, sizeof(ss)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_port_checked_first),
        cmocka_unit_test(test_ports_default),
        cmocka_unit_test(test_ports_listed),
        cmocka_unit_test(test_allow_host_exceptions),
        cmocka_unit_test(test_allow_networks),
        cmocka_unit_test(test_allow_max_entries),
        cmocka_unit_test(test_config_errors_ports),
        cmocka_unit_test(test_config_errors_cidrs),
        cmocka_unit_test(test_config_error_text_is_safe),
        cmocka_unit_test(test_config_empty_lists),
        cmocka_unit_test(test_sockaddr_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
