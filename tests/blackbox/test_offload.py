"""The event loop never waits for the disk: a tus PATCH whose file blocks (a FIFO in place of the
upload's .bin file: its open waits for a reader) leaves its loop (SERVE_THREADS=1) free to answer
others; a client that leaves meanwhile, and a SIGTERM meanwhile, end cleanly.

Order, not speed: the quick answer must arrive while the PATCH is still held by the test.
"""
import os
import select
import signal
import socket
import subprocess
import time

import pytest
import requests

from conftest import SLOW, Service

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def one_loop(tmp_path, redis_server):
    s = Service(str(tmp_path), redis_server, extra_env={"SERVE_THREADS": "1"}, workers=0)
    yield s
    if s.serve.poll() is None:
        code = s.stop()["serve"]
        assert code == 0, s.dump_logs()


def blocked_upload(svc, length=1000):
    """A tus upload whose .bin file is a FIFO: the next PATCH blocks in open() until a reader."""
    r = requests.post(svc.base + "/uploads", headers=dict(TUS, **{"Upload-Length": str(length)}),
                      timeout=10)
    assert r.status_code == 201, r.text
    upload_id = r.headers["Location"].rsplit("/", 1)[1]
    fifo = os.path.join(svc.processed, ".uploads", upload_id + ".bin")
    os.unlink(fifo)
    os.mkfifo(fifo)
    return upload_id, fifo


def send_patch(svc, upload_id, data):
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=30 * SLOW)
    head = (f"PATCH /uploads/{upload_id} HTTP/1.1\r\nHost: t\r\nTus-Resumable: 1.0.0\r\n"
            f"Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
    s.sendall(head + data)
    return s


def log_has(svc, text):
    with open(svc.serve.log_name, "rb") as f:
        return text in f.read()


def wait_log(svc, text, timeout=30):
    deadline = time.time() + timeout * SLOW
    while not log_has(svc, text):
        assert time.time() < deadline, f"no {text!r} in the log\n" + svc.dump_logs()
        time.sleep(0.05)


def wait_blocked_in_open(svc):
    """Waits until a thread of serve sits in the FIFO's open() (the kernel's wait_for_partner)."""
    deadline = time.time() + 30 * SLOW
    tasks = f"/proc/{svc.serve.pid}/task"
    while True:
        for tid in os.listdir(tasks):
            try:
                with open(f"{tasks}/{tid}/wchan") as f:
                    if f.read().strip() == "wait_for_partner":
                        return
            except OSError:
                pass
        assert time.time() < deadline, "the PATCH never reached open()\n" + svc.dump_logs()
        time.sleep(0.02)


def test_quick_request_answered_while_a_patch_waits_on_disk(one_loop):
    svc = one_loop
    upload_id, fifo = blocked_upload(svc)
    patch = send_patch(svc, upload_id, b"x" * 100)
    wait_blocked_in_open(svc)
    # Before offloading, the loop itself sat in open(): this request got no answer.
    r = requests.get(svc.base + "/healthz", timeout=10 * SLOW)
    assert r.status_code == 200
    assert select.select([patch], [], [], 0)[0] == []  # the PATCH is still unanswered
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the PATCH's open() through
    try:
        answer = b""
        while True:
            chunk = patch.recv(65536)
            if not chunk:
                break
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 "), answer
    finally:
        os.close(reader)
        patch.close()
    assert requests.get(svc.base + "/healthz", timeout=10).status_code == 200


def test_client_that_leaves_during_the_write_gets_no_answer(one_loop):
    svc = one_loop
    upload_id, fifo = blocked_upload(svc)
    patch = send_patch(svc, upload_id, b"y" * 100)
    wait_blocked_in_open(svc)
    assert requests.get(svc.base + "/healthz", timeout=10 * SLOW).status_code == 200
    patch.close()  # the client leaves while the work is held
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        wait_log(svc, b"answer dropped")
    finally:
        os.close(reader)
    assert requests.get(svc.base + "/healthz", timeout=10).status_code == 200


def test_sigterm_waits_for_the_running_write_then_exits_cleanly(one_loop):
    svc = one_loop
    upload_id, fifo = blocked_upload(svc)
    patch = send_patch(svc, upload_id, b"z" * 100)
    wait_blocked_in_open(svc)
    assert requests.get(svc.base + "/healthz", timeout=10 * SLOW).status_code == 200
    svc.serve.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert svc.serve.poll() is None  # the loop waits for the work it started
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        code = svc.serve.wait(timeout=30 * SLOW)
    finally:
        os.close(reader)
        patch.close()
    assert code == 0, svc.dump_logs()  # ASan/LSan: nothing leaked, nothing used after free
    assert log_has(svc, b"answer dropped")


def wait_thread_in(svc, wchans):
    """Waits until a thread of serve sleeps in one of the kernel functions wchans."""
    deadline = time.time() + 30 * SLOW
    tasks = f"/proc/{svc.serve.pid}/task"
    while True:
        for tid in os.listdir(tasks):
            try:
                with open(f"{tasks}/{tid}/wchan") as f:
                    if f.read().strip() in wchans:
                        return
            except OSError:
                pass
        assert time.time() < deadline, f"no thread in {wchans}\n" + svc.dump_logs()
        time.sleep(0.01)


def test_quick_request_answered_while_a_status_waits_on_redis(one_loop, redis_server):
    svc = one_loop
    task = "0b7e3c7e-7f4b-4c4a-9a51-4d1f3a0c2b11"
    assert requests.get(f"{svc.base}/status/{task}", timeout=10).status_code == 404  # connected
    # Redis holds every command: /status's read blocks on its socket until serve's 1 s timeout.
    assert redis_server.cli("CLIENT", "PAUSE", str(int(5000 * SLOW)), "ALL") == "OK"
    try:
        status = socket.create_connection(("127.0.0.1", svc.port), timeout=30 * SLOW)
        status.sendall(f"GET /status/{task} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                       .encode())
        wait_thread_in(svc, {"wait_woken"})  # a thread of serve reads from Redis
        # Before offloading, the loop itself sat in that read: this answer came second.
        r = requests.get(svc.base + "/healthz", timeout=30 * SLOW)
        assert r.status_code == 200
        assert select.select([status], [], [], 0)[0] == []  # /status still has no answer
        answer = b""
        while chunk := status.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 503 "), answer  # Redis did not answer in time
        status.close()
    finally:
        redis_server.cli("CLIENT", "UNPAUSE")
