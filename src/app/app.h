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

#endif
