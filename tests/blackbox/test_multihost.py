"""Many machines: the API, two workers, Redis with Sentinel and radosgw, each on its own host.

Hosts are network namespaces on one bridge (netns.py): `api` runs serve, `worker1` and
`worker2` a worker each, `redis` a master, two replicas and three sentinels (sentinel_cluster.py),
`rgw` a radosgw (tests/s3/rgw.py). The test process is one more host (.1): it serves the video
origin and is the client. No directory is shared: each host has its own PROCESSED_DIR; results go
to the bucket, the queue and the records to Redis, and clients reach results through the API
(MEDIA_DELIVERY=proxy).

The scenario of docs/deploy.md ("Many machines"): twenty tasks, four of them tus uploads made
through the API; worker1 is killed (SIGKILL) while it runs tasks, and later the Redis master
(SIGKILL) while worker2 runs tasks. Every task ends in success, run to success exactly once;
every result streams through the API with Range (206, the same bytes as the whole); a Python
Celery client on kombu's sentinel transport submits a task and reads its result on the same
cluster. The figures (failover, 503 answers, tasks redelivered, time to finish) are printed.
"""
import datetime
import hashlib
import json
import os
import re
import signal
import sys
import time

import pytest
import requests
from celery import Celery

from conftest import IA_BIN, SLOW, s3, s3env, stop_process
from netns import Net
from sentinel_cluster import MASTER_NAME, PASSWORD, Client, Cluster, wait_success
from slow_origin import Origin, make_origin_media

API_PORT = 8080
BUCKET = "multihost"
TUS = {"Tus-Resumable": "1.0.0"}
TUS_CHUNK = 128 * 1024  # several PATCHes per upload


@pytest.fixture
def net():
    n = Net()
    yield n
    n.close()


@pytest.fixture
def origin(net, tmp_path):
    d = tmp_path / "origin"
    d.mkdir()
    make_origin_media(str(d), long=False)
    o = Origin(str(d), host=net.root_addr)
    yield o
    o.stop()


@pytest.fixture
def redis_host(net, tmp_path):
    host = net.host("redis")
    d = tmp_path / "redis"
    d.mkdir()
    c = Cluster(str(d), host=host.addr, prefix=host.prefix())
    yield c
    c.stop()


@pytest.fixture
def rgw_host(net, tmp_path):
    from rgw import Rgw
    host = net.host("rgw")
    r = Rgw(base=str(tmp_path), timeout=120 * SLOW, host=host.addr, prefix=host.prefix())
    yield r
    r.stop()


