/*
 * Subprocess runner for ffmpeg and ffprobe: argv straight to exec (never a shell), stdin from
 * /dev/null, stdout captured, split into lines or discarded, stderr kept in a capped buffer, other
 * fds closed, resource limits set, own process group killed at the deadline or on cancel, and the
 * child always reaped.
 */
#ifndef IA_MEDIA_PROC_H
#define IA_MEDIA_PROC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/error.h"

/* Called with one stdout line (without '\n', NUL-terminated; long lines truncated). */
typedef void (*proc_line_fn)(const char *line, size_t len, void *ctx);
/* Called with each piece of stdout as it is read (any size, not NUL-terminated). */
typedef void (*proc_data_fn)(const char *data, size_t len, void *ctx);

/* STREAM is for proc_stream_start(): the caller reads stdout itself. */
enum proc_stdout {
    PROC_STDOUT_DISCARD,
    PROC_STDOUT_CAPTURE,
    PROC_STDOUT_LINES,
    PROC_STDOUT_CHUNKS,
    PROC_STDOUT_STREAM
};

struct proc_opts {
    int64_t deadline_ms;       /* os_monotonic_ms() time to kill the group; 0: none */
    const atomic_bool *cancel; /* kill the group once true; may be NULL */
    enum proc_stdout out_mode;
    size_t stdout_cap;    /* CAPTURE: bytes kept (more are read and dropped); 0: 4 MiB */
    size_t stderr_keep;   /* last bytes of stderr kept; 0: 64 KiB */
    proc_line_fn on_line; /* LINES: called for each line */
    proc_data_fn on_data; /* CHUNKS: called for each piece read */
    void *line_ctx;       /* passed to on_line or on_data */
    atomic_uint *started; /* incremented for each child started (a task's count); may be NULL */
    uint64_t rlimit_cpu_s;       /* RLIMIT_CPU in the child; 0: unlimited */
    uint64_t rlimit_as_bytes;    /* RLIMIT_AS; 0: unlimited */
    uint64_t rlimit_fsize_bytes; /* RLIMIT_FSIZE (largest file the child may write); 0: unlimited */
};

struct proc_result {
    int exit_code;         /* exit status, or -1 when killed by a signal */
    int term_signal;       /* the signal that ended the child, or 0 */
    bool timed_out;        /* we killed it because the deadline passed */
    bool cancelled;        /* we killed it because *cancel became true */
    bool stdout_truncated; /* CAPTURE: more than stdout_cap bytes arrived */
    char *out;             /* CAPTURE: owned, NUL-terminated, may hold NULs */
    size_t out_len;
    char *err; /* owned, NUL-terminated: the last stderr_keep bytes */
    size_t err_len;
};

/*
 * Runs argv[0] (looked up in PATH when it has no '/') with argv, waits for it and fills res.
 * Returns IA_OK when the child ran and ended on its own (whatever its exit status), IA_ERR_TIMEOUT
 * when it was killed for the deadline or cancel (res says which), IA_ERR_INTERNAL when it could
 * not be started (detail says why). The child is always reaped. Call proc_result_cleanup() after.
 */
enum ia_err proc_run(const char *const argv[], const struct proc_opts *opts,
                     struct proc_result *res, char *detail, size_t detaillen);
void proc_result_cleanup(struct proc_result *res);

/*
 * A child whose stdout the caller reads (and whose stdin it may write) as it goes: a decoder
 * feeding frames, an encoder eating them. Same rules as proc_run (no shell, own process group,
 * limits, stderr kept, always reaped); the deadline and cancel flag are checked while the caller
 * waits on a pipe. Returns IA_OK with *out set, or proc_run's errors.
 */
struct proc_stream;
enum ia_err proc_stream_start(const char *const argv[], const struct proc_opts *opts,
                              bool with_stdin, struct proc_stream **out, char *detail,
                              size_t detaillen);
/*
 * Reads up to n bytes of stdout, waiting until n arrived or stdout ended. Returns the bytes read
 * (fewer than n only at the end), or -1 when the deadline or cancel killed the child.
 */
ssize_t proc_stream_read(struct proc_stream *s, void *buf, size_t n);
/* Writes all n bytes to stdin. Returns 0, or -1 when the child is gone or was killed. */
int proc_stream_write(struct proc_stream *s, const void *buf, size_t n);
/*
 * Closes stdin and stdout, kills the child first when kill_first, waits for its end and fills
 * res as proc_run does. Frees s. Returns IA_OK, or IA_ERR_TIMEOUT when a limit killed it.
 */
enum ia_err proc_stream_finish(struct proc_stream *s, bool kill_first, struct proc_result *res,
                               char *detail, size_t detaillen);

/*
 * Starts argv[0] (looked up in PATH) as a long-running service of a supervisor: in a process
 * group of its own (a terminal's Ctrl-C reaches only the caller, which passes it on), stdin,
 * stdout and stderr inherited, other fds closed, signals at their defaults (SIGTTOU ignored),
 * SIGTERM when the caller dies. Returns its pid, for the caller to reap, or -1 with detail
 * when it could not be started (an exec failure included).
 */
pid_t proc_spawn_service(const char *const argv[], char *detail, size_t detaillen);

/* True when the child exited with status 0. */
bool proc_result_ok(const struct proc_result *res);

#endif
