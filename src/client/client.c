/* HTTP client for the CLI, on libcurl. */
#include "client/client.h"
#include "client/internal.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"

#define RESPONSE_MAX (1 << 20)

struct response {
    long status;
    char *body;
    size_t len;
};

static size_t collect(char *data, size_t size, size_t n, void *ctx)
{
    struct response *r = ctx;
    size_t add = size * n;
    if (r->len + add > RESPONSE_MAX)
        return 0;
    r->body = xrealloc(r->body, r->len + add + 1);
    memcpy(r->body + r->len, data, add);
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

/* GET (post_body NULL) or POST JSON; returns the parsed JSON body or NULL on a network error. */
static json_t *http_call(const char *url, const char *post_body, long *status)
{
    struct response r = {0, NULL, 0};
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    headers = client_auth_header(headers);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (post_body)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, post_body);
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    json_t *body = NULL;
    if (rc == CURLE_OK && r.body)
        body = json_loads(r.body, 0, NULL);
    else if (rc != CURLE_OK)
        fprintf(stderr, "interview-api: %s: %s\n", url, curl_easy_strerror(rc));
    free(r.body);
    return body;
}

struct curl_slist *client_auth_header(struct curl_slist *headers)
{
    const char *key = getenv("INTERVIEW_API_KEY");
    if (!key || !key[0])
        return headers;
    char *auth = xasprintf("Authorization: Bearer %s", key);
    headers = curl_slist_append(headers, auth);
    free(auth);
    return headers;
}

static const char *json_str(const json_t *obj, const char *key, const char *fallback)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v ? v : fallback;
}

void client_draw_bar(const char *stage, double progress)
{
    int width = 30, filled = (int)(progress * width + 0.5);
    if (filled > width)
        filled = width;
    fprintf(stderr, "\r[%.*s%*s] %3d%% %-12s", filled, "##############################",
            width - filled, "", (int)(progress * 100 + 0.5), stage);
    fflush(stderr);
}

int client_wait_for(const char *api_base, const char *task_id)
{
    char *url = xasprintf("%s/status/%s", api_base, task_id);
    int exit_status = 1;
    for (;;) {
        long status = 0;
        json_t *body = http_call(url, NULL, &status);
        const char *state = json_str(body, "status", "");
        if (status == 200 && strcmp(state, "processing") == 0) {
            client_draw_bar(json_str(body, "stage", ""),
                     json_number_value(json_object_get(body, "progress")));
        } else if (status == 200 && strcmp(state, "success") == 0) {
            client_draw_bar("done", 1.0);
            printf("\n%s\n", json_str(body, "video_url", ""));
            exit_status = 0;
        } else {
            fprintf(stderr, "\nfailed: %s (%s)\n",
                    json_str(body, "error", json_str(body, "detail", "no answer")),
                    json_str(body, "code", "unknown"));
        }
        bool done = status != 200 || strcmp(state, "processing") != 0;
        json_decref(body);
        if (done)
            break;
        usleep(500 * 1000);
    }
    free(url);
    return exit_status;
}

/* True for an http:// or https:// URL (case-insensitive scheme). */
static bool is_url(const char *s)
{
    return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}

int client_submit(const char *api_base, const char *video_url, bool wait)
{
    struct stat st;
    if (!is_url(video_url) && stat(video_url, &st) == 0 && S_ISREG(st.st_mode))
        return client_submit_file(api_base, video_url, wait);
    json_t *req = json_pack("{s:s}", "video_url", video_url);
    char *text = json_dumps(req, JSON_COMPACT);
    char *url = xasprintf("%s/submit", api_base);
    long status = 0;
    json_t *body = http_call(url, text, &status);
    json_decref(req);
    free(text);
    free(url);
    const char *task_id = json_str(body, "task_id", NULL);
    if (status != 200 || !task_id) {
        fprintf(stderr, "interview-api: submit refused (%ld): %s\n", status,
                json_str(body, "detail", "no answer"));
        json_decref(body);
        return 1;
    }
    printf("%s\n", task_id);
    fflush(stdout);
    int rc = wait ? client_wait_for(api_base, task_id) : 0;
    json_decref(body);
    return rc;
}

int client_status(const char *api_base, const char *task_id)
{
    char *url = xasprintf("%s/status/%s", api_base, task_id);
    long status = 0;
    json_t *body = http_call(url, NULL, &status);
    free(url);
    if (!body)
        return 1;
    char *text = json_dumps(body, JSON_INDENT(2));
    printf("%s\n", text);
    free(text);
    json_decref(body);
    return status == 200 ? 0 : 1;
}
