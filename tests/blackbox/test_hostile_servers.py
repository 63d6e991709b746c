"""Origins that misbehave: each task fails cleanly within its limits and the service keeps going.

One Python server on 127.0.0.2 (allowed through FETCH_ALLOW_CIDRS and ALLOWED_PORTS) plays a
different villain per path: it drips a byte a second, sends a body that never ends, lies about
Content-Length in both directions, never answers, or sends headers forever.
"""
import os
import socket
import socketserver
import threading
import time

import pytest
import requests

from conftest import ALLOWED_HOST, SLOW, Service, free_port

FETCH_TIMEOUT_S = 4 if SLOW == 1 else 12  # valgrind downloads several times more slowly
MAX_DOWNLOAD = 4 * 1024 * 1024


class Villain(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(30)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        path = head.split(b" ", 2)[1].decode()
        getattr(self, "do_" + path.strip("/").replace("-", "_"), self.do_missing)()

    def send(self, data):
        if self.server.stopping:
            raise ConnectionAbortedError
        self.request.sendall(data)

    def headers(self, extra=b""):
        self.send(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n" + extra + b"\r\n")

    def do_missing(self):
        self.send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    def do_drip(self):  # (a) one byte per second, forever
        self.headers(b"Content-Length: 1000000\r\n")
        while True:
            self.send(b"\0")
            time.sleep(1)

    def do_endless(self):  # (b) a body without an end, as fast as it goes
        self.headers()
        block = os.urandom(65536)
        while True:
            self.send(block)

    def do_endless_chunked(self):
        self.headers(b"Transfer-Encoding: chunked\r\n")
        block = b"10000\r\n" + os.urandom(65536) + b"\r\n"
        while True:
            self.send(block)

    def do_claims_more(self):  # (c) says 3 MB (under the limit), sends 1 KB and closes
        self.headers(b"Content-Length: 3000000\r\n")
        self.send(os.urandom(1024))

    def do_claims_less(self):  # (c) says 1 KB, sends 1 MB more
        self.headers(b"Content-Length: 1024\r\n")
        self.send(os.urandom(1024 * 1024))

    def do_claims_huge(self):  # says more than MAX_DOWNLOAD_BYTES
        self.headers(b"Content-Length: %d\r\n" % (MAX_DOWNLOAD * 10))
        self.send(os.urandom(1024))

    def do_silent(self):  # accepts the request and never answers
        while not self.server.stopping:
            time.sleep(0.2)

    def do_endless_headers(self):
        self.send(b"HTTP/1.1 200 OK\r\n")
        while True:
            self.send(b"X-Filler: " + b"a" * 1000 + b"\r\n")


class VillainServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port):
        self.stopping = False
        super().__init__((ALLOWED_HOST, port), Villain)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        self.shutdown()
        self.server_close()


# path -> acceptable failure codes and the longest a task may take, in seconds
CASES = {
    "drip": ({"timeout"}, FETCH_TIMEOUT_S + 3),
    "endless": ({"too_large"}, FETCH_TIMEOUT_S + 3),
    "endless-chunked": ({"too_large"}, FETCH_TIMEOUT_S + 3),
    "claims-more": ({"fetch_network_error"}, FETCH_TIMEOUT_S + 3),
    "claims-less": ({"not_a_video", "decode_error"}, FETCH_TIMEOUT_S + 6),
    "claims-huge": ({"too_large"}, 3),
    "silent": ({"timeout"}, FETCH_TIMEOUT_S + 3),
    "endless-headers": ({"fetch_network_error", "timeout"}, FETCH_TIMEOUT_S + 3),
}


@pytest.fixture
def villain():
    srv = VillainServer(free_port(ALLOWED_HOST))
    yield srv
    srv.stop()


@pytest.fixture
def guarded(tmp_path, redis_server, file_server, villain):
    env = {"ALLOWED_PORTS": f"{villain.server_address[1]},{file_server.port}",
           "FETCH_TIMEOUT_S": str(FETCH_TIMEOUT_S), "MAX_DOWNLOAD_BYTES": str(MAX_DOWNLOAD),
           # Far longer than any case may take: a task stopped only by it would show as such.
           "TASK_TIME_LIMIT_S": "600", "TASK_MAX_RETRIES": "0", "WORKER_CONCURRENCY": "4"}
    svc = Service(str(tmp_path), redis_server, file_server, extra_env=env)
    yield svc
    codes = svc.stop()
    assert all(c == 0 for c in codes.values()), svc.dump_logs()


def test_hostile_origins_fail_cleanly(guarded, villain, file_server):
    port = villain.server_address[1]
    started = {}
    for path in CASES:
        r = guarded.submit(f"http://{ALLOWED_HOST}:{port}/{path}")
        assert r.status_code == 200, r.text
        started[r.json()["task_id"]] = (path, time.time())
    finished = {}
    deadline = time.time() + 150 * SLOW
    while len(finished) < len(started) and time.time() < deadline:
        for tid, (path, t0) in started.items():
            if tid in finished:
                continue
            body = requests.get(f"{guarded.base}/status/{tid}", timeout=5).json()
            if body["status"] != "processing":
                finished[tid] = (body, time.time() - t0)
        assert requests.get(guarded.base + "/healthz", timeout=5).status_code == 200
        time.sleep(0.2)
    assert len(finished) == len(started), guarded.dump_logs()
    for tid, (body, took) in finished.items():
        path = started[tid][0]
        codes, limit = CASES[path]
        assert body["status"] == "failed" and body["code"] in codes, (path, body)
        # Stopped by the fetch's own limits, not by TASK_TIME_LIMIT_S; a guard only, wide (a
        # task may wait for one of the four slots, and the machine may be busy).
        assert took <= 3 * (limit + FETCH_TIMEOUT_S) * SLOW, (path, took)
        assert "/" not in body["error"] and "curl" not in body["error"].lower(), body
    # The service is fine afterwards: a good video still goes through.
    tid = guarded.submit(file_server.url("clip.mp4")).json()["task_id"]
    code, body = guarded.wait_done(tid)
    assert body["status"] == "success", guarded.dump_logs()
