/*
 * libFuzzer target for queue/celery.c: the input is a message taken from the Redis list. A
 * message celery_message_decode accepts must hold what celery.h promises, and encoding its fields
 * again must decode to the same fields. The input is also fed to the base64 decoder, whose
 * output must survive an encode/decode round trip. A crash or a broken promise aborts.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/celery.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An id is 1..CELERY_MAX_ID_LEN printable ASCII bytes without spaces. */
static void check_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > CELERY_MAX_ID_LEN)
        abort();
    for (size_t i = 0; i < n; i++)
        if (id[i] <= ' ' || id[i] > '~')
            abort();
}

static void check_decoded(const struct celery_message *m)
{
    check_id(m->task_id);
    check_id(m->delivery_tag);
    if (!m->task_name || !m->task_name[0] || strlen(m->task_name) > CELERY_MAX_TASK_NAME_LEN)
        abort();
    if (!json_is_array(m->args) || !json_is_object(m->kwargs) || m->retries < 0)
        abort();
    char *repr = celery_argsrepr(m->args);
    if (strlen(repr) > CELERY_ARGSREPR_MAX || repr[0] != '[')
        abort();
    free(repr);
}

/*
 * Same JSON at the precision we publish with: the encoder writes reals with 15 significant
 * digits, so a real needing 17 comes back rounded; that is a documented choice, not a finding.
 */
static bool same_args(const json_t *a, const json_t *b)
{
    size_t flags = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15);
    char *ta = json_dumps(a, flags), *tb = json_dumps(b, flags);
    bool same = ta && tb && strcmp(ta, tb) == 0;
    free(ta);
    free(tb);
    return same;
}

/* Encodes the decoded fields as we would publish them and checks that they decode the same. */
static void check_round_trip(const struct celery_message *m)
{
    struct celery_msg_opts opts = {m->delivery_tag, "fuzz@localhost", m->retries, m->kwargs};
    char *text = celery_message_encode(m->task_id, m->task_name, m->args, &opts);
    if (!text)
        abort();
    struct celery_message again;
    char err[128];
    if (celery_message_decode(text, strlen(text), &again, err, sizeof(err)) != IA_OK)
        abort();
    if (strcmp(again.task_id, m->task_id) != 0 ||
        strcmp(again.delivery_tag, m->delivery_tag) != 0 ||
        strcmp(again.task_name, m->task_name) != 0 || again.retries != m->retries ||
        !same_args(again.args, m->args) || !same_args(again.kwargs, m->kwargs))
        abort();
    celery_message_cleanup(&again);
    free(text);
}

/* Bytes the strict decoder accepts come back unchanged through encode and decode. */
static void check_base64(const char *text, size_t len)
{
    size_t n, n2;
    unsigned char *raw = celery_base64_decode(text, len, &n);
    if (!raw)
        return;
    char *b64 = celery_base64_encode(raw, n);
    unsigned char *again = celery_base64_decode(b64, strlen(b64), &n2);
    if (!again || n2 != n || memcmp(again, raw, n) != 0)
        abort();
    free(again);
    free(b64);
    free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    if (size)
        memcpy(text, data, size);
    struct celery_message m;
    char err[128] = "";
    enum ia_err rc = celery_message_decode(text, size, &m, err, sizeof(err));
    if (rc == IA_OK) {
        check_decoded(&m);
        check_round_trip(&m);
        celery_message_cleanup(&m);
    } else if (rc != IA_ERR_INVALID || !err[0] || m.task_name || m.args || m.kwargs) {
        abort();
    }
    check_base64(text, size);
    free(text);
    return 0;
}
