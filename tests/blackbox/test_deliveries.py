"""Deliveries, leases and shutdown, black-box: a delivery whose lease ran out while it still ran
writes nothing and keeps its scratch, a task that kills its workers fails once as worker_lost,
and a shutdown drains (one Ctrl-C under `run` lets running tasks finish, a second stops them).

Each test starts the real programs (conftest.Service, or `interview-api run`) on a private
redis-server and fetches from the scriptable origin (slow_origin.py). Waits are bounded only to
end a broken run, and scaled by SLOW; the assertions are about outcomes and their order.
"""
import json
import os
import signal
import subprocess
import time
import uuid

import requests

from conftest import IA_BIN, SANITIZER_ENV, SLOW, ALLOWED_HOST, free_port, stop_process
from test_reliability import (logs, origin, services, start, started_count, status,  # noqa: F401
                              wait_until, work_files)


def worker_log(svc, i):
    return open(svc.logs[1 + i], errors="replace").read()


def record_states(redis, tmp_path):
    """Every result record written from now on, as redis-cli sees them published."""
    out = open(tmp_path / "published.txt", "wb")
    return subprocess.Popen(["redis-cli", "-p", str(redis.port), "PSUBSCRIBE",
                             "celery-task-meta-*"], stdout=out, stderr=subprocess.DEVNULL)


def published_states(tmp_path, tid):
    states = []
    for line in (tmp_path / "published.txt").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("task_id") == tid:
                states.append(rec["status"])
    return states


def test_delivery_that_lost_its_lease_keeps_scratch_and_writes_nothing(
        tmp_path, redis_server, file_server, origin, services):
    """Worker A is paused (SIGSTOP) mid-fetch until its lease runs out and worker B takes the
    task over. B leaves A's scratch directory alone (A still lives); A, resumed, fails its fetch
    (404) but may not write FAILURE; B succeeds. The client never sees a failed state."""
    svc = start(tmp_path, redis_server, file_server, origin, TASK_LEASE_S=2,
                WORKER_CONCURRENCY=1, ANALYSIS=0)
    services.append(svc)
    recorder = record_states(redis_server, tmp_path)
    key = uuid.uuid4().hex
    path = f"/gate/{key}/drip.mp4"
    tid = svc.submit(origin.url(path)).json()["task_id"]
    try:
        wait_until(lambda: origin.hits(path) == 1, 30 * SLOW, "A's fetch", svc)
        scratch_a = work_files(svc)
        assert len(scratch_a) == 1 and scratch_a[0].startswith(tid), scratch_a
        a = svc.workers[0]
        a.send_signal(signal.SIGSTOP)
        try:
            svc.workers.append(svc.spawn("worker"))
            wait_until(lambda: origin.hits(path) == 2, 60 * SLOW, "B's fetch", svc)
            assert scratch_a[0] in work_files(svc), "B removed the scratch of a live delivery"
        finally:
            a.send_signal(signal.SIGCONT)
        origin.open_gate(key, 1, 404)  # A's fetch fails: a final state, were A to write it
        wait_until(lambda: any(s in worker_log(svc, 0) for s in
                               (f"task={tid} failed code=", f"task={tid} interrupted")),
                   30 * SLOW, "A to finish its attempt", svc)
        origin.open_gate(key, 2)
        code, body = svc.wait_done(tid, timeout=60)
        assert body["status"] == "success", body
        wait_until(lambda: published_states(tmp_path, tid)[-1:] == ["SUCCESS"], 10 * SLOW,
                   "the SUCCESS record to be seen")
    finally:
        recorder.terminate()
        recorder.wait()
    states = published_states(tmp_path, tid)
    assert "FAILURE" not in states and states.count("SUCCESS") == 1, states
    assert states[-1] == "SUCCESS", states
    assert started_count(svc, tid) == 2
    assert wait_until(lambda: work_files(svc) == [], 10 * SLOW, "scratch removal", svc)


