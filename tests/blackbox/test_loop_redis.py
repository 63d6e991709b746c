"""POST /submit on the loops' own Redis connections (queue_async.c): real serve processes and a
private redis-server, which the tests pause (SIGSTOP) to see what a stuck Redis does."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from conftest import SLOW, Redis, Service, stop_process, wait_port

LOOP_CLIENT_NAME = "interview-api-loop"


def loop_clients(redis):
    """The CLIENT LIST entries of the loops' connections, as dicts."""
    out = []
    for line in redis.cli("CLIENT", "LIST").splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("name") == LOOP_CLIENT_NAME:
            out.append(fields)
    return out


def handshaken(redis, n):
    """True when the loops have n connections, each past its handshake."""
    clients = loop_clients(redis)
    return len(clients) == n and all(c["cmd"] in ("ping", "set", "evalsha") for c in clients)


def requests_read(port, n):
    """True when the server side of n connections to port is accepted and has read all that
    came (nothing waits in a receive queue, nor in the accept queue)."""
    def rows(*args):
        out = subprocess.run(["ss", "-Htn", *args, f"( sport = :{port} )"], capture_output=True,
                             text=True, timeout=10, check=True).stdout
        return [line.split() for line in out.splitlines()]
    conns = rows("state", "established")
    return (len(conns) == n and all(r[0] == "0" for r in conns) and
            all(r[1] == "0" for r in rows("-l")))


def fresh_submit(svc, url, timeout=10):
    """One submit on a new connection, so that the kernel hands it to any of the loops."""
    with requests.Session() as s:
        return s.post(svc.base + "/submit", json={"video_url": url}, timeout=timeout * SLOW,
                      headers={"Connection": "close"})


def test_submits_go_through_each_loops_own_connections(tmp_path, redis_server):
    """Each loop opens a connection of its own (the broker and the backend are databases of one
    server: one connection, and a submit is one script); submits are written and published on
    them (not on the pool's), and every accepted task is recorded and queued."""
    svc = Service(str(tmp_path), redis_server, extra_env={"SERVE_THREADS": "2"}, workers=0)
    try:
        answers = [fresh_submit(svc, f"http://127.0.0.1:9/{i}.mp4") for i in range(20)]
        assert [r.status_code for r in answers] == [200] * 20, [r.text for r in answers]
        ids = [r.json()["task_id"] for r in answers]
        assert len(set(ids)) == 20
        clients = loop_clients(redis_server)
        assert [(c["db"], c["cmd"]) for c in clients] == [("0", "evalsha")] * 2, clients
        assert int(redis_server.cli("LLEN", "celery")) == 20
        for task_id in ids:
            assert redis_server.cli("EXISTS", f"interview-task-{task_id}", db=1) == "1"
            r = requests.get(f"{svc.base}/status/{task_id}", timeout=10)
            assert (r.status_code, r.json()["status"]) == (200, "processing"), r.text
    finally:
        codes = svc.stop()
    assert codes == {"serve": 0}, (codes, svc.dump_logs())


@pytest.mark.parametrize("servers", ["one", "two"])
def test_a_full_queue_refuses_and_writes_nothing(tmp_path, redis_server, servers):
    """MAX_QUEUED reached: the next submits get 503 queue_full and leave no record behind, with
    the broker and the backend on one server (one script) or on two (a SET, then a publish)."""
    (tmp_path / "backend").mkdir()
    backend = redis_server if servers == "one" else Redis(str(tmp_path / "backend"))
    env = {"SERVE_THREADS": "2", "MAX_QUEUED": "3", "CELERY_BACKEND_URL": backend.url(1)}
    svc = Service(str(tmp_path), redis_server, extra_env=env, workers=0)
    try:
        answers = [fresh_submit(svc, f"http://127.0.0.1:9/{i}.mp4") for i in range(6)]
        assert [r.status_code for r in answers] == [200] * 3 + [503] * 3, \
            [r.text for r in answers]
        assert {r.json()["code"] for r in answers[3:]} == {"queue_full"}
        assert answers[3].headers["Retry-After"] == "30"
        records = backend.cli("KEYS", "interview-task-*", db=1).split()
        assert sorted(records) == sorted(f"interview-task-{r.json()['task_id']}"
                                         for r in answers[:3])
        assert int(redis_server.cli("LLEN", "celery")) == 3
        # The loops' connections did it: one per loop with one server, two with two servers.
        assert [c["db"] for c in loop_clients(redis_server)] == ["0", "0"]
        if servers == "two":
            assert [c["db"] for c in loop_clients(backend)] == ["1", "1"]
    finally:
        codes = svc.stop()
        if backend is not redis_server:
            backend.stop()
    assert codes == {"serve": 0}, (codes, svc.dump_logs())


