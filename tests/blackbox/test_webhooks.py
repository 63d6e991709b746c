"""Webhooks (docs/webhooks.md): a signed event POSTed to a task's callback_url when it ends.

A Python receiver on 127.0.0.2 (allowed through FETCH_ALLOW_CIDRS and ALLOWED_PORTS) records
every request and plays a role per path: answers 200, fails a given number of times first,
redirects, hangs, or sends a huge body. Every event received is checked with the verification
function printed in docs/webhooks.md, so the recipe there is the one that works.
"""
import base64
import http.server
import json
import os
import re
import socketserver
import threading
import time

import pytest
import requests

from conftest import ALLOWED_HOST, ROOT, SLOW, Redis, Service, free_port, stop_process

SECRET = "whsec-test-0123456789"
WAIT_S = 120 * SLOW  # an upper bound only for a test that failed: nothing waits this long


def docs_verify():
    """The verify_signature function of docs/webhooks.md, executed as printed there."""
    text = open(os.path.join(ROOT, "docs", "webhooks.md")).read()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    scope = {}
    exec(code, scope)
    return scope["verify_signature"]


verify_signature = docs_verify()


class Receiver(http.server.ThreadingHTTPServer):
    """Records (path, headers, body) of each POST; behaviour by path."""
    daemon_threads = True

    def __init__(self):
        self.requests = []
        self.fail_first = {}    # path -> how many attempts get 500 before a 200
        self.released = threading.Event()  # /until-released answers 500 until set
        self.stopping = False
        self.cond = threading.Condition()
        super().__init__((ALLOWED_HOST, free_port(ALLOWED_HOST)), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self):
        return self.server_address[1]

    def url(self, path):
        return f"http://{ALLOWED_HOST}:{self.port}{path}"

    def record(self, path, headers, body):
        with self.cond:
            self.requests.append((path, headers, body))
            self.cond.notify_all()
            return sum(1 for p, _, _ in self.requests if p == path)

    def seen(self, path):
        with self.cond:
            return [(h, b) for p, h, b in self.requests if p == path]

    def wait_for(self, path, n, timeout=WAIT_S, dump=None):
        deadline = time.time() + timeout
        with self.cond:
            while sum(1 for p, _, _ in self.requests if p == path) < n:
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(f"{path}: fewer than {n} requests\n" +
                                         (dump() if dump else ""))
                self.cond.wait(min(left, 0.5))
            return [(h, b) for p, h, b in self.requests if p == path]

    def stop(self):
        self.stopping = True
        self.released.set()
        self.shutdown()
        self.server_close()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        path = self.path
        if path == "/until-released" and self.server.released.is_set():
            path += "+released"  # recorded apart: these are the ones answered 200
        n = self.server.record(path, dict(self.headers), body)
        if path == "/redirect":
            return self.answer(302, extra={"Location": self.server.url("/redirected")})
        if path == "/hang":
            while not self.server.stopping:
                time.sleep(0.2)
            return
        if path == "/huge":
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 30))
            self.end_headers()
            block = b"x" * 65536
            try:
                for _ in range(1 << 14):
                    self.wfile.write(block)
            except OSError:
                pass
            return
        if path == "/until-released" and not self.server.released.is_set():
            return self.answer(500)
        if n <= self.server.fail_first.get(path, 0):
            return self.answer(500)
        self.answer(200)

    def answer(self, status, extra=None):
        self.send_response(status)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def make_service(tmp_path, redis, file_server, receiver, secret=SECRET, **env):
    extra = {"ALLOWED_PORTS": f"{file_server.port},{receiver.port}",
             "WEBHOOK_SECRET": secret, "WEBHOOK_RETRY_BASE_S": "1",
             "WEBHOOK_TIMEOUT_S": str(int(3 * SLOW))}
    extra.update(env)
    svc = Service(str(tmp_path), redis, file_server, extra_env=extra)
    svc.wait_workers_ready()
    return svc


@pytest.fixture
def svc(tmp_path, redis_server, file_server, receiver):
    s = make_service(tmp_path, redis_server, file_server, receiver)
    yield s
    codes = s.stop()
    assert all(c == 0 for c in codes.values()), (codes, s.dump_logs())


