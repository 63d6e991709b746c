/* One-line structured logging to stderr, filtered by level before arguments are evaluated. */
#ifndef IA_CORE_LOG_H
#define IA_CORE_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

extern enum log_level log_threshold;

void log_set_level(enum log_level level);
/* Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int log_level_parse(const char *name);
void log_write(enum log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Arguments are not evaluated when the level is filtered out. */
#define log_msg(level, module, ...)                                                               \
    do {                                                                                          \
        if ((level) >= log_threshold)                                                             \
            log_write((level), (module), __VA_ARGS__);                                            \
    } while (0)

/*
 * Copies untrusted bytes into out as printable ASCII (\xNN for anything else, quotes and
 * backslashes escaped), truncating to fit; out is always terminated. Returns out.
 */
char *log_escape(char *out, size_t outlen, const char *in, size_t inlen);

/* Now in UTC as "2026-11-24T06:44:19.801477Z", as the metadata and records write their times. */
void log_iso_now(char *buf, size_t len);

#endif
