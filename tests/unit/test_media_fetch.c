/*
 * Tests of media_fetch_to_file() (src/media/fetch.c) against a Python HTTP server that this test
 * starts on 127.0.0.1 with a free port and stops by its PID. The policy is the real util/netpolicy
 * with 127.0.0.1/32 and the server's port allowed, or not allowed.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "media/media.h"
#include "util/netpolicy.h"
#include "util/os.h"
#include "util/str.h"

#define BODY_LEN 102400

static const char server_py[] =
    "import http.server, sys, time\n"
    "BODY = bytes(range(256)) * 400\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.0'\n"
    "    def log_message(self, *a): pass\n"
    "    def redirect(self, to):\n"
    "        self.send_response(302); self.send_header('Location', to)\n"
    "        self.send_header('Content-Length', '0'); self.end_headers()\n"
    "    def do_GET(self):\n"
    "        p = self.path; port = self.server.server_address[1]\n"
    "        if p == '/file':\n"
    "            self.send_response(200); self.send_header('Content-Type', 'video/mp4')\n"
    "            self.send_header('Content-Length', str(len(BODY))); self.end_headers()\n"
    "            self.wfile.write(BODY)\n"
    "        elif p == '/stream':\n"
    "            self.send_response(200); self.end_headers()\n"
    "            for i in range(40): self.wfile.write(BODY[:8192])\n"
    "        elif p == '/slow':\n"
    "            self.send_response(200); self.send_header('Content-Length', '100')\n"
    "            self.end_headers(); self.wfile.write(b'x'); self.wfile.flush(); time.sleep(5)\n"
    "        elif p.startswith('/status/'):\n"
    "            self.send_response(int(p[8:])); self.send_header('Content-Length', '3')\n"
    "            self.end_headers(); self.wfile.write(b'no\\n')\n"
    "        elif p == '/redirect': self.redirect('/file')\n"
    "        elif p == '/loop': self.redirect('/loop')\n"
    "        elif p == '/to-ftp': self.redirect('ftp://127.0.0.1:%d/file' % port)\n"
    "        elif p == '/to-userinfo': self.redirect('http://u:p@127.0.0.1:%d/file' % port)\n"
    "        elif p == '/to-refused': self.redirect('http://127.0.0.2:%d/file' % port)\n"
    "        else: self.send_error(404)\n"
    "class S(http.server.ThreadingHTTPServer):\n"
    "    def handle_error(self, request, address): pass\n"
    "s = S(('127.0.0.1', 0), H)\n"
    "open(sys.argv[1] + '.tmp', 'w').write(str(s.server_address[1]))\n"
    "import os; os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
    "s.serve_forever()\n";

static char dir[] = "/tmp/test_media_fetch.XXXXXX";
static char out_path[256];
static pid_t server_pid = -1;
static unsigned port;
static struct netpolicy *allow_local, *deny_local;
static char detail[512];

static bool read_port(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fscanf(f, "%u", &port) == 1;
    fclose(f);
    return ok;
}

static int start_server(void)
{
    char script[256], portfile[256];
    snprintf(script, sizeof script, "%s/server.py", dir);
    snprintf(portfile, sizeof portfile, "%s/port", dir);
    FILE *f = fopen(script, "w");
    if (!f || fputs(server_py, f) < 0 || fclose(f) != 0)
        return -1;
    server_pid = fork();
    if (server_pid == 0) {
        execl("/usr/bin/python3", "python3", script, portfile, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && !read_port(portfile); i++)
        usleep(25000);
    return port ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    char err[128], ports[16];
    if (!mkdtemp(dir) || media_global_init() != IA_OK || start_server() < 0)
        return -1;
    snprintf(out_path, sizeof out_path, "%s/download", dir);
    snprintf(ports, sizeof ports, "%u", port);
    allow_local = netpolicy_new("127.0.0.1/32", ports, err, sizeof err);
    deny_local = netpolicy_new("", ports, err, sizeof err);
    return allow_local && deny_local ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    if (server_pid > 0) {
        kill(server_pid, SIGTERM);
        waitpid(server_pid, NULL, 0);
    }
    netpolicy_free(allow_local);
    netpolicy_free(deny_local);
    media_global_cleanup();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct media_opts opts(const struct netpolicy *p)
{
    return (struct media_opts){.policy = p,
                               .max_download_bytes = 1 << 20,
                               .connect_timeout_s = 5,
                               .fetch_timeout_s = 20,
                               .deadline_ms = os_monotonic_ms() + 30000};
}

static enum ia_err fetch(const struct media_opts *o, const char *pathpart, struct fetch_result *res)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, pathpart);
    enum ia_err e = media_fetch_to_file(o, url, out_path, res, detail, sizeof detail);
    if (e)
        print_message("%s: %s (%s)\n", pathpart, ia_err_code(e), detail);
    return e;
}

static enum ia_err fetch_url(const struct media_opts *o, const char *url)
{
    struct fetch_result res;
    enum ia_err e = media_fetch_to_file(o, url, out_path, &res, detail, sizeof detail);
    fetch_result_cleanup(&res);
    return e;
}

static void expected_sha(char hex[65])
{
    unsigned char body[BODY_LEN], md[32];
    for (size_t i = 0; i < BODY_LEN; i++)
        body[i] = (unsigned char)(i % 256);
    unsigned int len = 0;
    EVP_Digest(body, sizeof body, md, &len, EVP_sha256(), NULL);
    str_hex(hex, md, len);
}

struct progress_seen {
    int calls;
    double last;
};

static void on_progress(const char *stage, double progress, void *ctx)
{
    struct progress_seen *s = ctx;
    assert_string_equal(stage, "fetching");
    s->calls++;
    s->last = progress;
}

static void test_success_with_sha256(void **state)
{
    (void)state;
    struct media_opts o = opts(allow_local);
    struct progress_seen seen = {0};
    o.progress = on_progress;
    o.progress_ctx = &seen;
    struct fetch_result res;
    char sha[65];
    assert_int_equal(fetch(&o, "/file", &res), IA_OK);
    expected_sha(sha);
    assert_string_equal(res.sha256, sha);
    assert_int_equal(res.bytes, BODY_LEN);
    assert_int_equal(res.http_status, 200);
    assert_string_equal(res.content_type, "video/mp4");
    assert_non_null(strstr(res.final_url, "/file"));
    struct stat sb;
    assert_int_equal(stat(out_path, &sb), 0);
    assert_int_equal(sb.st_size, BODY_LEN);
    assert_true(seen.calls > 0);
    fetch_result_cleanup(&res);
}

static void test_redirect_followed(void **state)
{
    (void)state;
    struct media_opts o = opts(allow_local);
    struct fetch_result res;
    char sha[65];
    assert_int_equal(fetch(&o, "/redirect", &res), IA_OK);
    expected_sha(sha);
    assert_string_equal(res.sha256, sha);
    assert_int_equal(res.bytes, BODY_LEN);
    size_t n = strlen(res.final_url);
    assert_true(n > 5 && strcmp(res.final_url + n - 5, "/file") == 0);
    fetch_result_cleanup(&res);
}

static void test_http_errors(void **state)
{
    (void)state;
    struct media_opts o = opts(allow_local);
    struct fetch_result res;
    assert_int_equal(fetch(&o, "/status/404", &res), IA_ERR_FETCH_HTTP);
    assert_int_equal(res.http_status, 0); /* filled on success only */
    fetch_result_cleanup(&res);
    assert_int_equal(fetch(&o, "/status/403", &res), IA_ERR_FETCH_HTTP);
    fetch_result_cleanup(&res);
    assert_int_equal(fetch(&o, "/status/503", &res), IA_ERR_FETCH_TRANSIENT);
    fetch_result_cleanup(&res);
    assert_int_equal(fetch(&o, "/status/429", &res), IA_ERR_FETCH_TRANSIENT);
    fetch_result_cleanup(&res);
    assert_int_equal(fetch(&o, "/status/204", &res), IA_OK); /* an empty 2xx body is a file */
    assert_int_equal(res.bytes, 0);
    fetch_result_cleanup(&res);
    assert_int_equal(fetch(&o, "/loop", &res), IA_ERR_FETCH_HTTP);
    assert_non_null(strstr(detail, "redirects"));
    fetch_result_cleanup(&res);
}