def submit(svc, url, callback, **extra):
    body = {"video_url": url, "callback_url": callback, "analysis": False}
    body.update(extra)
    r = requests.post(svc.base + "/submit", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["task_id"]


def check_signed(headers, body):
    """The event verifies with the docs' recipe, and only with the right secret and bytes."""
    sig = headers["Interview-Signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", sig), sig
    assert verify_signature(SECRET.encode(), sig, body)
    assert not verify_signature(b"another secret", sig, body)
    assert not verify_signature(SECRET.encode(), sig, body + b" ")
    assert headers["Content-Type"] == "application/json"
    event = json.loads(body)
    assert headers["Interview-Event-Id"] == event["id"]
    return event


def test_success_event_is_signed_and_complete(svc, receiver, file_server):
    tid = submit(svc, file_server.url("clip.mp4"), receiver.url("/ok"), analysis=True)
    [(headers, body)] = receiver.wait_for("/ok", 1, dump=svc.dump_logs)
    event = check_signed(headers, body)
    code, status = svc.wait_done(tid)
    assert status["status"] == "success", status
    assert event["type"] == "task.succeeded" and event["status"] == "success"
    assert event["task_id"] == tid and event["video_id"] == tid
    assert event["video_url"] == status["video_url"]
    assert event["metadata_url"] == status["metadata_url"]
    assert event["download_video_url"] == f"{svc.base}/download/{tid}"
    meta = requests.get(status["metadata_url"], timeout=10).json()
    level = meta.get("analysis", {}).get("summary", {}).get("final_level")
    assert level in ("NO_ALERT", "SUSPICIOUS_BEHAVIOR", "CHEATING_DETECTED"), meta.get("analysis")
    assert event["alert_level"] == level
    assert "error" not in event
    assert headers["Interview-Delivery-Attempt"] == "1"
    logs = "".join(open(n, errors="replace").read() for n in svc.logs)
    assert re.search(rf"task={tid} event={event['id']} attempt=1 host={ALLOWED_HOST}:\d+ "
                     r"status=200 delivered", logs), logs[-3000:]
    assert SECRET not in logs


def test_failure_event_has_the_error_code(svc, receiver, file_server):
    tid = submit(svc, file_server.url("notes.txt"), receiver.url("/failed"))
    [(headers, body)] = receiver.wait_for("/failed", 1, dump=svc.dump_logs)
    event = check_signed(headers, body)
    _, status = svc.wait_done(tid)
    assert status["status"] == "failed" and status["code"] == "not_a_video", status
    assert event["type"] == "task.failed" and event["status"] == "failed"
    assert event["task_id"] == tid and event["video_id"] is None
    assert event["error"]["code"] == "not_a_video"
    assert event["error"]["message"] == status["error"]
    assert event["alert_level"] is None and "video_url" not in event


def test_receiver_failing_twice_gets_the_same_event_three_times(svc, receiver, file_server):
    receiver.fail_first["/flaky"] = 2
    submit(svc, file_server.url("clip.mp4"), receiver.url("/flaky"))
    got = receiver.wait_for("/flaky", 3, dump=svc.dump_logs)
    events = [check_signed(h, b) for h, b in got]
    assert len({e["id"] for e in events}) == 1
    assert len({b for _, b in got}) == 1, "every attempt sends the same body"
    assert [h["Interview-Delivery-Attempt"] for h, _ in got] == ["1", "2", "3"]
    time.sleep(3 * SLOW)  # a 4th attempt would come within the 2-4 s backoff
    assert len(receiver.seen("/flaky")) == 3


def test_event_survives_a_killed_worker(tmp_path, redis_server, file_server, receiver):
    svc = make_service(tmp_path, redis_server, file_server, receiver)
    try:
        submit(svc, file_server.url("clip.mp4"), receiver.url("/until-released"))
        [(headers, body)] = receiver.wait_for("/until-released", 1, dump=svc.dump_logs)
        first = check_signed(headers, body)
        victim = svc.workers[0]
        victim.kill()  # SIGKILL, by PID
        victim.wait()
        receiver.released.set()
        svc.workers[0] = svc.spawn("worker")
        [(h, b)] = receiver.wait_for("/until-released+released", 1, dump=svc.dump_logs)
        again = check_signed(h, b)
        assert again["id"] == first["id"] and b == body
        assert int(h["Interview-Delivery-Attempt"]) >= 2
        assert wait_empty(redis_server), "the delivered event is removed"
        new_log = open(svc.logs[-1], errors="replace").read()
        assert f"event={first['id']}" in new_log and "delivered" in new_log, new_log[-3000:]
    finally:
        svc.serve_code = stop_process(svc.serve)
        codes = [stop_process(w) for w in svc.workers]
    assert svc.serve_code == 0 and codes == [0], svc.dump_logs()


def wait_empty(redis, timeout=10):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        if redis.cli("ZCARD", "interview-webhooks-due", db=1) == "0":
            return True
        time.sleep(0.1)
    return False


def test_forbidden_callback_urls_are_refused_at_submit(svc, receiver, file_server, media,
                                                      redis_server):
    video = file_server.url("clip.mp4")
    port = receiver.port
    refused = [
        f"http://127.0.0.1:{port}/x", "http://10.1.2.3/x", "http://169.254.169.254/latest",
        f"http://2130706433:{port}/x", "http://[::1]/x", "http://localhost/x",
        "http://a.localhost/x", f"ftp://{ALLOWED_HOST}:{port}/x", "file:///etc/passwd",
        f"http://u:p@{ALLOWED_HOST}:{port}/x", f"http://{ALLOWED_HOST}:1/x", "not a url",
        "gopher://example.com/",
    ]
    for cb in refused:
        r = requests.post(svc.base + "/submit", json={"video_url": video, "callback_url": cb},
                          timeout=10)
        assert r.status_code == 400, (cb, r.text)
        assert r.json()["code"] == "callback_url_not_allowed", (cb, r.text)
    for cb in (5, ["http://example.com/"], {"u": 1}, "http://example.com/" + "a" * 2048):
        r = requests.post(svc.base + "/submit", json={"video_url": video, "callback_url": cb},
                          timeout=10)
        assert r.status_code == 422 and r.json()["code"] == "invalid_input", (cb, r.text)
    # /upload and tus refuse the same URLs, and make no task or upload.
    data = (media / "clip.mp4").read_bytes()
    cb = f"http://127.0.0.1:{port}/x"
    r = requests.post(svc.base + "/upload", params={"callback_url": cb}, data=data,
                      headers={"Content-Type": "video/mp4"}, timeout=30)
    assert r.status_code == 400 and r.json()["code"] == "callback_url_not_allowed", r.text
    meta = "callback_url " + base64.b64encode(cb.encode()).decode()
    r = requests.post(svc.base + "/uploads", timeout=10, headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)), "Upload-Metadata": meta})
    assert r.status_code == 400 and r.json()["code"] == "callback_url_not_allowed", r.text
    assert redis_server.cli("LLEN", "celery") == "0"
    up = os.path.join(svc.processed, ".uploads")
    assert not os.path.isdir(up) or not os.listdir(up)
    # A name is accepted (its address is checked when connecting), as is an allowed address.
    ok = requests.post(svc.base + "/submit", timeout=10, json={
        "video_url": video, "callback_url": receiver.url("/accepted")})
    assert ok.status_code == 200, ok.text


