"""Redis restarting is invisible to clients: real serve and worker processes, a private
redis-server stopped and started again on the same port while their connections are idle."""
import re

import requests

from conftest import SLOW, Service

SIGPIPE_BIT = 1 << (13 - 1)  # SIGPIPE is signal 13; bit n-1 of /proc/PID/status SigIgn


def ignored_signals(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^SigIgn:\s*([0-9a-f]+)$", f.read(), re.M).group(1), 16)


def fresh(svc, method, path, **kw):
    """One request on a new connection, so that the kernel hands it to any of the loops."""
    with requests.Session() as s:
        return s.request(method, svc.base + path, timeout=10 * SLOW,
                         headers={"Connection": "close"}, **kw)


def test_next_request_on_every_loop_succeeds_after_a_redis_restart(tmp_path, redis_server,
                                                                   file_server):
    """Each loop of serve (/readyz pings the broker and the backend) and the worker keep idle
    connections; after Redis restarts on the same port, no request fails on them."""
    loops = 2
    svc = Service(str(tmp_path), redis_server, file_server,
                  extra_env={"SERVE_THREADS": str(loops)})
    try:
        svc.wait_workers_ready()
        # Enough requests on fresh connections that every loop opened its Redis connections.
        for _ in range(10 * loops):
            assert fresh(svc, "GET", "/readyz").status_code == 200
        redis_server.stop()
        redis_server.start()  # same port, empty: every open connection is stale now
        answers = [fresh(svc, "GET", "/readyz") for _ in range(10 * loops)]
        answers.append(fresh(svc, "POST", "/submit",
                             json={"video_url": file_server.url("clip.mp4"), "analysis": False}))
        assert [r.status_code for r in answers] == [200] * len(answers), \
            [r.text for r in answers]
        code, body = svc.wait_done(answers[-1].json()["task_id"], timeout=120)
        assert (code, body["status"]) == (200, "success"), body
        text = "".join(open(n, errors="replace").read() for n in svc.logs)
        # A stale connection found out by failing a command would say so in a log.
        assert "unavailable: command" not in text, svc.dump_logs()
        for proc in [svc.serve, *svc.workers]:  # no dropped connection may kill a process
            assert ignored_signals(proc.pid) & SIGPIPE_BIT, proc.args
    finally:
        codes = svc.stop()
    assert all(c == 0 for c in codes.values()), (codes, svc.dump_logs())
