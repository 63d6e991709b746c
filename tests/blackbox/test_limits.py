"""Limits on everything a stranger controls: body, request target, headers, connections, time, rate.

Each test checks that the limit bites and that the service keeps answering /healthz afterwards.
"""
import resource
import socket
import time

import pytest
import requests

from conftest import SLOW, Service



@pytest.fixture(autouse=True)
def workers_ready(request):
    """These tests can be over before a worker has started; stopping it then would kill it."""
    for name in ("service", "limited"):
        if name in request.fixturenames:
            request.getfixturevalue(name).wait_workers_ready()

def healthy(svc):
    return requests.get(svc.base + "/healthz", timeout=5 * SLOW).status_code == 200



def status_of(response):
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.") else None


@pytest.fixture
def limited(tmp_path, redis_server):
    svc = Service(str(tmp_path), redis_server,
                  extra_env={"MAX_CONNECTIONS": "40", "REQUEST_TIMEOUT_S": "2", "RATE_LIMIT": "5",
                             "SERVE_THREADS": "2"})
    yield svc
    codes = svc.stop()
    assert all(c == 0 for c in codes.values()), svc.dump_logs()


def test_oversized_body_gets_413(service):
    big = b'{"video_url": "http://example.com/' + b"a" * (80 * 1024) + b'"}'
    head = (f"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(big)}\r\n\r\n").encode()
    assert status_of(service.raw(head + big)) == 413
    # Announced but not sent: refused from the headers alone.
    head = b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"
    assert status_of(service.raw(head)) == 413
    # Just under the limit is parsed (and refused as JSON for what it says, not for its size).
    ok = b'{"video_url": "ftp://x/' + b"a" * (60 * 1024) + b'"}'
    r = requests.post(service.base + "/submit", data=ok,
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 422 and r.json()["code"] == "invalid_input"
    assert healthy(service)


def test_oversized_and_too_many_headers(service):
    r = service.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 +
                    b"\r\n\r\n")
    assert status_of(r) in (400, 431)
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    r = service.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status_of(r) == 431
    assert b'"code":"headers_too_large"' in r
    assert healthy(service)


def test_long_request_target_gets_414(service):
    r = requests.get(service.base + "/status/" + "a" * 9000, timeout=10)
    assert r.status_code == 414
    assert r.json() == {"detail": "the request target is too long", "code": "uri_too_long"}
    # Within the limit, the route decides (an unknown task id).
    assert requests.get(service.base + "/status/" + "a" * 100, timeout=10).status_code == 404
    assert healthy(service)


def test_2000_idle_connections_and_healthz_still_answers(service):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2300:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    socks = []
    try:
        for _ in range(2000):
            socks.append(socket.create_connection(("127.0.0.1", service.port), timeout=5))
        for i in range(20):
            assert healthy(service), i
        # Every idle one is still open (MAX_CONNECTIONS defaults to 4096).
        socks[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert socks[0].recv(100).startswith(b"HTTP/1.1 200")
    finally:
        for s in socks:
            s.close()
    assert healthy(service)


def answered_on(sock):
    """Sends one keep-alive request on sock and reads its answer's head: the server has accepted
    the connection (and counts it) once this returns."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    return head


def test_connection_cap(limited):
    socks = []
    try:
        for _ in range(40):  # the cap, each one surely accepted (no sleep to guess it)
            socks.append(socket.create_connection(("127.0.0.1", limited.port), timeout=5))
            assert answered_on(socks[-1]).startswith(b"HTTP/1.1 200")
        extra = socket.create_connection(("127.0.0.1", limited.port), timeout=5)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            assert extra.recv(100) == b""  # closed without an answer
        except ConnectionResetError:
            pass
        extra.close()
    finally:
        for s in socks:
            s.close()
    # Closed connections are no longer counted: the service answers again.
    deadline = time.time() + 10 * SLOW
    while time.time() < deadline:
        try:
            if healthy(limited):
                break
        except requests.RequestException:
            time.sleep(0.1)
    for _ in range(60):  # more than the cap, one after another
        assert healthy(limited)


# REQUEST_TIMEOUT_S of `limited`; a connection is closed at it, not before; the upper bounds below
# only guard against a hang, far under IDLE_TIMEOUT_S (30 s) when SLOW is 1.
HEAD_DEADLINE_S = 2
CLOSE_GUARD_S = HEAD_DEADLINE_S + 10 * SLOW


def test_slowloris_is_cut_off(limited):
    start = time.time()
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as s:
        closed = False
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            try:
                s.sendall(bytes([b]))
                s.settimeout(0.3)
                if s.recv(1) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        elapsed = time.time() - start
    # Each byte came within 0.3 s, so only the head's deadline can have closed it.
    assert closed and HEAD_DEADLINE_S - 0.5 <= elapsed <= CLOSE_GUARD_S, elapsed
    # An idle connection is closed after the same deadline; the service kept answering.
    with socket.create_connection(("127.0.0.1", limited.port), timeout=3 * CLOSE_GUARD_S) as s:
        t0 = time.time()
        assert s.recv(1) == b""
        assert HEAD_DEADLINE_S - 0.5 <= time.time() - t0 <= CLOSE_GUARD_S
    assert healthy(limited)


def test_keepalive_connection_gets_a_fresh_deadline_per_request(limited):
    """Three requests over more than the 2 s head deadline, on one connection: after each
    response the next head has the deadline again (plus IDLE_TIMEOUT_S, 30 s, to begin)."""
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10 * SLOW) as s:
        start = time.time()
        for i in range(3):
            if i:
                time.sleep(1.5)  # far under the 32 s a kept-alive connection may wait
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
        assert time.time() - start > HEAD_DEADLINE_S  # the last came after the first deadline


def test_rate_limit_429_with_retry_after(limited):
    url = limited.base + "/submit"
    codes = [requests.post(url, json={"video_url": "ftp://x/"}, timeout=10).status_code
             for _ in range(5)]
    assert codes == [422] * 5
    r = requests.post(url, json={"video_url": "ftp://x/"}, timeout=10)
    assert r.status_code == 429
    assert r.json()["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 13  # 5 a minute: one every 12 s
    assert healthy(limited)  # other endpoints are not limited
