/*
 * Pure parsers of the reviewer's requests, no I/O: the body of
 * PATCH /videos/{video_id}/events/{event_id}, the decisions document it changes, and the query
 * of GET /videos (filters, sort, cursor).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "util/str.h"
#include "util/uuid.h"

/* Counts the code points of valid UTF-8 (jansson checked it); false on a control character. */
static bool note_text_ok(const char *s, size_t len, size_t *chars)
{
    *chars = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
            return false;
        if ((c & 0xc0) != 0x80)
            (*chars)++;
    }
    return true;
}

/* NULL when the parsed body is a good decision (copied into out), else why not. */
static const char *decision_problem(json_t *body, struct api_decision *out)
{
    if (!json_is_object(body))
        return "the body must be a JSON object";
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value)
    {
        if (strcmp(key, "decision") != 0 && strcmp(key, "note") != 0)
            return "only decision and note may be given";
    }
    const json_t *d = json_object_get(body, "decision");
    const char *dv = json_is_string(d) ? json_string_value(d) : "";
    if (strcmp(dv, "confirmed") != 0 && strcmp(dv, "dismissed") != 0)
        return "decision must be \"confirmed\" or \"dismissed\"";
    const json_t *note = json_object_get(body, "note");
    if (note && !json_is_null(note) && !json_is_string(note))
        return "note must be a string";
    const char *nv = json_is_string(note) ? json_string_value(note) : "";
    size_t len = json_is_string(note) ? json_string_length(note) : 0, chars;
    if (!note_text_ok(nv, len, &chars))
        return "note must not contain control characters";
    if (chars > API_DECISION_NOTE_MAX)
        return "note is longer than 500 characters";
    snprintf(out->decision, sizeof(out->decision), "%s", dv);
    memcpy(out->note, nv, len);
    out->note[len] = '\0';
    return NULL;
}

enum ia_err api_parse_decision_body(const unsigned char *body, size_t len, struct api_decision *out,
                                    const char **why_out)
{
    json_error_t jerr;
    memset(out, 0, sizeof(*out));
    if (!body)
        body = (const unsigned char *)"";
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *why = root ? decision_problem(root, out) : "the body is not valid JSON";
    json_decref(root);
    if (why)
        memset(out, 0, sizeof(*out));
    *why_out = why;
    return why ? IA_ERR_INVALID : IA_OK;
}

json_t *api_decisions_apply(json_t *doc, const char *video_id, const char *event_id,
                            const struct api_decision *d, const char *decided_by,
                            const char *decided_at)
{
    json_t *decisions = json_is_object(doc) ? json_object_get(doc, "decisions") : NULL;
    json_t *out = json_object();
    json_t *all = json_is_object(decisions) ? json_deep_copy(decisions) : json_object();
    json_t *rec = json_pack("{s:s, s:s, s:s?, s:s}", "decision", d->decision, "note", d->note,
                            "decided_by", decided_by, "decided_at", decided_at);
    json_object_set_new(all, event_id, rec); /* steals rec */
    json_object_set_new(out, "schema", json_integer(1));
    json_object_set_new(out, "video_id", json_string(video_id));
    json_object_set_new(out, "decisions", all); /* steals all */
    return out;
}

/* Alert levels as summary.final_level names them; "none": not analysed. */
static const char *const levels[] = {"NO_ALERT", "SUSPICIOUS_BEHAVIOR", "CHEATING_DETECTED",
                                     "none"};
static const char *const statuses[] = {"", "to_review", "reviewed", "no_events"};

const char *api_review_status_name(enum api_review_status s) { return statuses[s]; }

/* The index of value in names (n of them), or -1. */
static int name_index(const char *value, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(value, names[i]) == 0)
            return (int)i;
    return -1;
}

/* "n.<completed_us>.<id>" or "s.<score>.<completed_us>.<id>", as api_list_cursor() writes. */
static bool cursor_parse(const char *text, enum api_list_sort sort, struct api_list_cursor *c)
{
    const char *p = text;
    if (*p++ != (sort == LIST_SCORE ? 's' : 'n') || *p++ != '.')
        return false;
    c->score = -1;
    if (sort == LIST_SCORE) {
        const char *dot = strchr(p, '.');
        if (!dot || !str_to_ll(p, (size_t)(dot - p), -1, 1000, &c->score))
            return false;
        p = dot + 1;
    }
    const char *dot = strchr(p, '.');
    if (!dot || !str_to_ll(p, (size_t)(dot - p), 0, INT64_MAX, &c->completed_us))
        return false;
    p = dot + 1;
    if (strlen(p) != UUID_STR_LEN || !uuid_is_canonical(p, UUID_STR_LEN))
        return false;
    memcpy(c->id, p, UUID_STR_LEN + 1);
    return true;
}

void api_list_cursor(enum api_list_sort sort, const struct api_list_cursor *c, char *out,
                     size_t cap)
{
    if (sort == LIST_SCORE)
        snprintf(out, cap, "s.%lld.%lld.%s", c->score, c->completed_us, c->id);
    else
        snprintf(out, cap, "n.%lld.%s", c->completed_us, c->id);
}

const char *api_parse_list_query(const char *status, const char *level, const char *sort,
                                 const char *limit, const char *cursor, struct api_list_query *q)
{
    memset(q, 0, sizeof(*q));
    q->limit = API_LIST_DEFAULT;
    q->level = -1;
    if (status && status[0]) {
        int i = name_index(status, statuses, sizeof(statuses) / sizeof(statuses[0]));
        if (i <= 0)
            return "status must be to_review, reviewed or no_events";
        q->status = (enum api_review_status)i;
    }
    if (level && level[0]) {
        q->level = name_index(level, levels, sizeof(levels) / sizeof(levels[0]));
        if (q->level < 0)
            return "level must be NO_ALERT, SUSPICIOUS_BEHAVIOR, CHEATING_DETECTED or none";
    }
    if (sort && strcmp(sort, "score") == 0)
        q->sort = LIST_SCORE;
    else if (sort && sort[0] && strcmp(sort, "newest") != 0)
        return "sort must be newest or score";
    long long n;
    if (limit && !str_to_ll(limit, strlen(limit), 1, API_LIST_MAX, &n))
        return "limit must be a whole number from 1 to 100";
    if (limit)
        q->limit = (int)n;
    if (cursor && !(q->has_cursor = cursor_parse(cursor, q->sort, &q->cursor)))
        return "cursor is not one this list gave (for this sort)";
    return NULL;
}

const char *api_level_name(int level)
{
    return level >= 0 && (size_t)level < sizeof(levels) / sizeof(levels[0]) ? levels[level] : NULL;
}

int api_level_index(const char *name) { return name ? name_index(name, levels, 3) : 3; }
