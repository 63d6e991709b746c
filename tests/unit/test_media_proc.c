/* Tests of src/media/proc.c: capture, caps, lines, limits, kills on deadline and cancel, reaping.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "media/media.h"
#include "media/proc.h"
#include "util/os.h"

static char detail[512];

/* No child of this process is left, running or zombie. */
static void assert_no_children(void)
{
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_captures_stdout_and_stderr(void **state)
{
    (void)state;
    const char *argv[] = {"sh", "-c", "printf hello; printf oops >&2; exit 3", NULL};
    struct proc_opts o = {.out_mode = PROC_STDOUT_CAPTURE};
    struct proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, detail, sizeof detail), IA_OK);
    assert_string_equal(r.out, "hello");
    assert_int_equal(r.out_len, 5);
    assert_string_equal(r.err, "oops");
    assert_int_equal(r.exit_code, 3);
    assert_false(proc_result_ok(&r));
    proc_result_cleanup(&r);
    assert_no_children();
}

static void test_stdout_cap(void **state)
{
    (void)state;
    const char *argv[] = {"head", "-c", "300000", "/dev/zero", NULL};
    struct proc_opts o = {.out_mode = PROC_STDOUT_CAPTURE, .stdout_cap = 1000};
    struct proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, detail, sizeof detail), IA_OK);
    assert_true(proc_result_ok(&r)); /* the child was drained, not blocked */
    assert_int_equal(r.out_len, 1000);
    assert_true(r.stdout_truncated);
    proc_result_cleanup(&r);
}

static void test_stderr_keeps_tail(void **state)
{
    (void)state;
    const char *argv[] = {"sh", "-c", "head -c 200000 /dev/zero | tr '\\000' a >&2; printf END >&2",
                          NULL};
    struct proc_opts o = {.stderr_keep = 1000};
    struct proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, detail, sizeof detail), IA_OK);
    assert_int_equal(r.err_len, 1000);
    assert_string_equal(r.err + 997, "END");
    assert_int_equal(r.err[0], 'a');
    proc_result_cleanup(&r);
}

struct lines {
    int n;
    char got[4][16];
};

static void on_line(const char *line, size_t len, void *ctx)
{
    struct lines *l = ctx;
    assert_int_equal(strlen(line), len);
    if (l->n < 4)
        snprintf(l->got[l->n], sizeof l->got[0], "%s", line);
    l->n++;
}

static void test_lines_callback(void **state)
{
    (void)state;
    const char *argv[] = {"printf", "a\\nbb\\n\\nccc", NULL};
    struct lines l = {0};
    struct proc_opts o = {.out_mode = PROC_STDOUT_LINES, .on_line = on_line, .line_ctx = &l};
    struct proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, detail, sizeof detail), IA_OK);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.got[0], "a");
    assert_string_equal(l.got[1], "bb");
    assert_string_equal(l.got[2], "");
    assert_string_equal(l.got[3], "ccc");
    proc_result_cleanup(&r);
}

static void test_stdin_is_dev_null(void **state)
{
    (void)state;
    const char *argv[] = {"cat", NULL};
    struct proc_opts o = {.out_mode = PROC_STDOUT_CAPTURE, .deadline_ms = os_monotonic_ms() + 5000};
    struct proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, detail, sizeof detail), IA_OK);
    assert_true(proc_result_ok(&r));
    assert_int_equal(r.out_len, 0);
    proc_result_cleanup(&r);
}

static void test_kills_on_deadline_and_reaps(void **state)
{
    (void)state;
    const char *argv[] = {"sleep", "30", NULL};
    int64_t start = os_monotonic_ms();
    struct proc_opts o = {.deadline_ms = start + 200};
    struct proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, detail, sizeof detail), IA_ERR_TIMEOUT);
    assert_true(os_monotonic_ms() - start < 2000);
    assert_true(r.timed_out);
    assert_int_equal(r.term_signal, SIGKILL);
    proc_result_cleanup(&r);
    assert_no_children();
}

/* True when pid is gone or a zombie waiting for its new parent. */
static bool pid_dead(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && (paren[2] == 'Z' || paren[2] == 'X');
}

