"""`interview-api run`: API + worker + a private Redis when none is configured; Ctrl-C stops all."""
import os
import re
import signal
import socket
import subprocess
import time

import requests

from conftest import IA_BIN, SANITIZER_ENV, SLOW, free_port


def group_members(pgid):
    members = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(pid))
    return members


def test_run_starts_everything_and_ctrl_c_stops_it(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    env.update(SANITIZER_ENV, PORT=str(port), PROCESSED_DIR=str(tmp_path / "processed"))
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen([IA_BIN, "run"], env=env, cwd=tmp_path, stdout=log, stderr=log,
                            start_new_session=True)
    try:
        deadline = time.time() + 20 * SLOW
        ready = None
        while time.time() < deadline:
            try:
                ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                if ready.status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        assert ready is not None and ready.status_code == 200, (tmp_path / "run.log").read_text()
        assert ready.json()["checks"] == {"redis": True, "storage": True, "ffmpeg": True}
        assert (tmp_path / "processed" / ".redis").is_dir()
        assert f"http://127.0.0.1:{port}" in (tmp_path / "run.log").read_text()
        redis_port = int(re.search(r"private redis-server on 127.0.0.1:(\d+)",
                                   (tmp_path / "run.log").read_text()).group(1))
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        assert proc.wait(timeout=30 * SLOW) == 0, (tmp_path / "run.log").read_text()
        deadline = time.time() + 10 * SLOW
        while group_members(proc.pid) and time.time() < deadline:
            time.sleep(0.1)
        assert group_members(proc.pid) == []
        with socket.socket() as s:  # the private Redis is stopped too
            assert s.connect_ex(("127.0.0.1", redis_port)) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
