"""Celery interop in both directions, with the real programs and Debian's python3-celery.

- Python client -> our worker: send_task("process_video", args=[url]) is run by
  `interview-api worker`; AsyncResult.get() returns our result dict, .state goes through STARTED
  and PROGRESS (info with stage/progress), RETRY (info a RuntimeError) while a transient error
  is retried; a failing URL raises in Python with our message; a Python worker running beside
  ours (kombu, visibility_timeout=1 s) leaves our lease alone.
- Our API -> Python worker: what POST /submit publishes is byte for byte what send_task
  publishes (but for ids, origin and reply_to), and a real Celery worker (celery_stub_app.py)
  runs it with the argument intact; /status reports a Python worker's failure honestly.
See celery_interop_checks.md for the wire formats.
"""
import json
import os
import re
import subprocess
import time

import pytest
import requests
from celery import Celery

from conftest import SLOW, Redis, Service
from slow_origin import shared_origin

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"


@pytest.fixture(scope="module")
def redis_mod(tmp_path_factory):
    r = Redis(str(tmp_path_factory.mktemp("redis-interop")))
    yield r
    r.stop()


@pytest.fixture
def redis_clean(redis_mod):
    redis_mod.cli("FLUSHALL")
    return redis_mod


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    return shared_origin(tmp_path_factory)


@pytest.fixture
def app(redis_clean):
    a = Celery("interop-client", broker=redis_clean.url(0), backend=redis_clean.url(1))
    a.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    yield a
    a.close()


def start_service(tmp_path, redis, origin, workers):
    return Service(str(tmp_path), redis, extra_env={"ALLOWED_PORTS": str(origin.port)},
                   workers=workers)


def stop_service(svc):
    codes = svc.stop()
    assert all(c == 0 for c in codes.values()), (codes, svc.dump_logs())