def test_upload_and_tus_carry_the_callback(svc, receiver, media):
    data = (media / "clip.mp4").read_bytes()
    r = requests.post(svc.base + "/upload", params={"callback_url": receiver.url("/upload"),
                                                    "analysis": "false"},
                      data=data, headers={"Content-Type": "video/mp4"}, timeout=30)
    assert r.status_code == 200, r.text
    tid = r.json()["task_id"]
    [(h, b)] = receiver.wait_for("/upload", 1, dump=svc.dump_logs)
    assert check_signed(h, b)["task_id"] == tid
    meta = ("callback_url " + base64.b64encode(receiver.url("/tus").encode()).decode() +
            ",analysis " + base64.b64encode(b"false").decode())
    r = requests.post(svc.base + "/uploads", timeout=10, headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)), "Upload-Metadata": meta})
    assert r.status_code == 201, r.text
    r = requests.patch(r.headers["Location"], data=data, timeout=30, headers={
        "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream"})
    assert r.status_code == 204, r.text
    tid = r.headers["Upload-Task-Id"]
    [(h, b)] = receiver.wait_for("/tus", 1, dump=svc.dump_logs)
    assert check_signed(h, b)["task_id"] == tid


def test_without_a_secret_callbacks_are_refused(tmp_path, redis_server, file_server, receiver):
    svc = make_service(tmp_path, redis_server, file_server, receiver, secret="")
    try:
        r = requests.post(svc.base + "/submit", timeout=10, json={
            "video_url": file_server.url("clip.mp4"), "callback_url": receiver.url("/x")})
        assert r.status_code == 400 and r.json()["code"] == "webhooks_disabled", r.text
        r = requests.post(svc.base + "/submit", timeout=10,
                          json={"video_url": file_server.url("clip.mp4")})
        assert r.status_code == 200, r.text
    finally:
        codes = svc.stop()
    assert all(c == 0 for c in codes.values()), svc.dump_logs()


