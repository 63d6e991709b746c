"""Memory is bounded before authentication: request bodies are refused from their head (route,
access, size) and counted against BODY_BUDGET_BYTES before they are read.

100 clients each announce a 16 MiB body and send it slowly (in steps, all of them in turn), as in
the issue that measured serve at 1.8 GiB of RSS; serve's peak RSS (VmHWM) must stay within the
budget plus 32 MiB of its idle RSS, and other clients are answered meanwhile.
"""
import json
import select
import socket
import time
import uuid

import pytest
import requests

from conftest import SANITIZER_ENV, SLOW, Service

MIB = 1 << 20
CLIENTS = 100
BODY = 16 * MIB
STEP = 256 * 1024
KEY = "budget-test-key"


def proc_status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def settled_rss(pid):
    """VmRSS once two readings a little apart agree to 1 MiB (the loops have read what came)."""
    prev = -10 * MIB
    while True:
        now = proc_status(pid, "VmRSS")
        if abs(now - prev) < MIB:
            return now
        prev = now
        time.sleep(0.5)


def allocator_factor(pid):
    """How many bytes of RSS a body byte may cost: 1, or 2 under AddressSanitizer, whose
    allocator adds redzones, shadow memory and a quarantine (measured: 32 MiB of bodies in
    flight grow serve's peak RSS by 33 MiB in the plain build, by 56 MiB under ASan)."""
    with open(f"/proc/{pid}/maps") as f:
        return 2 if "libasan" in f.read() else 1


def make_service(tmp_path, redis_server, file_server, **env):
    # ASan keeps freed blocks in a quarantine (256 MiB by default) that the service does not own;
    # a small one keeps use-after-free detection for recent frees and measures the service.
    env["ASAN_OPTIONS"] = SANITIZER_ENV["ASAN_OPTIONS"] + ":quarantine_size_mb=8"
    # No worker: a task only has to answer /status; one being processed when the test ends
    # would hold up the worker's stop (its grace) on a busy machine.
    return Service(str(tmp_path), redis_server, file_server, extra_env=env, workers=0)


@pytest.fixture
def keyed(tmp_path, redis_server, file_server):
    svc = make_service(tmp_path, redis_server, file_server, API_KEYS=KEY)
    yield svc
    codes = svc.stop()
    assert all(c == 0 for c in codes.values()), svc.dump_logs()


@pytest.fixture
def budgeted(tmp_path, redis_server, file_server):
    svc = make_service(tmp_path, redis_server, file_server, BODY_BUDGET_BYTES=str(32 * MIB))
    yield svc
    codes = svc.stop()
    assert all(c == 0 for c in codes.values()), svc.dump_logs()


