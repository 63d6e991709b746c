"""A Redis master, two replicas and three sentinels, set up the way docs/deploy.md ("Redis with
Sentinel") says to lose nothing (min-replicas-to-write 1, appendonly, requirepass on the data
nodes), and a client of the API that retries 503s; for test_sentinel.py (on loopback) and
test_multihost.py (on one host of a network-namespace net: `host` is its address and `prefix`
the command that runs a program there).
"""
import os
import re
import signal
import subprocess
import time
import uuid

import requests

from conftest import SLOW, free_port, stop_process, wait_port

MASTER_NAME = "mymaster"
PASSWORD = "s3cr3t-master-pw"  # the master's and replicas' requirepass; never in a log


def cli(port, *args, host="127.0.0.1"):
    """A sentinel's answer (the sentinels have no password)."""
    out = subprocess.run(["redis-cli", "-h", host, "-p", str(port), *args],
                         capture_output=True, text=True, timeout=10)
    return out.stdout.strip()


def data_cli(port, *args, host="127.0.0.1"):
    """A master's or replica's answer."""
    return cli(port, "--no-auth-warning", "-a", PASSWORD, *args, host=host)


def sentinel_view(port, host="127.0.0.1"):
    """SENTINEL MASTER's fields, as a dict."""
    lines = cli(port, "SENTINEL", "master", MASTER_NAME, host=host).splitlines()
    return dict(zip(lines[::2], lines[1::2]))


class Cluster:
    """A master, two replicas and three sentinels, each a redis-server stopped by PID."""

    DATA = ["--save", "", "--appendonly", "yes", "--min-replicas-to-write", "1",
            "--min-replicas-max-lag", "10", "--loglevel", "warning",
            "--requirepass", PASSWORD, "--masterauth", PASSWORD]

    def __init__(self, tmp, host="127.0.0.1", prefix=()):
        self.tmp = tmp
        self.host = host
        self.prefix = list(prefix)
        self.procs = {}
        try:  # a set-up that fails half-way stops what it started
            self.master = self.data_node("master", [])
            self.replicas = [self.data_node(f"replica{i}", ["--replicaof", host,
                                                             str(self.master)]) for i in (1, 2)]
            self.sentinels = [self.sentinel_node(i) for i in (1, 2, 3)]
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def spawn(self, name, args, port):
        log = open(os.path.join(self.tmp, f"{name}.log"), "wb")
        self.procs[port] = subprocess.Popen(self.prefix + args, stdout=log, stderr=log)
        log.close()
        wait_port(self.host, port)
        return port

    def data_node(self, name, extra):
        port = free_port()
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        return self.spawn(name, ["redis-server", "--port", str(port), "--bind", self.host,
                                 "--dir", d, *self.DATA, *extra], port)

    def sentinel_node(self, i):
        port = free_port()
        conf = os.path.join(self.tmp, f"sentinel{i}.conf")
        with open(conf, "w") as f:  # sentinels rewrite their file: one each, writable
            f.write(f"port {port}\nbind {self.host}\ndir {self.tmp}\n"
                    f"sentinel announce-ip {self.host}\n"
                    f"sentinel monitor {MASTER_NAME} {self.host} {self.master} 2\n"
                    f"sentinel auth-pass {MASTER_NAME} {PASSWORD}\n"
                    f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                    f"sentinel failover-timeout {MASTER_NAME} 3000\n"
                    f"sentinel parallel-syncs {MASTER_NAME} 1\n")
        return self.spawn(f"sentinel{i}", ["redis-server", conf, "--sentinel"], port)

    def wait_ready(self, timeout=60):
        """Until both replicas are in sync and every sentinel knows both replicas and the others."""
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            info = self.data_cli(self.master, "INFO", "replication")
            synced = len(re.findall(r"^slave\d+:.*state=online", info, re.M)) == 2
            views = [sentinel_view(s, host=self.host) for s in self.sentinels]
            known = all(v.get("num-slaves") == "2" and v.get("num-other-sentinels") == "2"
                        for v in views)
            if synced and known:
                return
            time.sleep(0.2)
        raise AssertionError("cluster not ready: " +
                             self.data_cli(self.master, "INFO", "replication"))

    def cli(self, port, *args):
        return cli(port, *args, host=self.host)

    def data_cli(self, port, *args):
        return data_cli(port, *args, host=self.host)

    def master_port(self, sentinel=None):
        out = self.cli(sentinel or self.sentinels[0], "SENTINEL", "get-master-addr-by-name",
                       MASTER_NAME).split()
        return int(out[1]) if len(out) == 2 else None

    def url(self, db):
        """kombu's grammar: the master's password and db in the first entry."""
        return ";".join("sentinel://" + (f":{PASSWORD}@" if i == 0 else "") +
                        f"{self.host}:{p}" + (f"/{db}" if i == 0 else "")
                        for i, p in enumerate(self.sentinels))

    def kill(self, port):
        proc = self.procs.pop(port)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self):
        for proc in self.procs.values():
            stop_process(proc, timeout=10)


class Client:
    """Submits with an Idempotency-Key, retrying a 503 after its Retry-After with the same key;
    records every answer, in order. A request that gets no answer fails the test."""

    def __init__(self, svc):
        self.svc = svc
        self.answers = []  # (time, status, retry_after)

    def submit(self, url, deadline):
        key = str(uuid.uuid4())
        while time.time() < deadline:
            r = requests.post(self.svc.base + "/submit", timeout=30 * SLOW,
                              json={"video_url": url, "analysis": False},
                              headers={"Idempotency-Key": key})
            self.answers.append((time.time(), r.status_code, r.headers.get("Retry-After")))
            if r.status_code in (200, 201, 202):
                return r.json()["task_id"]
            assert r.status_code == 503, r.text
            time.sleep(float(r.headers["Retry-After"]))
        raise AssertionError("submit kept failing\n" + self.svc.dump_logs())


def wait_success(svc, task_ids, timeout):
    deadline = time.time() + timeout
    pending = set(task_ids)
    while pending and time.time() < deadline:
        for tid in sorted(pending):
            r = requests.get(f"{svc.base}/status/{tid}", timeout=30 * SLOW)
            if r.status_code == 503:
                continue
            body = r.json()
            assert r.status_code == 200, (tid, r.status_code, body, svc.dump_logs()[-6000:])
            assert body["status"] in ("processing", "success"), (tid, body, svc.dump_logs())
            if body["status"] == "success":
                pending.discard(tid)
        time.sleep(0.2)
    assert not pending, (pending, svc.dump_logs())


