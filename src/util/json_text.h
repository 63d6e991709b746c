/*
 * JSON written as text, for the documents made on every request (a Celery message, a submit's
 * record and answer): no tree to build and dump. Strings are written as Python's
 * json.dumps(ensure_ascii=True) writes them, so that what a Python client would send and what we
 * send are the same bytes.
 */
#ifndef IA_UTIL_JSON_TEXT_H
#define IA_UTIL_JSON_TEXT_H

#include <stdbool.h>
#include <stddef.h>

struct json_text {
    char *p; /* NUL-terminated once anything was written */
    size_t n, cap;
};

/* Starts an empty text with room for cap bytes (it grows as needed). */
void json_text_init(struct json_text *t, size_t cap);
/* Appends len bytes as they are (JSON syntax, or text known to need no escape). */
void json_text_raw(struct json_text *t, const char *s, size_t len);
/* json_text_raw() of a C string. */
void json_text_lit(struct json_text *t, const char *s);
/* Appends s as a JSON string (quotes included); false when s is not UTF-8 (nothing can hold it). */
bool json_text_string(struct json_text *t, const char *s);
/* Appends `"key": ` then s as a string, or null when s is NULL; after ", " unless first. key is
 * one of ours (no escape). False when s is not UTF-8. */
bool json_text_member(struct json_text *t, const char *key, const char *s, bool first);
/* The text, which the caller frees; t is empty again. */
char *json_text_take(struct json_text *t);
/* Frees the text. */
void json_text_cleanup(struct json_text *t);

#endif