class Sender:
    """One client announcing a body of `size` bytes on `path` and sending it in steps."""

    def __init__(self, svc, path, size=BODY, headers=""):
        self.sock = socket.create_connection(("127.0.0.1", svc.port), timeout=30 * SLOW)
        self.sock.sendall((f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}"
                           f"Content-Length: {size}\r\n\r\n").encode())
        self.sock.setblocking(False)
        self.size = size
        self.sent = 0
        self.answer = b""
        self.closed = False

    def poll(self):
        """Reads what the server said; True once it answered or closed."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.closed = True
                    break
                self.answer += chunk
        except BlockingIOError:
            pass
        except ConnectionResetError:
            self.closed = True
        return self.closed or b"\r\n\r\n" in self.answer

    def step(self, hold_last=True):
        """Sends up to STEP more bytes (all but the last one when hold_last)."""
        end = self.size - 1 if hold_last else self.size
        n = min(STEP, end - self.sent)
        if n <= 0:
            return
        try:
            self.sent += self.sock.send(b"x" * n)
        except BlockingIOError:
            pass
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True

    def status(self):
        return int(self.answer.split(b" ", 2)[1]) if self.answer.startswith(b"HTTP/1.1 ") else None

    def json(self):
        return json.loads(self.answer.split(b"\r\n\r\n", 1)[1])

    def close(self):
        self.sock.close()


def others_are_served(svc, task_id, headers=None):
    timeout = 10 * SLOW
    assert requests.get(svc.base + "/healthz", timeout=timeout).status_code == 200
    r = requests.get(f"{svc.base}/status/{task_id}", headers=headers, timeout=timeout)
    assert r.status_code == 200 and r.json()["status"] in ("processing", "success", "failed")


def pump(senders, hold_last=True, until=None):
    """Each sender in turn takes a step, waiting for a socket to be ready, until each one is
    answered or has sent what it may; `until(round)` may end it sooner. A guard of 300 s."""
    guard = time.monotonic() + 300 * SLOW
    rounds = 0
    while True:
        active = [s for s in senders
                  if not s.poll() and s.sent < (s.size - 1 if hold_last else s.size)]
        if not active or (until and until(rounds)):
            return
        assert time.monotonic() < guard, "the service stopped reading or answering"
        select.select([s.sock for s in active], [s.sock for s in active], [], 1)
        for s in active:
            s.step(hold_last)
        rounds += 1


def wait_answer(s):
    guard = time.monotonic() + 60 * SLOW
    while not s.poll():
        assert time.monotonic() < guard, s.answer
        select.select([s.sock], [], [], 1)


def flood(svc, senders, task_id, headers=None, rounds=None):
    """Pumps the senders; other clients are served every 8 rounds."""
    def check(r):
        if r % 8 == 0:
            others_are_served(svc, task_id, headers)
        return rounds is not None and r >= rounds
    pump(senders, until=check)
    others_are_served(svc, task_id, headers)


def first_steps(senders):
    """Each sender sends a first piece of its body, and no more until told."""
    for s in senders:
        select.select([], [s.sock], [], 10 * SLOW)
        s.step()


def wait_answers(senders, n):
    """Waits until n of the senders are answered (none sends more meanwhile)."""
    guard = time.monotonic() + 60 * SLOW
    while sum(s.poll() for s in senders) < n:
        assert time.monotonic() < guard, f"{sum(s.poll() for s in senders)} answered of {n}"
        select.select([s.sock for s in senders if not s.poll()], [], [], 1)


def test_unauthenticated_bodies_are_refused_before_they_are_read(keyed, file_server):
    auth = {"Authorization": f"Bearer {KEY}"}
    task_id = keyed.submit(file_server.url("clip.mp4"), headers=auth).json()["task_id"]
    pid = keyed.serve.pid
    base = settled_rss(pid)
    # Half to /submit (over its 64 KiB limit), half to /upload (within its limit, no key).
    senders = [Sender(keyed, "/submit" if i % 2 else "/upload") for i in range(CLIENTS)]
    try:
        first_steps(senders)
        others_are_served(keyed, task_id, auth)
        # Answered with a piece of each body sent, the rest never: refused from the head.
        wait_answers(senders, CLIENTS)
        for i, s in enumerate(senders):
            if i % 2:
                assert s.status() == 413 and s.json()["code"] == "too_large", s.answer
            else:
                assert s.status() == 401 and s.json()["code"] == "unauthorized", s.answer
            assert s.sent == STEP and b"Connection: close\r\n" in s.answer
        others_are_served(keyed, task_id, auth)
    finally:
        for s in senders:
            s.close()
    growth = proc_status(pid, "VmHWM") - base
    print(f"idle RSS {base / MIB:.1f} MiB, peak grew by {growth / MIB:.1f} MiB")
    assert growth < 32 * MIB, f"peak RSS grew by {growth / MIB:.1f} MiB"
    others_are_served(keyed, task_id, auth)


def test_bodies_in_flight_stay_within_the_budget(budgeted, file_server):
    task_id = budgeted.submit(file_server.url("clip.mp4")).json()["task_id"]
    pid = budgeted.serve.pid
    base = settled_rss(pid)
    senders = [Sender(budgeted, "/upload") for _ in range(CLIENTS)]
    try:
        first_steps(senders)
        # 32 MiB hold two 16 MiB bodies: every other one is refused without the rest of its body.
        wait_answers(senders, CLIENTS - 2)
        busy = [s for s in senders if s.poll()]
        waiting = [s for s in senders if not s.poll()]
        assert len(waiting) == 2
        for s in busy:
            assert s.status() == 503, s.answer
            assert b"\r\nRetry-After: 1\r\n" in s.answer
            assert s.json()["code"] == "server_busy"
        # The two go on slowly, all but their last byte, while others are served.
        flood(budgeted, waiting, task_id)
        for s in waiting:
            assert not s.poll() and s.sent == BODY - 1  # both bodies are in memory
        assert all(s.status() == 503 for s in busy)  # and nobody else got in
        settled_rss(pid)
        growth = proc_status(pid, "VmHWM") - base
        print(f"idle RSS {base / MIB:.1f} MiB, peak grew by {growth / MIB:.1f} MiB")
        budget = 32 * MIB * allocator_factor(pid)
        assert growth < budget + 32 * MIB, f"peak RSS grew by {growth / MIB:.1f} MiB"
        # The last byte: both are answered by the route (not a multipart body), not by the budget.
        for s in waiting:
            pump([s], hold_last=False)
            wait_answer(s)
            assert s.status() not in (None, 503), s.answer
    finally:
        for s in senders:
            s.close()
    # Their bodies are given back once their answers are sent (a client may read an answer a
    # moment before that): two more 16 MiB bodies fit again, at once, sent whole.
    guard = time.monotonic() + 60 * SLOW
    while True:
        again = [Sender(budgeted, "/upload") for _ in range(2)]
        try:
            pump(again, hold_last=False)
            for s in again:
                wait_answer(s)
        finally:
            for s in again:
                s.close()
        if all(s.status() != 503 for s in again):
            break
        assert time.monotonic() < guard, [s.answer for s in again]
        time.sleep(0.1)
    for s in again:
        assert s.sent == BODY and s.status() is not None, s.answer
    others_are_served(budgeted, task_id)


class RawResponse:
    """An answer read from a socket, looking enough like requests' Response for check()."""

    def __init__(self, data):
        head, _, self.content = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.status_code = int(lines[0].split()[1])
        self.headers = requests.structures.CaseInsensitiveDict(
            line.split(": ", 1) for line in lines[1:])
        self.text = self.content.decode()

    def json(self):
        return json.loads(self.content)