class PythonWorker:
    """A real Celery worker (celery_stub_app.py, -P solo), stopped by PID."""

    def __init__(self, redis, visibility_timeout=None):
        env = dict(os.environ, CELERY_BROKER_URL=redis.url(0), CELERY_BACKEND_URL=redis.url(1),
                   PYTHONPATH=HERE)
        if visibility_timeout:
            env["CELERY_VISIBILITY_TIMEOUT"] = str(visibility_timeout)
        self.proc = subprocess.Popen(
            [PY, "-m", "celery", "-A", "celery_stub_app", "worker", "-P", "solo", "-c", "1",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"],
            env=env, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.communicate(timeout=15)[0]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.communicate()[0]


def send(app, url):
    """send_task, returning the id; the AsyncResult must not talk to Redis when collected."""
    r = app.send_task("process_video", args=[url])
    r.backend = None
    return r.id


def get(app, tid, timeout):
    """AsyncResult(tid).get(timeout), detached from Redis before it is collected."""
    r = app.AsyncResult(tid)
    try:
        return r.get(timeout=timeout)
    finally:
        r.backend.remove_pending_result(r)
        r.backend = None


def watch_states(app, tid, timeout, on_progress=None):
    """Polls AsyncResult(tid).state/.info every 20 ms until ready; returns [(state, info)]."""
    seen = []
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        r = app.AsyncResult(tid)
        state, info = r.state, r.info
        if r.state != state:  # .state and .info are two reads: keep consistent pairs only
            continue
        if not seen or seen[-1][0] != state or state == "PROGRESS":
            seen.append((state, info))
        if state == "PROGRESS" and on_progress:
            on_progress()
        if state in ("SUCCESS", "FAILURE"):
            return seen
        time.sleep(0.02)
    raise AssertionError(f"task {tid} not ready after {timeout}s: {seen[-5:]}")


def started_lines(svc, tid):
    text = "".join(open(n, errors="replace").read() for n in svc.logs)
    return len(re.findall(rf"task={tid} started", text))


def test_python_client_runs_on_our_worker_and_sees_progress(tmp_path, redis_clean, origin, app):
    svc = start_service(tmp_path, redis_clean, origin, workers=1)
    py = []
    try:
        # The origin waits 1.5 s before answering (STARTED), then drips the file over 10 s
        # (PROGRESS). A kombu worker that restores deliveries older than 1 s runs meanwhile.
        tid = send(app, origin.url("drip/10/1.5/drip.mp4"))
        seen = watch_states(app, tid, 90, on_progress=lambda: py or py.append(
            PythonWorker(redis_clean, visibility_timeout=1)))
        result = get(app, tid, 10)
    finally:
        py_log = py[0].stop() if py else ""
        stop_service(svc)
    states = [s for s, _ in seen]
    assert "STARTED" in states and "PROGRESS" in states, seen
    assert states.index("STARTED") < states.index("PROGRESS") < states.index("SUCCESS"), seen
    progress = [i for s, i in seen if s == "PROGRESS" and isinstance(i, dict)]
    assert progress and all({"stage", "progress"} <= set(i) for i in progress), seen
    assert all(0 <= i["progress"] <= 1 for i in progress)
    assert "fetching" in {i["stage"] for i in progress}, progress
    assert result["video_id"] == tid
    assert result["video_url"] == f"{svc.base}/stream/{tid}"
    assert result["metadata_url"] == f"{svc.base}/metadata/{tid}"
    assert os.path.exists(os.path.join(svc.processed, f"processed_{tid}.mp4"))
    # Ours ran it once; the kombu worker neither restored nor ran it.
    assert started_lines(svc, tid) == 1, svc.dump_logs()
    assert "celery@" in py_log and tid not in py_log, py_log
    assert redis_clean.cli("HLEN", "unacked") == "0"


def test_python_client_sees_our_retry_and_failure(tmp_path, redis_clean, origin, app):
    svc = Service(str(tmp_path), redis_clean, workers=1,
                  extra_env={"ALLOWED_PORTS": str(origin.port), "TASK_RETRY_BACKOFF_S": "1"})
    try:
        failing = send(app, origin.url("code/404/missing.mp4"))
        flaky = send(app, origin.url(f"flaky/{failing}/2/drip.mp4"))  # 503 twice, then 200
        with pytest.raises(RuntimeError, match="^the video server answered with an error$"):
            get(app, failing, 60)
        r = app.AsyncResult(failing)
        assert r.state == "FAILURE" and isinstance(r.info, RuntimeError)
        seen = watch_states(app, flaky, 60)
        assert get(app, flaky, 10)["video_id"] == flaky
    finally:
        stop_service(svc)
    retry = [i for s, i in seen if s == "RETRY"]
    assert retry and isinstance(retry[0], RuntimeError), seen
    assert str(retry[0]) == "the video server is temporarily failing"
    assert origin.hits(f"/flaky/{failing}/2/drip.mp4") == 3
    raw = json.loads(redis_clean.cli("GET", f"celery-task-meta-{failing}", db=1))
    assert raw["result"]["code"] == "fetch_http_error"


def _normalize(msg):
    for field in ("origin", "reply_to", "delivery_tag", "id", "root_id", "correlation_id"):
        msg = re.sub(r'"%s": "[^"]*"' % field, '"%s": "X"' % field, msg)
    return msg


def test_python_worker_consumes_what_our_api_publishes(tmp_path, redis_clean, app):
    svc = Service(str(tmp_path), redis_clean, workers=0)
    url = "http://example.test/interview-1.mp4?who='ann'&n=1%202"
    py = None
    try:
        ours = svc.submit(url).json()["task_id"]
        raw_ours = redis_clean.cli("LINDEX", "celery", "0")
        theirs = send(app, url)
        raw_py = redis_clean.cli("LINDEX", "celery", "0")
        assert json.loads(raw_py)["headers"]["id"] == theirs
        assert _normalize(raw_ours) == _normalize(raw_py)  # the same bytes but for ids
        failing = svc.submit("http://example.test/fail.mp4").json()["task_id"]
        py = PythonWorker(redis_clean)
        res = get(app, ours, 60)
        assert res == {"echo": url, "worker": "python-stub", "retries": 0, "task_id": ours}
        assert get(app, theirs, 30)["echo"] == url
        with pytest.raises(RuntimeError, match="stub failure"):
            get(app, failing, 30)
        # A failure written by Python may hold paths: /status shows a generic message.
        st = requests.get(f"{svc.base}/status/{failing}").json()
        assert st["status"] == "failed" and st["code"] == "internal_error", st
        assert "/" not in st["error"]
    finally:
        log = py.stop() if py else ""
        stop_service(svc)
    assert log.count("succeeded") == 2, log
