"""Fixtures for black-box tests: real processes on free loopback ports, stopped by PID.

- redis_server: a private redis-server (no persistence unless asked).
- media: test clips generated once per session with ffmpeg lavfi.
- file_server: nginx on 127.0.0.2 serving the clips (the fetcher's allowed test origin).
- service: `interview-api serve` + `interview-api worker` wired to the above.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IA_BIN = os.environ.get("IA_BIN", os.path.join(ROOT, "build", "interview-api"))
ALLOWED_HOST = "127.0.0.2"
# IA_TEST_SLOW=N multiplies start-up waits (valgrind runs the programs ~20x slower).
SLOW = float(os.environ.get("IA_TEST_SLOW", "1") or 1)
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=87",
    "LSAN_OPTIONS": "suppressions=" + os.path.join(ROOT, "tests", "lsan.supp") + ":exitcode=88",
}


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port}")


def stop_process(proc, timeout=30):
    """SIGTERM, wait, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Redis:
    def __init__(self, tmp, appendonly=False, port=None):
        self.port = port or free_port()
        self.dir = tmp
        self.appendonly = appendonly
        self.proc = None
        self.start()

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--dir", self.dir, "--appendonly",
                "yes" if self.appendonly else "no", "--loglevel", "warning"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", self.port)

    def stop(self):
        stop_process(self.proc)

    def url(self, db):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def cli(self, *args, db=0):
        out = subprocess.run(["redis-cli", "-p", str(self.port), "-n", str(db), *args],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip()


@pytest.fixture
def redis_server(tmp_path):
    r = Redis(str(tmp_path))
    yield r
    r.stop()


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True,
                   timeout=120)


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """A directory of generated clips; names are stable across tests."""
    d = tmp_path_factory.mktemp("media")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2",
           "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
           str(d / "clip.mp4"))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2",
           "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
           "-c:v", "libvpx", "-b:v", "300k", "-c:a", "libopus", "-shortest",
           str(d / "clip.webm"))
    (d / "notes.txt").write_text("this is not a video\n")
    return d


# As root, nginx's workers would drop to "nobody" and could not read pytest's private dirs.
NGINX_USER = "user root root;\n" if os.geteuid() == 0 else ""


class FileServer:
    """nginx serving a directory on 127.0.0.2, for the fetcher to download from."""

    def __init__(self, root, tmp):
        self.port = free_port(ALLOWED_HOST)
        self.tmp = tmp
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_USER + f"""
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
daemon off;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ video/mp4 mp4; video/webm webm; text/plain txt; }}
    sendfile on;
    server {{
        listen {ALLOWED_HOST}:{self.port};
        root {root};
        location /redirect-to-loopback {{ return 302 http://127.0.0.1:{self.port}/clip.mp4; }}
        location /redirect-to-v6loop {{ return 302 http://[::1]:{self.port}/clip.mp4; }}
        location /redirect-to-decimal {{ return 301 http://2130706433:{self.port}/clip.mp4; }}
        location /redirect-to-localhost {{ return 307 http://localhost:{self.port}/clip.mp4; }}
        location /redirect-to-userinfo {{ return 302 http://u:p@{ALLOWED_HOST}:{self.port}/clip.mp4; }}
        location /redirect-to-file {{ return 302 file:///etc/passwd; }}
        location /redirect-to-gopher {{ return 302 gopher://127.0.0.1:{self.port}/_INFO; }}
        location /redirect-chain {{ return 302 /redirect-to-loopback; }}
    }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-p", tmp, "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(ALLOWED_HOST, self.port)

    def url(self, name):
        return f"http://{ALLOWED_HOST}:{self.port}/{name}"

    def stop(self):
        stop_process(self.proc)


@pytest.fixture(scope="session")
def file_server(media, tmp_path_factory):
    fs = FileServer(str(media), str(tmp_path_factory.mktemp("nginx")))
    yield fs
    fs.stop()


def raw_exchange(port, data, timeout=10):
    """Sends raw bytes to 127.0.0.1:port on a new connection; returns all that is read until the
    server closes. A server that answers and closes before it has read everything is normal for
    refusals, so a broken pipe while sending still reads the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


