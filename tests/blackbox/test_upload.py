"""Direct uploads: tus 1.0 (POST/HEAD/PATCH /uploads), POST /upload, and `submit FILE`.

Real serve and worker processes; uploaded clips must come out exactly like fetched ones.
"""
import base64
import glob
import hashlib
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import IA_BIN, SLOW, Service

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


@pytest.fixture(autouse=True)
def workers_ready(request):
    for name in ("service", "svc"):
        if name in request.fixturenames:
            request.getfixturevalue(name).wait_workers_ready()


@pytest.fixture
def svc(tmp_path, redis_server, request):
    """A service with small upload limits, for the tests that pass them."""
    env = getattr(request, "param", {})
    s = Service(str(tmp_path), redis_server, extra_env=env)
    yield s
    codes = s.stop()
    assert all(c == 0 for c in codes.values()), s.dump_logs()


def create(svc, length, **headers):
    h = dict(TUS, **{"Upload-Length": str(length)})
    h.update(headers)
    return requests.post(svc.base + "/uploads", headers=h, timeout=10)


def patch(url, offset, data, **headers):
    h = dict(TUS, **{"Upload-Offset": str(offset), "Content-Type": OCTETS})
    h.update(headers)
    return requests.patch(url, data=data, headers=h, timeout=30)


def head(url):
    return requests.head(url, headers=TUS, timeout=10)


