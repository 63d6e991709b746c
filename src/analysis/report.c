/* The analysis section of the metadata, and the WebVTT cues of the events. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/report.h"
#include "core/alloc.h"

static double r2(double v) { return round(v * 100) / 100; }

json_t *report_events(const struct event_list *l)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++) {
        const struct event *e = &l->v[i];
        json_array_append_new(a,
                              json_pack("{s:s, s:s, s:f, s:f, s:f, s:O, s:b}", "id", e->id, "kind",
                                        ev_kind_name(e->kind), "start", r2(e->start), "end",
                                        r2(e->end), "confidence", r2(e->confidence), "details",
                                        e->details, "evidence", e->evidence_path != NULL));
    }
    return a;
}

static json_t *events_by_kind(const struct event_list *l, json_t **quality)
{
    json_t *by = json_object();
    *quality = json_array();
    for (size_t i = 0; i < l->n; i++) {
        const char *name = ev_kind_name(l->v[i].kind);
        json_t *n = json_object_get(by, name);
        if (!n && ev_kind_is_quality(l->v[i].kind))
            json_array_append_new(*quality, json_string(name));
        json_object_set_new(by, name, json_integer(n ? json_integer_value(n) + 1 : 1));
    }
    return by;
}

json_t *report_summary(const struct analysis_opts *ao, const struct scan *s,
                       const struct event_list *l)
{
    double dt = 1.0 / ao->fps;
    json_t *quality;
    json_t *by = events_by_kind(l, &quality);
    double mean = s->samples ? s->score_sum / (double)s->samples : 0;
    return json_pack("{s:f, s:f, s:f, s:o, s:s, s:f, s:f, s:o, s:s}", "time_present_s",
                     r2((double)s->present * dt), "facing_screen_pct",
                     s->samples ? r2(100.0 * (double)s->facing / (double)s->samples) : 0.0,
                     "time_away_s", r2((double)s->away * dt), "events_by_kind", by, "final_level",
                     score_level(ao, s->score_max), "max_score", round(s->score_max), "mean_score",
                     r2(mean), "quality_flags", quality, "note",
                     "Flags ask a person to look at a moment; they are not verdicts.");
}

static void vtt_time(FILE *f, double t)
{
    long ms = lround(t * 1000);
    fprintf(f, "%02ld:%02ld:%02ld.%03ld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60, ms % 1000);
}

/* Cue text: the kind and the label, with nothing that could close the cue or open a tag. */
static void vtt_text(FILE *f, const struct event *e)
{
    const char *label = json_string_value(json_object_get(e->details, "label"));
    const char *dir = json_string_value(json_object_get(e->details, "direction"));
    fprintf(f, "%s", ev_kind_name(e->kind));
    if (dir)
        fprintf(f, " (%s)", dir);
    if (label) {
        fputs(": ", f);
        for (const char *p = label; *p; p++)
            fputs(*p == '<' ? "&lt;" : *p == '&' ? "&amp;" : *p == '\n' ? " " : (char[]){*p, 0}, f);
    }
    fputc('\n', f);
}

int report_write_vtt(const struct event_list *l, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs("WEBVTT\n\n", f);
    for (size_t i = 0; i < l->n; i++) {
        const struct event *e = &l->v[i];
        fprintf(f, "%s\n", e->id);
        vtt_time(f, e->start);
        fputs(" --> ", f);
        vtt_time(f, e->end > e->start ? e->end : e->start + 0.5);
        fputc('\n', f);
        vtt_text(f, e);
        fputc('\n', f);
    }
    return fclose(f) == 0 ? 0 : -1;
}
