"""A request may turn the analysis off: "analysis": false in /submit, ?analysis=false on
/upload, the Upload-Metadata key "analysis" (base64 of false) on tus. Each puts
{"analysis": false} into the Celery message's kwargs, as send_task(..., kwargs={"analysis":
False}) does; anything but a boolean is refused with a stable code and queues nothing.
"""
import base64
import json

import pytest
import requests
from celery import Celery

from conftest import Service
from test_celery_interop import PythonWorker, _normalize, get

TUS = {"Tus-Resumable": "1.0.0"}
FALSE64 = base64.b64encode(b"false").decode()
TRUE64 = base64.b64encode(b"true").decode()


@pytest.fixture
def svc(tmp_path, redis_server):
    """The API alone: what it publishes stays on the list."""
    s = Service(str(tmp_path), redis_server, workers=0)
    yield s
    codes = s.stop()
    assert all(c == 0 for c in codes.values()), s.dump_logs()


@pytest.fixture
def app(redis_server):
    a = Celery("flag-client", broker=redis_server.url(0), backend=redis_server.url(1))
    a.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    yield a
    a.close()


def queued(redis):
    """The messages on the queue, oldest first, with their decoded bodies."""
    raw = redis.cli("LRANGE", "celery", "0", "-1")
    out = []
    for line in reversed(raw.splitlines() if raw else []):
        msg = json.loads(line)
        args, kwargs, _ = json.loads(base64.b64decode(msg["body"]))
        out.append({"args": args, "kwargs": kwargs, "headers": msg["headers"], "raw": line})
    return out


def only_message(redis):
    msgs = queued(redis)
    assert len(msgs) == 1, msgs
    redis.cli("DEL", "celery")
    return msgs[0]


def test_submit_flag_becomes_kwargs(svc, redis_server):
    url = "http://example.test/interview.mp4"
    for body, kwargs in (({"video_url": url, "analysis": False}, {"analysis": False}),
                         ({"video_url": url, "analysis": True}, {}),
                         ({"video_url": url}, {})):
        r = requests.post(svc.base + "/submit", json=body, timeout=10)
        assert r.status_code == 200, r.text
        msg = only_message(redis_server)
        assert msg["args"] == [url]
        assert msg["kwargs"] == kwargs, body
        assert msg["headers"]["kwargsrepr"] == ("{'analysis': False}" if kwargs else "{}")
        assert msg["headers"]["id"] == r.json()["task_id"]


def test_submit_refuses_a_flag_that_is_not_boolean(svc, redis_server):
    for value in ("false", 0, 1, None, [], {}, "no"):
        r = requests.post(svc.base + "/submit", timeout=10,
                          json={"video_url": "http://example.test/a.mp4", "analysis": value})
        assert r.status_code == 422, (value, r.text)
        assert r.json() == {"detail": "analysis must be true or false", "code": "invalid_input"}
    assert queued(redis_server) == []


def test_upload_query_flag(svc, redis_server, media):
    data = (media / "clip.mp4").read_bytes()
    raw = {"Content-Type": "application/octet-stream"}
    r = requests.post(svc.base + "/upload?analysis=false", data=data, headers=raw, timeout=30)
    assert r.status_code == 200, r.text
    msg = only_message(redis_server)
    assert msg["kwargs"] == {"analysis": False} and msg["args"][0].startswith("upload:")
    r = requests.post(svc.base + "/upload?analysis=false", timeout=30,
                      files={"file": ("clip.mp4", data, "video/mp4")})
    assert r.status_code == 200, r.text
    assert only_message(redis_server)["kwargs"] == {"analysis": False}
    for query in ("?analysis=true", ""):
        r = requests.post(svc.base + "/upload" + query, data=data, headers=raw, timeout=30)
        assert r.status_code == 200, r.text
        assert only_message(redis_server)["kwargs"] == {}
    for query in ("?analysis=no", "?analysis=False", "?analysis=0", "?analysis=", "?analysis",
                  "?analysis=%20false", "?x=1&analysis"):
        r = requests.post(svc.base + "/upload" + query, data=data, headers=raw, timeout=30)
        assert r.status_code == 400, (query, r.text)
        assert r.json()["code"] == "invalid_input" and "analysis" in r.json()["detail"]
    assert queued(redis_server) == []


