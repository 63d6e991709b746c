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
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "media/media.h"
#include "util/os.h"

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
    int in_fd, out_fd, err_fd; /* the parent's ends; in_fd only for a stream with stdin */
    bool want_in;
    bool service; /* proc_spawn_service(): stdio inherited, no limits, SIGTERM at our death */
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

/*
 * Makes in, out, err and exec_w the child's fds 0, 1, 2 and 3 (3 close-on-exec). Each is first
 * copied above 3: in a worker started with fds 0-2 closed the pipes get those numbers, and a
 * dup2 onto 0-3 could close a pipe not yet moved, or, onto itself, keep its close-on-exec flag.
 */
static bool child_set_fds(int in, int out, int err, int exec_w)
{
    int src[4] = {in, out, err, exec_w};
    for (int i = 0; i < 4; i++)
        if ((src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 4)) < 0)
            return false;
    for (int i = 0; i < 3; i++)
        if (dup2(src[i], i) < 0)
            return false;
    return dup3(src[3], 3, O_CLOEXEC) >= 0;
}

/* fd when it is open (a service inherits it), else /dev/null. */
static int child_inherit(int fd, int devnull) { return fcntl(fd, F_GETFD) >= 0 ? fd : devnull; }

/*
 * Runs in the forked child: only async-signal-safe calls until execv. Never returns. A pipe end
 * of -1 means /dev/null, or for a service the fd it inherits.
 */
static _Noreturn void child_exec(const char *path, const char *const argv[],
                                 const struct proc_opts *o, bool service, int in_r, int out_w,
                                 int err_w, int exec_w, pid_t parent)
{
    /*
     * A worker killed with SIGKILL takes its ffmpeg with it (no orphan keeps running); a
     * supervisor's services get SIGTERM, to stop well.
     */
    if (prctl(PR_SET_PDEATHSIG, service ? SIGTERM : SIGKILL) || getppid() != parent)
        _exit(126);
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction sa = {.sa_handler = SIG_DFL};
    (void)sigaction(SIGPIPE, &sa, NULL);
    if (service) { /* a background group still logs to a `stty tostop` terminal */
        sa.sa_handler = SIG_IGN;
        (void)sigaction(SIGTTOU, &sa, NULL);
    }
    (void)setpgid(0, 0);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0)
        _exit(126);
    int in = in_r >= 0 ? in_r : service ? child_inherit(0, devnull) : devnull;
    int out = out_w >= 0 ? out_w : service ? child_inherit(1, devnull) : devnull;
    int err = err_w >= 0 ? err_w : child_inherit(2, devnull);
    if (!child_set_fds(in, out, err, exec_w))
        _exit(126);
    child_close_fds(4);
    if (service)
        execv(path, (char *const *)(uintptr_t)argv);
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
    int inp[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1}, execp[2] = {-1, -1};
    enum ia_err result = IA_ERR_INTERNAL;
    if ((r->want_in && pipe2(inp, O_CLOEXEC) < 0) ||
        (r->opts->out_mode != PROC_STDOUT_DISCARD && pipe2(outp, O_CLOEXEC) < 0) ||
        (!r->service && pipe2(errp, O_CLOEXEC) < 0) || pipe2(execp, O_CLOEXEC) < 0) {
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
        child_exec(path, argv, r->opts, r->service, inp[0], outp[1], errp[1], execp[1], parent);
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
    r->in_fd = inp[1], inp[1] = -1;
    r->out_fd = outp[0], outp[0] = -1;
    r->err_fd = errp[0], errp[0] = -1;
    if (r->opts->started)
        atomic_fetch_add(r->opts->started, 1);
    result = IA_OK;
out:
    close_fd(&inp[0]), close_fd(&inp[1]);
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
    else if (r->opts->out_mode == PROC_STDOUT_CHUNKS && r->opts->on_data)
        r->opts->on_data(buf, (size_t)n, r->opts->line_ctx);
}

/*
 * Waits up to timeout_ms for output, or for the child's end when pid_fd >= 0 (a pidfd turns
 * readable then), and reads what arrived.
 */
