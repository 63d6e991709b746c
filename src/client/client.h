/*
 * The command-line client: `submit` and `status` talk to a running API over HTTP, as any other
 * client would (so they work against a remote deployment and through API keys).
 */
#ifndef IA_CLIENT_CLIENT_H
#define IA_CLIENT_CLIENT_H

#include <stdbool.h>

/*
 * Submits a URL, or uploads a local file (any argument that is an existing regular file and not
 * an http(s) URL) resumably with tus; with wait, shows a progress bar until the task ends.
 * Returns an exit status.
 */
int client_submit(const char *api_base, const char *video_url, bool wait);
/* Prints a task's status JSON. Returns an exit status (0 found, 1 otherwise). */
int client_status(const char *api_base, const char *task_id);

#endif
