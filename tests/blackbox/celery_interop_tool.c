/*
 * A command-line driver of queue/ for the Celery interop checks (celery_interop_check.py).
 * Not built by CMake: the check compiles it against a built libinterview.a. Usage:
 *   encode ID NAME URL | decode (stdin) | submit ID URL | success ID JSON | progress ID STAGE P
 *   | started ID | failure ID CODE MSG | retry ID CODE MSG | status ID | claim LEASE [ack|retry]
 * BROKER and BACKEND come from the environment. Prints one line per result, then "rc=N".
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "queue/celery.h"
#include "queue/queue.h"

static int cmd_encode(char **argv)
{
    json_t *a = json_pack("[s]", argv[4]);
    char *m = celery_message_encode(argv[2], argv[3], a, NULL);
    puts(m ? m : "");
    free(m);
    json_decref(a);
    return m ? 0 : 1;
}

static int cmd_decode(void)
{
    static char buf[2 << 20];
    size_t n = fread(buf, 1, sizeof(buf), stdin);
    while (n && buf[n - 1] == '\n')
        n--;
    struct celery_message m;
    char err[128];
    if (celery_message_decode(buf, n, &m, err, sizeof(err))) {
        printf("ERR %s\n", err);
        return 1;
    }
    char *args = json_dumps(m.args, 0), *kw = json_dumps(m.kwargs, 0);
    printf("id=%s tag=%s task=%s retries=%d args=%s kwargs=%s\n", m.task_id, m.delivery_tag,
           m.task_name, m.retries, args, kw);
    free(args);
    free(kw);
    celery_message_cleanup(&m);
    return 0;
}

static int cmd_status(struct queue *q, const char *id)
{
    struct task_status st;
    int rc = queue_status(q, id, &st);
    char *r = st.result ? json_dumps(st.result, 0) : NULL;
    printf("state=%d stage=%s progress=%.2f code=%s msg=%s result=%s\n", st.state, st.stage,
           st.progress, st.error_code, st.error_message, r ? r : "-");
    free(r);
    task_status_cleanup(&st);
    return rc;
}

static int cmd_claim(struct queue *q, int argc, char **argv)
{
    struct claimed_task *t;
    int rc = queue_claim(q, atoi(argv[2]), 1000, &t);
    if (!t) {
        printf("none\n");
        return rc;
    }
    char *a = json_dumps(t->args, 0);
    printf("claimed id=%s tag=%s task=%s retries=%d args=%s\n", t->task_id, t->delivery_tag,
           t->task_name, t->retries, a);
    free(a);
    if (argc > 3 && !strcmp(argv[3], "ack"))
        rc = queue_ack(q, t);
    if (argc > 3 && !strcmp(argv[3], "retry"))
        rc = queue_retry(q, t);
    claimed_task_free(t);
    return rc;
}

static int cmd_state(struct queue *q, char **argv)
{
    const char *cmd = argv[1];
    json_t *r = NULL;
    const char *status = NULL;
    if (!strcmp(cmd, "success")) {
        r = json_loads(argv[3], 0, NULL);
        status = "SUCCESS";
    } else if (!strcmp(cmd, "progress")) {
        r = json_pack("{s:s, s:f}", "stage", argv[3], "progress", atof(argv[4]));
        status = "PROGRESS";
    } else if (!strcmp(cmd, "started")) {
        r = json_pack("{s:i, s:s}", "pid", 1, "hostname", "interop");
        status = "STARTED";
    }
    int rc = status ? queue_set_state(q, argv[2], status, r) : 2;
    json_decref(r);
    return rc;
}

static int run(struct queue *q, int argc, char **argv)
{
    const char *cmd = argv[1];
    if (!strcmp(cmd, "submit"))
        return queue_submit(q, argv[2], argv[3]);
    if (!strcmp(cmd, "failure"))
        return queue_set_failure(q, argv[2], argv[3], argv[4]);
    if (!strcmp(cmd, "retry"))
        return queue_set_retry(q, argv[2], argv[3], argv[4]);
    if (!strcmp(cmd, "status"))
        return cmd_status(q, argv[2]);
    if (!strcmp(cmd, "claim"))
        return cmd_claim(q, argc, argv);
    return cmd_state(q, argv);
}

int main(int argc, char **argv);

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "encode") && argc == 5)
        return cmd_encode(argv);
    if (!strcmp(argv[1], "decode"))
        return cmd_decode();
    struct config cfg = {0};
    cfg.broker_url = getenv("BROKER");
    cfg.backend_url = getenv("BACKEND");
    cfg.result_ttl_s = 3600;
    if (argc < 3 || !cfg.broker_url || !cfg.backend_url)
        return 2;
    struct queue *q = queue_new(&cfg);
    int rc = run(q, argc, argv);
    printf("rc=%d\n", rc);
    queue_free(q);
    return rc ? 1 : 0;
}
