/* The endpoints that deliver stored files: stream, download, metadata, thumbnail, processed. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/internal.h"
#include "http/http.h"
#include "store/store.h"
#include "util/uuid.h"

/* Answers 404 unless the id is canonical and the file exists; then delivers it. */
static void deliver(struct api_call *call, const char *ext, const char *content_type,
                    const char *disposition)
{
    struct stat st;
    int fd = store_open(call->t->app->store, call->param, ext, &st);
    if (fd < 0) {
        api_reply_error(call->req, 404, "video_not_found", "no such video");
        return;
    }
    if (disposition) {
        char value[128];
        snprintf(value, sizeof(value), "%s; filename=\"processed_%s.%s\"", disposition,
                 call->param, ext);
        http_reply_header(call->req, "Content-Disposition", value);
    }
    http_reply_file(call->req, fd, &st, content_type);
}

void api_stream(struct api_call *call)
{
    deliver(call, "mp4", "video/mp4", "inline");
}

void api_download(struct api_call *call)
{
    deliver(call, "mp4", "video/mp4", "attachment");
}

void api_download_metadata(struct api_call *call)
{
    deliver(call, "json", "application/json", "attachment");
}

void api_metadata(struct api_call *call)
{
    deliver(call, "json", "application/json", NULL);
}

void api_thumbnail(struct api_call *call)
{
    deliver(call, "jpg", "image/jpeg", NULL);
}

void api_processed(struct api_call *call)
{
    const struct app *app = call->t->app;
    const char *id = call->param;
    if (!store_exists(app->store, id, "json")) {
        api_reply_error(call->req, 404, "video_not_found", "no such video");
        return;
    }
    char *video_url = api_public_url(app, "/stream/", id, "");
    char *download_url = api_public_url(app, "/download/", id, "");
    char *metadata_url = api_public_url(app, "/metadata/", id, "");
    char *thumbnail_url = api_public_url(app, "/thumbnail/", id, "");
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s}", "video_id", id, "video_url", video_url,
                             "download_video_url", download_url, "metadata_url", metadata_url,
                             "thumbnail_url", thumbnail_url);
    free(video_url);
    free(download_url);
    free(metadata_url);
    free(thumbnail_url);
    api_reply_json(call->req, 200, body);
}
