"""Proof that queue/ speaks Celery 5 over Redis, against real Python celery/kombu.

Run by hand (not collected by the black-box suite, whose files are test_*.py):
    IA_BUILD_DIR=/path/to/build /usr/bin/python3 -m pytest -v tests/blackbox/celery_interop_check.py
It compiles celery_interop_tool.c against $IA_BUILD_DIR/libinterview.a, starts a private
redis-server on a free loopback port, and checks both directions: Python's send_task messages
decode in C; C's messages are consumed by a real Celery worker (celery_stub_app.py, -P solo);
C's result records are read by AsyncResult (get/state/info, SUCCESS/FAILURE/PROGRESS/STARTED/
RETRY, woken by PUBLISH); Python's records are read by queue_status; kombu leaves our leases be.
"""
import base64
import gc
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest
import redis

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = "/usr/bin/python3"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tool(tmp_path_factory):
    build = os.environ.get("IA_BUILD_DIR", os.path.join(ROOT, "build"))
    lib = os.path.join(build, "libinterview.a")
    if not os.path.exists(lib):
        pytest.skip("no %s: build the library first" % lib)
    cache = open(os.path.join(build, "CMakeCache.txt")).read()
    san = ["-fsanitize=address,undefined"] if "IA_SANITIZE:BOOL=ON" in cache else []
    out = str(tmp_path_factory.mktemp("tool") / "celery_interop_tool")
    subprocess.run(["gcc", "-std=c17", "-D_GNU_SOURCE", *san, "-I", os.path.join(ROOT, "src"),
                    os.path.join(HERE, "celery_interop_tool.c"), lib, "-lhiredis", "-ljansson",
                    "-lcrypto", "-levent", "-lcurl", "-lpthread", "-lm", "-o", out], check=True)
    return out


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    r = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield port
    gc.collect()  # AsyncResult.__del__ talks to Redis: let it run while Redis is up
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture()
def env(server):
    urls = {"BROKER": "redis://127.0.0.1:%d/0" % server,
            "BACKEND": "redis://127.0.0.1:%d/1" % server}
    redis.Redis(host="127.0.0.1", port=server).flushall()
    os.environ["CELERY_BROKER_URL"] = urls["BROKER"]
    os.environ["CELERY_BACKEND_URL"] = urls["BACKEND"]
    sys.path.insert(0, HERE)
    import celery_stub_app
    celery_stub_app.app.conf.broker_url = urls["BROKER"]
    celery_stub_app.app.conf.result_backend = urls["BACKEND"]
    return dict(urls, port=server, app=celery_stub_app.app,
                broker=redis.Redis(host="127.0.0.1", port=server, db=0),
                backend=redis.Redis(host="127.0.0.1", port=server, db=1))


def run_tool(tool, env, *args, stdin=None):
    p = subprocess.run([tool, *args], input=stdin, capture_output=True, text=True,
                       env=dict(os.environ, BROKER=env["BROKER"], BACKEND=env["BACKEND"]))
    return p.stdout


