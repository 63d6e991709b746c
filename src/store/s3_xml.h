/*
 * The little XML that S3 answers with (errors, ListObjectsV2, multipart), read without a
 * general parser: find an element by name inside a bounded slice, decode its text. The input
 * is hostile: every read stays inside the slice, nothing recurses, and text with markup, a
 * NUL byte, a control character or an unknown entity is refused rather than guessed.
 */
#ifndef IA_STORE_S3_XML_H
#define IA_STORE_S3_XML_H

#include <stdbool.h>
#include <stddef.h>

#include "util/str.h"

/*
 * Finds the first element <tag> (or <tag attr...>) in in, and sets *content to what lies
 * between it and the next </tag>, *rest to what follows that. A self-closing <tag/> has empty
 * content. False when there is none.
 */
bool s3_xml_element(struct slice in, const char *tag, struct slice *content, struct slice *rest);
/*
 * Decodes the text of an element (the five named entities and &#N; / &#xN; references to
 * code points, written as UTF-8) into a new string of at most max bytes. NULL when the text
 * contains '<', an unknown or malformed entity, a NUL or another control character but tab,
 * CR and LF, or decodes longer than max.
 */
char *s3_xml_text(struct slice text, size_t max);
/* s3_xml_element, then s3_xml_text; NULL when the element is missing or its text refused. */
char *s3_xml_get(struct slice in, const char *tag, size_t max);
/* Escapes &, <, >, " and ' for an element's text. The caller frees it. */
char *s3_xml_escape(const char *s);

#endif
