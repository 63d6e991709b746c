"""Redis Sentinel: a broker that fails over, with the real programs and real servers.

A master, two replicas (replicaof) and three sentinels (redis-server FILE --sentinel) on free
loopback ports, the way docs/deploy.md ("Redis with Sentinel") sets them up to lose nothing:
min-replicas-to-write 1, appendonly, requirepass on the data nodes. serve and a worker are
configured the kombu way, sentinel://:PASSWORD@...;sentinel://... with CELERY_*_MASTER_NAME.

- The master is killed (SIGKILL) while tasks run; the sentinels promote a replica; every task
  accepted before, during and after ends in success, once, and the API answered every request
  (a 503 with Retry-After while no master is known; never a lost task, never a hang).
- A Python Celery client on kombu's sentinel transport (broker_transport_options master_name,
  result_backend_transport_options master_name) sends a task that our worker runs, and reads
  its result, through the same sentinels.
"""
import os
import re
import subprocess
import sys
import time

import pytest
import requests
from celery import Celery

from conftest import IA_BIN, SLOW, Service
from sentinel_cluster import MASTER_NAME, PASSWORD, Client, Cluster, cli, data_cli, wait_success
from slow_origin import shared_origin


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(str(tmp_path))
    yield c
    c.stop()


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    return shared_origin(tmp_path_factory)


def replication(port):
    """INFO replication of a data node, as a dict ({} when it does not answer)."""
    lines = data_cli(port, "INFO", "replication").splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


def cut_off(cluster, old, new):
    """True when new is the promoted master, every other replica follows it, and the old master
    counts no replica left, so that min-replicas-to-write refuses its writes (NOREPLICAS)."""
    if replication(new).get("role") != "master":
        return False
    others = [r for r in cluster.replicas if r != new]
    if not all(replication(r).get("role") == "slave" and
               replication(r).get("master_port") == str(new) for r in others):
        return False
    info = replication(old)
    return info.get("role") == "slave" or (info.get("connected_slaves") == "0" and
                                           info.get("min_slaves_good_slaves") == "0")


def start_service(tmp_path, cluster, origin):
    return Service(str(tmp_path), cluster, extra_env={
        "ALLOWED_PORTS": str(origin.port), "CELERY_BROKER_MASTER_NAME": MASTER_NAME,
        "CELERY_BACKEND_MASTER_NAME": MASTER_NAME, "TASK_LEASE_S": "5"})


@pytest.mark.parametrize("how", ["sigkill", "sentinel-failover"])
def test_tasks_survive_a_failover_mid_run(tmp_path, cluster, origin, how):
    """The master dies (SIGKILL), or the sentinels are told to fail over while it lives on and
    becomes a replica (SENTINEL FAILOVER): either way no task is lost or run twice."""
    svc = start_service(tmp_path, cluster, origin)
    client = Client(svc)
    old = cluster.master
    try:
        svc.wait_workers_ready()
        guard = time.time() + 180 * SLOW
        # Four tasks, each fetching for about 3 s: two run, two wait, when the master dies.
        before = [client.submit(origin.url("drip/3/0/drip.mp4"), guard) for _ in range(4)]
        started = svc.logs[1]
        while open(started, errors="replace").read().count(" started (delivery") < 2:
            assert time.time() < guard, svc.dump_logs()
            time.sleep(0.05)
        killed_at = time.time()
        if how == "sigkill":
            cluster.kill(old)
        else:  # a planned failover, as docs/deploy.md says: writes paused on the old master
            # for long: a sentinel in TILT mode on a busy machine starts the failover up to 30 s
            # late, and a pause that ends first lets the old master take writes while the other
            # replica still follows it (min-replicas-to-write met), which the failover drops.
            pause_s = 180 * SLOW
            assert data_cli(old, "CLIENT", "PAUSE", str(int(pause_s * 1000)), "WRITE") == "OK"
            assert cli(cluster.sentinels[0], "SENTINEL", "FAILOVER", MASTER_NAME) == "OK"
        # Submissions go on through the failover, one after another.
        during = []
        while cluster.master_port() in (old, None) or len(during) < 3:
            assert time.time() < guard, svc.dump_logs()
            during.append(client.submit(origin.url("file/drip.mp4"), guard))
        switched_at = time.time()
        new = cluster.master_port()
        if how == "sentinel-failover":
            # The pause ends only once the old master has no replica left: a write sent to it
            # from then on is refused (NOREPLICAS) until the sentinels make it a replica, which
            # they cannot do while it is paused.
            while not cut_off(cluster, old, new):
                assert time.time() < killed_at + pause_s, (replication(old), svc.dump_logs())
                time.sleep(0.1)
            assert data_cli(old, "CLIENT", "UNPAUSE") == "OK"
            unpaused_at = time.time()
            assert unpaused_at < killed_at + pause_s  # the pause held until now
            probe = data_cli(old, "SET", "interview-test-probe", "1")  # refused, whatever it is
            assert probe.startswith(("NOREPLICAS", "READONLY")), probe
        after = [client.submit(origin.url("file/drip.mp4"), guard) for _ in range(2)]
        tasks = before + during + after
        wait_success(svc, tasks, 180 * SLOW)
    finally:
        codes = svc.stop()
    logs = "".join(open(n, errors="replace").read() for n in svc.logs)
    assert all(c == 0 for c in codes.values()), (codes, svc.dump_logs())
    assert new not in (None, old) and new in cluster.replicas
    assert len(set(tasks)) == len(tasks)
    # Every task succeeded exactly once, whatever happened to its deliveries.
    for tid in tasks:
        assert len(re.findall(rf"task={tid} success", logs)) == 1, (tid, svc.dump_logs())
    # Both programs followed the sentinels to the new master, and said so (no password).
    assert logs.count(f"broker master is now 127.0.0.1:{new}") >= 2, svc.dump_logs()
    assert logs.count(f"backend master is now 127.0.0.1:{new}") >= 2, svc.dump_logs()
    assert PASSWORD not in logs
    codes = [a[1] for a in client.answers]
    refusals = [a for a in client.answers if a[1] == 503]
    assert all(a[2] for a in refusals), refusals  # every 503 said when to come back
    assert set(codes) <= {200, 503} and codes[-1] == 200
    recovered = [a[0] for a in client.answers if a[0] > killed_at and a[1] == 200]
    if how == "sentinel-failover":  # the old master lives on, and becomes a replica of the new
        guard = time.time() + 60 * SLOW
        while replication(old).get("role") != "slave":
            assert time.time() < guard, replication(old)
            time.sleep(0.2)
    held = f", paused {unpaused_at - killed_at:.1f} s" if how == "sentinel-failover" else ""
    sys.stderr.write(f"sentinel {how}: {len(tasks)} tasks, {len(refusals)} answers 503, "
                     f"sentinels switched after {switched_at - killed_at:.1f} s{held}, first 200 "
                     f"after the kill at {recovered[0] - killed_at:.1f} s\n")


