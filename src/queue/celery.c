/*
 * Celery protocol v2 messages in kombu's Redis envelope, and Celery result-backend records.
 * Pure functions: no Redis, no clocks except the time passed in. The decoder treats every byte
 * as hostile and checks each field it uses against the limits in celery.h.
 */
#include "queue/celery.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "util/json_text.h"
#include "util/os.h"
#include "util/uuid.h"

/* kombu/json.dumps formatting: ", " and ": " separators, ASCII only, shortest-looking reals. */
#define CELERY_JSON_FLAGS (JSON_ENSURE_ASCII | JSON_REAL_PRECISION(15))

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *celery_base64_encode(const unsigned char *in, size_t len)
{
    char *out = xmalloc((len + 2) / 3 * 4 + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static int b64_value(char c)
{
    const char *p = c ? strchr(b64_alphabet, c) : NULL;
    return p ? (int)(p - b64_alphabet) : -1;
}

unsigned char *celery_base64_decode(const char *in, size_t len, size_t *outlen)
{
    while (len > 0 && in[len - 1] == '=' && len % 4 != 1)
        len--; /* drop padding; the checks below refuse anything else out of place */
    if (len % 4 == 1)
        return NULL;
    unsigned char *out = xmalloc(len / 4 * 3 + 3);
    size_t o = 0;
    unsigned acc = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(in[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        if (i % 4 == 3) {
            out[o++] = (unsigned char)(acc >> 16);
            out[o++] = (unsigned char)(acc >> 8);
            out[o++] = (unsigned char)acc;
            acc = 0;
        }
    }
    if (len % 4 == 2) {
        out[o++] = (unsigned char)(acc >> 4);
    } else if (len % 4 == 3) {
        out[o++] = (unsigned char)(acc >> 10);
        out[o++] = (unsigned char)(acc >> 2);
    }
    *outlen = o;
    return out;
}

/*
 * argsrepr as Celery writes it: celery.utils.saferepr.saferepr(args, argsrepr_maxsize). That is
 * not Python's repr(): strings are always in single quotes with only "'" escaped, and output
 * is cut by a budget of characters spent token by token (brackets, ", ", each value): a value
 * longer than what is left is cut back to its last space and ends with "...", and once the
 * budget is spent the next token becomes ", ..." (plus "]" if the list was not closed yet).
 */
struct repr_buf {
    struct json_text text; /* used for its raw bytes only: saferepr is not JSON */
    long left;             /* characters of the budget left */
    bool stopped;          /* the budget ran out */
};

static void rb_put(struct repr_buf *b, const char *s, size_t len)
{
    json_text_raw(&b->text, s, len);
}

/* Python's len() of UTF-8 text: the number of code points. */
static long utf8_chars(const char *s, size_t len)
{
    long n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

/* The byte length of the first `chars` code points of s. */
static size_t utf8_prefix(const char *s, size_t len, long chars)
{
    size_t i = 0;
    for (long c = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80 && c++ == chars)
            break;
    }
    return i;
}

/* celery.utils.text.truncate(s, maxlen), escaping "'" when in quotes. */
static void rb_truncated(struct repr_buf *b, const char *s, size_t len, long maxlen, bool quoted)
{
    size_t n = len;
    bool cut = utf8_chars(s, len) >= maxlen;
    if (cut) {
        n = utf8_prefix(s, len, maxlen);
        const char *space = memrchr(s, ' ', n);
        if (space)
            n = (size_t)(space - s);
    }
    for (size_t i = 0; i < n; i++)
        rb_put(b, quoted && s[i] == '\'' ? "\\'" : s + i, quoted && s[i] == '\'' ? 2 : 1);
    if (cut)
        rb_put(b, "...", 3);
}

enum repr_kind { REPR_LITERAL, REPR_QUOTED, REPR_TEXT };

/* Emits one saferepr token, spending the budget. */
static void repr_token(struct repr_buf *b, const char *s, size_t len, enum repr_kind kind)
{
    if (b->stopped)
        return;
    if (b->left <= 0) {
        rb_put(b, ", ...", 5);
        b->stopped = true;
        return;
    }
    size_t start = b->text.n;
    if (kind == REPR_LITERAL) {
        rb_put(b, s, len);
    } else {
        if (kind == REPR_QUOTED)
            rb_put(b, "'", 1);
        rb_truncated(b, s, len, b->left, kind == REPR_QUOTED);
        if (kind == REPR_QUOTED)
            rb_put(b, "'", 1);
    }
    b->left -= utf8_chars(b->text.p + start, b->text.n - start);
}

/* One array element as saferepr prints it. */
static void repr_value(struct repr_buf *b, const json_t *v)
{
    const char *word = json_is_true(v) ? "True" : json_is_false(v) ? "False" : "None";
    if (json_is_string(v)) {
        repr_token(b, json_string_value(v), json_string_length(v), REPR_QUOTED);
    } else if (json_is_boolean(v) || json_is_null(v)) {
        repr_token(b, word, strlen(word), REPR_TEXT);
    } else {
        char *text = json_dumps(v, JSON_ENCODE_ANY | CELERY_JSON_FLAGS);
        repr_token(b, text ? text : "...", text ? strlen(text) : 3, REPR_TEXT);
        free(text);
    }
}

char *celery_argsrepr(const json_t *args)
{
    struct repr_buf b = {.left = CELERY_ARGSREPR_MAX};
    json_text_init(&b.text, 64);
    size_t i;
    const json_t *v;
    repr_token(&b, "[", 1, REPR_LITERAL);
    json_array_foreach(args, i, v)
    {
        if (i > 0)
            repr_token(&b, ", ", 2, REPR_LITERAL);
        repr_value(&b, v);
    }
    bool open = b.stopped; /* saferepr still closes a list it stopped inside */
    repr_token(&b, "]", 1, REPR_LITERAL);
    if (open)
        rb_put(&b, "]", 1);
    return json_text_take(&b.text);
}

/* saferepr of a dict: "{", then "'key'", ": ", value, joined by ", ", then "}". */
char *celery_kwargsrepr(json_t *kwargs)
{
    struct repr_buf b = {.left = CELERY_ARGSREPR_MAX};
    json_text_init(&b.text, 64);
    const char *key;
    json_t *v;
    bool first = true;
    repr_token(&b, "{", 1, REPR_LITERAL);
    json_object_foreach(kwargs, key, v)
    {
        if (!first)
            repr_token(&b, ", ", 2, REPR_LITERAL);
        first = false;
        repr_token(&b, key, strlen(key), REPR_QUOTED);
        repr_token(&b, ": ", 2, REPR_LITERAL);
        repr_value(&b, v);
    }
    bool open = b.stopped;
    repr_token(&b, "}", 1, REPR_LITERAL);
    if (open)
        rb_put(&b, "}", 1);
    return json_text_take(&b.text);
}

static bool id_ok(const char *s) { return s && s[0] && strlen(s) <= CELERY_MAX_ID_LEN; }

/*
 * The envelope is written as text (util/json_text.h), not built as a tree and dumped: it is made
 * for every submit, and its shape is fixed. The bytes are those of Python's json.dumps (", " and
 * ": ", ASCII only), as the tests check against Celery's own.
 */
/* The base64 of json([args, kwargs, {"callbacks": null, ...}]). */
/*
 * Appends v as jansson's json_dumps(v, CELERY_JSON_FLAGS) writes it (", " and ": ", keys in
 * their order), without dumping: strings, true, false, null, arrays and objects of them are
 * written here, numbers by jansson. False when a value cannot be written.
 */
static bool text_value(struct json_text *t, const json_t *v)
{
    if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v))
        return json_text_string(t, json_string_value(v));
    if (json_is_true(v) || json_is_false(v) || json_is_null(v)) {
        json_text_lit(t, json_is_true(v) ? "true" : json_is_false(v) ? "false" : "null");
        return true;
    }
    bool ok = true;
    if (json_is_array(v)) {
        json_text_raw(t, "[", 1);
        for (size_t i = 0; ok && i < json_array_size(v); i++) {
            if (i > 0)
                json_text_raw(t, ", ", 2);
            ok = text_value(t, json_array_get(v, i));
        }
        json_text_raw(t, "]", 1);
        return ok;
    }
    if (json_is_object(v)) {
        /* jansson's iterators take a non-const object; they do not change it. */
        json_text_raw(t, "{", 1);
        bool first = true;
        for (void *it = json_object_iter((json_t *)(uintptr_t)v); ok && it;
             it = json_object_iter_next((json_t *)(uintptr_t)v, it)) {
            if (!first)
                json_text_raw(t, ", ", 2);
            first = false;
            ok = json_text_string(t, json_object_iter_key(it));
            json_text_raw(t, ": ", 2);
            ok = ok && text_value(t, json_object_iter_value(it));
        }
        json_text_raw(t, "}", 1);
        return ok;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY | CELERY_JSON_FLAGS);
    if (!text)
        return false;
    json_text_lit(t, text);
    free(text);
    return true;
}

static char *encode_body(const json_t *args, const json_t *kwargs)
{
    struct json_text body;
    json_text_init(&body, 256);
    json_text_raw(&body, "[", 1);
    bool ok = text_value(&body, args);
    json_text_raw(&body, ", ", 2);
    ok = ok && text_value(&body, kwargs);
    json_text_lit(&body, ", {\"callbacks\": null, \"errbacks\": null, \"chain\": null, "
                         "\"chord\": null}]");
    char *b64 = ok ? celery_base64_encode((const unsigned char *)body.p, body.n) : NULL;
    json_text_cleanup(&body);
    return b64;
}

/* The envelope's "headers" object. False when a string is not UTF-8. */
static bool encode_headers(struct json_text *t, const char *task_id, const char *task_name,
                           const json_t *args, json_t *kwargs, const char *origin,
                           int retries)
{
    char *argsrepr = celery_argsrepr(args), *kwargsrepr = celery_kwargsrepr(kwargs);
    char n[24];
    snprintf(n, sizeof(n), "%d", retries);
    json_text_lit(t, "{\"lang\": \"py\"");
    bool ok = json_text_member(t, "task", task_name, false) && json_text_member(t, "id", task_id, false);
    json_text_lit(t, ", \"shadow\": null, \"eta\": null, \"expires\": null, \"group\": null, "
                 "\"group_index\": null, \"retries\": ");
    json_text_lit(t, n);
    json_text_lit(t, ", \"timelimit\": [null, null]");
    ok = ok && json_text_member(t, "root_id", task_id, false) &&
         json_text_member(t, "parent_id", NULL, false) &&
         json_text_member(t, "argsrepr", argsrepr, false) &&
         json_text_member(t, "kwargsrepr", kwargsrepr, false) &&
         json_text_member(t, "origin", origin, false);
    json_text_lit(t, ", \"ignore_result\": false}");
    free(argsrepr);
    free(kwargsrepr);
    return ok;
}

/* The envelope's "properties" object. */
static bool encode_properties(struct json_text *t, const char *task_id, const char *tag)
{
    json_text_raw(t, "{", 1);
    bool ok = json_text_member(t, "correlation_id", task_id, true);
    json_text_lit(t, ", \"reply_to\": \"\", \"delivery_mode\": 2, \"delivery_info\": "
                 "{\"exchange\": \"\", \"routing_key\": \"celery\"}, \"priority\": 0, "
                 "\"body_encoding\": \"base64\"");
    ok = ok && json_text_member(t, "delivery_tag", tag, false);
    json_text_raw(t, "}", 1);
    return ok;
}

/* "interview-api<pid>@<host>", as Celery's "gen<pid>@<host>"; looked up once per process. */
static const char *own_origin(void)
{
    static _Thread_local char origin[320];
    static _Thread_local pid_t pid;
    pid_t now = os_pid();
    if (pid != now) {
        char host[256] = "localhost";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        pid = now;
        snprintf(origin, sizeof(origin), "interview-api%ld@%s", (long)pid, host);
    }
    return origin;
}

char *celery_message_encode(const char *task_id, const char *task_name, const json_t *args,
                            const struct celery_msg_opts *opts)
{
    const json_t *kwargs_in = opts ? opts->kwargs : NULL;
    if (!id_ok(task_id) || !task_name || !task_name[0] || !json_is_array(args) ||
        (kwargs_in && !json_is_object(kwargs_in)))
        return NULL;
    char tag[UUID_STR_LEN + 1], origin[320];
    const char *tag_in = opts ? opts->delivery_tag : NULL;
    if (tag_in && !id_ok(tag_in))
        return NULL;
    if (!tag_in)
        uuid_v4_new(tag);
    snprintf(origin, sizeof(origin), "%s", opts && opts->origin ? opts->origin : own_origin());
    json_t *kwargs = kwargs_in ? json_deep_copy(kwargs_in) : json_object(); /* for its repr */
    char *body = encode_body(args, kwargs);
    struct json_text t;
    json_text_init(&t, 1536);
    json_text_raw(&t, "{", 1);
    bool ok = body && json_text_member(&t, "body", body, true);
    json_text_lit(&t, ", \"content-encoding\": \"utf-8\", \"content-type\": \"application/json\", "
                  "\"headers\": ");
    ok = ok && encode_headers(&t, task_id, task_name, args, kwargs, origin,
                              opts ? opts->retries : 0);
    json_text_lit(&t, ", \"properties\": ");
    ok = ok && encode_properties(&t, task_id, tag_in ? tag_in : tag);
    json_text_raw(&t, "}", 1);
    free(body);
    json_decref(kwargs);
    if (!ok) {
        json_text_cleanup(&t);
        return NULL;
    }
    return json_text_take(&t);
}

/* ---- decoding ---- */

static enum ia_err fail(char *err, size_t errlen, const char *why)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", why);
    return IA_ERR_INVALID;
}