static void test_size_caps(void **state)
{
    (void)state;
    struct media_opts o = opts(allow_local);
    o.max_download_bytes = 50000;
    struct fetch_result res;
    assert_int_equal(fetch(&o, "/file", &res), IA_ERR_TOO_LARGE); /* Content-Length */
    fetch_result_cleanup(&res);
    assert_int_equal(fetch(&o, "/stream", &res), IA_ERR_TOO_LARGE); /* counted while streaming */
    fetch_result_cleanup(&res);
    struct stat sb;
    assert_int_equal(stat(out_path, &sb), 0);
    assert_true(sb.st_size <= 50000);
}

static void test_refused_urls(void **state)
{
    (void)state;
    struct media_opts o = opts(allow_local);
    char url[256];
    struct fetch_result res;
    assert_int_equal(fetch_url(&o, "ftp://127.0.0.1/file"), IA_ERR_URL_NOT_ALLOWED);
    assert_int_equal(fetch_url(&o, "file:///etc/passwd"), IA_ERR_URL_NOT_ALLOWED);
    snprintf(url, sizeof url, "http://user:pw@127.0.0.1:%u/file", port);
    assert_int_equal(fetch_url(&o, url), IA_ERR_URL_NOT_ALLOWED);
    snprintf(url, sizeof url, "http://user@127.0.0.1:%u/file", port);
    assert_int_equal(fetch_url(&o, url), IA_ERR_URL_NOT_ALLOWED);
    assert_int_equal(fetch_url(&o, "http://127.0.0.1:1/file"), IA_ERR_URL_NOT_ALLOWED);
    assert_int_equal(fetch_url(&o, "not a url"), IA_ERR_URL_NOT_ALLOWED);
    assert_int_equal(fetch(&o, "/to-ftp", &res), IA_ERR_URL_NOT_ALLOWED);
    fetch_result_cleanup(&res);
    assert_int_equal(fetch(&o, "/to-userinfo", &res), IA_ERR_URL_NOT_ALLOWED);
    fetch_result_cleanup(&res);
    assert_int_equal(fetch(&o, "/to-refused", &res), IA_ERR_URL_NOT_ALLOWED);
    fetch_result_cleanup(&res);
}

