/* `interview-api s3 ...`: the S3 client from the command line, for operators and tests. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "core/config.h"
#include "core/log.h"
#include "store/s3.h"
#include "util/str.h"

/* The most `s3 cat` prints. */
#define S3_CLI_CAT_MAX (64u << 20)

static const char s3_usage[] =
    "usage: interview-api s3 COMMAND (keys are relative to STORAGE_URL's prefix)\n"
    "  mb                          create the bucket of STORAGE_URL\n"
    "  put FILE KEY [TYPE]         upload a file (in parts from S3_MULTIPART_THRESHOLD)\n"
    "  get KEY FILE                download into a new file\n"
    "  cat KEY                     print an object (at most 64 MiB)\n"
    "  head KEY                    print size, ETag and Last-Modified\n"
    "  ls [PREFIX]                 list keys: key, size, ETag, last modified (tab-separated)\n"
    "  rm KEY                      delete\n"
    "  presign KEY [SECONDS] [--head] [--download NAME]\n"
    "                              print a presigned GET (or HEAD) URL (default 3600 s)\n";

static int fail(enum ia_err e, const char *detail)
{
    fprintf(stderr, "interview-api s3: %s: %s\n", ia_err_code(e), detail);
    return 1;
}

static int list_print(const struct s3_object *o, void *ctx)
{
    (void)ctx;
    char key[4 * S3_MAX_KEY + 1];
    log_escape(key, sizeof key, o->key, strlen(o->key));
    printf("%s\t%" PRIu64 "\t%s\t%s\n", key, o->size, o->etag, o->last_modified);
    return 0;
}

/* presign KEY [SECONDS] [--head] [--download NAME] */
static int presign(struct s3 *s, int argc, char **argv)
{
    const char *method = "GET", *name = NULL;
    long long seconds = 3600;
    int i = 2;
    if (i < argc && argv[i][0] != '-') {
        if (!str_to_ll(argv[i], strlen(argv[i]), 1, 604800, &seconds))
            return fail(IA_ERR_INVALID, "SECONDS: expected 1 to 604800");
        i++;
    }
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--head") == 0)
            method = "HEAD";
        else if (strcmp(argv[i], "--download") == 0 && i + 1 < argc)
            name = argv[++i];
        else
            return fputs(s3_usage, stderr), 2;
    }
    char *disposition = NULL;
    if (name) {
        for (const char *p = name; *p; p++)
            if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f)
                return fail(IA_ERR_INVALID, "NAME: no quotes, backslashes or control characters");
        size_t n = strlen(name) + 32;
        disposition = malloc(n);
        if (!disposition)
            abort();
        snprintf(disposition, n, "attachment; filename=\"%s\"", name);
    }
    char *url = s3_presign(s, method, argv[1], (long)seconds, disposition, NULL);
    free(disposition);
    if (!url)
        return fail(IA_ERR_INVALID, "invalid key");
    puts(url);
    free(url);
    return 0;
}

static int run(struct s3 *s, int argc, char **argv)
{
    char detail[512] = "";
    enum ia_err e;
    const char *cmd = argv[0];
    if (strcmp(cmd, "mb") == 0 && argc == 1) {
        e = s3_create_bucket(s, detail, sizeof detail);
    } else if (strcmp(cmd, "put") == 0 && (argc == 3 || argc == 4)) {
        e = s3_put_file(s, argv[2], argv[1], argc == 4 ? argv[3] : NULL, detail, sizeof detail);
    } else if (strcmp(cmd, "get") == 0 && argc == 3) {
        e = s3_get_file(s, argv[1], argv[2], 0, detail, sizeof detail);
    } else if (strcmp(cmd, "cat") == 0 && argc == 2) {
        char *data = NULL;
        size_t len = 0;
        e = s3_get_mem(s, argv[1], S3_CLI_CAT_MAX, &data, &len, detail, sizeof detail);
        if (!e)
            fwrite(data, 1, len, stdout);
        free(data);
    } else if (strcmp(cmd, "head") == 0 && argc == 2) {
        struct s3_head h;
        e = s3_head(s, argv[1], &h, detail, sizeof detail);
        if (!e)
            printf("size=%" PRIu64 "\netag=%s\nlast_modified=%s\n", h.size, h.etag,
                   h.last_modified);
    } else if (strcmp(cmd, "ls") == 0 && argc <= 2) {
        unsigned pages = 0;
        e = s3_list(s, argc == 2 ? argv[1] : "", list_print, NULL, &pages, detail, sizeof detail);
        if (!e)
            fprintf(stderr, "pages=%u\n", pages);
    } else if (strcmp(cmd, "rm") == 0 && argc == 2) {
        e = s3_delete(s, argv[1], detail, sizeof detail);
    } else if (strcmp(cmd, "presign") == 0 && argc >= 2) {
        return presign(s, argc, argv);
    } else {
        fputs(s3_usage, stderr);
        return 2;
    }
    return e ? fail(e, detail) : 0;
}

int s3_cli_main(const struct config *cfg, int argc, char **argv)
{
    if (argc < 1) {
        fputs(s3_usage, stderr);
        return 2;
    }
    if (!cfg->storage_url[0]) {
        fprintf(stderr, "interview-api s3: invalid_input: STORAGE_URL=s3://bucket/prefix is not "
                        "set\n");
        return 2;
    }
    char err[256];
    struct s3 *s = s3_new(cfg, err, sizeof err);
    if (!s) {
        fprintf(stderr, "interview-api s3: invalid_input: %s\n", err);
        return 2;
    }
    int rc = run(s, argc, argv);
    s3_free(s);
    return rc;
}