static void test_kills_whole_group(void **state)
{
    (void)state;
    const char *argv[] = {"sh", "-c", "sleep 30 & echo $!; wait", NULL};
    struct proc_opts o = {.out_mode = PROC_STDOUT_CAPTURE, .deadline_ms = os_monotonic_ms() + 300};
    struct proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, detail, sizeof detail), IA_ERR_TIMEOUT);
    long grandchild = strtol(r.out, NULL, 10);
    assert_true(grandchild > 1);
    bool dead = false;
    for (int i = 0; i < 100 && !dead; i++) {
        dead = pid_dead((pid_t)grandchild);
        if (!dead)
            usleep(20000);
    }
    assert_true(dead);
    proc_result_cleanup(&r);
    assert_no_children();
}

static void test_cancel(void **state)
{
    (void)state;
    atomic_bool cancel = true;
    const char *argv[] = {"sleep", "30", NULL};
    int64_t start = os_monotonic_ms();
    struct proc_opts o = {.cancel = &cancel};
    struct proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, detail, sizeof detail), IA_ERR_TIMEOUT);
    assert_true(r.cancelled);
    assert_false(r.timed_out);
    assert_true(os_monotonic_ms() - start < 2000);
    proc_result_cleanup(&r);
    assert_no_children();
}

static void test_deadline_already_passed(void **state)
{
    (void)state;
    const char *argv[] = {"sleep", "30", NULL};
    struct proc_opts o = {.deadline_ms = os_monotonic_ms() - 1};
    struct proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, detail, sizeof detail), IA_ERR_TIMEOUT);
    assert_true(r.timed_out);
    proc_result_cleanup(&r);
    assert_no_children();
}

static void test_exec_failure(void **state)
{
    (void)state;
    const char *argv[] = {"/nonexistent/ffmpeg", NULL};
    struct proc_opts o = {0};
    struct proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, detail, sizeof detail), IA_ERR_INTERNAL);
    assert_non_null(strstr(detail, "exec"));
    proc_result_cleanup(&r);
    const char *argv2[] = {"no-such-program-here", NULL};
    assert_int_equal(proc_run(argv2, &o, &r, detail, sizeof detail), IA_ERR_INTERNAL);
    proc_result_cleanup(&r);
    assert_no_children();
}

static void test_inherited_fds_closed(void **state)
{
    (void)state;
    int fd = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
    assert_true(fd >= 0);
    assert_int_equal(dup2(fd, 57), 57);
    const char *argv[] = {"sh", "-c", "test -e /proc/self/fd/57 && echo open || echo closed", NULL};
    struct proc_opts o = {.out_mode = PROC_STDOUT_CAPTURE};
    struct proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, detail, sizeof detail), IA_OK);
    assert_string_equal(r.out, "closed\n");
    proc_result_cleanup(&r);
    close(57);
    close(fd);
}

/* What children wrote while this process ran with fds 0-2 closed (a worker started so). */
struct closed_std_run {
    enum ia_err run_rc, stream_rc;
    int exit_code;
    char out[16], err[16], echo[8];
    ssize_t echoed;
};

static void run_with_std_closed(struct closed_std_run *c)
{
    const char *argv[] = {"sh", "-c", "printf out; printf err >&2; cat", NULL};
    int64_t deadline = os_monotonic_ms() + 30000; /* a broken set-up fails instead of hanging */
    struct proc_opts o = {.out_mode = PROC_STDOUT_CAPTURE, .deadline_ms = deadline};
    struct proc_result r;
    c->run_rc = proc_run(argv, &o, &r, detail, sizeof detail);
    if (c->run_rc == IA_OK) {
        c->exit_code = r.exit_code;
        snprintf(c->out, sizeof c->out, "%s", r.out);
        snprintf(c->err, sizeof c->err, "%s", r.err);
    }
    proc_result_cleanup(&r);
    const char *cat[] = {"cat", NULL};
    struct proc_opts so = {.deadline_ms = deadline};
    struct proc_stream *ps;
    c->stream_rc = proc_stream_start(cat, &so, true, &ps, detail, sizeof detail);
    if (c->stream_rc == IA_OK) {
        (void)proc_stream_write(ps, "ping", 4);
        c->echoed = proc_stream_read(ps, c->echo, 4);
        (void)proc_stream_finish(ps, false, &r, detail, sizeof detail);
        proc_result_cleanup(&r);
    }
}