static void test_refused_address(void **state)
{
    (void)state;
    /* The same server, but the policy does not list loopback: refused at connect time. */
    struct media_opts o = opts(deny_local);
    struct fetch_result res;
    assert_int_equal(fetch(&o, "/file", &res), IA_ERR_URL_NOT_ALLOWED);
    assert_non_null(strstr(detail, "refused by policy"));
    fetch_result_cleanup(&res);
    char url[256];
    snprintf(url, sizeof url, "http://localhost:%u/file", port);
    assert_int_equal(fetch_url(&o, url), IA_ERR_URL_NOT_ALLOWED);
}

static void test_deadline_and_cancel(void **state)
{
    (void)state;
    struct media_opts o = opts(allow_local);
    struct fetch_result res;
    int64_t start = os_monotonic_ms();
    o.deadline_ms = start + 300;
    assert_int_equal(fetch(&o, "/slow", &res), IA_ERR_TIMEOUT);
    assert_true(os_monotonic_ms() - start < 2000);
    fetch_result_cleanup(&res);
    o.deadline_ms = os_monotonic_ms() - 1;
    assert_int_equal(fetch(&o, "/file", &res), IA_ERR_TIMEOUT);
    fetch_result_cleanup(&res);
    atomic_bool cancel = true;
    o = opts(allow_local);
    o.cancel = &cancel;
    start = os_monotonic_ms();
    assert_int_equal(fetch(&o, "/slow", &res), IA_ERR_TIMEOUT);
    assert_true(os_monotonic_ms() - start < 2000);
    fetch_result_cleanup(&res);
}

static void test_network_error(void **state)
{
    (void)state;
    /* Port 9 (discard) on loopback: nothing listens there, so the connection is refused. */
    char err[64];
    struct netpolicy *p = netpolicy_new("127.0.0.1/32", "9", err, sizeof err);
    assert_non_null(p);
    struct media_opts o = opts(p);
    assert_int_equal(fetch_url(&o, "http://127.0.0.1:9/file"), IA_ERR_FETCH_NETWORK);
    netpolicy_free(p);
}

static void test_disk_full(void **state)
{
    (void)state;
    struct media_opts o = opts(allow_local);
    struct fetch_result res;
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/file", port);
    /* /dev/full accepts the open and fails every write with ENOSPC. */
    assert_int_equal(media_fetch_to_file(&o, url, "/dev/full", &res, detail, sizeof detail),
                     IA_ERR_STORAGE_FULL);
    assert_null(strstr(detail, "/dev/full"));
    fetch_result_cleanup(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_with_sha256), cmocka_unit_test(test_redirect_followed),
        cmocka_unit_test(test_http_errors),         cmocka_unit_test(test_size_caps),
        cmocka_unit_test(test_refused_urls),        cmocka_unit_test(test_refused_address),
        cmocka_unit_test(test_deadline_and_cancel), cmocka_unit_test(test_network_error),
        cmocka_unit_test(test_disk_full),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
