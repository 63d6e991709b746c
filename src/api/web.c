/* The review page: GET / and its static assets, from the web/ folder of the build. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/internal.h"
#include "http/http.h"

#ifndef IA_WEB_DIR
#define IA_WEB_DIR "web"
#endif

static const struct {
    const char *name;
    const char *content_type;
} assets[] = {
    {"index.html", "text/html; charset=utf-8"},
    {"style.css", "text/css; charset=utf-8"},
    {"review.js", "text/javascript; charset=utf-8"},
    {"tus.js", "text/javascript; charset=utf-8"},
};

/* Delivers one of the known assets; anything else is 404 before a file is touched. */
static void deliver_asset(struct http_request *req, const char *name)
{
    for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++) {
        if (strcmp(name, assets[i].name) != 0)
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", IA_WEB_DIR, name);
        struct stat st;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && fstat(fd, &st) == 0) {
            http_reply_header(req, "Cache-Control", "no-cache");
            http_reply_file(req, fd, &st, assets[i].content_type);
            return;
        }
        if (fd >= 0)
            close(fd);
        break;
    }
    api_reply_error(req, 404, "not_found", "not found");
}

void api_web_index(struct api_call *call)
{
    deliver_asset(call->req, "index.html");
}

void api_web_asset(struct api_call *call)
{
    if (strcmp(call->param, "index.html") == 0)
        api_reply_error(call->req, 404, "not_found", "not found");
    else
        deliver_asset(call->req, call->param);
}