/* With fds 0-2 closed, the pipes take those numbers; the child still gets each at its place. */
static void test_parent_with_std_fds_closed(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* as every command of the program does */
    int saved[3];
    for (int i = 0; i < 3; i++) {
        saved[i] = fcntl(i, F_DUPFD_CLOEXEC, 10);
        assert_true(saved[i] >= 10);
    }
    for (int i = 0; i < 3; i++)
        close(i);
    struct closed_std_run c = {0};
    run_with_std_closed(&c);
    for (int i = 0; i < 3; i++) { /* back before any assertion prints */
        dup2(saved[i], i);
        close(saved[i]);
    }
    assert_int_equal(c.run_rc, IA_OK);
    assert_string_equal(c.out, "out");
    assert_string_equal(c.err, "err");
    assert_int_equal(c.exit_code, 0);
    assert_int_equal(c.stream_rc, IA_OK);
    assert_int_equal(c.echoed, 4);
    assert_memory_equal(c.echo, "ping", 4);
    assert_no_children();
}

static void test_rlimits_applied(void **state)
{
    (void)state;
    const char *argv[] = {"sh", "-c", "ulimit -t; ulimit -v; ulimit -c", NULL};
    struct proc_opts o = {.out_mode = PROC_STDOUT_CAPTURE,
                          .rlimit_cpu_s = 7,
                          .rlimit_as_bytes = (uint64_t)4 << 30,
                          .rlimit_fsize_bytes = 1 << 20};
    struct proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, detail, sizeof detail), IA_OK);
    assert_string_equal(r.out, "7\n4194304\n0\n");
    proc_result_cleanup(&r);
}

static void test_fsize_limit_stops_writer(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_media_proc.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char file[128], of[160];
    snprintf(file, sizeof file, "%s/big", dir);
    snprintf(of, sizeof of, "of=%s", file);
    const char *argv[] = {"dd", "if=/dev/zero", of, "bs=65536", "count=64", NULL};
    struct proc_opts o = {.rlimit_fsize_bytes = 65536};
    struct proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, detail, sizeof detail), IA_OK);
    assert_false(proc_result_ok(&r));
    assert_int_equal(r.term_signal, SIGXFSZ);
    proc_result_cleanup(&r);
    unlink(file);
    rmdir(dir);
}

/* A stream: what is written to stdin comes back on stdout, in pieces of any size. */
static void test_stream_round_trip(void **state)
{
    (void)state;
    const char *argv[] = {"cat", NULL};
    struct proc_opts o = {0};
    struct proc_stream *ps;
    assert_int_equal(proc_stream_start(argv, &o, true, &ps, detail, sizeof detail), IA_OK);
    static char out[300000], in[300000];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (char)(i * 7);
    /* cat echoes while we write: write half, read it, then the rest */
    assert_int_equal(proc_stream_write(ps, out, 50000), 0);
    assert_int_equal(proc_stream_read(ps, in, 50000), 50000);
    assert_int_equal(proc_stream_write(ps, out + 50000, 50000), 0);
    assert_int_equal(proc_stream_read(ps, in + 50000, 50000), 50000);
    assert_memory_equal(in, out, 100000);
    struct proc_result r;
    assert_int_equal(proc_stream_finish(ps, false, &r, detail, sizeof detail), IA_OK);
    assert_true(proc_result_ok(&r));
    proc_result_cleanup(&r);
    assert_no_children();
}

/* The end of stdout gives a short read, then 0. */
static void test_stream_short_read_at_end(void **state)
{
    (void)state;
    const char *argv[] = {"sh", "-c", "printf abcde; echo err >&2", NULL};
    struct proc_opts o = {0};
    struct proc_stream *ps;
    assert_int_equal(proc_stream_start(argv, &o, false, &ps, detail, sizeof detail), IA_OK);
    char buf[16];
    assert_int_equal(proc_stream_read(ps, buf, sizeof buf), 5);
    assert_memory_equal(buf, "abcde", 5);
    assert_int_equal(proc_stream_read(ps, buf, sizeof buf), 0);
    struct proc_result r;
    assert_int_equal(proc_stream_finish(ps, false, &r, detail, sizeof detail), IA_OK);
    assert_string_equal(r.err, "err\n");
    proc_result_cleanup(&r);
    assert_no_children();
}

