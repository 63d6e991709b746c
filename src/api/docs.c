/*
 * The API documentation: GET /openapi.json (docs/openapi.yaml, converted to JSON by the build)
 * and GET /docs, Swagger UI on that document, with its files installed from npm by the build
 * (scripts/web-assets.sh, pinned in scripts/web-assets.lock): nothing is fetched from elsewhere,
 * so the page works offline.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/internal.h"
#include "http/http.h"

#ifndef IA_OPENAPI_JSON
#define IA_OPENAPI_JSON "openapi.json"
#endif
#ifndef IA_WEB_DIR
#define IA_WEB_DIR "web"
#endif
#ifndef IA_VENDOR_DIR
#define IA_VENDOR_DIR "vendor"
#endif

#define SWAGGER_DIR IA_VENDOR_DIR "/swagger-ui-dist"
#define CSS "text/css; charset=utf-8"
#define JS "text/javascript; charset=utf-8"

/* The files under /docs/: a fixed list, so that no request names a path. */
static const struct {
    const char *name, *path, *content_type;
} assets[] = {
    {"swagger-ui.css", SWAGGER_DIR "/swagger-ui.css", CSS},
    {"swagger-ui-bundle.js", SWAGGER_DIR "/swagger-ui-bundle.js", JS},
    {"init.js", IA_WEB_DIR "/docs.js", JS},
};

/* Delivers a file of the build; 404 docs_not_built when the build did not make it. */
static void deliver(struct http_request *req, const char *path, const char *content_type)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        http_reply_header(req, "Cache-Control", "no-cache");
        http_reply_file(req, fd, &st, content_type);
        return;
    }
    if (fd >= 0)
        close(fd);
    api_reply_error(req, 404, "docs_not_built",
                    "the API documentation is not installed (make build installs it)");
}

void api_openapi(struct api_call *call)
{
    deliver(call->req, IA_OPENAPI_JSON, "application/json");
}

void api_docs_page(struct api_call *call)
{
    deliver(call->req, IA_WEB_DIR "/docs.html", "text/html; charset=utf-8");
}

void api_docs_asset(struct api_call *call)
{
    for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++) {
        if (strcmp(call->param, assets[i].name) == 0) {
            deliver(call->req, assets[i].path, assets[i].content_type);
            return;
        }
    }
    api_reply_error(call->req, 404, "not_found", "not found");
}