def tus_create(svc, length, metadata):
    h = dict(TUS, **{"Upload-Length": str(length), "Upload-Metadata": metadata})
    return requests.post(svc.base + "/uploads", headers=h, timeout=10)


def test_tus_metadata_flag(svc, redis_server, media):
    data = (media / "clip.mp4").read_bytes()
    name = base64.b64encode(b"clip.mp4").decode()
    r = tus_create(svc, len(data), f"filename {name},analysis {FALSE64}")
    assert r.status_code == 201, r.text
    url = r.headers["Location"]
    half = len(data) // 2
    for offset, piece in ((0, data[:half]), (half, data[half:])):
        p = requests.patch(url, data=piece, timeout=30, headers=dict(
            TUS, **{"Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream"}))
        assert p.status_code == 204, p.text
    msg = only_message(redis_server)
    assert msg["headers"]["id"] == p.headers["Upload-Task-Id"]
    assert msg["kwargs"] == {"analysis": False}
    assert msg["args"] == ["upload:" + url.rsplit("/", 1)[1]]
    # An empty upload makes its task at once, with the flag too; "true" is the default.
    for metadata, kwargs in ((f"analysis {FALSE64}", {"analysis": False}),
                             (f"analysis {TRUE64}", {}), (f"filename {name}", {})):
        r = tus_create(svc, 0, metadata)
        assert r.status_code == 201 and r.headers["Upload-Task-Id"], r.text
        assert only_message(redis_server)["kwargs"] == kwargs, metadata
    bad = ["analysis", "analysis " + base64.b64encode(b"no").decode(),
           "analysis " + base64.b64encode(b"False").decode(),
           f"analysis {FALSE64},analysis {FALSE64}", f"analysis {TRUE64}, analysis {FALSE64}"]
    for metadata in bad:
        r = tus_create(svc, 0, metadata)
        assert r.status_code == 400, (metadata, r.text)
        assert r.json()["code"] == "invalid_input" and "analysis" in r.json()["detail"]
    assert queued(redis_server) == []


def test_same_message_as_python_send_task(svc, redis_server, app):
    url = "http://example.test/interview-2.mp4"
    r = requests.post(svc.base + "/submit", json={"video_url": url, "analysis": False},
                      timeout=10)
    ours = only_message(redis_server)["raw"]
    res = app.send_task("process_video", args=[url], kwargs={"analysis": False})
    res.backend = None
    theirs = only_message(redis_server)["raw"]
    assert r.status_code == 200
    assert _normalize(ours) == _normalize(theirs)  # the same bytes but for ids


def test_python_worker_gets_the_kwarg(svc, redis_server, app):
    """What our API publishes reaches a real Celery worker's task as analysis=False."""
    url = "http://example.test/interview-3.mp4"
    off = requests.post(svc.base + "/submit", json={"video_url": url, "analysis": False},
                        timeout=10).json()["task_id"]
    default = requests.post(svc.base + "/submit", json={"video_url": url},
                            timeout=10).json()["task_id"]
    py = PythonWorker(redis_server)
    try:
        assert get(app, off, 60) == {"echo": url, "worker": "python-stub", "retries": 0,
                                     "task_id": off, "analysis": False}
        assert get(app, default, 30) == {"echo": url, "worker": "python-stub", "retries": 0,
                                         "task_id": default}
    finally:
        py.stop()


def test_our_worker_runs_a_python_task_with_the_kwarg(tmp_path, redis_server, file_server, app):
    """send_task(..., kwargs={"analysis": False}) is a task our worker takes and completes."""
    s = Service(str(tmp_path), redis_server, file_server)
    try:
        s.wait_workers_ready()
        res = app.send_task("process_video", args=[file_server.url("clip.mp4")],
                            kwargs={"analysis": False})
        res.backend = None
        result = get(app, res.id, 120)
        assert result["video_id"] == res.id
        st = requests.get(f"{s.base}/status/{res.id}", timeout=10).json()
        assert st["status"] == "success", st
        assert redis_server.cli("LLEN", "interview-dead") == "0", s.dump_logs()
    finally:
        codes = s.stop()
    assert all(c == 0 for c in codes.values()), s.dump_logs()