def test_a_paused_redis_gets_an_answer_and_the_loops_keep_serving(tmp_path, redis_server):
    """Redis stops answering with submits in flight: each gets a 503 with a stable code once the
    command timeout passes, the loops answer other requests meanwhile, and once Redis answers
    again the next submits succeed."""
    svc = Service(str(tmp_path), redis_server, extra_env={"SERVE_THREADS": "1"}, workers=0)
    try:
        assert fresh_submit(svc, "http://127.0.0.1:9/warm.mp4").status_code == 200
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        answers = []
        threads = [threading.Thread(target=lambda: answers.append(
            fresh_submit(svc, "http://127.0.0.1:9/paused.mp4", timeout=30)))
            for _ in range(3)]
        try:
            for t in threads:
                t.start()
            # The one loop is not waiting for Redis: it answers while the submits wait.
            assert requests.get(svc.base + "/healthz", timeout=10 * SLOW).status_code == 200
            for t in threads:
                t.join(60 * SLOW)
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        assert len(answers) == 3
        for r in answers:
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "broker_unavailable", r.text
        # The loop opens its connection again by itself (it was dropped with commands
        # unanswered): wait until it has passed its handshake (which ends with a PING).
        deadline = time.time() + 10 * SLOW
        while not handshaken(redis_server, 1) and time.time() < deadline:
            time.sleep(0.05)
        assert handshaken(redis_server, 1), (loop_clients(redis_server), svc.dump_logs())
        again = [fresh_submit(svc, "http://127.0.0.1:9/after.mp4") for _ in range(5)]
        assert [r.status_code for r in again] == [200] * 5, [r.text for r in again]
    finally:
        codes = svc.stop()
    assert codes == {"serve": 0}, (codes, svc.dump_logs())


def test_sigterm_while_submits_wait_on_redis_answers_them_first(tmp_path, redis_server):
    """serve is told to stop while submits wait for a paused Redis: it stops accepting, answers
    each of them once its command times out (503 broker_unavailable: the task may exist), and
    exits 0 with nothing leaked (sanitizers)."""
    svc = Service(str(tmp_path), redis_server, extra_env={"SERVE_THREADS": "1"}, workers=0)
    outcomes = []

    def submit():
        try:
            r = fresh_submit(svc, "http://127.0.0.1:9/x.mp4", timeout=30)
            outcomes.append((r.status_code, r.json()["code"]))
        except requests.RequestException as e:
            outcomes.append(type(e).__name__)

    assert fresh_submit(svc, "http://127.0.0.1:9/warm.mp4").status_code == 200
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    threads = [threading.Thread(target=submit) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        # Until the loop has read the three submits (and holds them), and still answers.
        deadline = time.time() + 10 * SLOW
        while not requests_read(svc.port, 3) and time.time() < deadline:
            time.sleep(0.05)
        assert requests_read(svc.port, 3)
        assert requests.get(svc.base + "/healthz", timeout=10 * SLOW).status_code == 200
        svc.serve.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60 * SLOW)
        code = stop_process(svc.serve)
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    assert code == 0, svc.dump_logs()
    assert outcomes == [(503, "broker_unavailable")] * 3, (outcomes, svc.dump_logs())


