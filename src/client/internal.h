/* Shared by the client/ files only. */
#ifndef IA_CLIENT_INTERNAL_H
#define IA_CLIENT_INTERNAL_H

#include <stdbool.h>

struct curl_slist;

/* Appends "Authorization: Bearer $INTERVIEW_API_KEY" when that variable is set. */
struct curl_slist *client_auth_header(struct curl_slist *headers);
/* Draws "[####   ]  42% stage" on stderr, over the previous bar. */
void client_draw_bar(const char *stage, double progress);
/* Polls /status until success or failure with a progress bar; returns the exit status. */
int client_wait_for(const char *api_base, const char *task_id);
/*
 * Uploads the file at path with tus (POST /uploads, PATCH in chunks) with a progress bar,
 * resuming an earlier interrupted run of the same file, then prints the task id and, with wait,
 * follows the task like client_submit(). Returns an exit status.
 */
int client_submit_file(const char *api_base, const char *path, bool wait);

#endif