/* Copies an id (1..max printable ASCII bytes, no spaces) from obj into out (max+1 bytes). */
static bool get_id(const json_t *obj, const char *key, char *out, size_t max)
{
    const json_t *v = json_object_get(obj, key);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (!s || n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    memcpy(out, json_string_value(v), n + 1);
    return true;
}

static bool is_str(const json_t *obj, const char *key, const char *want)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) && strcmp(json_string_value(v), want) == 0;
}

/* Checks the envelope fields that say how the body is encoded. */
static enum ia_err check_envelope(const json_t *env, char *err, size_t errlen)
{
    if (!json_is_object(env))
        return fail(err, errlen, "message is not a JSON object");
    const json_t *props = json_object_get(env, "properties");
    if (!json_is_object(props) || !json_is_object(json_object_get(env, "headers")))
        return fail(err, errlen, "message has no headers or properties object");
    if (!json_is_string(json_object_get(env, "body")))
        return fail(err, errlen, "message body is not a string");
    if (!is_str(env, "content-type", "application/json"))
        return fail(err, errlen, "content-type is not application/json");
    if (!is_str(props, "body_encoding", "base64"))
        return fail(err, errlen, "body_encoding is not base64");
    const json_t *ce = json_object_get(env, "content-encoding");
    if (ce && !is_str(env, "content-encoding", "utf-8"))
        return fail(err, errlen, "content-encoding is not utf-8");
    return IA_OK;
}