def test_submits_of_one_turn_share_one_script_and_keep_the_bound(tmp_path, redis_server):
    """Twenty submits that reach the loop at once (serve was stopped while they were sent) go
    to Redis as fewer scripts than submits (a group commit), and MAX_QUEUED still counts each:
    exactly the first four are queued, each with its record; the rest get 503 queue_full."""
    svc = Service(str(tmp_path), redis_server, workers=0,
                  extra_env={"SERVE_THREADS": "1", "MAX_QUEUED": "5"})
    socks = []
    try:
        assert fresh_submit(svc, "http://127.0.0.1:9/warm.mp4").status_code == 200
        redis_server.cli("CONFIG", "RESETSTAT")
        for _ in range(20):
            socks.append(socket.create_connection(("127.0.0.1", svc.port), timeout=30 * SLOW))
        deadline = time.time() + 10 * SLOW
        while not requests_read(svc.port, 20) and time.time() < deadline:
            time.sleep(0.05)  # all accepted: nothing waits in the accept queue
        assert requests_read(svc.port, 20)
        body = b'{"video_url": "http://127.0.0.1:9/burst.mp4"}'
        request = (b"POST /submit HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                   b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        svc.serve.send_signal(signal.SIGSTOP)
        try:
            for s in socks:
                s.sendall(request)
        finally:
            svc.serve.send_signal(signal.SIGCONT)
        answers = []
        for s in socks:
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            answers.append(data.decode())
        codes = [int(a.split(" ", 2)[1]) for a in answers]
        assert sorted(codes) == [200] * 4 + [503] * 16, answers
        assert all('"code":"queue_full"' in a for a in answers if " 503 " in a.split("\r\n")[0])
        ids = [json.loads(a.split("\r\n\r\n", 1)[1])["task_id"] for a in answers
               if " 200 " in a.split("\r\n")[0]]
        assert int(redis_server.cli("LLEN", "celery")) == 5
        for task_id in ids:
            assert redis_server.cli("EXISTS", f"interview-task-{task_id}", db=1) == "1"
        assert len(redis_server.cli("KEYS", "interview-task-*", db=1).split()) == 5
        stats = redis_server.cli("INFO", "commandstats")
        calls = int(re.search(r"cmdstat_evalsha:calls=(\d+)", stats).group(1))
        assert 1 <= calls < 20, stats
        sys.stderr.write(f"20 submits at once: {calls} script(s)\n")
    finally:
        for s in socks:
            s.close()
        codes = svc.stop()
    assert codes == {"serve": 0}, (codes, svc.dump_logs())


class PasswordRedis(Redis):
    """A private redis-server that asks for a password (AUTH in the loops' handshake)."""
    PASSWORD = "s3cret-pw"

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", self.dir, "--requirepass", self.PASSWORD, "--loglevel", "warning"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", self.port)

    def url(self, db, password=PASSWORD):
        return f"redis://:{password}@127.0.0.1:{self.port}/{db}"

    def cli(self, *args, db=0):
        out = subprocess.run(["redis-cli", "-p", str(self.port), "-n", str(db), "--no-auth-warning",
                              "-a", self.PASSWORD, *args], capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip()


def test_the_loops_connections_authenticate(tmp_path):
    """With a password in the URLs, the loops' connections pass AUTH and take the submits; with
    a wrong one, neither they nor the pool's get in: 503, the password in no log line."""
    redis = PasswordRedis(str(tmp_path))
    try:
        svc = Service(str(tmp_path), redis, workers=0, extra_env={"SERVE_THREADS": "1"})
        try:
            assert fresh_submit(svc, "http://127.0.0.1:9/a.mp4").status_code == 200
            deadline = time.time() + 10 * SLOW
            while not handshaken(redis, 1) and time.time() < deadline:
                time.sleep(0.05)
            answers = [fresh_submit(svc, "http://127.0.0.1:9/b.mp4") for _ in range(3)]
            assert [r.status_code for r in answers] == [200] * 3
            assert [c["cmd"] for c in loop_clients(redis)] == ["evalsha"]
        finally:
            assert svc.stop() == {"serve": 0}, svc.dump_logs()
        wrong = {"CELERY_BROKER_URL": redis.url(0, "wrong-pw"),
                 "CELERY_BACKEND_URL": redis.url(1, "wrong-pw"), "SERVE_THREADS": "1"}
        (tmp_path / "wrong").mkdir()
        svc = Service(str(tmp_path / "wrong"), redis, workers=0, extra_env=wrong)
        try:
            r = fresh_submit(svc, "http://127.0.0.1:9/c.mp4")
            assert (r.status_code, r.json()["code"]) == (503, "broker_unavailable"), r.text
            assert loop_clients(redis) == []
            logs = svc.dump_logs()
            assert "wrong-pw" not in logs and PasswordRedis.PASSWORD not in logs
        finally:
            assert svc.stop() == {"serve": 0}, svc.dump_logs()
    finally:
        redis.stop()