def test_python_celery_client_on_kombu_sentinel_transport(tmp_path, cluster, origin):
    """Python's Celery with kombu's sentinel transport and ours on the same sentinels."""
    svc = start_service(tmp_path, cluster, origin)
    app = Celery("sentinel-client", broker=cluster.url(0), backend=cluster.url(1))
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                    broker_transport_options={"master_name": MASTER_NAME},
                    result_backend_transport_options={"master_name": MASTER_NAME})
    try:
        svc.wait_workers_ready()
        sent = app.send_task("process_video", args=[origin.url("file/drip.mp4")],
                             kwargs={"analysis": False})
        tid = sent.id
        r = app.AsyncResult(tid)
        result = r.get(timeout=120 * SLOW)
        state = r.state
        r.backend.remove_pending_result(r)
        # Our API reads the same record through its own sentinel connection.
        status = requests.get(f"{svc.base}/status/{tid}", timeout=10).json()
    finally:
        app.close()
        codes = svc.stop()
    assert all(c == 0 for c in codes.values()), (codes, svc.dump_logs())
    assert state == "SUCCESS"
    assert result["video_id"] == tid
    assert result["video_url"] == f"{svc.base}/stream/{tid}"
    assert status["status"] == "success"
    # The message and the record went to the master the sentinels name, in the URL's dbs.
    master = cluster.master_port()
    assert data_cli(master, "-n", "1", "EXISTS", f"celery-task-meta-{tid}") == "1"
    assert data_cli(master, "-n", "0", "LLEN", "celery") == "0"


def test_check_config_shows_the_sentinels_without_passwords(tmp_path):
    url = ("sentinel://:hunter2@127.0.0.1:26379/2;sentinel://[::1]:26380;"
           "sentinel://:hunter2@127.0.0.3")
    env = {"PATH": os.environ["PATH"], "CELERY_BROKER_URL": url,
           "CELERY_BROKER_MASTER_NAME": MASTER_NAME}
    out = subprocess.run([IA_BIN, "check-config"], env=env, capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "hunter2" not in out.stdout + out.stderr
    assert ("CELERY_BROKER_URL=sentinel://***@127.0.0.1:26379/2;sentinel://[::1]:26380;"
            "sentinel://***@127.0.0.3\t") in out.stdout
    assert ("# broker: sentinels 127.0.0.1:26379, [::1]:26380, 127.0.0.3:26379; "
            f"master name '{MASTER_NAME}', db 2, password set") in out.stdout
    assert "# backend: redis localhost:6379, db 1, password none" in out.stdout
    # A bad entry or a missing master name stops start-up, naming the option, not the password.
    bad = subprocess.run([IA_BIN, "serve"], capture_output=True, text=True, cwd=tmp_path,
                         env=dict(env, CELERY_BROKER_URL=url + ";sentinel://:hunter2@h:0"))
    assert bad.returncode == 2
    assert bad.stderr == ("interview-api: configuration: CELERY_BROKER_URL: sentinel URL: "
                          "entry 4: port is not a number from 1 to 65535\n")
    unnamed = subprocess.run([IA_BIN, "worker"], capture_output=True, text=True, cwd=tmp_path,
                             env=dict(env, CELERY_BROKER_MASTER_NAME=""))
    assert unnamed.returncode == 2 and "CELERY_BROKER_MASTER_NAME" in unnamed.stderr
    assert "hunter2" not in unnamed.stderr