def test_task_that_kills_its_workers_fails_once_as_worker_lost(
        tmp_path, redis_server, file_server, origin, services):
    """The worker is killed -9 while it runs the task, TASK_MAX_DELIVERIES=2 times; the next
    delivery does not run it again but fails it with worker_lost, once, and settles it."""
    svc = start(tmp_path, redis_server, file_server, origin, TASK_LEASE_S=2,
                TASK_MAX_DELIVERIES=2, WORKER_CONCURRENCY=1, ANALYSIS=0)
    services.append(svc)
    path = f"/drip/120/0/drip.mp4?k={uuid.uuid4().hex}"
    tid = svc.submit(origin.url(path)).json()["task_id"]
    for delivery in (1, 2):
        wait_until(lambda: origin.hits(path) == delivery, 60 * SLOW,
                   f"delivery {delivery} fetching", svc)
        victim = svc.workers[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        svc.workers[0] = svc.spawn("worker")
    wait_until(lambda: status(svc, tid)[1]["status"] != "processing" or
               started_count(svc, tid) > 2, 60 * SLOW, "the third delivery", svc)
    code, body = status(svc, tid)
    assert body == {"status": "failed", "code": "worker_lost",
                    "error": "the worker stopped too many times while processing the video"}, body
    text = logs(svc)
    assert started_count(svc, tid) == 2 and origin.hits(path) == 2, text
    assert text.count(f"task={tid} failed code=worker_lost") == 1, text
    for key in ("unacked", "interview-leases", "interview-deliveries"):
        assert redis_server.cli("HLEN", key) == "0", key
    assert redis_server.cli("LLEN", "celery") == "0"
    assert work_files(svc) == []  # the killed deliveries' scratch went with the last one


def test_draining_worker_claims_nothing_new(tmp_path, redis_server, file_server, origin,
                                            services):
    """SIGTERM while one slot runs a task and the other waits for one: a task submitted once
    the drain began is never claimed (it stays pending, undelivered), the running one finishes."""
    svc = start(tmp_path, redis_server, file_server, origin, WORKER_CONCURRENCY=2,
                WORKER_SHUTDOWN_GRACE_S=120, ANALYSIS=0)
    services.append(svc)
    svc.wait_workers_ready()
    running = svc.submit(origin.url(f"drip/3/0/drip.mp4?k={uuid.uuid4().hex}")).json()["task_id"]
    wait_until(lambda: status(svc, running)[1].get("stage") == "fetching", 30 * SLOW,
               "the first task fetching", svc)
    with requests.Session() as s:
        s.get(svc.base + "/healthz", timeout=5)  # the connection is open before the signal
        svc.workers[0].send_signal(signal.SIGTERM)
        wait_until(lambda: "finishing running tasks" in worker_log(svc, 0), 30 * SLOW,
                   "the drain to begin", svc, every=0.01)
        late = s.post(svc.base + "/submit", json={"video_url": origin.url("file/drip.mp4")},
                      timeout=10).json()["task_id"]
    assert svc.workers[0].wait(timeout=120 * SLOW) == 0
    assert status(svc, running)[1]["status"] == "success"
    assert status(svc, late)[1] == {"status": "processing", "stage": "queued", "progress": 0.0}
    pending = redis_server.cli("LRANGE", "interview-pending-log", "0", "-1").split("\n")
    assert [e for e in pending if e.split(" ")[1] == late]  # "<time> <id> <message>": unclaimed
    assert redis_server.cli("HGET", "interview-deliveries", late) == ""
    assert redis_server.cli("LLEN", "celery") == "1"
    assert started_count(svc, late) == 0


class Run:
    """`interview-api run` in a session of its own (its pid is the group a terminal signals),
    with the test's Redis configured, so no private one."""

    def __init__(self, tmp_path, redis, origin, **env):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "run.log"
        e = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
        e.update(SANITIZER_ENV, PORT=str(self.port), PROCESSED_DIR=str(tmp_path / "processed"),
                 CELERY_BROKER_URL=redis.url(0), CELERY_BACKEND_URL=redis.url(1),
                 FETCH_ALLOW_CIDRS=f"{ALLOWED_HOST}/32", ALLOWED_PORTS=str(origin.port),
                 WORKER_CONCURRENCY="1", SERVE_THREADS="1", ANALYSIS="0", TASK_LEASE_S="10")
        e.update({k: str(v) for k, v in env.items()})
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([IA_BIN, "run"], env=e, cwd=tmp_path, stdout=out,
                                         stderr=out, start_new_session=True)
        wait_until(self.ready, 30 * SLOW, "run to be ready")

    def ready(self):
        try:
            return requests.get(self.base + "/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def text(self):
        return self.log.read_text(errors="replace")

    def ctrl_c(self):
        os.killpg(self.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does

    def submit_and_wait_fetching(self, url):
        tid = requests.post(self.base + "/submit", json={"video_url": url},
                            timeout=10).json()["task_id"]
        wait_until(lambda: requests.get(f"{self.base}/status/{tid}", timeout=5).json()
                   .get("stage") == "fetching", 30 * SLOW, "the task fetching\n" + self.text())
        return tid

    def stop(self):
        if self.proc.poll() is None:
            stop_process(self.proc)


def celery_status(redis, tid):
    raw = redis.cli("GET", f"celery-task-meta-{tid}", db=1)
    return json.loads(raw)["status"] if raw else ""


def test_run_one_ctrl_c_lets_the_running_task_finish(tmp_path, redis_server, origin):
    run = Run(tmp_path, redis_server, origin, WORKER_SHUTDOWN_GRACE_S=120)
    try:
        tid = run.submit_and_wait_fetching(origin.url(f"drip/3/0/drip.mp4?k={uuid.uuid4().hex}"))
        run.ctrl_c()
        assert run.proc.wait(timeout=120 * SLOW) == 0, run.text()
    finally:
        run.stop()
    assert celery_status(redis_server, tid) == "SUCCESS", run.text()
    assert "stopping running tasks now" not in run.text()
    assert redis_server.cli("LLEN", "celery") == "0"


def test_run_second_ctrl_c_stops_the_running_task_at_once(tmp_path, redis_server, origin):
    run = Run(tmp_path, redis_server, origin, WORKER_SHUTDOWN_GRACE_S=3600)
    try:
        tid = run.submit_and_wait_fetching(origin.url(f"drip/600/0/drip.mp4?k={uuid.uuid4().hex}"))
        run.ctrl_c()
        wait_until(lambda: "finishing running tasks" in run.text(), 30 * SLOW, "the drain")
        assert run.proc.poll() is None  # draining: the task runs on
        run.ctrl_c()
        assert run.proc.wait(timeout=60 * SLOW) == 0, run.text()  # not the drip's 600 s
    finally:
        run.stop()
    text = run.text()  # the worker stopped the task when the second Ctrl-C was passed on
    assert text.index("run: signal 2 again") < text.index("worker: stopping running tasks now")
    assert celery_status(redis_server, tid) != "SUCCESS"
    assert redis_server.cli("LLEN", "celery") == "1"  # returned to the queue, not lost
    assert redis_server.cli("HLEN", "unacked") == "0"
