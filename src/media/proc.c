/*
 * Subprocess runner: fork + execv of a resolved path (no shell), pipes read with poll() so that
 * the deadline and the cancel flag are checked every few tens of milliseconds, SIGKILL to the
 * child's process group when either fires, and waitpid() on every path.
 */
#include "media/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "media/media.h"

#define PROC_STDOUT_CAP_DEFAULT ((size_t)4 << 20)
#define PROC_STDERR_KEEP_DEFAULT ((size_t)64 << 10)
#define PROC_LINE_MAX 4096
#define PROC_POLL_MS 50
#define PROC_DRAIN_GRACE_MS 2000

/* A growing byte buffer with a limit: keeps the first (head) or the last (tail) bytes. */
struct capbuf {
    char *p;
    size_t len, cap, limit;
    bool keep_tail;
    bool truncated;
};

struct run {
    const struct proc_opts *opts;
    struct proc_result *res;
    pid_t pid;
    int out_fd, err_fd;
    struct capbuf out, err;
    char line[PROC_LINE_MAX];
    size_t line_len;
    bool line_overflow;
};

static void capbuf_reserve(struct capbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

static void capbuf_append(struct capbuf *b, const char *data, size_t n)
{
    if (!b->keep_tail && b->len + n > b->limit) {
        b->truncated = true;
        n = b->limit - b->len;
    }
    capbuf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
    if (b->keep_tail && b->len > 2 * b->limit) {
        memmove(b->p, b->p + b->len - b->limit, b->limit);
        b->len = b->limit;
        b->truncated = true;
    }
}

/* Hands the buffer to the caller, trimmed to its limit and NUL-terminated. */
static char *capbuf_take(struct capbuf *b, size_t *len)
{
    capbuf_reserve(b, 0);
    if (b->keep_tail && b->len > b->limit) {
        memmove(b->p, b->p + b->len - b->limit, b->limit);
        b->len = b->limit;
    }
    b->p[b->len] = '\0';
    *len = b->len;
    char *p = b->p;
    b->p = NULL;
    return p;
}

/* Finds an executable for name in PATH (or uses name when it has a '/'); false if none. */
static bool resolve_path(const char *name, char *out, size_t outlen)
{
    if (strchr(name, '/'))
        return (size_t)snprintf(out, outlen, "%s", name) < outlen;
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        int w = snprintf(out, outlen, "%.*s/%s", (int)n, n ? path : ".", name);
        if (w > 0 && (size_t)w < outlen && access(out, X_OK) == 0)
            return true;
        path += n;
        if (*path == ':')
            path++;
    }
    return false;
}

static void child_limit(int resource, uint64_t soft, uint64_t hard)
{
    struct rlimit rl = {.rlim_cur = (rlim_t)soft, .rlim_max = (rlim_t)hard};
    (void)setrlimit(resource, &rl);
}

static void child_close_fds(int from)
{
    if (close_range((unsigned)from, ~0U, 0) == 0)
        return;
    for (int fd = from; fd < 65536; fd++)
        (void)close(fd);
}

/* Runs in the forked child: only async-signal-safe calls until execv. Never returns. */
static _Noreturn void child_exec(const char *path, const char *const argv[],
                                 const struct proc_opts *o, int out_w, int err_w, int exec_w,
                                 pid_t parent)
{
    /* A worker killed with SIGKILL takes its ffmpeg with it (no orphan keeps running). */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
        _exit(126);
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction sa = {.sa_handler = SIG_DFL};
    (void)sigaction(SIGPIPE, &sa, NULL);
    (void)setpgid(0, 0);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out_w >= 0 ? out_w : devnull, 1) < 0 ||
        dup2(err_w, 2) < 0 || (exec_w != 3 && dup3(exec_w, 3, O_CLOEXEC) < 0))
        _exit(126);
    child_close_fds(4);
    child_limit(RLIMIT_CORE, 0, 0);
    if (o->rlimit_cpu_s)
        child_limit(RLIMIT_CPU, o->rlimit_cpu_s, o->rlimit_cpu_s + 5);
    if (o->rlimit_as_bytes)
        child_limit(RLIMIT_AS, o->rlimit_as_bytes, o->rlimit_as_bytes);
    if (o->rlimit_fsize_bytes)
        child_limit(RLIMIT_FSIZE, o->rlimit_fsize_bytes, o->rlimit_fsize_bytes);
    execv(path, (char *const *)(uintptr_t)argv);
    int e = errno;
    (void)!write(3, &e, sizeof e);
    _exit(127);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Forks the child with its pipes; on success r->pid and the read ends are set. */
