/*
 * libcurl, loaded on first use. The program does not link libcurl: every curl_* function the
 * project calls is defined here and forwards to the library, which is dlopen'ed (and given its
 * curl_global_init) the first time one is called. So `serve`, which makes no outbound request
 * with local storage, maps none of libcurl's ~30 libraries (about 4 MiB of resident pages),
 * while the worker and the CLI load it when they first fetch. When libcurl cannot be loaded,
 * the calls fail as libcurl reports failure: NULL handles, CURLE_FAILED_INIT.
 *
 * curl_easy_setopt and curl_easy_getinfo take one argument after the option, whose type the
 * option's number encodes (CURLOPTTYPE_* ranges, CURLINFO_TYPEMASK): it is read with that type
 * and passed on. The program exports no symbols, so these definitions never stand in for
 * libcurl's own inside the loaded library.
 */
#include "util/curl_load.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>

#include "util/netpolicy.h"

/* curl.h's type-checking wrappers are macros over the real functions defined below. */
#undef curl_easy_setopt
#undef curl_easy_getinfo

#define CURL_LIBRARY "libcurl.so.4"

static struct {
    CURLcode (*global_init)(long);
    void (*global_cleanup)(void);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    void (*easy_reset)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    void (*free)(void *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    CURLU *(*url)(void);
    void (*url_cleanup)(CURLU *);
    CURLUcode (*url_get)(CURLU *, CURLUPart, char **, unsigned int);
    CURLUcode (*url_set)(CURLU *, CURLUPart, const char *, unsigned int);
} lib;

static bool loaded;
static char load_error[256];
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

/* The address of symbol name in h, or NULL (and load_error says which). */
static void *symbol(void *h, const char *name)
{
    void *p = dlsym(h, name);
    if (!p && !load_error[0])
        snprintf(load_error, sizeof(load_error), "%s: no %s", CURL_LIBRARY, name);
    return p;
}

static void load(void)
{
    void *h = dlopen(CURL_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(load_error, sizeof(load_error), "%s", dlerror());
        return;
    }
    /* POSIX allows converting dlsym's void * to a function pointer; -Wpedantic does not know. */
#define LOAD(field, name) *(void **)(&lib.field) = symbol(h, name)
    LOAD(global_init, "curl_global_init");
    LOAD(global_cleanup, "curl_global_cleanup");
    LOAD(easy_init, "curl_easy_init");
    LOAD(easy_setopt, "curl_easy_setopt");
    LOAD(easy_perform, "curl_easy_perform");
    LOAD(easy_reset, "curl_easy_reset");
    LOAD(easy_getinfo, "curl_easy_getinfo");
    LOAD(easy_cleanup, "curl_easy_cleanup");
    LOAD(easy_strerror, "curl_easy_strerror");
    LOAD(free, "curl_free");
    LOAD(slist_append, "curl_slist_append");
    LOAD(slist_free_all, "curl_slist_free_all");
    LOAD(url, "curl_url");
    LOAD(url_cleanup, "curl_url_cleanup");
    LOAD(url_get, "curl_url_get");
    LOAD(url_set, "curl_url_set");
#undef LOAD
    if (load_error[0])
        return; /* the handle stays open: the library may be half used by nobody, harmlessly */
    if (lib.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(load_error, sizeof(load_error), "curl_global_init failed");
        return;
    }
    loaded = true;
}

static bool ready(void)
{
    pthread_once(&load_once, load);
    return loaded;
}

const char *curl_load_error(void) { return ready() ? NULL : load_error; }

void curl_load_cleanup(void)
{
    /* Only when something loaded it; the once-flag is read under the same once, never raced. */
    if (loaded)
        lib.global_cleanup();
}

/* curl_global_init is done at the load; a caller's own call just loads the library. */
CURLcode curl_global_init(long flags)
{
    (void)flags;
    return ready() ? CURLE_OK : CURLE_FAILED_INIT;
}

void curl_global_cleanup(void) { curl_load_cleanup(); }

CURL *curl_easy_init(void) { return ready() ? lib.easy_init() : NULL; }

CURLcode curl_easy_setopt(CURL *curl, CURLoption option, ...)
{
    if (!ready() || !curl)
        return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, option);
    CURLcode rc;
    switch ((int)option / 10000 * 10000) {
    case CURLOPTTYPE_LONG:
        rc = lib.easy_setopt(curl, option, va_arg(ap, long));
        break;
    case CURLOPTTYPE_OFF_T:
        rc = lib.easy_setopt(curl, option, va_arg(ap, curl_off_t));
        break;
    case CURLOPTTYPE_FUNCTIONPOINT:
        rc = lib.easy_setopt(curl, option, va_arg(ap, void (*)(void)));
        break;
    default: /* OBJECTPOINT (strings, lists, callbacks' data) and BLOB */
        rc = lib.easy_setopt(curl, option, va_arg(ap, void *));
        break;
    }
    va_end(ap);
    return rc;
}

CURLcode curl_easy_perform(CURL *curl)
{
    return ready() && curl ? lib.easy_perform(curl) : CURLE_FAILED_INIT;
}

void curl_easy_reset(CURL *curl)
{
    if (curl && ready())
        lib.easy_reset(curl);
}

CURLcode curl_easy_getinfo(CURL *curl, CURLINFO info, ...)
{
    if (!ready() || !curl)
        return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, info);
    CURLcode rc = lib.easy_getinfo(curl, info, va_arg(ap, void *)); /* always a pointer */
    va_end(ap);
    return rc;
}

void curl_easy_cleanup(CURL *curl)
{
    if (curl && ready())
        lib.easy_cleanup(curl);
}

const char *curl_easy_strerror(CURLcode code)
{
    return ready() ? lib.easy_strerror(code) : "libcurl could not be loaded";
}

void curl_free(void *p)
{
    if (p && ready())
        lib.free(p);
}

struct curl_slist *curl_slist_append(struct curl_slist *list, const char *data)
{
    return ready() ? lib.slist_append(list, data) : NULL;
}

void curl_slist_free_all(struct curl_slist *list)
{
    if (list && ready())
        lib.slist_free_all(list);
}

CURLU *curl_url(void) { return ready() ? lib.url() : NULL; }

void curl_url_cleanup(CURLU *handle)
{
    if (handle && ready())
        lib.url_cleanup(handle);
}

CURLUcode curl_url_get(CURLU *handle, CURLUPart what, char **part, unsigned int flags)
{
    return ready() && handle ? lib.url_get(handle, what, part, flags) : CURLUE_BAD_HANDLE;
}

CURLUcode curl_url_set(CURLU *handle, CURLUPart what, const char *part, unsigned int flags)
{
    return ready() && handle ? lib.url_set(handle, what, part, flags) : CURLUE_BAD_HANDLE;
}

/* Formats the address and port of sa for a detail. */
static void format_sockaddr(const struct sockaddr *sa, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, outlen, "%s port %u", host, port);
}

static curl_socket_t gate_opensocket(void *userp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct curl_gate *g = userp;
    if (purpose != CURLSOCKTYPE_IPCXN || netpolicy_refusal(g->policy, &a->addr, a->addrlen)) {
        g->refused = true;
        format_sockaddr(&a->addr, g->refused_addr, sizeof g->refused_addr);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

bool curl_gate_install(void *h, struct curl_gate *g)
{
    g->refused = false;
    g->refused_addr[0] = '\0';
    return curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, gate_opensocket) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, g) == CURLE_OK;
}
