/* Small wrappers over system calls that several modules need: one place for each. */
#ifndef IA_UTIL_OS_H
#define IA_UTIL_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Writes all len bytes to fd, retrying short writes and EINTR; false with errno set. */
bool os_write_all(int fd, const void *buf, size_t len);

/* Milliseconds on CLOCK_MONOTONIC: for durations and deadlines, never for dates. */
int64_t os_monotonic_ms(void);
/* The same clock in nanoseconds: request durations. */
int64_t os_monotonic_ns(void);

/*
 * The process's id without a system call each time (glibc no longer caches getpid()): looked up
 * once, and again in a child made by fork().
 */
pid_t os_pid(void);

#endif