def staged(svc):
    d = os.path.join(svc.processed, ".uploads")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def check_success(svc, task_id, data, upload_id=None):
    code, body = svc.wait_done(task_id)
    assert code == 200 and body["status"] == "success", (body, svc.dump_logs())
    video = requests.get(f"{svc.base}/stream/{body['video_id']}", timeout=10)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    meta = requests.get(f"{svc.base}/metadata/{body['video_id']}", timeout=10).json()
    assert meta["source"]["bytes"] == len(data)
    assert meta["source"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert meta["source"]["url"].startswith("upload:")
    if upload_id:
        assert meta["source"]["url"] == "upload:" + upload_id
    return body


def wait_unstaged(svc, timeout=10):
    deadline = time.time() + timeout * SLOW
    while staged(svc) and time.time() < deadline:
        time.sleep(0.1)
    return staged(svc)


def test_options_lists_the_protocol(service):
    r = requests.options(service.base + "/uploads", timeout=10)
    assert r.status_code == 204
    assert r.headers["Tus-Version"] == "1.0.0"
    assert r.headers["Tus-Resumable"] == "1.0.0"
    assert "creation" in r.headers["Tus-Extension"].split(",")
    assert int(r.headers["Tus-Max-Size"]) == 4294967296


def test_tus_three_chunks_make_a_task(service, media):
    data = (media / "clip.mp4").read_bytes()
    name = base64.b64encode(b"clip.mp4").decode()
    r = create(service, len(data), **{"Upload-Metadata": f"filename {name},private"})
    assert r.status_code == 201, r.text
    url = r.headers["Location"]
    assert re.fullmatch(re.escape(service.base) + r"/uploads/[0-9a-f-]{36}", url)
    upload_id = url.rsplit("/", 1)[1]
    h = head(url)
    assert h.status_code == 200
    assert h.headers["Upload-Offset"] == "0" and h.headers["Upload-Length"] == str(len(data))
    assert h.headers["Cache-Control"] == "no-store"
    assert h.headers["Upload-Metadata"] == f"filename {name},private"
    third = len(data) // 3
    pieces = [data[:third], data[third:2 * third], data[2 * third:]]
    offset = 0
    for i, piece in enumerate(pieces):
        r = patch(url, offset, piece)
        assert r.status_code == 204, r.text
        offset += len(piece)
        assert r.headers["Upload-Offset"] == str(offset)
        assert r.headers["Tus-Resumable"] == "1.0.0"
        if i < 2:
            assert "Upload-Task-Id" not in r.headers
            assert head(url).headers["Upload-Offset"] == str(offset)
    task_id = r.headers["Upload-Task-Id"]
    assert r.headers["Upload-Task-Location"] == f"/status/{task_id}"
    # The task is an ordinary one: /status knows it, a repeated last PATCH names the same task.
    assert requests.get(f"{service.base}/status/{task_id}", timeout=10).status_code == 200
    check_success(service, task_id, data, upload_id)
    assert wait_unstaged(service) == [], "the staged upload outlived its task"
    assert head(url).status_code == 404


def test_finished_upload_names_its_task_once(service, media):
    data = (media / "clip.mp4").read_bytes()
    url = create(service, len(data)).headers["Location"]
    r = patch(url, 0, data)
    task_id = r.headers["Upload-Task-Id"]
    again = patch(url, len(data), b"")
    assert again.status_code in (204, 404)
    if again.status_code == 204:
        assert again.headers["Upload-Task-Id"] == task_id
    check_success(service, task_id, data)


def raw_patch_half(svc, url, offset, data):
    """Announces len(data) bytes, sends half, and drops the connection."""
    path = url[len(svc.base):]
    head_ = (f"PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
             f"Content-Type: {OCTETS}\r\nUpload-Offset: {offset}\r\n"
             f"Content-Length: {len(data)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as s:
        s.sendall(head_ + data[:len(data) // 2])
        time.sleep(0.3)


def test_resume_after_a_dropped_connection(service, media):
    """A chunk cut off mid-way is discarded whole: HEAD shows the last complete chunk's end."""
    data = (media / "clip.mp4").read_bytes()
    url = create(service, len(data)).headers["Location"]
    first = len(data) // 4
    assert patch(url, 0, data[:first]).status_code == 204
    raw_patch_half(service, url, first, data[first:])
    h = head(url)
    assert h.status_code == 200 and h.headers["Upload-Offset"] == str(first)
    offset = int(h.headers["Upload-Offset"])
    r = patch(url, offset, data[offset:])
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data))
    check_success(service, r.headers["Upload-Task-Id"], data)


def test_protocol_errors(service):
    url = create(service, 1000).headers["Location"]
    # Wrong offset: 409 with the real one.
    r = patch(url, 10, b"x" * 10)
    assert r.status_code == 409 and r.headers["Upload-Offset"] == "0"
    assert r.json()["code"] == "offset_mismatch"
    # Past Upload-Length.
    r = patch(url, 0, b"x" * 1001)
    assert r.status_code == 413
    # Wrong content type.
    r = patch(url, 0, b"x" * 10, **{"Content-Type": "application/octet-stream"})
    assert r.status_code == 415
    # Missing or other protocol version.
    r = requests.patch(url, data=b"x", headers={"Upload-Offset": "0", "Content-Type": OCTETS},
                       timeout=10)
    assert r.status_code == 412 and r.headers["Tus-Version"] == "1.0.0"
    r = requests.post(service.base + "/uploads",
                      headers={"Tus-Resumable": "0.2.2", "Upload-Length": "5"}, timeout=10)
    assert r.status_code == 412 and r.headers["Tus-Version"] == "1.0.0"
    # Bad or missing header values.
    assert patch(url, "-1", b"x").status_code == 400
    assert requests.post(service.base + "/uploads", headers=TUS, timeout=10).status_code == 400
    assert create(service, "12abc").status_code == 400
    assert create(service, 5, **{"Upload-Metadata": "bad key!"}).status_code == 400
    # Unknown uploads.
    unknown = service.base + "/uploads/00000000-0000-4000-8000-000000000000"
    assert head(unknown).status_code == 404
    assert patch(unknown, 0, b"x").status_code == 404
    assert head(service.base + "/uploads/..%2F..%2Fetc").status_code == 404
    # Larger than MAX_DOWNLOAD_BYTES.
    r = create(service, 4294967297)
    assert r.status_code == 413 and r.json()["code"] == "too_large"
    # Nothing of all that reached the file.
    assert head(url).headers["Upload-Offset"] == "0"
    assert requests.get(service.base + "/healthz", timeout=5).status_code == 200


def test_chunk_over_16_mib_is_refused_from_its_headers(service):
    url = create(service, 64 << 20).headers["Location"]
    path = url[len(service.base):]
    req = (f"PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
           f"Content-Type: {OCTETS}\r\nUpload-Offset: 0\r\n"
           f"Content-Length: {(16 << 20) + 1}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as s:
        s.sendall(req)
        answer = s.recv(4096)
    assert answer.split(b" ", 2)[1] == b"413"
    assert head(url).headers["Upload-Offset"] == "0"


def test_concurrent_patches_do_not_corrupt(service, media):
    data = (media / "clip.mp4").read_bytes()
    url = create(service, len(data)).headers["Location"]
    half = len(data) // 2
    results = []

    def send(piece):
        results.append(patch(url, 0, piece).status_code)

    threads = [threading.Thread(target=send, args=(data[:half],)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [204, 409, 409, 409]
    assert head(url).headers["Upload-Offset"] == str(half)
    r = patch(url, half, data[half:])
    check_success(service, r.headers["Upload-Task-Id"], data)


def test_simple_upload_raw_and_multipart(service, media):
    data = (media / "clip.mp4").read_bytes()
    r = requests.post(service.base + "/upload", data=data,
                      headers={"Content-Type": "application/octet-stream"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Location"] == f"/status/{r.json()['task_id']}"
    check_success(service, r.json()["task_id"], data)
    webm = (media / "clip.webm").read_bytes()
    r = requests.post(service.base + "/upload", timeout=30,
                      data={"note": "a form field before the file"},
                      files={"file": ("interview.webm", webm, "video/webm")})
    assert r.status_code == 200, r.text
    check_success(service, r.json()["task_id"], webm)
    assert wait_unstaged(service) == []


def test_simple_upload_refusals(service):
    r = requests.post(service.base + "/upload", data=b"x" * 100,
                      headers={"Content-Type": "text/plain"}, timeout=10)
    assert r.status_code == 415
    r = requests.post(service.base + "/upload", data=b"",
                      headers={"Content-Type": "application/octet-stream"}, timeout=10)
    assert r.status_code == 422
    r = requests.post(service.base + "/upload", data={"only": "fields"},
                      files={"x": ("", b"")}, timeout=10)
    assert r.status_code == 422
    r = requests.post(service.base + "/upload", data=b"--nope\r\n",
                      headers={"Content-Type": "multipart/form-data; boundary=b"}, timeout=10)
    assert r.status_code == 422 and r.json()["code"] == "invalid_input"


@pytest.mark.parametrize("svc", [{"UPLOAD_SIMPLE_MAX": "100000"}], indirect=True)
def test_simple_upload_over_the_limit_points_to_tus(svc):
    r = requests.post(svc.base + "/upload", data=b"x" * 100001,
                      headers={"Content-Type": "video/mp4"}, timeout=10)
    assert r.status_code == 413 and "/uploads" in r.json()["detail"]
    # Over the 16 MiB the HTTP layer takes at all: refused from Content-Length alone.
    req = (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: video/mp4\r\n"
           b"Content-Length: 20000000\r\n\r\n")
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as s:
        s.sendall(req)
        assert s.recv(4096).split(b" ", 2)[1] == b"413"
    assert staged(svc) == []


def test_json_routes_keep_their_64_kib_limit(service):
    big = b'{"video_url": "http://example.com/' + b"a" * (80 * 1024) + b'"}'
    r = requests.post(service.base + "/submit", data=big,
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 413 and r.json()["code"] == "too_large"
    r = requests.post(service.base + "/uploads", data=b"x" * 70000,
                      headers=dict(TUS, **{"Upload-Length": "5"}), timeout=10)
    assert r.status_code == 413


@pytest.mark.parametrize("svc", [{"UPLOAD_EXPIRE_S": "1"}], indirect=True)
def test_unfinished_uploads_expire(svc):
    url = create(svc, 1000).headers["Location"]
    assert patch(url, 0, b"x" * 10).status_code == 204
    time.sleep(2.5)
    create(svc, 1000)  # creating an upload sweeps stale ones
    assert head(url).status_code == 404
    assert len(staged(svc)) == 2  # only the new upload's .bin and .len


def cli(svc, tmp_path, *args, extra=None, **kw):
    env = dict(svc.env, INTERVIEW_API_URL=svc.base, XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.update(extra or {})
    return subprocess.Popen([IA_BIN, "submit", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=str(tmp_path), **kw)


def test_cli_submit_file_waits_for_the_video(service, media, tmp_path):
    p = cli(service, tmp_path, str(media / "clip.webm"), "--wait",
            extra={"INTERVIEW_API_CHUNK_BYTES": "50000"})
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, err.decode() + service.dump_logs()
    task_id, video_url = out.decode().split()
    assert "/stream/" in video_url
    check_success(service, task_id, (media / "clip.webm").read_bytes())
    assert os.listdir(tmp_path / "cache" / "interview-api") == []  # state file gone when done


def big_clip(tmp_path, size="320x240"):
    """An all-intra clip, large for its length (~0.5 MB at 320x240, ~1.7 MB at 640x480)."""
    path = tmp_path / "big.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=25:duration=4", "-c:v", "libx264", "-g", "1",
                    "-pix_fmt", "yuv420p", str(path)], check=True, timeout=120)
    return path


def test_cli_resumes_an_interrupted_upload(service, tmp_path):
    clip = big_clip(tmp_path)
    data = clip.read_bytes()
    chunk = 65536
    assert len(data) > 6 * chunk
    slow = {"INTERVIEW_API_CHUNK_BYTES": str(chunk), "INTERVIEW_API_UPLOAD_RATE": "200000"}
    p = cli(service, tmp_path, str(clip), extra=slow)
    state_dir = tmp_path / "cache" / "interview-api"
    deadline = time.time() + 60 * SLOW
    offset = 0
    while time.time() < deadline and offset < 2 * chunk:
        files = glob.glob(str(state_dir / "upload-*"))
        if files:
            url = open(files[0]).read().strip()
            offset = int(head(url).headers.get("Upload-Offset", 0))
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    landed = int(head(url).headers["Upload-Offset"])
    assert 2 * chunk <= landed < len(data)
    p = cli(service, tmp_path, str(clip), "--wait", extra={"INTERVIEW_API_CHUNK_BYTES": str(chunk)})
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, err.decode() + service.dump_logs()
    assert f"resuming upload at {landed} of {len(data)} bytes" in err.decode()
    task_id = out.decode().split()[0]
    check_success(service, task_id, data)
    # The server saw the second run start where the first stopped, not at 0.
    log = open(service.logs[0], "rb").read().decode(errors="replace")
    upload_id = url.rsplit("/", 1)[1]
    starts = [int(m) for m in re.findall(rf"upload={upload_id} offset (\d+) ->", log)]
    assert starts.count(0) == 1 and landed in starts


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sanitized():
    out = subprocess.run(["nm", "-D", IA_BIN], capture_output=True, text=True).stdout
    return "__asan_init" in out


@pytest.mark.parametrize("svc", [{"ASAN_OPTIONS": "detect_leaks=1:exitcode=86:"
                                                  "quarantine_size_mb=1:malloc_context_size=2"}],
                         indirect=True)
def test_serve_memory_stays_bounded(svc):
    """200 MB through tus in 8 MiB chunks and a 16 MiB POST /upload: serve's RSS stays low."""
    pid = svc.serve.pid
    base = rss_kib(pid)
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        total, chunk = 200 << 20, 8 << 20
        block = os.urandom(chunk)
        url = create(svc, total).headers["Location"]
        with requests.Session() as s:
            for offset in range(0, total, chunk):
                r = s.patch(url, data=block, timeout=60,
                            headers=dict(TUS, **{"Upload-Offset": str(offset),
                                                 "Content-Type": OCTETS}))
                assert r.status_code == 204
        r = requests.post(svc.base + "/upload", data=os.urandom(16 << 20), timeout=60,
                          headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200
    finally:
        stop.set()
        sampler.join()
    grown_mib = (peak[0] - base) / 1024
    limit = 64 if sanitized() else 40
    print(f"serve RSS: {base / 1024:.1f} MiB before, {peak[0] / 1024:.1f} MiB peak "
          f"(+{grown_mib:.1f} MiB); sanitized={sanitized()}")
    assert peak[0] / 1024 < limit, f"serve RSS peaked at {peak[0] / 1024:.1f} MiB"


@pytest.mark.parametrize("svc", [{"REQUEST_TIMEOUT_S": "2"}], indirect=True)
def test_cli_sends_a_chunk_slower_than_the_request_timeout(svc, tmp_path):
    """REQUEST_TIMEOUT_S caps a request's head only: a body is timed by the pauses between its
    reads (IDLE_TIMEOUT_S), so a slow but steady link finishes a chunk however long it takes."""
    clip = big_clip(tmp_path, "640x480")
    data = clip.read_bytes()
    assert len(data) > (1 << 20)
    # 1 MiB at 250 kB/s takes 4.2 s, twice the request timeout; no pause is long.
    p = cli(svc, tmp_path, str(clip), "--wait",
            extra={"INTERVIEW_API_CHUNK_BYTES": str(1 << 20), "INTERVIEW_API_UPLOAD_RATE": "250000"})
    out, err = p.communicate(timeout=180 * SLOW)
    assert p.returncode == 0, err.decode() + svc.dump_logs()
    assert "continuing at" not in err.decode(), err.decode()  # no chunk was cut off
    check_success(svc, out.decode().split()[0], data)


class StallingProxy:
    """A TCP proxy in front of serve that stops passing on the first PATCH after stall_after of
    its bytes, until serve gives up on the silent connection; then it closes the client's side.
    """

    def __init__(self, stall_after=65536):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = None
        self.stall_after = stall_after
        self.stalled = threading.Event()
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.forward, args=(client,), daemon=True).start()

    @staticmethod
    def copy_back(server, client, server_gone):
        try:
            while data := server.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        server_gone.set()
        try:
            client.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def forward(self, client):
        server = socket.create_connection(("127.0.0.1", self.target))
        server_gone = threading.Event()
        threading.Thread(target=self.copy_back, args=(server, client, server_gone),
                         daemon=True).start()
        passed, is_patch = 0, None
        try:
            while data := client.recv(65536):
                is_patch = data.startswith(b"PATCH") if is_patch is None else is_patch
                if is_patch and not self.stalled.is_set() and passed + len(data) > self.stall_after:
                    self.stalled.set()
                    server_gone.wait()  # serve closes the connection once it has been silent
                    break
                server.sendall(data)
                passed += len(data)
        except OSError:
            pass
        for s in (server, client):
            s.close()

    def close(self):
        self.listener.close()


def test_cli_retries_a_chunk_cut_off_by_a_long_pause(tmp_path, redis_server):
    """A chunk that pauses longer than IDLE_TIMEOUT_S is cut off by the server: the CLI asks HEAD
    for the offset and goes on with smaller chunks, in the same run."""
    proxy = StallingProxy()
    s = Service(str(tmp_path), redis_server,
                extra_env={"IDLE_TIMEOUT_S": "2",
                           "PUBLIC_BASE_URL": f"http://127.0.0.1:{proxy.port}"})
    try:
        proxy.target = s.port
        s.wait_workers_ready()
        clip = big_clip(tmp_path, "640x480")
        data = clip.read_bytes()
        p = cli(s, tmp_path, str(clip), "--wait",
                extra={"INTERVIEW_API_URL": f"http://127.0.0.1:{proxy.port}",
                       "INTERVIEW_API_CHUNK_BYTES": str(1 << 20)})
        out, err = p.communicate(timeout=180 * SLOW)
        assert p.returncode == 0, err.decode() + s.dump_logs()
        assert proxy.stalled.is_set()
        assert "continuing at 0 bytes" in err.decode(), err.decode()
        check_success(s, out.decode().split()[0], data)
    finally:
        proxy.close()
        codes = s.stop()
    assert all(c == 0 for c in codes.values()), s.dump_logs()