def test_a_redirect_is_not_followed(svc, receiver, file_server):
    submit(svc, file_server.url("clip.mp4"), receiver.url("/redirect"))
    got = receiver.wait_for("/redirect", 2, dump=svc.dump_logs)  # the 302 counts as a failure
    assert len({json.loads(b)["id"] for _, b in got}) == 1
    assert receiver.seen("/redirected") == []
    logs = "".join(open(n, errors="replace").read() for n in svc.logs)
    assert "status=302 failed; retrying" in logs


def test_hostile_receivers_do_not_hold_the_worker(svc, receiver, file_server):
    """A receiver that never answers and one that sends an endless body: tasks still finish,
    the endless one counts as delivered (its 200 came), the silent one is retried."""
    hang = submit(svc, file_server.url("clip.mp4"), receiver.url("/hang"))
    huge = submit(svc, file_server.url("clip.mp4"), receiver.url("/huge"))
    receiver.wait_for("/huge", 1, dump=svc.dump_logs)
    receiver.wait_for("/hang", 2, dump=svc.dump_logs)  # the first attempt timed out
    for tid in (hang, huge):
        assert svc.wait_done(tid)[1]["status"] == "success"
    plain = submit(svc, file_server.url("clip.mp4"), receiver.url("/after"))
    receiver.wait_for("/after", 1, dump=svc.dump_logs)
    assert svc.wait_done(plain)[1]["status"] == "success"
    assert len(receiver.seen("/huge")) == 1
    logs = "".join(open(n, errors="replace").read() for n in svc.logs)
    assert re.search(rf"task={hang} event=\S+ attempt=1 host=\S+ status=0 failed; retrying", logs)


def test_python_celery_client_with_a_callback(svc, receiver, file_server, redis_server):
    from celery import Celery
    app = Celery("webhook-client", broker=redis_server.url(0), backend=redis_server.url(1))
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    try:
        res = app.send_task("process_video", args=[file_server.url("clip.mp4")],
                            kwargs={"callback_url": receiver.url("/celery"), "analysis": False})
        result = res.get(timeout=WAIT_S)
        tid = res.id
        res.backend.remove_pending_result(res)
    finally:
        app.close()
    assert result["video_id"] == tid
    [(h, b)] = receiver.wait_for("/celery", 1, dump=svc.dump_logs)
    event = check_signed(h, b)
    assert event["task_id"] == tid and event["status"] == "success"
    assert event["video_url"] == result["video_url"]


def test_a_python_worker_receives_the_callback_as_a_keyword(tmp_path, redis_server, receiver,
                                                            file_server):
    """What /submit publishes with a callback_url stays a plain Celery call: a real Python
    Celery worker runs it with the keyword argument intact (and sends no webhook itself)."""
    from test_celery_interop import PythonWorker
    svc = Service(str(tmp_path), redis_server, file_server, workers=0, extra_env={
        "ALLOWED_PORTS": f"{file_server.port},{receiver.port}", "WEBHOOK_SECRET": SECRET})
    py = PythonWorker(redis_server)
    try:
        cb = receiver.url("/python")
        tid = submit(svc, file_server.url("clip.mp4"), cb)
        deadline = time.time() + WAIT_S
        while time.time() < deadline:
            raw = redis_server.cli("GET", f"celery-task-meta-{tid}", db=1)
            if raw and json.loads(raw)["status"] in ("SUCCESS", "FAILURE"):
                break
            time.sleep(0.1)
        meta = json.loads(raw)
    finally:
        py_log = py.stop()
        codes = svc.stop()
    assert meta["status"] == "SUCCESS", (meta, py_log)
    assert meta["result"]["callback_url"] == cb and meta["result"]["analysis"] is False
    assert meta["result"]["worker"] == "python-stub"
    assert all(c == 0 for c in codes.values()), svc.dump_logs()


