/* interview-api: one program, one command per role. */
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "client/client.h"
#include "core/config.h"
#include "core/log.h"
#include "media/media.h"
#include "queue/queue.h"
#include "worker/worker.h"

#define DOTENV ".env"

static const char usage[] =
    "usage: interview-api COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  run                    start the API, a worker and (if needed) a private redis-server\n"
    "  serve                  start the HTTP API only\n"
    "  worker                 start a worker only\n"
    "  submit URL [--wait]    submit a video URL to the API; --wait shows progress until done\n"
    "  submit FILE [--wait]   upload a local video file (resumable: run it again after an\n"
    "                         interruption to continue where it stopped)\n"
    "  status TASK_ID         print a task's status\n"
    "  s3 COMMAND [ARGS]      the S3 bucket of STORAGE_URL: mb, put, get, cat, head, ls, rm,\n"
    "                         presign (interview-api s3 --help)\n"
    "  check-config           print the effective configuration (secrets redacted)\n"
    "  version                print the version\n"
    "  --help                 print this help\n"
    "\n"
    "Configuration comes from the environment and ./.env; see README.md.\n";

/* True when the user named a broker, in the environment or in .env. */
static bool broker_configured(void)
{
    if (getenv("CELERY_BROKER_URL"))
        return true;
    FILE *f = fopen(DOTENV, "r");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        const char *p = line + strspn(line, " \t");
        if (strncmp(p, "export ", 7) == 0)
            p += 7 + strspn(p + 7, " \t");
        found = strncmp(p, "CELERY_BROKER_URL", 17) == 0 && strchr(p, '=');
    }
    fclose(f);
    return found;
}

/* The API base for the client commands: INTERVIEW_API_URL, else PUBLIC_BASE_URL. */
static const char *client_base(const struct config *cfg)
{
    const char *url = getenv("INTERVIEW_API_URL");
    return url && url[0] ? url : cfg->public_base_url;
}

/* This program's path, for `run` to start its children (also right under valgrind). */
static const char *self_path(const char *argv0)
{
    static char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (n <= 0)
        return argv0;
    path[n] = '\0';
    return path;
}

static int run_command(struct config *cfg, int argc, char **argv)
{
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return serve_main(cfg);
    if (strcmp(cmd, "worker") == 0)
        return worker_main(cfg);
    if (strcmp(cmd, "run") == 0)
        return supervise_main(cfg, self_path(argv[0]), broker_configured());
    if (strcmp(cmd, "check-config") == 0) {
        config_print(cfg, stdout);
        queue_config_print(cfg, stdout);
        return 0;
    }
    if (strcmp(cmd, "submit") == 0 && (argc == 3 || argc == 4)) {
        bool wait = argc == 4 && strcmp(argv[3], "--wait") == 0;
        if (argc == 4 && !wait)
            goto bad;
        return client_submit(client_base(cfg), argv[2], wait);
    }
    if (strcmp(cmd, "s3") == 0)
        return s3_cli_main(cfg, argc - 2, argv + 2);
    if (strcmp(cmd, "status") == 0 && argc == 3)
        return client_status(client_base(cfg), argv[2]);
bad:
    fputs(usage, stderr);
    return 2;
}

static bool is_daemon_command(const char *cmd)
{
    return strcmp(cmd, "serve") == 0 || strcmp(cmd, "worker") == 0 || strcmp(cmd, "run") == 0;
}

/*
 * The long-running commands take SIGINT/SIGTERM with sigwait() in a thread of their own; block
 * them from the first instruction so that a signal during start-up is not fatal but handled.
 */
static void block_stop_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("interview-api %s (%s)\n", IA_VERSION, IA_GIT_VERSION);
        return 0;
    }
    /* A peer that goes away (Redis, a pipe to ffmpeg) is an error to handle, not a death. */
    signal(SIGPIPE, SIG_IGN);
    if (is_daemon_command(argv[1]))
        block_stop_signals();
    struct config cfg;
    char err[256];
    if (config_load(&cfg, DOTENV, err, sizeof(err))) {
        fprintf(stderr, "interview-api: configuration: %s\n", err);
        return 2;
    }
    if (queue_config_check(&cfg, err, sizeof(err))) {
        fprintf(stderr, "interview-api: configuration: %s\n", err);
        config_cleanup(&cfg);
        return 2;
    }
    log_set_level((enum log_level)log_level_parse(cfg.log_level));
    int rc = run_command(&cfg, argc, argv);
    media_global_cleanup();
    config_cleanup(&cfg);
    return rc;
}