/* Cancel stops a reader that is waiting for a child that never writes, and the child dies. */
static void test_stream_cancel_while_reading(void **state)
{
    (void)state;
    const char *argv[] = {"sleep", "30", NULL};
    atomic_bool cancel = true;
    struct proc_opts o = {.cancel = &cancel};
    struct proc_stream *ps;
    assert_int_equal(proc_stream_start(argv, &o, false, &ps, detail, sizeof detail), IA_OK);
    char buf[4];
    assert_int_equal(proc_stream_read(ps, buf, sizeof buf), -1);
    struct proc_result r;
    assert_int_equal(proc_stream_finish(ps, false, &r, detail, sizeof detail), IA_ERR_TIMEOUT);
    assert_true(r.cancelled);
    proc_result_cleanup(&r);
    assert_no_children();
}

/* Writing to a child that exited fails instead of killing us with SIGPIPE. */
static void test_stream_write_to_gone_child(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    const char *argv[] = {"true", NULL};
    struct proc_opts o = {0};
    struct proc_stream *ps;
    assert_int_equal(proc_stream_start(argv, &o, true, &ps, detail, sizeof detail), IA_OK);
    static char big[1 << 20];
    int rc = 0;
    for (int i = 0; i < 8 && rc == 0; i++)
        rc = proc_stream_write(ps, big, sizeof big);
    assert_int_equal(rc, -1);
    struct proc_result r;
    assert_int_equal(proc_stream_finish(ps, false, &r, detail, sizeof detail), IA_OK);
    proc_result_cleanup(&r);
    assert_no_children();
}

/*
 * A supervisor's service writes to the stdout it inherits, runs in a process group of its own,
 * sees no other fd of ours, and is left for the caller to reap.
 */
static void test_service_inherits_stdio_in_its_own_group(void **state)
{
    (void)state;
    int p[2], extra = open("/dev/null", O_RDONLY); /* not close-on-exec: must still be closed */
    assert_int_equal(pipe(p), 0);
    int saved = dup(1);
    assert_true(extra > 2 && saved >= 0 && dup2(p[1], 1) == 1);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "echo started; test -e /proc/self/fd/%d || echo closed", extra);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    pid_t pid = proc_spawn_service(argv, detail, sizeof detail);
    assert_true(dup2(saved, 1) == 1);
    close(saved);
    close(p[1]);
    close(extra);
    assert_true(pid > 0);
    assert_int_equal(getpgid(pid), pid); /* a zombie keeps its group until reaped */
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char out[64] = {0};
    ssize_t n = read(p[0], out, sizeof out - 1);
    close(p[0]);
    assert_true(n > 0);
    assert_string_equal(out, "started\nclosed\n");
    assert_no_children();
}

/* A service that cannot be started is an error with a reason, not a child exiting 127. */
static void test_service_exec_failure(void **state)
{
    (void)state;
    const char *missing[] = {"no-such-program-xyz", NULL};
    assert_int_equal(proc_spawn_service(missing, detail, sizeof detail), -1);
    assert_non_null(strstr(detail, "not found"));
    const char *not_exec[] = {"/dev/null", NULL};
    assert_int_equal(proc_spawn_service(not_exec, detail, sizeof detail), -1);
    assert_non_null(strstr(detail, "exec /dev/null"));
    assert_no_children();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_captures_stdout_and_stderr),
        cmocka_unit_test(test_service_inherits_stdio_in_its_own_group),
        cmocka_unit_test(test_service_exec_failure),
        cmocka_unit_test(test_stdout_cap),
        cmocka_unit_test(test_stderr_keeps_tail),
        cmocka_unit_test(test_lines_callback),
        cmocka_unit_test(test_stdin_is_dev_null),
        cmocka_unit_test(test_kills_on_deadline_and_reaps),
        cmocka_unit_test(test_kills_whole_group),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_deadline_already_passed),
        cmocka_unit_test(test_exec_failure),
        cmocka_unit_test(test_inherited_fds_closed),
        cmocka_unit_test(test_parent_with_std_fds_closed),
        cmocka_unit_test(test_rlimits_applied),
        cmocka_unit_test(test_fsize_limit_stops_writer),
        cmocka_unit_test(test_stream_round_trip),
        cmocka_unit_test(test_stream_short_read_at_end),
        cmocka_unit_test(test_stream_cancel_while_reading),
        cmocka_unit_test(test_stream_write_to_gone_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
