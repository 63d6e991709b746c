"""The seven endpoints end to end: submit a generated clip, wait, and read every result."""
import json
import os
import subprocess
import uuid

import requests

from conftest import IA_BIN


def ffprobe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                          "-show_streams", path], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_submit_process_and_read_every_endpoint(service, file_server):
    r = service.submit(file_server.url("clip.mp4"))
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    assert uuid.UUID(task_id)
    assert r.headers["Location"] == f"/status/{task_id}"

    code, body = service.wait_done(task_id)
    assert code == 200 and body["status"] == "success", service.dump_logs()
    video_id = body["video_id"]
    assert body["video_url"] == f"{service.base}/stream/{video_id}"
    assert body["metadata_url"] == f"{service.base}/metadata/{video_id}"

    p = requests.get(f"{service.base}/processed/{video_id}").json()
    assert p["video_url"] == f"{service.base}/stream/{video_id}"
    assert p["download_video_url"] == f"{service.base}/download/{video_id}"
    assert p["metadata_url"] == f"{service.base}/metadata/{video_id}"

    stored = os.path.join(service.processed, f"processed_{video_id}.mp4")
    with open(stored, "rb") as f:
        data = f.read()
    s = requests.get(p["video_url"])
    assert s.status_code == 200
    assert s.headers["Content-Type"] == "video/mp4"
    assert s.headers["Accept-Ranges"] == "bytes"
    assert s.content == data
    info = ffprobe(stored)
    kinds = sorted(st["codec_type"] for st in info["streams"])
    assert kinds == ["audio", "video"]
    assert abs(float(info["format"]["duration"]) - 2.0) < 0.2

    part = requests.get(p["video_url"], headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert part.content == data[10:20]

    d = requests.get(p["download_video_url"])
    assert d.status_code == 200 and d.content == data
    assert d.headers["Content-Disposition"] == f'attachment; filename="processed_{video_id}.mp4"'

    m = requests.get(p["metadata_url"])
    assert m.status_code == 200 and m.headers["Content-Type"] == "application/json"
    meta = m.json()
    assert meta["video_id"] == video_id
    assert meta["source"]["url"] == file_server.url("clip.mp4")
    assert meta["output"]["sha256"]

    dm = requests.get(f"{service.base}/download/{video_id}/metadata")
    assert dm.status_code == 200 and dm.json() == meta
    assert "attachment" in dm.headers["Content-Disposition"]

    h = requests.head(p["video_url"])
    assert h.status_code == 200 and h.content == b""
    assert int(h.headers["Content-Length"]) == len(data)

    t = requests.get(f"{service.base}/thumbnail/{video_id}")
    assert t.status_code == 200 and t.headers["Content-Type"] == "image/jpeg"
    assert t.content[:2] == b"\xff\xd8"

    # No scratch files are left behind.
    assert os.listdir(os.path.join(service.processed, ".work")) == []


def test_webm_without_duration_is_transcoded(service, file_server):
    task_id = service.submit(file_server.url("clip.webm")).json()["task_id"]
    code, body = service.wait_done(task_id)
    assert body["status"] == "success", body
    meta = requests.get(body["metadata_url"]).json()
    assert meta["processing"]["mode"] == "transcode"
    assert abs(meta["output"]["duration"] - 2.0) < 0.2


BAD_BODIES = [
    (b"not json", "the body is not valid JSON"),
    (b"[1,2]", "object"),
    (b"{}", "video_url"),
    (b'{"video_url": 5}', "video_url"),
    (b'{"video_url": "ftp://example.com/a.mp4"}', "http"),
    (b'{"video_url": "javascript:alert(1)"}', "http"),
    (b'{"video_url": "http://"}', "http"),
    (b'{"video_url": "http://exa mple.com/"}', "http"),
    (('{"video_url": "http://example.com/' + "a" * 2100 + '"}').encode(), "2048"),
    (b'{"video_url": "http://a.com/", "video_url": "http://b.com/"}', "JSON"),
]


def test_submit_rejects_bad_bodies_with_422(service):
    for body, hint in BAD_BODIES:
        r = requests.post(service.base + "/submit", data=body,
                          headers={"Content-Type": "application/json"})
        assert r.status_code == 422, (body, r.text)
        err = r.json()
        assert err["code"] == "invalid_input"
        assert hint.lower() in err["detail"].lower(), (body, err)


def test_unknown_ids_and_routes(service):
    missing = str(uuid.uuid4())
    for path in [f"/status/{missing}", "/status/not-a-uuid", f"/processed/{missing}",
                 f"/stream/{missing}", f"/download/{missing}", f"/metadata/{missing}",
                 f"/download/{missing}/metadata", "/stream/..%2F..%2Fetc%2Fpasswd",
                 "/nope"]:
        r = requests.get(service.base + path)
        assert r.status_code == 404, path
        assert "detail" in r.json() and "code" in r.json()
    r = requests.get(service.base + "/submit")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    r = requests.delete(f"{service.base}/status/{missing}")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    r = requests.head(f"{service.base}/status/{missing}")
    assert r.status_code == 404


def test_ids_in_upper_case_name_the_same_task_and_video(service, file_server):
    """A UUID is the same id in either case: task and video ids are read in lower case."""
    r = requests.post(service.base + "/submit", timeout=10,
                      json={"video_url": file_server.url("clip.mp4"), "analysis": False})
    task_id = r.json()["task_id"]
    code, body = service.wait_done(task_id)
    assert code == 200 and body["status"] == "success", service.dump_logs()
    upper = requests.get(f"{service.base}/status/{task_id.upper()}", timeout=5)
    assert upper.status_code == 200 and upper.json() == body
    video_id = body["video_id"]
    p = requests.get(f"{service.base}/processed/{video_id.upper()}", timeout=5)
    assert p.status_code == 200 and p.json()["video_id"] == video_id
    d = requests.get(f"{service.base}/download/{video_id.upper()}", timeout=5)
    assert d.status_code == 200
    assert d.content == requests.get(body["video_url"], timeout=5).content
    assert d.headers["Content-Disposition"] == f'attachment; filename="processed_{video_id}.mp4"'


def test_failed_tasks_carry_stable_codes(service, file_server):
    cases = {
        file_server.url("missing.mp4"): "fetch_http_error",
        file_server.url("notes.txt"): "not_a_video",
        f"http://127.0.0.1:{file_server.port}/clip.mp4": "url_not_allowed",
        file_server.url("redirect-to-loopback"): "url_not_allowed",
    }
    ids = {service.submit(u).json()["task_id"]: code for u, code in cases.items()}
    for task_id, expected in ids.items():
        code, body = service.wait_done(task_id)
        assert code == 200 and body["status"] == "failed", body
        assert body["code"] == expected, body
        assert "/" not in body["error"], body  # no paths or URLs in the message


def test_cli_submit_wait_and_status(service, file_server):
    env = dict(service.env, INTERVIEW_API_URL=service.base)
    out = subprocess.run([IA_BIN, "submit", file_server.url("clip.mp4"), "--wait"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    task_id, video_url = out.stdout.split()
    assert video_url.startswith(service.base + "/stream/")
    assert "100%" in out.stderr
    st = subprocess.run([IA_BIN, "status", task_id], env=env, capture_output=True, text=True)
    assert st.returncode == 0 and json.loads(st.stdout)["status"] == "success"
    bad = subprocess.run([IA_BIN, "submit", file_server.url("missing.mp4"), "--wait"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "fetch_http_error" in bad.stderr


def test_check_config_and_bad_config(tmp_path):
    env = dict(os.environ, SIGNING_KEY="s3cret", CELERY_BROKER_URL="redis://:pw@h:1/0")
    out = subprocess.run([IA_BIN, "check-config"], env=env, capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0
    assert "PORT=8000" in out.stdout and "s3cret" not in out.stdout and "pw@" not in out.stdout
    (tmp_path / ".env").write_text("PORT=8123\n")
    out = subprocess.run([IA_BIN, "check-config"], env=os.environ, capture_output=True,
                         text=True, cwd=tmp_path)
    assert "PORT=8123" in out.stdout
    bad = subprocess.run([IA_BIN, "serve"], env=dict(os.environ, PORT="http"),
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "PORT" in bad.stderr


def test_review_page_and_assets(service):
    page = requests.get(service.base + "/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<script src="/web/review.js"' in page.text and '<script src="/web/tus.js"' in page.text
    js = requests.get(service.base + "/web/review.js")
    assert js.status_code == 200 and "function openReview" in js.text
    assert "class TusUpload" in requests.get(service.base + "/web/tus.js").text
    assert requests.get(service.base + "/web/style.css").status_code == 200
    for bad in ("/web/index.html", "/web/..%2FMakefile", "/web/missing.js", "/web/"):
        assert requests.get(service.base + bad).status_code == 404, bad
