/* The programs' entry points: the API server and the all-in-one supervisor. */
#ifndef IA_APP_APP_H
#define IA_APP_APP_H

struct config;

/* Serves the API until SIGTERM/SIGINT; returns the exit status. */
int serve_main(const struct config *cfg);
/*
 * Starts serve and worker as child processes of self_exe (and a private redis-server when no
 * broker is configured and none answers on the default address), prints the URL, and stops them
 * all on Ctrl-C. broker_configured tells whether CELERY_BROKER_URL was set by the user.
 */
int supervise_main(struct config *cfg, const char *self_exe, int broker_configured);
/*
 * The operators' S3 commands (argv after "s3"): mb, put, get, cat, head, ls, rm, presign, on
 * the bucket and prefix of STORAGE_URL. Returns 0, 1 on an error (printed with its stable
 * code), 2 on a usage error.
 */
int s3_cli_main(const struct config *cfg, int argc, char **argv);

#endif
