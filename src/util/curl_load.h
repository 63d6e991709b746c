/*
 * libcurl loaded on first use (curl_load.c defines the curl_* functions the project calls and
 * forwards them to the library it dlopens), so that processes that never make an outbound
 * request do not map it.
 */
#ifndef IA_UTIL_CURL_LOAD_H
#define IA_UTIL_CURL_LOAD_H

/* Loads libcurl now if not yet done; NULL when it is usable, else why not (static text). */
const char *curl_load_error(void);
/* curl_global_cleanup() when the library was loaded; call once, after all threads stopped. */
void curl_load_cleanup(void);

#endif
