/* Parsing of redis://[[user]:password@]host[:port][/db] URLs, as redis-py and kombu accept them. */
#ifndef IA_QUEUE_REDIS_URL_H
#define IA_QUEUE_REDIS_URL_H

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

#endif