class Service:
    """The real program: serve and worker processes sharing one PROCESSED_DIR and Redis."""

    def __init__(self, tmp, redis, file_server=None, extra_env=None, workers=1):
        self.tmp = tmp
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.processed = os.path.join(tmp, "processed")
        self.env = dict(os.environ)
        self.env.update(SANITIZER_ENV)
        self.env.update({
            "HOST": "127.0.0.1", "PORT": str(self.port), "PROCESSED_DIR": self.processed,
            "CELERY_BROKER_URL": redis.url(0), "CELERY_BACKEND_URL": redis.url(1),
            "FETCH_ALLOW_CIDRS": f"{ALLOWED_HOST}/32", "WORKER_CONCURRENCY": "2",
            "SERVE_THREADS": "2", "LOG_LEVEL": "debug", "TASK_LEASE_S": "10",
        })
        if file_server:
            self.env["ALLOWED_PORTS"] = str(file_server.port)
        self.env.update(extra_env or {})
        self.logs = []
        self.serve = self.spawn("serve")
        self.workers = [self.spawn("worker") for _ in range(workers)]
        self.wait_healthy()

    def spawn(self, role):
        log = open(os.path.join(self.tmp, f"{role}-{len(self.logs)}.log"), "wb")
        self.logs.append(log.name)
        proc = subprocess.Popen([IA_BIN, role], env=self.env, stdout=log, stderr=log,
                                cwd=self.tmp)
        proc.log_name = log.name
        return proc

    def wait_healthy(self, timeout=15):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            try:
                if requests.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("service did not become healthy\n" + self.dump_logs())

    def wait_workers_ready(self, timeout=15):
        """Waits for each worker's "ready" line (a SIGTERM before it still kills a worker)."""
        deadline = time.time() + timeout * SLOW
        for name in self.logs[1:]:
            while b"worker: ready:" not in open(name, "rb").read():
                if time.time() > deadline:
                    raise RuntimeError("worker did not become ready\n" + self.dump_logs())
                time.sleep(0.05)

    def dump_logs(self):
        out = []
        for name in self.logs:
            with open(name, "rb") as f:
                out.append(f"==== {name}\n" + f.read().decode(errors="replace")[-20000:])
        return "\n".join(out)

    def raw(self, data, timeout=10):
        """Sends raw bytes on a new connection; returns all that is read until the server closes."""
        return raw_exchange(self.port, data, timeout)

    def submit(self, url, **kw):
        return requests.post(self.base + "/submit", json={"video_url": url}, timeout=10, **kw)

    def wait_done(self, task_id, timeout=120, headers=None):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            r = requests.get(f"{self.base}/status/{task_id}", timeout=5, headers=headers)
            body = r.json()
            if r.status_code != 200 or body["status"] != "processing":
                return r.status_code, body
            time.sleep(0.1)
        raise AssertionError(f"task {task_id} still processing after {timeout}s\n" +
                             self.dump_logs())

    def stop(self):
        # A worker stopped before its "ready" line dies of the signal (its handling is not set
        # up yet): a short test would see an unclean exit. Wait for it, as a running worker would
        # be ready soon; one that never gets there shows in its exit code and log.
        deadline = time.time() + 15 * SLOW
        for w in self.workers:
            while (w.poll() is None and time.time() < deadline and
                   b"worker: ready:" not in open(w.log_name, "rb").read()):
                time.sleep(0.05)
        codes = {"serve": stop_process(self.serve)}
        for i, w in enumerate(self.workers):
            codes[f"worker{i}"] = stop_process(w)
        return codes


@pytest.fixture
def service(tmp_path, redis_server, file_server, request):
    svc = Service(str(tmp_path), redis_server, file_server)
    yield svc
    codes = svc.stop()
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    if failed or any(c != 0 for c in codes.values()):
        sys.stderr.write(svc.dump_logs())
    assert all(c == 0 for c in codes.values()), f"unclean exit (sanitizers?): {codes}"


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


# A real radosgw (tests/s3/rgw.py), started once per session: about 13 s and 130 MiB.
sys.path.insert(0, os.path.join(ROOT, "tests", "s3"))


@pytest.fixture(scope="session")
def rgw(tmp_path_factory):
    from rgw import Rgw
    started = time.monotonic()
    r = Rgw(base=str(tmp_path_factory.mktemp("rgw")), timeout=120 * SLOW)
    r.start_seconds = time.monotonic() - started
    yield r
    r.stop()


# The S3 client through `interview-api s3`, on the session's radosgw (test_s3*.py).
BUCKET = "iatest"


def s3env(rgw, prefix, **extra):
    env = {"PATH": os.environ["PATH"], **SANITIZER_ENV,
           "STORAGE_URL": f"s3://{BUCKET}/{prefix}",
           "AWS_ENDPOINT_URL_S3": rgw.endpoint,
           "AWS_REGION": rgw.region,
           "AWS_ACCESS_KEY_ID": rgw.access_key,
           "AWS_SECRET_ACCESS_KEY": rgw.secret_key,
           "S3_ALLOW_CIDRS": "127.0.0.1/32"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def s3(env, *args, cwd=None, check=True):
    out = subprocess.run([IA_BIN, "s3", *args], env=env, capture_output=True, cwd=cwd,
                         timeout=120 * SLOW)
    if check:
        assert out.returncode == 0, (out.returncode, out.stderr.decode(errors="replace"))
    else:
        assert out.returncode not in (86, 87, 88), out.stderr.decode(errors="replace")
    return out


@pytest.fixture(scope="session")
def bucket(rgw):
    s3(s3env(rgw, ""), "mb")
    # Creating it again is not an error (the bucket is ours).
    s3(s3env(rgw, ""), "mb")
    return BUCKET
