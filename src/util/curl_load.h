/*
 * libcurl loaded on first use (curl_load.c defines the curl_* functions the project calls and
 * forwards them to the library it dlopens), so that processes that never make an outbound
 * request do not map it.
 */
#ifndef IA_UTIL_CURL_LOAD_H
#define IA_UTIL_CURL_LOAD_H

#include <stdbool.h>

struct netpolicy;

/*
 * The network policy on every connection a curl handle opens (curl's open-socket callback): the
 * address actually connected is judged, after any lookup and for every redirect hop, so no
 * spelling or DNS answer gets around it. Every outbound request of the project goes through it.
 */
struct curl_gate {
    const struct netpolicy *policy;
    bool refused;          /* a connection was refused */
    char refused_addr[64]; /* "<address> port <n>" of the last one refused */
};
/* Puts gate g on handle h (a CURL *); false when curl did not take the options. */
bool curl_gate_install(void *h, struct curl_gate *g);

/* Loads libcurl now if not yet done; NULL when it is usable, else why not (static text). */
const char *curl_load_error(void);
/* curl_global_cleanup() when the library was loaded; call once, after all threads stopped. */
void curl_load_cleanup(void);

#endif