/* Reads the ids, task name and retries from the headers and properties. */
static enum ia_err decode_headers(const json_t *env, struct celery_message *out, char *err,
                                  size_t errlen)
{
    const json_t *h = json_object_get(env, "headers");
    const json_t *props = json_object_get(env, "properties");
    const json_t *task = json_object_get(h, "task");
    if (!task)
        return fail(err, errlen, "headers.task missing (not protocol v2)");
    size_t n = json_string_length(task);
    if (!json_is_string(task) || n == 0 || n > CELERY_MAX_TASK_NAME_LEN ||
        memchr(json_string_value(task), '\0', n))
        return fail(err, errlen, "headers.task is not a valid task name");
    if (!get_id(h, "id", out->task_id, CELERY_MAX_ID_LEN))
        return fail(err, errlen, "headers.id is missing or too long");
    if (!get_id(props, "delivery_tag", out->delivery_tag, CELERY_MAX_ID_LEN))
        return fail(err, errlen, "properties.delivery_tag is missing or too long");
    const json_t *r = json_object_get(h, "retries");
    if (r && !json_is_null(r) &&
        (!json_is_integer(r) || json_integer_value(r) < 0 || json_integer_value(r) > 1000000))
        return fail(err, errlen, "headers.retries is not a small whole number");
    out->retries = json_is_integer(r) ? (int)json_integer_value(r) : 0;
    out->task_name = xstrdup(json_string_value(task));
    return IA_OK;
}