class Worker:
    """A real Celery worker on the stub app, stopped by PID."""

    def __init__(self, env, visibility_timeout=None):
        e = dict(os.environ, CELERY_BROKER_URL=env["BROKER"], CELERY_BACKEND_URL=env["BACKEND"],
                 PYTHONPATH=HERE)
        if visibility_timeout:
            e["CELERY_VISIBILITY_TIMEOUT"] = str(visibility_timeout)
        self.proc = subprocess.Popen(
            [PY, "-m", "celery", "-A", "celery_stub_app", "worker", "-P", "solo", "-c", "1",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"],
            env=e, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.communicate(timeout=10)[0]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.communicate()[0]


def send(app, *args, **kwargs):
    """send_task, returning the id; the AsyncResult must not talk to Redis when collected."""
    r = app.send_task("process_video", *args, **kwargs)
    r.backend = None
    return r.id


def get(app, tid, timeout):
    """AsyncResult(tid).get(timeout), detaching the result from Redis before it is collected."""
    r = app.AsyncResult(tid)
    try:
        return r.get(timeout=timeout)
    finally:
        r.backend.remove_pending_result(r)
        r.backend = None


def _norm(msg):
    for field in ("origin", "reply_to", "delivery_tag"):
        msg = re.sub(r'"%s": "[^"]*"' % field, '"%s": X' % field, msg)
    return msg


def test_python_message_decodes_and_matches_our_bytes(tool, env):
    tid = send(env["app"], args=["http://x"])
    raw = env["broker"].lindex("celery", 0).decode()
    out = run_tool(tool, env, "decode", stdin=raw)
    assert out.startswith("id=%s tag=" % tid)
    assert 'task=process_video retries=0 args=["http://x"] kwargs={}' in out
    ours = run_tool(tool, env, "encode", tid, "process_video", "http://x").strip()
    assert _norm(ours) == _norm(raw)  # byte for byte but for origin, reply_to, delivery_tag


def test_python_worker_runs_our_message(tool, env):
    url = "http://example.test/it's a vid\u00e9o.mp4"
    assert "rc=0" in run_tool(tool, env, "submit", "c-task-1", url)
    assert json.loads(env["backend"].get("interview-task-c-task-1"))["video_url"] == url
    w = Worker(env)
    try:
        res = get(env["app"], "c-task-1", 30)
    finally:
        log = w.stop()
    assert res["echo"] == url and res["retries"] == 0, log
    assert "state=4 stage=success" in run_tool(tool, env, "status", "c-task-1")


def test_our_retry_is_seen_by_python_with_retries_1(tool, env):
    send(env["app"], args=["http://a/1"], task_id="py-r")
    assert "claimed id=py-r" in run_tool(tool, env, "claim", "30", "retry")
    raw = json.loads(env["broker"].lindex("celery", 0))
    assert raw["headers"]["retries"] == 1
    body = json.loads(base64.b64decode(raw["body"]))
    assert body[0] == ["http://a/1"]
    w = Worker(env)
    try:
        res = get(env["app"], "py-r", 30)
    finally:
        w.stop()
    assert res["retries"] == 1


def test_asyncresult_reads_our_records(tool, env):
    app = env["app"]
    run_tool(tool, env, "failure", "f1", "too_large", "the video is larger than allowed")
    with pytest.raises(RuntimeError, match="the video is larger than allowed"):
        get(app, "f1", 5)
    assert app.AsyncResult("f1").state == "FAILURE"
    run_tool(tool, env, "progress", "p1", "processing", "0.4")
    r = app.AsyncResult("p1")
    assert (r.state, r.info) == ("PROGRESS", {"stage": "processing", "progress": 0.4})
    run_tool(tool, env, "started", "s1")
    assert app.AsyncResult("s1").state == "STARTED"
    run_tool(tool, env, "retry", "r1", "fetch_network_error", "could not download")
    r = app.AsyncResult("r1")
    assert r.state == "RETRY" and isinstance(r.info, RuntimeError)
    raw = json.loads(env["backend"].get("celery-task-meta-f1"))
    assert list(raw) == ["status", "result", "traceback", "children", "date_done", "task_id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?", raw["date_done"])
    assert 0 < env["backend"].ttl("celery-task-meta-f1") <= 3600


@pytest.mark.parametrize("kind", ["success", "failure"])
def test_publish_wakes_a_waiting_get(tool, env, kind):
    tid = "late-" + kind
    args = ["success", tid, '{"a": 1}'] if kind == "success" else ["failure", tid, "timeout",
                                                                    "took too long"]
    t = threading.Timer(0.7, run_tool, args=(tool, env, *args))
    t.start()
    t0 = time.time()
    try:
        assert get(env["app"], tid, 5) == {"a": 1}
    except RuntimeError as e:
        assert kind == "failure" and str(e) == "took too long"
    assert time.time() - t0 < 3
    t.join()


def test_we_read_python_records(tool, env):
    send(env["app"], args=["http://a/ok"], task_id="py-ok")
    send(env["app"], args=["http://a/fail"], task_id="py-fail")
    w = Worker(env)
    try:
        get(env["app"], "py-ok", 30)
        with pytest.raises(RuntimeError):
            get(env["app"], "py-fail", 30)
    finally:
        w.stop()
    assert '"echo": "http://a/ok"' in run_tool(tool, env, "status", "py-ok")
    # Python's own failure text may hold paths: we show the generic message and code.
    assert "state=5 stage=failed progress=0.00 code=internal_error" in run_tool(
        tool, env, "status", "py-fail")


def test_kombu_leaves_a_live_lease_alone(tool, env):
    send(env["app"], args=["http://a/lease"], task_id="py-lease")
    out = run_tool(tool, env, "claim", "60")
    tag = re.search(r"tag=(\S+)", out).group(1)
    w = Worker(env, visibility_timeout=1)  # kombu restores entries older than now - 1 s
    time.sleep(6)
    w.stop()
    assert env["broker"].hexists("unacked", tag)
    assert env["broker"].zscore("unacked_index", tag) > time.time() + 40
    assert env["broker"].llen("celery") == 0