@pytest.fixture
def tiny_budget(tmp_path, redis_server, file_server):
    svc = make_service(tmp_path, redis_server, file_server, API_KEYS=KEY,
                       BODY_BUDGET_BYTES=str(MIB))
    yield svc
    codes = svc.stop()
    assert all(c == 0 for c in codes.values()), svc.dump_logs()


def test_refusals_from_the_head_are_documented(tiny_budget):
    from test_docs import check  # the documented shapes of docs/openapi.yaml
    svc = tiny_budget
    auth = f"Authorization: Bearer {KEY}\r\n"

    def refused(method, path, spec_path, length, headers=auth):
        data = svc.raw(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}"
                       f"Content-Length: {length}\r\nConnection: close\r\n\r\n".encode())
        r = check(RawResponse(data), method.lower(), spec_path)
        assert r.headers["Connection"] == "close"
        return r

    r = refused("POST", "/submit", "/submit", 100_000_000)
    assert r.status_code == 413 and r.json()["code"] == "too_large"
    r = refused("POST", "/upload", "/upload", 1000, headers="")
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    r = refused("POST", "/upload", "/upload", 2 * MIB)  # more than the whole budget
    assert r.status_code == 413 and r.json()["code"] == "too_large"
    # One body holds the whole budget: each route's next body is refused, as documented.
    holder = Sender(svc, "/upload", size=MIB, headers=auth)
    try:
        first_steps([holder])
        guard = time.monotonic() + 60 * SLOW
        while True:  # until the holder's head was taken (its loop may be behind ours)
            data = svc.raw(b"POST /submit HTTP/1.1\r\nHost: x\r\n" + auth.encode() +
                           b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
            if RawResponse(data).status_code == 503:
                break
            if holder.poll():  # refused itself: its head came while a probe held 2 bytes
                holder.close()
                holder = Sender(svc, "/upload", size=MIB, headers=auth)
                first_steps([holder])
            assert time.monotonic() < guard, data
            time.sleep(0.05)
        upload = str(uuid.uuid4())
        for method, path, spec_path in (
                ("POST", "/submit", "/submit"), ("POST", "/upload", "/upload"),
                ("POST", "/uploads", "/uploads"),
                ("PATCH", f"/uploads/{upload}", "/uploads/{upload_id}"),
                ("PATCH", f"/videos/{upload}/events/e1", "/videos/{video_id}/events/{event_id}")):
            r = refused(method, path, spec_path, 10)
            assert r.status_code == 503 and r.json()["code"] == "server_busy"
            assert r.headers["Retry-After"] == "1"
        assert not holder.poll()  # still waiting for the rest of its body
    finally:
        holder.close()