/* Decodes the base64 body into [args, kwargs, embed]. */
static enum ia_err decode_body(const json_t *env, struct celery_message *out, char *err,
                               size_t errlen)
{
    const json_t *b = json_object_get(env, "body");
    size_t n;
    unsigned char *raw = celery_base64_decode(json_string_value(b), json_string_length(b), &n);
    if (!raw)
        return fail(err, errlen, "body is not valid base64");
    json_t *body = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (!json_is_array(body) || json_array_size(body) != 3) {
        json_decref(body);
        return fail(err, errlen, "body is not a JSON array [args, kwargs, embed]");
    }
    json_t *args = json_array_get(body, 0), *kwargs = json_array_get(body, 1);
    if (!json_is_array(args) || !json_is_object(kwargs) ||
        !json_is_object(json_array_get(body, 2))) {
        json_decref(body);
        return fail(err, errlen, "body args is not an array or kwargs/embed not an object");
    }
    out->args = json_incref(args);
    out->kwargs = json_incref(kwargs);
    json_decref(body);
    return IA_OK;
}

enum ia_err celery_message_decode(const char *raw, size_t len, struct celery_message *out,
                                  char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!raw || len == 0)
        return fail(err, errlen, "empty message");
    if (len > CELERY_MAX_MESSAGE_BYTES)
        return fail(err, errlen, "message larger than 1 MiB");
    json_error_t jerr;
    json_t *env = json_loadb(raw, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!env)
        return fail(err, errlen, "message is not JSON");
    enum ia_err rc = check_envelope(env, err, errlen);
    if (!rc)
        rc = decode_headers(env, out, err, errlen);
    if (!rc)
        rc = decode_body(env, out, err, errlen);
    json_decref(env);
    if (rc)
        celery_message_cleanup(out);
    return rc;
}

