/*
 * Parsing of redis://[[user]:password@]host[:port][/db] URLs, as redis-py and kombu accept them,
 * and of kombu's Sentinel form: sentinel:// URLs of the same shape separated by ';'.
 */
#ifndef IA_QUEUE_REDIS_URL_H
#define IA_QUEUE_REDIS_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

struct redis_url {
    char host[256];     /* name or address; IPv6 without the brackets */
    int port;           /* default 6379 */
    int db;             /* default 0 */
    char user[128];     /* "" when none (AUTH with the password alone) */
    char password[256]; /* "" when none; percent-decoded */
};

/*
 * Parses url into out. IA_ERR_INVALID with a reason in err for anything else: other schemes,
 * an empty host, a port outside 1..65535, a db outside 0..1000000, a query string, or a field
 * too long. The reason never contains the password.
 */
enum ia_err redis_url_parse(const char *url, struct redis_url *out, char *err, size_t errlen);

#define REDIS_SENTINELS_MAX 16

/* The address of one sentinel. */
struct redis_addr {
    char host[256]; /* IPv6 without the brackets */
    int port;       /* default 26379 */
};

/*
 * A kombu Sentinel URL: "sentinel://[[user]:password@]host[:port][/db]" entries joined by ';'.
 * The user, password and db are the master's, not the sentinels' (kombu and Celery take them
 * from the first entry); a later entry may repeat them or leave them out.
 */
struct redis_sentinel_url {
    struct redis_addr sentinel[REDIS_SENTINELS_MAX];
    int count;
    struct redis_url master; /* user, password and db; host and port are found by asking */
};

/* True when url starts with "sentinel://". */
bool redis_url_is_sentinel(const char *url);

/*
 * Parses a Sentinel URL into out. IA_ERR_INVALID with a reason in err, which names the entry
 * (1-based) and never contains a password: a scheme other than sentinel://, an empty entry,
 * more than REDIS_SENTINELS_MAX entries, any fault redis_url_parse() rejects, or a later entry
 * whose user, password or db differs from the first's.
 */
enum ia_err redis_sentinel_url_parse(const char *url, struct redis_sentinel_url *out, char *err,
                                     size_t errlen);

#endif