static enum ia_err spawn(struct run *r, const char *path, const char *const argv[], char *detail,
                         size_t detaillen)
{
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, execp[2] = {-1, -1};
    enum ia_err result = IA_ERR_INTERNAL;
    if ((r->opts->out_mode != PROC_STDOUT_DISCARD && pipe2(outp, O_CLOEXEC) < 0) ||
        pipe2(errp, O_CLOEXEC) < 0 || pipe2(execp, O_CLOEXEC) < 0) {
        snprintf(detail, detaillen, "pipe: %s", strerror(errno));
        goto out;
    }
    pid_t parent = getpid();
    r->pid = fork();
    if (r->pid < 0) {
        snprintf(detail, detaillen, "fork: %s", strerror(errno));
        goto out;
    }
    if (r->pid == 0)
        child_exec(path, argv, r->opts, outp[1], errp[1], execp[1], parent);
    (void)setpgid(r->pid, r->pid); /* also done in the child: whichever runs first wins */
    close_fd(&execp[1]);
    int child_errno = 0;
    ssize_t n;
    do
        n = read(execp[0], &child_errno, sizeof child_errno);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        snprintf(detail, detaillen, "exec %s: %s", argv[0], strerror(child_errno));
        while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        r->pid = -1;
        goto out;
    }
    r->out_fd = outp[0], outp[0] = -1;
    r->err_fd = errp[0], errp[0] = -1;
    result = IA_OK;
out:
    close_fd(&outp[0]), close_fd(&outp[1]), close_fd(&errp[0]), close_fd(&errp[1]);
    close_fd(&execp[0]), close_fd(&execp[1]);
    return result;
}

static void emit_line(struct run *r)
{
    r->line[r->line_len] = '\0';
    if (r->opts->on_line)
        r->opts->on_line(r->line, r->line_len, r->opts->line_ctx);
    r->line_len = 0;
    r->line_overflow = false;
}

static void feed_lines(struct run *r, const char *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n') {
            emit_line(r);
        } else if (r->line_len + 1 < sizeof r->line) {
            r->line[r->line_len++] = data[i];
        } else {
            r->line_overflow = true;
        }
    }
}

/* Reads once from *fd into its sink; closes it at EOF or on error. */
static void pump(struct run *r, int *fd, bool is_out)
{
    char buf[65536];
    ssize_t n = read(*fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        close_fd(fd);
        if (is_out && r->line_len)
            emit_line(r);
        return;
    }
    if (!is_out)
        capbuf_append(&r->err, buf, (size_t)n);
    else if (r->opts->out_mode == PROC_STDOUT_CAPTURE)
        capbuf_append(&r->out, buf, (size_t)n);
    else if (r->opts->out_mode == PROC_STDOUT_LINES)
        feed_lines(r, buf, (size_t)n);
}

/* Waits up to timeout_ms for output and reads what arrived. */
static void poll_pipes(struct run *r, int timeout_ms)
{
    struct pollfd pfd[2];
    int *fds[2];
    nfds_t n = 0;
    if (r->out_fd >= 0)
        pfd[n] = (struct pollfd){.fd = r->out_fd, .events = POLLIN}, fds[n++] = &r->out_fd;
    if (r->err_fd >= 0)
        pfd[n] = (struct pollfd){.fd = r->err_fd, .events = POLLIN}, fds[n++] = &r->err_fd;
    if (poll(n ? pfd : NULL, n, timeout_ms) <= 0)
        return;
    for (nfds_t i = 0; i < n; i++) {
        if (pfd[i].revents)
            pump(r, fds[i], fds[i] == &r->out_fd);
    }
}