void celery_message_cleanup(struct celery_message *m)
{
    free(m->task_name);
    json_decref(m->args);
    json_decref(m->kwargs);
    memset(m, 0, sizeof(*m));
}

/* ---- result records ---- */

void celery_isoformat(double now, char *buf, size_t buflen)
{
    time_t secs = (time_t)floor(now);
    long usec = lround((now - (double)secs) * 1e6);
    if (usec >= 1000000) {
        secs++;
        usec -= 1000000;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, buflen, "%Y-%m-%dT%H:%M:%S", &tm);
    if (usec > 0 && n < buflen) /* datetime.isoformat() omits a zero microsecond part */
        snprintf(buf + n, buflen - n, ".%06ld", usec);
}

bool celery_status_is_exception(const char *status)
{
    return strcmp(status, "FAILURE") == 0 || strcmp(status, "RETRY") == 0 ||
           strcmp(status, "REVOKED") == 0;
}

static bool status_is_ready(const char *status)
{
    return strcmp(status, "SUCCESS") == 0 || strcmp(status, "FAILURE") == 0 ||
           strcmp(status, "REVOKED") == 0;
}

json_t *celery_exception_new(const char *code, const char *message)
{
    return json_pack("{s:s, s:[s], s:s, s:s}", "exc_type", "RuntimeError", "exc_message",
                     message ? message : "", "exc_module", "builtins", "code",
                     code ? code : "internal_error");
}

char *celery_result_encode(const char *task_id, const char *status, const json_t *result,
                           const char *traceback, double now)
{
    char date[40];
    json_t *date_v = json_null();
    if (status_is_ready(status)) {
        celery_isoformat(now, date, sizeof(date));
        date_v = json_string(date);
    }
    json_t *res = result ? json_deep_copy(result) : json_null();
    json_t *meta = json_pack("{s:s, s:o, s:o, s:[], s:o, s:s}", "status", status, "result", res,
                             "traceback", traceback ? json_string(traceback) : json_null(),
                             "children", "date_done", date_v, "task_id", task_id);
    if (!meta)
        return NULL; /* status or task_id not valid UTF-8 */
    char *text = json_dumps(meta, CELERY_JSON_FLAGS);
    json_decref(meta);
    return text;
}
