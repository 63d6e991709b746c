/* The analysis section of the metadata and the WebVTT file (report.c). */
#ifndef IA_ANALYSIS_REPORT_H
#define IA_ANALYSIS_REPORT_H

#include "analysis/scan.h"

/* The events as JSON (new reference). */
json_t *report_events(const struct event_list *l);
/* Time present, share facing the screen, time away, events by kind, final level, quality flags. */
json_t *report_summary(const struct analysis_opts *ao, const struct scan *s,
                       const struct event_list *l);
/* Writes the events as WebVTT cues to path. Returns 0 or -1. */
int report_write_vtt(const struct event_list *l, const char *path);

#endif
