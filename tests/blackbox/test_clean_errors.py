"""Clean errors: what a client reads never names paths, programs, libraries or internals, and
untrusted bytes reach the logs escaped.
"""
import json
import time
import uuid

import pytest
import requests
from celery import Celery

from conftest import SLOW

INTERNAL_WORDS = ("ffmpeg", "ffprobe", "curl", "redis", "hiredis", "jansson", "libevent",
                  "errno", "traceback", "<file>", ".c:", "/tmp", "/etc", "/usr", "/work",
                  "/home", "/proc", "processed_", "127.0.0.1:")



@pytest.fixture(autouse=True)
def workers_ready(request):
    """These tests can be over before a worker has started; stopping it then would kill it."""
    for name in ("service", "limited"):
        if name in request.fixturenames:
            request.getfixturevalue(name).wait_workers_ready()

def assert_clean_text(text, service):
    low = text.lower()
    for word in INTERNAL_WORDS + (service.tmp.lower(), service.processed.lower()):
        assert word not in low, (word, text)


def assert_clean_json(body, service):
    """Every string in a JSON error body: no path fragment at all, no internal word."""
    stack = [body]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, str):
            assert "/" not in v, v
            assert_clean_text(v, service)



def wait_failed(service, tid, timeout):
    """Waits until the task has failed; a task sent past /submit is unknown until it starts."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = requests.get(f"{service.base}/status/{tid}", timeout=5)
        if r.status_code == 200 and r.json()["status"] == "failed":
            return r.json()
        time.sleep(0.1)
    raise AssertionError(f"task {tid} did not fail\n" + service.dump_logs())


def test_failed_tasks_carry_clean_messages(service, file_server):
    urls = [file_server.url("notes.txt"),              # not a video: ffprobe's complaint
            file_server.url("missing.mp4"),            # 404 at the origin
            f"http://127.0.0.1:{file_server.port}/",   # refused by policy
            file_server.url("redirect-to-file")]       # refused redirect
    ids = [service.submit(u).json()["task_id"] for u in urls]
    codes = set()
    for tid in ids:
        status, body = service.wait_done(tid, timeout=60)
        assert status == 200 and body["status"] == "failed", body
        codes.add(body["code"])
        assert_clean_json(body, service)
    assert codes == {"not_a_video", "fetch_http_error", "url_not_allowed"}
    # The full detail went to the worker's log instead, with the task id.
    with open(service.logs[1], "rb") as f:
        log = f.read().decode(errors="replace")
    for tid in ids:
        assert f"task={tid} failed code=" in log


def test_error_bodies_are_clean(service):
    b = service.base
    replies = [
        requests.get(b + "/no/such/route"),
        requests.delete(b + "/submit"),
        requests.post(b + "/submit", data=b"{", headers={"Content-Type": "application/json"}),
        requests.post(b + "/submit", json={"video_url": 42}),
        requests.post(b + "/submit", json={"video_url": "file:///etc/passwd"}),
        requests.post(b + "/submit", json=["http://x/"]),
        requests.get(b + f"/status/{uuid.uuid4()}"),
        requests.get(b + "/status/..%2f..%2fetc%2fpasswd"),
        requests.get(b + f"/stream/{uuid.uuid4()}"),
        requests.get(b + "/stream/..%2f..%2fetc%2fpasswd"),
        requests.get(b + "/download/%2fetc%2fpasswd"),
        requests.get(b + f"/metadata/{uuid.uuid4()}"),
        requests.get(b + f"/thumbnail/{uuid.uuid4()}"),
        requests.get(b + "/status/" + "a" * 9000),
    ]
    for r in replies:
        assert 400 <= r.status_code < 500, (r.url[:80], r.status_code)
        assert r.headers["Content-Type"] == "application/json", r.url[:80]
        body = r.json()
        assert set(body) == {"detail", "code"}, body
        assert_clean_json(body, service)
    # Refusals made by the HTTP library itself (oversized head or body) are clean too.
    for data in (b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
                 b"POST /submit HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
                 b"BREW /pot HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\r\n\r\n"):
        out = service.raw(data)
        assert out == b"" or out[:10] in (b"HTTP/1.1 4", b"HTTP/1.1 5"), out[:100]
        assert_clean_text(out.decode(errors="replace"), service)


def test_broker_down_is_clean(service, redis_server):
    redis_server.stop()
    r = requests.post(service.base + "/submit", json={"video_url": "http://example.com/v.mp4"},
                      timeout=30)
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "broker_unavailable"
    assert_clean_json(r.json(), service)
    r = requests.get(f"{service.base}/status/{uuid.uuid4()}", timeout=30)
    assert r.status_code == 503
    assert_clean_json(r.json(), service)
    r = requests.get(service.base + "/readyz", timeout=30)
    assert r.status_code == 503
    assert_clean_json(r.json(), service)
    redis_server.start()  # so that the programs stop as usual


def test_untrusted_bytes_are_escaped_in_logs(service, redis_server, file_server):
    esc = "\u001b[31m"
    r = service.submit(f"http://{esc}evil.example/")
    assert r.status_code == 422
    requests.get(service.base + "/status/%1b%5b31m", headers={"X-Evil": "a\u001b[31mb"})
    service.raw(b"GET /\x1b[31m HTTP/1.1\r\nHost: \x1b[31m\r\nConnection: close\r\n\r\n")
    # A producer that bypasses /submit (Celery send_task) hands the worker the raw bytes.
    app = Celery("esc", broker=redis_server.url(0), backend=redis_server.url(1))
    try:
        tid = app.send_task("process_video",
                            args=[f"http://127.0.0.2:{file_server.port}/{esc}clip.mp4"]).id
        bad = app.send_task("process_video", args=[f"{esc}://x"]).id
    finally:
        app.close()
    for t in (tid, bad):
        body = wait_failed(service, t, 60 * SLOW)
        assert body["code"] == "url_not_allowed", body
        assert_clean_json(body, service)
    for name in service.logs:
        with open(name, "rb") as f:
            data = f.read()
        assert b"\x1b" not in data, name
    assert json.dumps(esc) == '"\\u001b[31m"'  # the test really sent ESC bytes