class Deployment:
    """serve on `api`, a worker on each of `worker1` and `worker2`, each with its own directory;
    dump_logs() and base for the helpers of sentinel_cluster.py."""

    def __init__(self, net, tmp, cluster, rgw, origin):
        self.tmp = tmp
        self.api = net.host("api")
        self.worker_hosts = [net.host("worker1"), net.host("worker2")]
        self.base = f"http://{self.api.addr}:{API_PORT}"
        self.s3env = dict(s3env(rgw, "results"), S3_ALLOW_CIDRS=f"{rgw.host}/32")
        s3(dict(self.s3env, STORAGE_URL=f"s3://{BUCKET}/"), "mb")
        self.s3env["STORAGE_URL"] = f"s3://{BUCKET}/results"
        self.env = dict(os.environ)
        self.env.update(self.s3env)
        self.env.update({
            "CELERY_BROKER_URL": cluster.url(0), "CELERY_BACKEND_URL": cluster.url(1),
            "CELERY_BROKER_MASTER_NAME": MASTER_NAME, "CELERY_BACKEND_MASTER_NAME": MASTER_NAME,
            "PUBLIC_BASE_URL": self.base, "LOG_LEVEL": "debug", "TASK_LEASE_S": "5",
            "FETCH_ALLOW_CIDRS": f"{origin.host}/32", "ALLOWED_PORTS": str(origin.port),
            "WORKER_CONCURRENCY": "2", "SERVE_THREADS": "2", "MEDIA_DELIVERY": "proxy"})
        self.logs = []
        self.serve = self.spawn(self.api, "serve", HOST=self.api.addr, PORT=str(API_PORT))
        self.workers = [self.spawn(h, "worker") for h in self.worker_hosts]
        self.wait_ready()

    def spawn(self, host, role, **env):
        d = os.path.join(self.tmp, host.name)
        os.makedirs(d, exist_ok=True)
        log = os.path.join(d, f"{role}.log")
        self.logs.append(log)
        return host.popen([IA_BIN, role], log, cwd=d,
                          env=dict(self.env, PROCESSED_DIR=os.path.join(d, "processed"), **env))

    def wait_ready(self):
        deadline = time.time() + 30 * SLOW
        while time.time() < deadline:
            try:
                healthy = requests.get(self.base + "/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                healthy = False
            if healthy and all(b"worker: ready:" in open(w.log_name, "rb").read()
                               for w in self.workers):
                return
            time.sleep(0.1)
        raise AssertionError("deployment not ready\n" + self.dump_logs())

    def log(self, i):
        return open(self.workers[i].log_name, errors="replace").read()

    def dump_logs(self):
        return "\n".join(f"==== {n}\n" + open(n, errors="replace").read()[-15000:]
                         for n in self.logs)

    def stop(self):
        codes = {"serve": stop_process(self.serve)}
        for i, w in enumerate(self.workers):
            codes[f"worker{i + 1}"] = stop_process(w)
        return codes


@pytest.fixture
def deployment(net, tmp_path, redis_host, rgw_host, origin):
    d = Deployment(net, str(tmp_path), redis_host, rgw_host, origin)
    yield d
    d.stop()


def tus_upload(client, data, deadline):
    """A tus upload in TUS_CHUNK pieces, without the analysis (as every task here); a 503 is
    answered again after its Retry-After (a PATCH from the offset that HEAD then gives, as tus
    clients resume). Returns the task's id."""
    base = client.svc.base

    def call(method, url, **kw):
        while True:
            r = requests.request(method, url, timeout=30 * SLOW, **kw)
            client.answers.append((time.time(), r.status_code, r.headers.get("Retry-After")))
            if r.status_code != 503:
                return r
            assert time.time() < deadline, client.svc.dump_logs()
            time.sleep(float(r.headers["Retry-After"]))

    r = call("POST", base + "/uploads", headers=dict(TUS, **{
        "Upload-Length": str(len(data)), "Upload-Metadata": "analysis ZmFsc2U="}))  # false
    assert r.status_code == 201, r.text
    url = base + "/uploads/" + r.headers["Location"].rsplit("/", 1)[1]
    offset = 0
    while True:
        assert time.time() < deadline, client.svc.dump_logs()
        r = call("PATCH", url, data=data[offset:offset + TUS_CHUNK],
                 headers=dict(TUS, **{"Upload-Offset": str(offset),
                                      "Content-Type": "application/offset+octet-stream"}))
        if r.status_code == 204:
            offset = int(r.headers["Upload-Offset"])
            if offset == len(data):
                return r.headers["Upload-Task-Id"]
        else:  # 409: a PATCH answered 503 had been taken; go on from where the upload is
            assert r.status_code == 409, (r.status_code, r.text)
            offset = int(call("HEAD", url, headers=TUS).headers["Upload-Offset"])


def running(log):
    """Ids of the tasks a worker's log shows started and not yet ended."""
    started = re.findall(r"task=(\S+) started \(delivery", log)
    ended = set(re.findall(r"task=(\S+) (?:success|failure)", log))
    return [t for t in started if t not in ended]


def logged_at(pattern, log):
    """The time (epoch seconds) of the first line of a log matching pattern, or None."""
    m = re.search(r"^(\S+)Z .*" + pattern, log, re.M)
    if not m:
        return None
    return datetime.datetime.fromisoformat(m.group(1) + "+00:00").timestamp()


def wait_for(what, cond, deadline, d):
    while not cond():
        assert time.time() < deadline, f"waiting for {what}\n" + d.dump_logs()
        time.sleep(0.05)


def test_many_hosts_lose_a_worker_and_the_redis_master(deployment, redis_host, rgw_host,
                                                        origin):
    d, cluster = deployment, redis_host
    client = Client(d)
    guard = time.time() + 300 * SLOW
    clip = open(os.path.join(origin.root, "drip.mp4"), "rb").read()
    drip = origin.url("drip/3/0/drip.mp4")  # each fetch takes 3 s: tasks are caught mid-run
    quick = origin.url("file/drip.mp4")
    began = time.time()

    # Six tasks, two of them uploads; worker1 dies while it runs some.
    tasks = [client.submit(drip, guard) for _ in range(4)]
    tasks += [tus_upload(client, clip, guard) for _ in range(2)]
    wait_for("both workers busy", lambda: running(d.log(0)) and running(d.log(1)), guard, d)
    d.workers[0].send_signal(signal.SIGKILL)
    worker_killed_at = time.time()
    d.workers[0].wait()
    lost_with_worker1 = running(d.log(0))

    # Seven more; the Redis master dies while worker2 runs some of them.
    tasks += [client.submit(drip, guard) for _ in range(2)]
    tasks += [tus_upload(client, clip, guard)]
    tasks += [client.submit(quick, guard) for _ in range(4)]
    wait_for("worker2 running a task of the second batch",
             lambda: set(running(d.log(1))) & set(tasks[6:]), guard, d)
    old = cluster.master
    cluster.kill(old)
    master_killed_at = time.time()
    answers_before = len(client.answers)

    # Seven submitted through the failover: 503 with Retry-After until a replica is promoted.
    tasks += [tus_upload(client, clip, guard)]
    tasks += [client.submit(quick, guard) for _ in range(6)]
    wait_for("a new master", lambda: cluster.master_port() not in (old, None), guard, d)
    new = cluster.master_port()
    wait_success(d, tasks, guard - time.time())
    finished_at = time.time()

    # A Python Celery client (kombu's sentinel transport) on the same cluster.
    app = Celery("multihost-client", broker=cluster.url(0), backend=cluster.url(1))
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                    broker_transport_options={"master_name": MASTER_NAME},
                    result_backend_transport_options={"master_name": MASTER_NAME})
    try:
        sent = app.send_task("process_video", args=[quick], kwargs={"analysis": False})
        r = app.AsyncResult(sent.id)
        celery_result = r.get(timeout=120 * SLOW)
        celery_state = r.state
        r.backend.remove_pending_result(r)
    finally:
        app.close()
    tasks.append(sent.id)

    # Every result, whole and in ranges, through the API.
    for tid in tasks:
        whole = requests.get(f"{d.base}/stream/{tid}", timeout=60 * SLOW)
        assert whole.status_code == 200 and whole.content[4:8] == b"ftyp", (tid, whole.text)
        n = len(whole.content)
        for first, last in ((0, 1023), (n // 3, n // 2), (n - 100, n - 1)):
            part = requests.get(f"{d.base}/stream/{tid}", timeout=60 * SLOW,
                                headers={"Range": f"bytes={first}-{last}"})
            assert part.status_code == 206, (tid, part.status_code, part.text)
            assert part.headers["Content-Range"] == f"bytes {first}-{last}/{n}"
            assert part.content == whole.content[first:last + 1]
    listing = s3(d.s3env, "ls").stdout.decode()
    codes = d.stop()
    logs = "".join(open(n, errors="replace").read() for n in d.logs)

    assert codes["worker1"] == -signal.SIGKILL
    assert codes["serve"] == 0 and codes["worker2"] == 0, (codes, d.dump_logs())
    assert len(tasks) == 21 and len(set(tasks)) == 21
    assert celery_state == "SUCCESS" and celery_result["video_id"] == sent.id
    assert celery_result["video_url"] == f"{d.base}/stream/{sent.id}"
    for tid in tasks:
        # Run to success exactly once, whatever happened to its deliveries.
        assert len(re.findall(rf"task={tid} success", logs)) == 1, (tid, d.dump_logs())
        assert f"processed_{tid}.json\t" in listing and f"processed_{tid}.mp4\t" in listing
    for tid in (tasks[4], tasks[5], tasks[8], tasks[13]):  # the uploads, as sent
        source = json.loads(s3(d.s3env, "cat", f"processed_{tid}.json").stdout)["source"]
        assert source["url"].startswith("upload:"), (tid, source)
        assert source["sha256"] == hashlib.sha256(clip).hexdigest(), (tid, source)
    # worker1's running tasks went to worker2 once their leases ran out.
    assert lost_with_worker1
    for tid in lost_with_worker1:
        assert re.search(rf"task={tid} started \(delivery [2-9]", d.log(1)), (tid, d.dump_logs())
    redelivered = sorted(set(re.findall(r"task=(\S+) started \(delivery [2-9]", logs)))
    redelivered_at = min(logged_at(rf"task={tid} started \(delivery [2-9]", d.log(1))
                         for tid in lost_with_worker1)
    restored_at = logged_at(r"restored \d+ message\(s\) whose lease ran out", d.log(1))
    assert restored_at, d.dump_logs()
    # Both programs that lived followed the sentinels to the new master.
    assert new in cluster.replicas
    assert logs.count(f"broker master is now {cluster.host}:{new}") >= 2, d.dump_logs()
    serve_log = open(d.logs[0], errors="replace").read()
    followed_at = logged_at(f"broker master is now {cluster.host}:{new}", serve_log)
    assert PASSWORD not in logs
    statuses = [a[1] for a in client.answers]
    refusals = [a for a in client.answers[answers_before:] if a[1] == 503]
    assert all(a[2] for a in refusals), refusals
    assert set(statuses) <= {200, 201, 202, 204, 409, 503}
    recovered = [a[0] for a in client.answers[answers_before:] if 200 <= a[1] < 300]
    # No host's directory holds a result: they are in the bucket only.
    for h in [d.api] + d.worker_hosts:
        found = []
        for _, _, files in os.walk(os.path.join(d.tmp, h.name)):
            found += [f for f in files if f.startswith("processed_")]
        assert found == [], (h.name, found)
    sys.stderr.write(
        f"multihost: worker1 killed with {len(lost_with_worker1)} task(s) running, "
        f"{len(redelivered)} task(s) redelivered: back in the queue "
        f"{restored_at - worker_killed_at:.1f} s after the kill, the first started again "
        f"after {redelivered_at - worker_killed_at:.1f} s; Redis master killed: "
        f"serve on the new master after {followed_at - master_killed_at:.1f} s, "
        f"{len(refusals)} answers 503, first 2xx after "
        f"{recovered[0] - master_killed_at:.1f} s; all 20 tasks done "
        f"{finished_at - began:.1f} s after the first submission\n")
