"""Processes for the benchmark: redis-server, nginx, `interview-api serve|worker`, on loopback.

Every process started here is registered in a Procs and stopped by its PID (SIGTERM, then
SIGKILL), also when a benchmark fails half-way.
"""
import os
import signal
import socket
import subprocess
import time

import requests

ORIGIN_HOST = "127.0.0.2"  # the fetcher's allowed test origin (FETCH_ALLOW_CIDRS)
LOCAL_HOST = "127.0.0.1"


class BenchBroken(Exception):
    """A benchmark cannot run or got wrong answers (as opposed to a missed goal)."""


def free_port(host=LOCAL_HOST):
    """A TCP port nothing listens on at the moment."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host, port, proc=None, timeout=15.0):
    """Waits until something accepts connections on host:port; BenchBroken otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchBroken(f"{proc.args[0]} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchBroken(f"nothing listens on {host}:{port}")


def rss_kb(pid):
    """Resident memory of a live process in kB: VmRSS, VmHWM, RssAnon, RssFile and RssShmem
    (/proc/<pid>/status) and Pss, Pss_Anon, Pss_File (/proc/<pid>/smaps_rollup)."""
    out = {}
    for name, keys in (("status", ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")),
                       ("smaps_rollup", ("Pss", "Pss_Anon", "Pss_File"))):
        with open(f"/proc/{pid}/{name}") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in keys:
                    out[key] = int(value.split()[0])
    return out


def child_cmdlines(pid):
    """(pid, argv) of the direct children of every thread of pid (empty when gone)."""
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids = f.read().split()
        except OSError:
            continue
        for kid in kids:
            try:
                with open(f"/proc/{kid}/cmdline", "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            out.append((int(kid), [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]))
    return out


class Procs:
    """The processes this run started; stop_all() stops them newest first, by PID."""

    def __init__(self):
        self.live = []

    def spawn(self, args, log_path, **kw):
        """Starts args with stdout and stderr to log_path; returns the Popen."""
        log = open(log_path, "ab")
        try:
            proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, **kw)
        finally:
            log.close()
        proc.log_path = log_path
        self.live.append(proc)
        return proc

    def stop(self, proc, timeout=30):
        """SIGTERM, wait, SIGKILL if needed; returns the exit code."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.live:
            self.live.remove(proc)
        return proc.returncode

    def stop_all(self):
        for proc in reversed(list(self.live)):
            self.stop(proc)


class Redis:
    """A private redis-server without persistence."""

    def __init__(self, procs, tmp):
        self.port = free_port()
        args = ["redis-server", "--port", str(self.port), "--bind", LOCAL_HOST, "--save", "",
                "--appendonly", "no", "--dir", tmp, "--loglevel", "warning"]
        self.proc = procs.spawn(args, os.path.join(tmp, "redis.log"))
        wait_port(LOCAL_HOST, self.port, self.proc)

    def url(self, db):
        return f"redis://{LOCAL_HOST}:{self.port}/{db}"

    def cli(self, *args):
        """Runs one redis-cli command; returns its output."""
        out = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                             text=True, timeout=60, check=True)
        return out.stdout.strip()


NGINX_CONF = """{user}
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/ngx-body;
    proxy_temp_path {tmp}/ngx-proxy;
    fastcgi_temp_path {tmp}/ngx-fastcgi;
    uwsgi_temp_path {tmp}/ngx-uwsgi;
    scgi_temp_path {tmp}/ngx-scgi;
    types {{ video/mp4 mp4; video/webm webm; application/json json; }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {{
        listen {origin_host}:{origin_port};
        root {clips};
    }}
    server {{
        listen {local_host}:{ref_port};
        root {processed};
        location = /status.json {{ alias {static}/status.json; }}
        # The reference's PATCH load: bodies stored on disk (WebDAV PUT), or read and dropped.
        location /put/ {{ root {static}; dav_methods PUT;
                            create_full_put_path on; client_max_body_size 20m; }}
        location = /discard {{ client_max_body_size 20m; return 204; }}
    }}
}}
"""


class Nginx:
    """One nginx: the clip origin on 127.0.0.2 and the reference server on 127.0.0.1."""

    def __init__(self, procs, tmp, clips, processed, static, workers):
        self.origin_port = free_port(ORIGIN_HOST)
        self.ref_port = free_port()
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            # As root, the workers would drop to "nobody" and could not read our private dirs.
            f.write(NGINX_CONF.format(
                user="user root root;" if os.geteuid() == 0 else "", workers=workers, tmp=tmp,
                origin_host=ORIGIN_HOST, origin_port=self.origin_port, clips=clips,
                local_host=LOCAL_HOST, ref_port=self.ref_port, processed=processed,
                static=static))
        self.proc = procs.spawn(["nginx", "-p", tmp, "-c", conf], os.path.join(tmp, "nginx.log"))
        wait_port(ORIGIN_HOST, self.origin_port, self.proc)
        wait_port(LOCAL_HOST, self.ref_port, self.proc)

    def origin_url(self, name):
        return f"http://{ORIGIN_HOST}:{self.origin_port}/{name}"

    def ref_url(self, path):
        return f"http://{LOCAL_HOST}:{self.ref_port}{path}"


class Service:
    """`interview-api serve` and (optionally) `worker`, sharing one Redis and PROCESSED_DIR."""

    def __init__(self, procs, binary, tmp, redis, origin_port, threads, slots):
        self.procs, self.binary, self.tmp = procs, binary, tmp
        self.port = free_port()
        self.base = f"http://{LOCAL_HOST}:{self.port}"
        self.processed = os.path.join(tmp, "processed")
        os.makedirs(self.processed, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.endswith("SAN_OPTIONS")}
        self.env.update({
            "HOST": LOCAL_HOST, "PORT": str(self.port), "PROCESSED_DIR": self.processed,
            "CELERY_BROKER_URL": redis.url(0), "CELERY_BACKEND_URL": redis.url(1),
            "FETCH_ALLOW_CIDRS": f"{ORIGIN_HOST}/32", "ALLOWED_PORTS": str(origin_port),
            "WORKER_CONCURRENCY": str(slots), "SERVE_THREADS": str(threads),
            "LOG_LEVEL": "warn", "MAX_QUEUED": "100000000",
        })
        self.session = requests.Session()
        self.serve = self._spawn("serve")
        self.worker = None
        self._wait_healthy()

    def _spawn(self, role):
        log = os.path.join(self.tmp, f"{role}.log")
        return self.procs.spawn([self.binary, role], log, env=self.env, cwd=self.tmp)

    def _wait_healthy(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.serve.poll() is not None:
                raise BenchBroken(f"serve exited with {self.serve.returncode}\n{self.logs()}")
            try:
                if self.session.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise BenchBroken("serve did not become healthy\n" + self.logs())

    def start_worker(self):
        """Starts a worker (one at a time) and gives it a moment to connect."""
        if self.worker is None:
            self.worker = self._spawn("worker")
            time.sleep(0.5)
            if self.worker.poll() is not None:
                raise BenchBroken(f"worker exited with {self.worker.returncode}\n{self.logs()}")
        return self.worker

    def stop_worker(self):
        if self.worker is not None:
            code = self.procs.stop(self.worker)
            self.worker = None
            if code != 0:
                raise BenchBroken(f"worker exited with {code} on SIGTERM\n{self.logs()}")

    def logs(self):
        out = []
        for role in ("serve", "worker"):
            path = os.path.join(self.tmp, f"{role}.log")
            if os.path.exists(path):
                with open(path, "rb") as f:
                    out.append(f"==== {role}\n" + f.read()[-4000:].decode(errors="replace"))
        return "\n".join(out)

    def submit(self, url, analysis=False):
        """POST /submit; returns the task id. The media benchmarks compare the pipeline with bare
        ffmpeg, so they skip the analysis; the interview benchmark turns it on."""
        body = {"video_url": url} if analysis else {"video_url": url, "analysis": False}
        r = self.session.post(self.base + "/submit", json=body, timeout=10)
        if r.status_code != 200 or "task_id" not in r.json():
            raise BenchBroken(f"/submit answered {r.status_code}: {r.text[:200]}")
        return r.json()["task_id"]

    def poll(self, task_id):
        """GET /status once; returns the body, BenchBroken on a failed task or an HTTP error."""
        r = self.session.get(f"{self.base}/status/{task_id}", timeout=10)
        body = r.json() if r.status_code == 200 else None
        if body is None or body.get("status") == "failed":
            raise BenchBroken(f"task {task_id}: {r.status_code} {r.text[:300]}\n{self.logs()}")
        return body

    def wait_success(self, task_id, timeout=600.0, interval=0.01):
        """Polls /status until success; returns the final body."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.poll(task_id)
            if body["status"] == "success":
                return body
            time.sleep(interval)
        raise BenchBroken(f"task {task_id} still processing after {timeout} s\n{self.logs()}")

    def metadata(self, video_id):
        r = self.session.get(f"{self.base}/metadata/{video_id}", timeout=10)
        if r.status_code != 200:
            raise BenchBroken(f"/metadata/{video_id} answered {r.status_code}")
        return r.json()
