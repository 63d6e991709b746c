"""Tasks are never lost, never stuck and never run twice: black-box tests with real processes.

Each test starts the real `interview-api serve` and `worker` (conftest.Service) on a private
redis-server, fetching from nginx (conftest.FileServer) or from a scriptable slow/flaky origin
(slow_origin.py), and checks what a client sees (/submit, /status), what Redis holds (kombu's
unacked bookkeeping, result TTLs) and what is on disk and in /proc.
"""
import os
import random
import re
import signal
import threading
import time
import uuid

import pytest
import requests

from conftest import SLOW, Redis, Service, stop_process
from slow_origin import shared_origin

LOST_AFTER_S = 2
# Timing goals belong to `make bench`: here a bound on wall time is only a guard against a hang,
# wide and scaled by the suite's slowness factor; what a test asserts is order and outcome.
HANG_S = 5 * SLOW  # a refusal that takes longer than this hangs (requests' timeouts are 10 s)


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    return shared_origin(tmp_path_factory)


def start(tmp_path, redis, file_server, origin, workers=1, **env):
    extra = {"ALLOWED_PORTS": f"{file_server.port},{origin.port}",
             "WORKER_SHUTDOWN_GRACE_S": "5"}
    extra.update({k: str(v) for k, v in env.items()})
    return Service(str(tmp_path), redis, extra_env=extra, workers=workers)


@pytest.fixture
def services():
    """Services a test starts; stopped after it, and every process must exit cleanly."""
    started = []
    yield started
    for svc in started:
        codes = svc.stop()
        assert all(c == 0 for c in codes.values()), (codes, svc.dump_logs())


def status(svc, tid):
    r = requests.get(f"{svc.base}/status/{tid}", timeout=5)
    return r.status_code, r.json()