def test_an_event_is_dropped_after_max_age(tmp_path, redis_server, file_server, receiver):
    """A receiver that always fails: attempts stop once the next would come after
    WEBHOOK_MAX_AGE_S, the event leaves Redis and the drop is logged."""
    receiver.fail_first["/down"] = 10 ** 6
    svc = make_service(tmp_path, redis_server, file_server, receiver,
                       WEBHOOK_MAX_AGE_S=str(int(4 * SLOW)))
    try:
        tid = submit(svc, file_server.url("clip.mp4"), receiver.url("/down"))
        receiver.wait_for("/down", 2, dump=svc.dump_logs)
        deadline = time.time() + WAIT_S
        while "failed; dropped" not in "".join(open(n, errors="replace").read()
                                                 for n in svc.logs):
            assert time.time() < deadline, svc.dump_logs()
            time.sleep(0.2)
        assert wait_empty(redis_server)
        assert redis_server.cli("EXISTS", "interview-webhooks", db=1) == "0"
        attempts = len(receiver.seen("/down"))
        time.sleep(3 * SLOW)
        assert len(receiver.seen("/down")) == attempts, "no attempt after the drop"
        logs = "".join(open(n, errors="replace").read() for n in svc.logs)
        assert re.search(rf"task={tid} event=\S+ attempt={attempts} host=\S+ status=500 "
                         r"failed; dropped", logs), logs[-3000:]
    finally:
        codes = svc.stop()
    assert all(c == 0 for c in codes.values()), svc.dump_logs()


def test_a_pending_event_survives_a_redis_restart(tmp_path, file_server, receiver):
    """Redis with its append-only file: an event waiting for its next attempt is still
    delivered, with the same id, after Redis stopped and came back (the workers reconnect)."""
    aof = tmp_path / "redis-aof"
    aof.mkdir()
    redis = Redis(str(aof), appendonly=True)
    svc = make_service(tmp_path, redis, file_server, receiver)
    try:
        submit(svc, file_server.url("clip.mp4"), receiver.url("/until-released"))
        [(h, body)] = receiver.wait_for("/until-released", 1, dump=svc.dump_logs)
        first = check_signed(h, body)
        redis.stop()
        redis.start()
        receiver.released.set()
        [(h, b)] = receiver.wait_for("/until-released+released", 1, dump=svc.dump_logs)
        assert check_signed(h, b)["id"] == first["id"] and b == body
        assert wait_empty(redis)
    finally:
        codes = svc.stop()
        redis.stop()
    assert all(c == 0 for c in codes.values()), svc.dump_logs()


def test_a_task_lost_by_the_queue_sends_its_failure_event(tmp_path, redis_server, file_server,
                                                          receiver):
    """A task whose message an operator purged before any worker took it fails as task_lost
    (swept by a worker's heartbeat), and that failure sends the task's event too."""
    extra = {"ALLOWED_PORTS": f"{file_server.port},{receiver.port}", "WEBHOOK_SECRET": SECRET,
             "WEBHOOK_RETRY_BASE_S": "1", "TASK_LEASE_S": "3", "TASK_LOST_AFTER_S": "1"}
    svc = Service(str(tmp_path), redis_server, file_server, workers=0, extra_env=extra)
    try:
        tid = submit(svc, file_server.url("clip.mp4"), receiver.url("/lost"))
        assert redis_server.cli("DEL", "celery") == "1"  # an operator purges the queue
        svc.workers.append(svc.spawn("worker"))
        [(h, b)] = receiver.wait_for("/lost", 1, dump=svc.dump_logs)
        event = check_signed(h, b)
        _, status = svc.wait_done(tid)
    finally:
        codes = svc.stop()
    assert status["status"] == "failed" and status["code"] == "task_lost", status
    assert event["task_id"] == tid and event["type"] == "task.failed"
    assert event["error"] == {"code": "task_lost", "message": status["error"]}
    assert all(c == 0 for c in codes.values()), svc.dump_logs()