/* Kills the group when the deadline passed or cancel is set; records why. */
static void check_limits(struct run *r, int64_t now, bool *killed)
{
    if (*killed)
        return;
    bool late = r->opts->deadline_ms && now >= r->opts->deadline_ms;
    bool cancel = r->opts->cancel && atomic_load(r->opts->cancel);
    if (!late && !cancel)
        return;
    r->res->timed_out = late;
    r->res->cancelled = !late;
    (void)killpg(r->pid, SIGKILL);
    (void)kill(r->pid, SIGKILL); /* in case setpgid had not happened yet */
    *killed = true;
}

/* True once the child has exited; it stays a zombie (not reaped) so its group id stays ours. */
static bool child_exited(pid_t pid)
{
    siginfo_t si = {0};
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
        return errno == ECHILD;
    return si.si_pid == pid;
}

static int poll_timeout(const struct proc_opts *o, int64_t now)
{
    int64_t t = PROC_POLL_MS;
    if (o->deadline_ms && o->deadline_ms - now < t)
        t = o->deadline_ms - now;
    return t < 0 ? 0 : (int)t;
}

/* Reads the pipes until the child exits and its pipes close (or a grace period passes). */
static void supervise(struct run *r)
{
    bool killed = false, exited = false;
    int64_t exit_ms = 0;
    for (;;) {
        int64_t now = media_now_ms();
        if (!exited)
            check_limits(r, now, &killed);
        if (!exited && child_exited(r->pid)) {
            exited = true;
            exit_ms = now;
            (void)killpg(r->pid, SIGKILL); /* stray members of the group */
        }
        if (exited && ((r->out_fd < 0 && r->err_fd < 0) || now - exit_ms > PROC_DRAIN_GRACE_MS))
            break;
        poll_pipes(r, exited ? 10 : poll_timeout(r->opts, now));
    }
}

static void reap(struct run *r)
{
    int status = 0;
    while (waitpid(r->pid, &status, 0) < 0) {
        if (errno != EINTR)
            return;
    }
    if (WIFEXITED(status)) {
        r->res->exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        r->res->exit_code = -1;
        r->res->term_signal = WTERMSIG(status);
    }
}

enum ia_err proc_run(const char *const argv[], const struct proc_opts *opts,
                     struct proc_result *res, char *detail, size_t detaillen)
{
    char path[PATH_MAX];
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    struct run r = {.opts = opts, .res = res, .pid = -1, .out_fd = -1, .err_fd = -1};
    r.out.limit = opts->stdout_cap ? opts->stdout_cap : PROC_STDOUT_CAP_DEFAULT;
    r.err.limit = opts->stderr_keep ? opts->stderr_keep : PROC_STDERR_KEEP_DEFAULT;
    r.err.keep_tail = true;
    enum ia_err result = IA_ERR_INTERNAL;
    if (!resolve_path(argv[0], path, sizeof path)) {
        snprintf(detail, detaillen, "%s: not found in PATH", argv[0]);
        goto out;
    }
    if (opts->deadline_ms && media_now_ms() >= opts->deadline_ms) {
        snprintf(detail, detaillen, "%s not started: deadline passed", argv[0]);
        res->timed_out = true;
        result = IA_ERR_TIMEOUT;
        goto out;
    }
    result = spawn(&r, path, argv, detail, detaillen);
    if (result)
        goto out;
    supervise(&r);
    close_fd(&r.out_fd);
    close_fd(&r.err_fd);
    reap(&r);
    if (res->timed_out || res->cancelled) {
        snprintf(detail, detaillen, "%s killed: %s", argv[0],
                 res->timed_out ? "deadline passed" : "cancelled");
        result = IA_ERR_TIMEOUT;
    }
out:
    res->stdout_truncated = r.out.truncated;
    res->out = capbuf_take(&r.out, &res->out_len);
    res->err = capbuf_take(&r.err, &res->err_len);
    return result;
}

bool proc_result_ok(const struct proc_result *res)
{
    return res->exit_code == 0 && !res->timed_out && !res->cancelled;
}

void proc_result_cleanup(struct proc_result *res)
{
    free(res->out);
    free(res->err);
    res->out = res->err = NULL;
    res->out_len = res->err_len = 0;
}
