"""Deletion and retention, black-box: DELETE /videos/{video_id} removes every file and record of
a video, is idempotent, needs an API key like the other API routes, and cancels a task still
queued or running for the video so that nothing comes back; RETENTION_DAYS deletes older videos.

Each test starts the real serve and worker (conftest.Service) on a private redis-server; a task
is held in a known stage by the scriptable origin (slow_origin.py). Waits are bounded only to
fail instead of hanging: what is asserted is what happened, and in which order.
"""
import os
import re
import time
import uuid

import pytest
import requests

from conftest import SLOW, Service
from slow_origin import shared_origin

ANALYSIS_FILES = (".vtt", ".review.mp4", ".evidence-e1.jpg", ".evidence-e12.jpg")


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    return shared_origin(tmp_path_factory)


@pytest.fixture
def services():
    """Services a test starts; stopped after it, and every process must exit cleanly."""
    started = []
    yield started
    for svc in started:
        codes = svc.stop()
        assert all(c == 0 for c in codes.values()), (codes, svc.dump_logs())


def start(services, tmp_path, redis, ports=(), workers=1, **env):
    extra = {"ALLOWED_PORTS": ",".join(str(p) for p in ports)}
    extra.update({k: str(v) for k, v in env.items()})
    svc = Service(str(tmp_path), redis, extra_env=extra, workers=workers)
    services.append(svc)
    return svc


def wait_until(pred, what, svc, timeout=120):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n" + svc.dump_logs())


def logs(svc):
    return "".join(open(n, errors="replace").read() for n in svc.logs)


def files_of(svc, vid):
    return sorted(n for n in os.listdir(svc.processed) if n.startswith(f"processed_{vid}."))


def plant(svc, vid, suffixes, age_s=0):
    """Files of a video as the worker would publish them, last changed age_s ago."""
    for suffix in suffixes:
        path = os.path.join(svc.processed, f"processed_{vid}{suffix}")
        with open(path, "wb") as f:
            f.write(b"{}" if suffix == ".json" else b"x")
        when = time.time() - age_s
        os.utime(path, (when, when))


def backend_keys(redis, pattern):
    return [k for k in redis.cli("--scan", "--pattern", pattern, db=1).splitlines() if k]