def wait_until(pred, timeout, what, svc=None, every=0.1):
    """Polls pred until it is true; timeout is a guard against a hang (callers scale it)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n" +
                         (svc.dump_logs() if svc else ""))


def wait_all(svc, ids, timeout):
    """Waits until no task of ids is processing (timeout, scaled by SLOW, is a guard for all of
    them together); returns {id: body}."""
    out = {}
    deadline = time.time() + timeout * SLOW
    for tid in ids:
        _, out[tid] = svc.wait_done(tid, timeout=max(1, deadline - time.time()) / SLOW)
    return out


def logs(svc):
    return "".join(open(n, errors="replace").read() for n in svc.logs)


def started_count(svc, tid):
    return len(re.findall(rf"task={tid} started", logs(svc)))


def pids_mentioning(text):
    """Processes whose command line contains text (e.g. the test's private PROCESSED_DIR)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return [p for p in found if p != os.getpid()]


def children_of(ppid):
    kids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                    kids.append(int(pid))
        except (OSError, IndexError, ValueError):
            pass
    return kids


ANALYSIS_OUTPUT = re.compile(r"^processed_[0-9a-f-]{36}\.(vtt|review\.mp4|evidence-e[0-9]+\.jpg)$")


def published_files(svc):
    """The video, poster and metadata of each task; analysis outputs are checked by name only."""
    names = [n for n in os.listdir(svc.processed) if n != ".work"]
    odd = [n for n in names if not n.endswith((".jpg", ".json", ".mp4", ".vtt"))]
    assert odd == [], odd  # no temporary names
    return sorted(n for n in names if not ANALYSIS_OUTPUT.match(n))


def work_files(svc):
    return [n for n in os.listdir(os.path.join(svc.processed, ".work"))
            if not n.startswith(".writable-")]


def stage_is(svc, tid, *stages):
    return status(svc, tid)[1].get("stage") in stages


# ---------------------------------------------------------------------------------------------
# At-least-once, exactly one result


def test_kill9_at_random_moments_of_20_tasks(tmp_path, redis_server, file_server, origin,
                                             services):
    """A worker is killed -9 at random moments while another keeps running: every task still
    succeeds, once per id on disk, and no scratch files remain."""
    svc = start(tmp_path, redis_server, file_server, origin, workers=2, TASK_LEASE_S=3)
    services.append(svc)
    seed = int(time.time())
    rng = random.Random(seed)
    urls = [file_server.url("clip.webm" if i % 2 else "clip.mp4") for i in range(20)]
    ids = [svc.submit(u).json()["task_id"] for u in urls]
    for i in range(6):
        if i == 0:  # the first kill surely hits a running task: its ffmpeg or ffprobe runs
            wait_until(lambda: children_of(svc.workers[0].pid), 60 * SLOW, "a running task",
                       svc, every=0.02)
        else:
            time.sleep(rng.uniform(0.2, 1.5))
        victim = svc.workers[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        svc.workers[0] = svc.spawn("worker")
    done = wait_all(svc, ids, 180)
    assert all(b["status"] == "success" for b in done.values()), (seed, done)
    expected = sorted(f"processed_{t}.{ext}" for t in ids for ext in ("jpg", "json", "mp4"))
    assert published_files(svc) == expected, seed  # one of each per task, no temporary names
    assert wait_until(lambda: work_files(svc) == [], 10 * SLOW, "scratch removal", svc)
    assert "restored" in logs(svc), f"no kill hit a running task (seed {seed})"
    for t in ids:
        meta = requests.get(done[t]["metadata_url"]).json()
        assert meta["task_id"] == t and meta["video_id"] == t


def test_90s_task_with_10s_lease_runs_once(tmp_path, redis_server, file_server, origin,
                                           services):
    """The origin drips the file over 90 s; with a 10 s lease and an idle second worker the
    heartbeat keeps renewing the lease, so the task is never re-delivered or run twice."""
    svc = start(tmp_path, redis_server, file_server, origin, workers=2, TASK_LEASE_S=10,
                WORKER_CONCURRENCY=1)
    services.append(svc)
    t0 = time.time()
    tid = svc.submit(origin.url("drip/90/0/drip.mp4")).json()["task_id"]
    scores = []
    while status(svc, tid)[1]["status"] == "processing" and time.time() - t0 < 150 * SLOW:
        if stage_is(svc, tid, "fetching"):
            now = float(redis_server.cli("TIME").split()[0])
            entries = redis_server.cli("ZRANGE", "unacked_index", "0", "-1", "WITHSCORES").split()
            assert len(entries) == 2 and redis_server.cli("LLEN", "celery") == "0", entries
            assert float(entries[1]) > now, "the lease ran out while the task ran"
            scores.append(float(entries[1]))
        time.sleep(2)
    code, body = status(svc, tid)
    assert body["status"] == "success", body
    assert time.time() - t0 >= 89
    # Renewed all along: later and later lease ends, over more than 60 s (how many samples the
    # 2 s polling took depends on the machine's load).
    assert len(set(scores)) >= 5 and scores == sorted(scores), scores
    assert scores[-1] - scores[0] > 60, scores
    text = logs(svc)
    assert started_count(svc, tid) == 1, text
    assert "restored" not in text and "lease lost" not in text
    for key in ("unacked", "interview-leases"):
        assert redis_server.cli("HLEN", key) == "0"
    assert redis_server.cli("ZCARD", "unacked_index") == "0"


def test_redis_down_10s_under_load_loses_no_accepted_task(tmp_path, file_server, origin,
                                                          services):
    """Redis (with appendonly) stops for 10 s while clients keep submitting: /submit answers
    503 (not a hang), /readyz 503; after the restart workers resume by themselves and every
    task that got a 200 completes."""
    (tmp_path / "redis-aof").mkdir()
    redis = Redis(str(tmp_path / "redis-aof"), appendonly=True)
    svc = start(tmp_path, redis, file_server, origin, workers=1)
    services.append(svc)
    accepted, refused, stop = [], [], threading.Event()

    def load():
        while not stop.is_set():
            t = time.time()
            try:
                r = svc.submit(file_server.url("clip.mp4"))
                (accepted if r.status_code == 200 else refused).append(
                    (t, time.time() - t, r.status_code, r.json().get("task_id")))
            except requests.RequestException as e:
                refused.append((t, time.time() - t, str(e), None))
            time.sleep(0.4)

    def accepted_since(t):
        return len([x for x in accepted if x[0] > t]) >= 3

    th = threading.Thread(target=load)
    th.start()
    try:
        wait_until(lambda: accepted_since(0), 30 * SLOW, "3 tasks accepted before the outage",
                   svc)
        down_at = time.time()
        redis.stop()
        t = time.time()
        r = svc.submit(file_server.url("clip.mp4"))
        # At once compared with a client's timeout (10 s): Redis's 1 s timeouts bound it.
        assert r.status_code == 503 and time.time() - t < HANG_S, r.text
        assert requests.get(svc.base + "/readyz", timeout=5).status_code == 503
        time.sleep(max(0.0, down_at + 10 - time.time()))  # the outage lasts 10 s
        redis.start()
        up_at = time.time()
        wait_until(lambda: accepted_since(up_at), 60 * SLOW,
                   "3 tasks accepted after the restart", svc)
    finally:
        stop.set()
        th.join()
    try:
        assert requests.get(svc.base + "/readyz", timeout=5).status_code == 200
        during = [x for x in refused if down_at < x[0] < up_at - 1]
        assert len(during) >= 3 and all(x[2] == 503 and x[1] < HANG_S for x in during), refused
        before = [x for x in accepted if x[0] < down_at]
        after = [x for x in accepted if x[0] > up_at]
        assert len(before) >= 3 and len(after) >= 3, (accepted, refused)
        done = wait_all(svc, [x[3] for x in accepted], 120)
        assert all(b["status"] == "success" for b in done.values()), done
    finally:
        services.remove(svc)
        codes = svc.stop()
        redis.stop()
    assert all(c == 0 for c in codes.values()), (codes, svc.dump_logs())


# ---------------------------------------------------------------------------------------------
# Shutdown and concurrency


def test_sigterm_lets_running_tasks_finish_and_takes_no_more(tmp_path, redis_server,
                                                             file_server, origin, services):
    svc = start(tmp_path, redis_server, file_server, origin, WORKER_CONCURRENCY=2,
                WORKER_SHUTDOWN_GRACE_S=30)
    services.append(svc)
    ids = [svc.submit(origin.url(f"drip/4/0/drip.mp4?n={i}")).json()["task_id"]
           for i in range(3)]

    def two_running():
        r = [t for t in ids if stage_is(svc, t, "starting", "fetching")]
        return r if len(r) == 2 else None

    running = wait_until(two_running, 20 * SLOW, "two tasks running at once", svc)
    waiting = [t for t in ids if t not in running]
    svc.workers[0].send_signal(signal.SIGTERM)
    assert svc.workers[0].wait(timeout=30) == 0
    for t in running:
        assert status(svc, t)[1]["status"] == "success"
    assert status(svc, waiting[0])[1] == {"status": "processing", "stage": "queued",
                                          "progress": 0.0}
    assert redis_server.cli("LLEN", "celery") == "1"
    assert started_count(svc, waiting[0]) == 0


def test_sigterm_past_grace_returns_task_and_next_start_completes(tmp_path, redis_server,
                                                                 file_server, origin, services):
    svc = start(tmp_path, redis_server, file_server, origin, WORKER_SHUTDOWN_GRACE_S=1)
    services.append(svc)
    tid = svc.submit(origin.url("drip/6/0/drip.mp4")).json()["task_id"]
    wait_until(lambda: stage_is(svc, tid, "fetching"), 20 * SLOW, "fetching", svc)
    t = time.time()
    svc.workers[0].send_signal(signal.SIGTERM)
    assert svc.workers[0].wait(timeout=30 * SLOW) == 0
    assert time.time() - t >= 0.9  # the running task had its grace (1 s)...
    assert status(svc, tid)[1]["status"] == "processing"  # ...and was cut off, not finished
    assert redis_server.cli("LLEN", "celery") == "1"  # back on the queue, not lost
    assert redis_server.cli("HLEN", "unacked") == "0"
    assert work_files(svc) == []
    svc.workers[0] = svc.spawn("worker")
    code, body = svc.wait_done(tid, timeout=60)
    assert body["status"] == "success", body
    assert started_count(svc, tid) == 2
    assert published_files(svc) == sorted(f"processed_{tid}.{e}" for e in ("jpg", "json", "mp4"))


def test_sigint_twice_stops_ffmpeg_at_once(tmp_path, redis_server, file_server, origin,
                                           services):
    """The first SIGINT gives running tasks their grace; a second one, once the first was taken,
    stops them at once (long before the grace ends), kills ffmpeg and requeues the task."""
    grace_s = 600
    svc = start(tmp_path, redis_server, file_server, origin, WORKER_SHUTDOWN_GRACE_S=grace_s)
    services.append(svc)
    tid = svc.submit(origin.url("file/long.avi")).json()["task_id"]
    wait_until(lambda: stage_is(svc, tid, "processing") and pids_mentioning(svc.processed),
               60 * SLOW, "an ffmpeg transcode", svc)
    worker = svc.workers[0]
    assert children_of(worker.pid)
    worker.send_signal(signal.SIGINT)
    wait_until(lambda: "finishing running tasks" in logs(svc), 30 * SLOW,
               "the first SIGINT taken", svc)
    t = time.time()
    worker.send_signal(signal.SIGINT)
    assert worker.wait(timeout=min(60 * SLOW, grace_s / 2)) == 0
    assert time.time() - t < grace_s / 2  # not after the grace: at the second signal
    assert "stopping running tasks now" in logs(svc)
    assert pids_mentioning(svc.processed) == []  # no orphaned ffmpeg
    assert redis_server.cli("LLEN", "celery") == "1"
    assert status(svc, tid)[1]["status"] == "processing"


# ---------------------------------------------------------------------------------------------
# Retries and time limits


def test_retries_transient_failures_and_fails_permanent_ones_at_once(
        tmp_path, redis_server, file_server, origin, services):
    svc = start(tmp_path, redis_server, file_server, origin, WORKER_CONCURRENCY=3,
                TASK_RETRY_BACKOFF_S=1, TASK_MAX_RETRIES=2)
    services.append(svc)
    key = uuid.uuid4().hex
    paths = {"twice": f"flaky/{key}/2/drip.mp4", "missing": f"code/404/{key}.mp4",
             "always": f"flaky/{key}x/always/drip.mp4"}
    ids = {k: svc.submit(origin.url(p)).json()["task_id"] for k, p in paths.items()}
    seen = {k: set() for k in ids}
    deadline = time.time() + 60 * SLOW
    while time.time() < deadline:
        bodies = {k: status(svc, t)[1] for k, t in ids.items()}
        for k, b in bodies.items():
            seen[k].add(b.get("stage") or b["status"])
        if all(b["status"] != "processing" for b in bodies.values()):
            break
        time.sleep(0.05)
    assert bodies["twice"]["status"] == "success" and "retrying" in seen["twice"], seen
    assert origin.hits("/" + paths["twice"]) == 3
    assert bodies["missing"]["status"] == "failed", bodies
    assert bodies["missing"]["code"] == "fetch_http_error" and "retrying" not in seen["missing"]
    assert origin.hits("/" + paths["missing"]) == 1
    assert bodies["always"]["status"] == "failed" and "retrying" in seen["always"], seen
    assert bodies["always"]["code"] == "fetch_http_error"
    assert bodies["always"]["error"] == "the video server is temporarily failing"
    assert origin.hits("/" + paths["always"]) == 3  # the first try and TASK_MAX_RETRIES=2


def test_time_limit_kills_ffmpeg_and_fails_with_timeout(tmp_path, redis_server, file_server,
                                                       origin, services):
    svc = start(tmp_path, redis_server, file_server, origin, TASK_TIME_LIMIT_S=3)
    services.append(svc)
    t = time.time()
    tid = svc.submit(origin.url("file/long.avi")).json()["task_id"]
    wait_until(lambda: pids_mentioning(svc.processed), 10 * SLOW, "ffmpeg to start", svc,
               every=0.05)
    code, body = svc.wait_done(tid, timeout=30)
    assert body["status"] == "failed" and body["code"] == "timeout", body
    assert time.time() - t >= 3  # not before the limit (its end is wait_done's guard)
    assert pids_mentioning(svc.processed) == []
    assert children_of(svc.workers[0].pid) == []
    assert work_files(svc) == [] and published_files(svc) == []


# ---------------------------------------------------------------------------------------------
# Honest state, backpressure, idempotency


def test_purged_task_ends_failed_task_lost_and_results_expire(tmp_path, redis_server,
                                                              file_server, origin, services):
    svc = start(tmp_path, redis_server, file_server, origin, workers=0, TASK_LEASE_S=3,
                TASK_LOST_AFTER_S=LOST_AFTER_S, RESULT_TTL=1000)
    services.append(svc)
    submitted = time.time()
    lost = svc.submit(file_server.url("clip.mp4")).json()["task_id"]
    assert status(svc, lost) == (200, {"status": "processing", "stage": "queued",
                                       "progress": 0.0})
    assert redis_server.cli("DEL", "celery") == "1"  # an operator purges the queue
    kept = svc.submit(file_server.url("clip.mp4")).json()["task_id"]
    svc.workers.append(svc.spawn("worker"))
    code, body = svc.wait_done(lost, timeout=LOST_AFTER_S + 20)
    assert body["status"] == "failed" and body["code"] == "task_lost", body
    assert time.time() - submitted >= LOST_AFTER_S  # not before TASK_LOST_AFTER_S
    assert svc.wait_done(kept, timeout=60)[1]["status"] == "success"
    for key in (f"celery-task-meta-{lost}", f"interview-task-{lost}",
                f"celery-task-meta-{kept}", f"interview-task-{kept}"):
        assert 900 < int(redis_server.cli("TTL", key, db=1)) <= 1000, key
    # The entry of "kept" left the log when it was claimed, or goes at the next lost check.
    wait_until(lambda: redis_server.cli("LLEN", "interview-pending-log") == "0", 30 * SLOW,
               "an empty pending log", svc)


def test_task_waiting_longer_than_result_ttl_stays_queued(tmp_path, redis_server, file_server,
                                                          origin, services):
    """RESULT_TTL counts from a task's end, not from its submit: a task that waits in the queue
    longer still says queued (its record used to expire: 404 while its message waited), and
    its record gets the result's TTL when the task ends."""
    svc = start(tmp_path, redis_server, file_server, origin, workers=0, RESULT_TTL=1)
    services.append(svc)
    tid = svc.submit(file_server.url("clip.mp4")).json()["task_id"]
    time.sleep(2.5)
    assert status(svc, tid) == (200, {"status": "processing", "stage": "queued",
                                      "progress": 0.0})
    svc.workers.append(svc.spawn("worker"))
    # The success lives 1 s: its record's TTL (or its absence, once expired) shows it ended.
    wait_until(lambda: redis_server.cli("TTL", f"interview-task-{tid}", db=1) != "-1",
               60 * SLOW, "the record's TTL from the final state", svc)
    assert f"task={tid} success" in logs(svc)
    wait_until(lambda: redis_server.cli("EXISTS", f"interview-task-{tid}", db=1) == "0",
               30 * SLOW, "the record gone with the result", svc)


def test_full_queue_answers_503_with_retry_after(tmp_path, redis_server, file_server, origin,
                                                services):
    svc = start(tmp_path, redis_server, file_server, origin, workers=0, MAX_QUEUED=3)
    services.append(svc)
    for _ in range(3):
        assert svc.submit(file_server.url("clip.mp4")).status_code == 200
    r = svc.submit(file_server.url("clip.mp4"))
    assert r.status_code == 503 and r.json()["code"] == "queue_full", r.text
    assert int(r.headers["Retry-After"]) > 0
    assert redis_server.cli("LLEN", "celery") == "3"


def test_idempotency_key(tmp_path, redis_server, file_server, origin, services):
    svc = start(tmp_path, redis_server, file_server, origin, workers=0)
    services.append(svc)
    url_a, url_b = file_server.url("clip.mp4"), file_server.url("clip.webm")
    k1 = {"Idempotency-Key": "order-17 " + uuid.uuid4().hex}
    first = svc.submit(url_a, headers=k1)
    again = svc.submit(url_a, headers=k1)
    assert first.status_code == again.status_code == 200
    tid = first.json()["task_id"]
    assert again.json()["task_id"] == tid and again.headers["Location"] == f"/status/{tid}"
    other = svc.submit(url_b, headers=k1)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    fresh = svc.submit(url_a, headers={"Idempotency-Key": "another"})
    assert fresh.status_code == 200 and fresh.json()["task_id"] != tid
    assert svc.submit(url_a).json()["task_id"] not in (tid, fresh.json()["task_id"])
    assert redis_server.cli("LLEN", "celery") == "3"  # the replay published nothing
    assert status(svc, tid)[0] == 200
    bad = svc.submit(url_a, headers={"Idempotency-Key": "x" * 300})
    assert bad.status_code == 422
    keys = redis_server.cli("KEYS", "interview-idem-*", db=1).split()
    assert len(keys) == 2
    assert all(86000 < int(redis_server.cli("TTL", k, db=1)) <= 86400 for k in keys)


@pytest.mark.parametrize("refused", ["record", "publish"])
def test_idempotency_key_survives_a_submit_that_failed_half_way(
        tmp_path, redis_server, file_server, origin, services, refused):
    """A keyed submit that bound its key, then could not write its accepted record (or publish
    its message), and could not unbind the key either, as in a Redis failover: the client's
    retry with the same key gets a task that exists, queued once, never a 200 for nothing."""
    svc = start(tmp_path, redis_server, file_server, origin, workers=0)
    services.append(svc)
    url = file_server.url("clip.mp4")
    key = {"Idempotency-Key": "failover " + uuid.uuid4().hex}
    # Redis takes the binding (interview-idem-*) but refuses the next step and every DEL.
    allowed = ["~interview-idem-*"] + (["~interview-task-*"] if refused == "publish" else [])
    assert redis_server.cli("ACL", "SETUSER", "default", "resetkeys", *allowed, "-del") == "OK"
    first = svc.submit(url, headers=key)
    assert first.status_code == 503, first.text
    assert redis_server.cli("KEYS", "interview-idem-*", db=1) != ""  # the key stayed bound
    assert redis_server.cli("ACL", "SETUSER", "default", "allkeys", "+@all") == "OK"
    retry = svc.submit(url, headers=key)
    assert retry.status_code == 200, retry.text
    tid = retry.json()["task_id"]
    code, body = status(svc, tid)
    assert code == 200 and body["status"] == "processing", (code, body, svc.dump_logs())
    queued = redis_server.cli("LRANGE", "celery", "0", "-1").splitlines()
    assert len(queued) == 1 and tid in queued[0], (queued, svc.dump_logs())
    # Replayed again: the same task, published once.
    again = svc.submit(url, headers=key)
    assert again.status_code == 200 and again.json()["task_id"] == tid
    assert again.headers["Idempotent-Replayed"] == "true"
    assert redis_server.cli("LLEN", "celery") == "1"