static void poll_pipes(struct run *r, int timeout_ms, int pid_fd)
{
    struct pollfd pfd[3];
    int *fds[3];
    nfds_t n = 0;
    if (r->out_fd >= 0)
        pfd[n] = (struct pollfd){.fd = r->out_fd, .events = POLLIN}, fds[n++] = &r->out_fd;
    if (r->err_fd >= 0)
        pfd[n] = (struct pollfd){.fd = r->err_fd, .events = POLLIN}, fds[n++] = &r->err_fd;
    if (pid_fd >= 0)
        pfd[n] = (struct pollfd){.fd = pid_fd, .events = POLLIN}, fds[n++] = NULL;
    if (poll(n ? pfd : NULL, n, timeout_ms) <= 0)
        return;
    for (nfds_t i = 0; i < n; i++) {
        if (pfd[i].revents && fds[i])
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

/*
 * Reads the pipes until the child exits and its pipes close (or a grace period passes). A pidfd
 * wakes the wait at the child's end, which often comes a moment after its pipes closed; without
 * one (a kernel before 5.3), the end is seen at the next PROC_POLL_MS tick.
 */
static void supervise(struct run *r)
{
    bool killed = false, exited = false;
    int64_t exit_ms = 0;
    int pid_fd = (int)syscall(SYS_pidfd_open, r->pid, 0);
    for (;;) {
        int64_t now = os_monotonic_ms();
        if (!exited)
            check_limits(r, now, &killed);
        if (!exited && child_exited(r->pid)) {
            exited = true;
            exit_ms = now;
            (void)killpg(r->pid, SIGKILL); /* stray members of the group */
        }
        if (exited && ((r->out_fd < 0 && r->err_fd < 0) || now - exit_ms > PROC_DRAIN_GRACE_MS))
            break;
        poll_pipes(r, exited ? 10 : poll_timeout(r->opts, now), exited ? -1 : pid_fd);
    }
    if (pid_fd >= 0)
        close(pid_fd);
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

/* Resolves argv[0] and checks the deadline before a start; fills detail when it cannot start. */
static enum ia_err proc_prepare(const char *const argv[], const struct proc_opts *opts,
                                struct proc_result *res, char *path, size_t pathlen, char *detail,
                                size_t detaillen)
{
    if (!resolve_path(argv[0], path, pathlen)) {
        snprintf(detail, detaillen, "%s: not found in PATH", argv[0]);
        return IA_ERR_INTERNAL;
    }
    if (opts->deadline_ms && os_monotonic_ms() >= opts->deadline_ms) {
        snprintf(detail, detaillen, "%s not started: deadline passed", argv[0]);
        res->timed_out = true;
        return IA_ERR_TIMEOUT;
    }
    return IA_OK;
}

static void run_init(struct run *r, const struct proc_opts *opts, struct proc_result *res)
{
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    *r = (struct run){.opts = opts, .res = res, .pid = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1};
    r->out.limit = opts->stdout_cap ? opts->stdout_cap : PROC_STDOUT_CAP_DEFAULT;
    r->err.limit = opts->stderr_keep ? opts->stderr_keep : PROC_STDERR_KEEP_DEFAULT;
    r->err.keep_tail = true;
}

/* Waits for the child's end, reaps it and says whether it was killed for a limit. */
static enum ia_err run_finish(struct run *r, const char *name, char *detail, size_t detaillen)
{
    supervise(r);
    close_fd(&r->in_fd);
    close_fd(&r->out_fd);
    close_fd(&r->err_fd);
    reap(r);
    if (r->res->timed_out || r->res->cancelled) {
        snprintf(detail, detaillen, "%s killed: %s", name,
                 r->res->timed_out ? "deadline passed" : "cancelled");
        return IA_ERR_TIMEOUT;
    }
    return IA_OK;
}

static void run_take_output(struct run *r)
{
    r->res->stdout_truncated = r->out.truncated;
    r->res->out = capbuf_take(&r->out, &r->res->out_len);
    r->res->err = capbuf_take(&r->err, &r->res->err_len);
}

enum ia_err proc_run(const char *const argv[], const struct proc_opts *opts,
                     struct proc_result *res, char *detail, size_t detaillen)
{
    char path[PATH_MAX];
    struct run r;
    run_init(&r, opts, res);
    enum ia_err result = proc_prepare(argv, opts, res, path, sizeof path, detail, detaillen);
    if (!result)
        result = spawn(&r, path, argv, detail, detaillen);
    if (!result)
        result = run_finish(&r, argv[0], detail, detaillen);
    run_take_output(&r);
    return result;
}

struct proc_stream {
    struct run r;
    struct proc_opts opts;
    struct proc_result res;
    char name[64];
    bool killed;
};

enum ia_err proc_stream_start(const char *const argv[], const struct proc_opts *opts,
                              bool with_stdin, struct proc_stream **out, char *detail,
                              size_t detaillen)
{
    char path[PATH_MAX];
    struct proc_stream *s = xcalloc(1, sizeof *s);
    s->opts = *opts;
    s->opts.out_mode = PROC_STDOUT_STREAM;
    snprintf(s->name, sizeof s->name, "%s", argv[0]);
    run_init(&s->r, &s->opts, &s->res);
    s->r.want_in = with_stdin;
    enum ia_err result =
        proc_prepare(argv, &s->opts, &s->res, path, sizeof path, detail, detaillen);
    if (!result)
        result = spawn(&s->r, path, argv, detail, detaillen);
    if (result) {
        run_take_output(&s->r);
        proc_result_cleanup(&s->res);
        free(s);
        return result;
    }
    if (s->r.in_fd >= 0)
        (void)fcntl(s->r.in_fd, F_SETFL, O_NONBLOCK);
    (void)fcntl(s->r.out_fd, F_SETFL, O_NONBLOCK); /* a read never outwaits the limits */
    *out = s;
    return IA_OK;
}

/* Kills the child when the deadline passed or cancel is set; true once it was killed. */
static bool stream_limited(struct proc_stream *s)
{
    check_limits(&s->r, os_monotonic_ms(), &s->killed);
    return s->killed;
}

/* Polls fd for events and stderr for output; false once a limit killed the child. */
static bool stream_wait(struct proc_stream *s, int fd, short events)
{
    if (stream_limited(s))
        return false;
    struct pollfd pfd[2] = {{.fd = fd, .events = events}, {.fd = s->r.err_fd, .events = POLLIN}};
    if (poll(pfd, s->r.err_fd >= 0 ? 2 : 1, poll_timeout(&s->opts, os_monotonic_ms())) > 0 &&
        pfd[1].revents && s->r.err_fd >= 0)
        pump(&s->r, &s->r.err_fd, false);
    return true;
}

ssize_t proc_stream_read(struct proc_stream *s, void *buf, size_t n)
{
    size_t got = 0;
    if (stream_limited(s))
        return -1;
    while (got < n && s->r.out_fd >= 0) {
        ssize_t k = read(s->r.out_fd, (char *)buf + got, n - got);
        if (k > 0) {
            got += (size_t)k;
        } else if (k == 0 || (errno != EINTR && errno != EAGAIN)) {
            close_fd(&s->r.out_fd);
        } else if (!stream_wait(s, s->r.out_fd, POLLIN)) {
            return -1;
        }
    }
    return (ssize_t)got;
}

int proc_stream_write(struct proc_stream *s, const void *buf, size_t n)
{
    size_t put = 0;
    if (stream_limited(s))
        return -1;
    while (put < n) {
        if (s->r.in_fd < 0)
            return -1;
        ssize_t k = write(s->r.in_fd, (const char *)buf + put, n - put);
        if (k > 0) {
            put += (size_t)k;
        } else if (k < 0 && errno != EINTR && errno != EAGAIN) {
            close_fd(&s->r.in_fd); /* the child closed its end (EPIPE) */
            return -1;
        } else if (!stream_wait(s, s->r.in_fd, POLLOUT)) {
            return -1;
        }
    }
    return 0;
}

enum ia_err proc_stream_finish(struct proc_stream *s, bool kill_first, struct proc_result *res,
                               char *detail, size_t detaillen)
{
    close_fd(&s->r.in_fd);
    if (kill_first) {
        (void)killpg(s->r.pid, SIGKILL);
        (void)kill(s->r.pid, SIGKILL);
    }
    close_fd(&s->r.out_fd); /* whatever else it writes is not wanted */
    enum ia_err result = run_finish(&s->r, s->name, detail, detaillen);
    run_take_output(&s->r);
    *res = s->res;
    free(s);
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

pid_t proc_spawn_service(const char *const argv[], char *detail, size_t detaillen)
{
    static const struct proc_opts none = {.out_mode = PROC_STDOUT_DISCARD};
    char path[PATH_MAX];
    struct proc_result res;
    struct run r;
    run_init(&r, &none, &res);
    r.service = true;
    enum ia_err err = proc_prepare(argv, &none, &res, path, sizeof path, detail, detaillen);
    if (!err)
        err = spawn(&r, path, argv, detail, detaillen);
    run_take_output(&r);
    proc_result_cleanup(&res);
    return err ? -1 : r.pid;
}