def submit(svc, url, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    r = requests.post(svc.base + "/submit", json={"video_url": url, "analysis": False},
                      headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["task_id"]


def test_delete_removes_every_file_and_record_then_404(services, tmp_path, redis_server,
                                                        file_server):
    svc = start(services, tmp_path, redis_server, [file_server.port])
    url = file_server.url("clip.mp4")
    vid, kept = submit(svc, url, key="key-of-the-deleted"), submit(svc, url)
    for tid in (vid, kept):
        code, body = svc.wait_done(tid)
        assert (code, body["status"]) == (200, "success"), body
    plant(svc, vid, ANALYSIS_FILES)  # as a run with the analysis would have left them
    assert len(files_of(svc, vid)) == 3 + len(ANALYSIS_FILES)
    assert backend_keys(redis_server, f"*{vid}*") != []
    kept_files = files_of(svc, kept)

    r = requests.delete(f"{svc.base}/videos/{vid}", timeout=10)
    assert (r.status_code, r.content) == (204, b"")
    assert files_of(svc, vid) == []
    assert files_of(svc, kept) == kept_files
    assert backend_keys(redis_server, f"celery-task-meta-{vid}") == []
    assert backend_keys(redis_server, f"interview-task-{vid}") == []
    assert [k for k in backend_keys(redis_server, "interview-idem-*")
            if redis_server.cli("GET", k, db=1).endswith(vid)] == []
    for path in (f"/status/{vid}", f"/processed/{vid}", f"/stream/{vid}", f"/metadata/{vid}",
                 f"/evidence/{vid}/e1.jpg"):
        assert requests.get(svc.base + path, timeout=10).status_code == 404, path
    assert requests.get(f"{svc.base}/processed/{kept}", timeout=10).status_code == 200

    r = requests.delete(f"{svc.base}/videos/{vid}", timeout=10)
    assert (r.status_code, r.json()["code"]) == (404, "video_not_found")
    # The Idempotency-Key no longer names the deleted task: the same request makes a new one.
    again = submit(svc, url, key="key-of-the-deleted")
    assert again != vid
    assert re.search(rf"video={vid} deleted by DELETE: {3 + len(ANALYSIS_FILES)} file\(s\), "
                     r"task records removed, 1 idempotency key\(s\)", logs(svc))
    svc.wait_done(again)


def test_delete_needs_an_api_key_like_the_other_api_routes(services, tmp_path, redis_server):
    svc = start(services, tmp_path, redis_server, API_KEYS="key-1,key-2")
    vid = str(uuid.uuid4())
    plant(svc, vid, (".json", ".mp4"))
    url = f"{svc.base}/videos/{vid}"
    assert requests.delete(url, timeout=10).status_code == 401
    assert requests.delete(url, headers={"Authorization": "Bearer key-3"},
                           timeout=10).status_code == 403
    assert files_of(svc, vid) == [f"processed_{vid}.json", f"processed_{vid}.mp4"]
    r = requests.delete(url, headers={"Authorization": "Bearer key-2"}, timeout=10)
    assert r.status_code == 204 and files_of(svc, vid) == []
    r = requests.delete(f"{svc.base}/videos/{vid.upper()}",
                        headers={"Authorization": "Bearer key-1"}, timeout=10)
    assert r.status_code == 404  # an id in upper case names the same video
    r = requests.delete(f"{svc.base}/videos/not-a-uuid", headers={"Authorization": "Bearer key-1"},
                        timeout=10)
    assert r.status_code == 404


def assert_task_gone(svc, redis, vid):
    """Nothing of the task is left: no file, no record, no message on the queue or delivered
    (the worker acknowledges it just after logging that it drops it)."""
    wait_until(lambda: redis.cli("HLEN", "unacked") == "0", "the acknowledgement", svc)
    assert redis.cli("LLEN", "celery") == "0"
    assert files_of(svc, vid) == []
    assert backend_keys(redis, f"celery-task-meta-{vid}") == []
    assert requests.get(f"{svc.base}/status/{vid}", timeout=10).status_code == 404


def test_delete_cancels_a_running_task(services, tmp_path, redis_server, file_server, origin):
    svc = start(services, tmp_path, redis_server, [file_server.port, origin.port])
    key = uuid.uuid4().hex
    vid = submit(svc, origin.url(f"gate/{key}/drip.mp4"))
    wait_until(lambda: origin.hits(f"/gate/{key}/drip.mp4") == 1, "the worker to fetch", svc)
    r = requests.delete(f"{svc.base}/videos/{vid}", timeout=10)
    assert r.status_code == 204
    wait_until(lambda: f"task={vid} video deleted; dropping the task" in logs(svc),
               "the worker to drop the task", svc)
    origin.open_gate(key, 1)  # too late: the fetch was abandoned
    text = logs(svc)
    assert text.index(f"task={vid} lease lost; stopping it") < \
        text.index(f"task={vid} video deleted; dropping the task")
    assert len(re.findall(rf"task={vid} started", text)) == 1  # it never ran again
    assert f"task={vid} success" not in text
    assert_task_gone(svc, redis_server, vid)
    # The slot is free for the next task.
    tid = submit(svc, file_server.url("clip.mp4"))
    assert svc.wait_done(tid)[1]["status"] == "success"
    assert files_of(svc, vid) == []


def test_delete_of_a_queued_task_drops_it_unrun(services, tmp_path, redis_server, file_server):
    svc = start(services, tmp_path, redis_server, [file_server.port], workers=0)
    vid = submit(svc, file_server.url("clip.mp4"))
    assert requests.get(f"{svc.base}/status/{vid}", timeout=10).json()["stage"] == "queued"
    assert requests.delete(f"{svc.base}/videos/{vid}", timeout=10).status_code == 204
    assert requests.get(f"{svc.base}/status/{vid}", timeout=10).status_code == 404
    svc.workers.append(svc.spawn("worker"))
    wait_until(lambda: f"task={vid} video deleted; dropping the task" in logs(svc),
               "the worker to drop the task", svc)
    assert f"task={vid} started" not in logs(svc)
    assert_task_gone(svc, redis_server, vid)


def test_retention_deletes_videos_older_than_retention_days(services, tmp_path, redis_server):
    svc = start(services, tmp_path, redis_server, RETENTION_DAYS=2, RETENTION_SWEEP_S=1)
    old, recent, young_files = (str(uuid.uuid4()) for _ in range(3))
    # The sweep runs from the start: the record first, the old metadata (what makes the video
    # complete, and old) last, so that no sweep can come between them.
    redis_server.cli("SET", f"celery-task-meta-{old}", '{"status": "SUCCESS"}', db=1)
    plant(svc, old, (".mp4", ".jpg") + ANALYSIS_FILES)  # a video's age is its metadata's
    plant(svc, recent, (".json", ".mp4"), age_s=86400)
    plant(svc, young_files, (".mp4",), age_s=5 * 86400)  # no metadata: not a complete video
    plant(svc, old, (".json",), age_s=3 * 86400)
    wait_until(lambda: f"video={old} deleted by retention" in logs(svc),
               "the retention sweep", svc)
    assert files_of(svc, old) == []
    assert backend_keys(redis_server, f"celery-task-meta-{old}") == []
    assert files_of(svc, recent) == [f"processed_{recent}.json", f"processed_{recent}.mp4"]
    assert files_of(svc, young_files) == [f"processed_{young_files}.mp4"]
    assert requests.get(f"{svc.base}/processed/{recent}", timeout=10).status_code == 200
    assert re.search(rf"video={old} deleted by retention \(older than 2 day\(s\)\): "
                     rf"{3 + len(ANALYSIS_FILES)} file\(s\)", logs(svc))
    assert f"video={recent}" not in logs(svc)
