"""The files the analysis adds beside a video, as the API serves them.

GET|HEAD /events/{video_id}.vtt, /review/{video_id} and /evidence/{video_id}/{event_id}.jpg,
with files placed straight into PROCESSED_DIR (the worker's part is tested elsewhere): types,
Range and conditional requests, stable 404 codes, hostile ids, the URLs in /processed and
/status, and signed URLs.
"""
import hashlib
import hmac
import http.client
import json
import os
import subprocess
import time
import uuid

import pytest
import requests

from conftest import Service

VTT = ("WEBVTT\n\ne1\n00:00:01.000 --> 00:00:03.500\nface_absent (0.92) \u2014 no face\n\n"
       "e2\n00:00:04.000 --> 00:00:05.000\nlooking_away: left 35\u00b0\n")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small review MP4 and a JPEG, made once."""
    d = tmp_path_factory.mktemp("review-media")
    run = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"]
    subprocess.run(run + ["-i", "testsrc2=size=320x180:rate=10:duration=1", "-c:v", "libx264",
                          "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                          str(d / "review.mp4")], check=True, timeout=60)
    subprocess.run(run + ["-i", "testsrc2=size=160x90", "-frames:v", "1", str(d / "e1.jpg")],
                   check=True, timeout=60)
    return {"review": (d / "review.mp4").read_bytes(), "jpg": (d / "e1.jpg").read_bytes()}


def start(tmp_path, redis, **env):
    return Service(str(tmp_path), redis, extra_env=env, workers=0)


@pytest.fixture
def svc(tmp_path, redis_server):
    s = start(tmp_path, redis_server)
    yield s
    codes = s.stop()
    assert all(c == 0 for c in codes.values()), s.dump_logs()


def place(svc, video_id, name, data):
    path = os.path.join(svc.processed, f"processed_{video_id}.{name}")
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return path


def publish(svc, files, review=True, events=True):
    """A finished video with an analysis: its events, evidence for e1, the review rendition."""
    video_id = str(uuid.uuid4())
    place(svc, video_id, "mp4", b"\0" * 100)
    if events:
        place(svc, video_id, "vtt", VTT)
        place(svc, video_id, "evidence-e1.jpg", files["jpg"])
    if review:
        place(svc, video_id, "review.mp4", files["review"])
    analysis = {"events": [{"id": "e1", "kind": "face_absent"}, {"id": "e2", "kind": "looking_away"}]}
    place(svc, video_id, "json", json.dumps({"video_id": video_id, "analysis": analysis}
                                            if events else {"video_id": video_id}))
    return video_id


def error_code(r):
    assert r.headers["Content-Type"] == "application/json", r.text
    return r.json()["code"]


def test_events_vtt(svc, files):
    video_id = publish(svc, files)
    url = f"{svc.base}/events/{video_id}.vtt"
    r = requests.get(url)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/vtt; charset=utf-8"
    assert r.content == VTT.encode()
    assert r.content.startswith(b"WEBVTT")
    h = requests.head(url)
    assert h.status_code == 200 and h.content == b""
    assert int(h.headers["Content-Length"]) == len(VTT.encode())
    assert h.headers["Content-Type"] == "text/vtt; charset=utf-8"
    assert requests.get(url, headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
    part = requests.get(url, headers={"Range": "bytes=0-5"})
    assert part.status_code == 206 and part.content == b"WEBVTT"


def test_review_has_the_delivery_rules_of_stream(svc, files):
    video_id = publish(svc, files)
    data = files["review"]
    url = f"{svc.base}/review/{video_id}"
    r = requests.get(url)
    assert r.status_code == 200 and r.content == data
    assert r.headers["Content-Type"] == "video/mp4"
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Disposition"] == (
        f'inline; filename="processed_{video_id}.review.mp4"')
    part = requests.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert part.content == data[10:20]
    tail = requests.get(url, headers={"Range": "bytes=-16"})
    assert tail.status_code == 206 and tail.content == data[-16:]
    beyond = requests.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(data)}"
    etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
    assert requests.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert requests.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    assert requests.get(url, headers={"If-Match": '"nope"'}).status_code == 412
    same = requests.get(url, headers={"Range": "bytes=0-3", "If-Range": etag})
    assert same.status_code == 206
    changed = requests.get(url, headers={"Range": "bytes=0-3", "If-Range": '"other"'})
    assert changed.status_code == 200 and changed.content == data
    h = requests.head(url, headers={"Range": "bytes=0-9"})
    assert h.status_code == 206 and h.content == b"" and h.headers["Content-Length"] == "10"


def test_evidence_frames(svc, files):
    video_id = publish(svc, files)
    url = f"{svc.base}/evidence/{video_id}/e1.jpg"
    r = requests.get(url)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
    assert r.content == files["jpg"] and r.content[:2] == b"\xff\xd8"
    h = requests.head(url)
    assert h.status_code == 200 and h.content == b""
    assert int(h.headers["Content-Length"]) == len(files["jpg"])
    part = requests.get(url, headers={"Range": "bytes=0-1"})
    assert part.status_code == 206 and part.content == b"\xff\xd8"
    missing = requests.get(f"{svc.base}/evidence/{video_id}/e2.jpg")
    assert missing.status_code == 404 and error_code(missing) == "event_not_found"
    big = requests.get(f"{svc.base}/evidence/{video_id}/e999999.jpg")
    assert big.status_code == 404 and error_code(big) == "event_not_found"


def test_missing_files_have_stable_codes(svc, files):
    plain = publish(svc, files, review=False, events=False)  # analysis off: a bare video
    no_review = publish(svc, files, review=False)             # REVIEW_VIDEO=0
    unknown = str(uuid.uuid4())
    cases = [
        (f"/events/{plain}.vtt", "analysis_not_found"),
        (f"/review/{plain}", "review_not_found"),
        (f"/review/{no_review}", "review_not_found"),
        (f"/evidence/{plain}/e1.jpg", "event_not_found"),
        (f"/events/{unknown}.vtt", "video_not_found"),
        (f"/review/{unknown}", "video_not_found"),
        (f"/evidence/{unknown}/e1.jpg", "video_not_found"),
    ]
    for path, code in cases:
        for method in ("GET", "HEAD"):
            r = requests.request(method, svc.base + path)
            assert r.status_code == 404, (method, path)
            if method == "GET":
                assert error_code(r) == code, path
    assert requests.get(f"{svc.base}/events/{no_review}.vtt").status_code == 200
    r = requests.post(f"{svc.base}/review/{no_review}")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    r = requests.delete(f"{svc.base}/evidence/{no_review}/e1.jpg")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"


def test_hostile_ids(svc, files):
    video_id = publish(svc, files)
    # Files a path built from an unchecked id could reach.
    secret = os.path.join(os.path.dirname(svc.processed), "secret.jpg")
    with open(secret, "wb") as f:
        f.write(b"\xff\xd8secret")
    place(svc, video_id, "evidence-E1.jpg", b"\xff\xd8upper")
    place(svc, video_id, "evidence-e01.jpg", b"\xff\xd8zero")
    upper = video_id.upper()
    long_id = "a" * 200
    bad_videos = ["..", "%2e%2e", "..%2f..%2fsecret", "%2e%2e%2fsecret", long_id,
                  video_id + "0", video_id[:-1], "processed_" + video_id, video_id + "%00",
                  video_id.replace("-", "")]
    paths = []
    for bad in bad_videos:
        paths += [f"/events/{bad}.vtt", f"/review/{bad}", f"/evidence/{bad}/e1.jpg"]
    bad_events = ["E1", "e0", "e01", "e1234567", "e", "1", "e-1", "e1.jpg", "..", "%2e%2e",
                  "..%2f..%2f..%2fsecret", "e1%00", "e1%2f", "e1%20", "x" * 200, "evidence-e1",
                  "e1%2f..%2f..%2f..%2fsecret"]
    paths += [f"/evidence/{video_id}/{bad}.jpg" for bad in bad_events]
    paths += [f"/events/{video_id}", f"/events/{video_id}.VTT", f"/events/{video_id}.vtt/",
              "/events/.vtt", f"/review/{video_id}/", f"/review/{video_id}.mp4",
              f"/evidence/{video_id}/e1", f"/evidence/{video_id}/e1.jpeg",
              f"/evidence/{video_id}/.jpg", f"/evidence/{video_id}/../{video_id}/e1.jpg",
              "/evidence//e1.jpg", f"/evidence/{video_id}/e1.jpg/x.jpg"]
    for path in paths:
        status, ctype, body = get_raw(svc, path)
        assert status in (400, 404), (path, status)
        assert b"secret" not in body and b"upper" not in body and b"zero" not in body, path
        if status == 404:
            assert ctype == "application/json", path
            assert json.loads(body)["code"] in ("video_not_found", "event_not_found",
                                                "not_found"), path
    # An upper-case video id is the same video (ids are lower-cased where they are parsed);
    # the event id is not: "E1" stays refused above.
    assert get_raw(svc, f"/evidence/{upper}/e1.jpg")[2] == files["jpg"]
    # The path is decoded before it is matched and the ids checked ("e%31" is "e1", "%2f" "/").
    assert get_raw(svc, f"/evidence/{video_id}/e%31.jpg")[2] == files["jpg"]
    assert get_raw(svc, f"/evidence/{video_id}%2fe1.jpg")[2] == files["jpg"]


def get_raw(svc, path):
    """GET exactly this path (requests would resolve "../" itself); (status, type, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read()
    finally:
        conn.close()


def test_processed_and_status_list_the_analysis_urls(svc, files, redis_server):
    full = publish(svc, files)
    plain = publish(svc, files, review=False, events=False)
    p = requests.get(f"{svc.base}/processed/{full}").json()
    assert p["events_url"] == f"{svc.base}/events/{full}.vtt"
    assert p["review_url"] == f"{svc.base}/review/{full}"
    assert requests.get(p["events_url"]).status_code == 200
    assert requests.get(p["review_url"]).content == files["review"]
    p = requests.get(f"{svc.base}/processed/{plain}").json()
    assert "events_url" not in p and "review_url" not in p and p["video_url"]
    for video_id, listed in ((full, True), (plain, False)):
        task_id = str(uuid.uuid4())
        record = {"status": "SUCCESS", "result": {"video_id": video_id}, "traceback": None,
                  "children": [], "date_done": "2026-11-29T10:00:00", "task_id": task_id}
        redis_server.cli("SET", f"celery-task-meta-{task_id}", json.dumps(record), db=1)
        st = requests.get(f"{svc.base}/status/{task_id}").json()
        assert st["status"] == "success" and st["video_url"].endswith(f"/stream/{video_id}")
        assert ("events_url" in st) == listed and ("review_url" in st) == listed, st
        if listed:
            assert st["events_url"] == f"{svc.base}/events/{video_id}.vtt"
            assert st["review_url"] == f"{svc.base}/review/{video_id}"


def sign(path, key=b"sign-me"):
    """The query of a URL signed as api/auth.c signs it: HMAC-SHA256 of "<path>\\n<expires>"."""
    expires = int(time.time()) + 60
    sig = hmac.new(key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()
    return f"expires={expires}&sig={sig}"


def test_signed_urls(tmp_path, redis_server, files):
    s = start(tmp_path, redis_server, SIGNING_KEY="sign-me", SIGNED_URL_TTL_S="60")
    try:
        video_id = publish(s, files)
        urls = requests.get(f"{s.base}/processed/{video_id}").json()
        for name in ("events_url", "review_url"):
            url = urls[name]
            assert "sig=" in url and "expires=" in url, url
            assert requests.get(url).status_code == 200, name
            assert requests.get(url.split("?")[0]).status_code == 403
            other = url.replace(video_id, str(uuid.uuid4()))
            assert requests.get(other).status_code == 403
        assert requests.get(urls["review_url"], headers={"Range": "bytes=0-9"}).status_code == 206
        # Evidence URLs are signed like the others: bound to the path, event id included.
        e1 = f"/evidence/{video_id}/e1.jpg"
        query = sign(e1)
        assert requests.get(f"{s.base}{e1}?{query}").content == files["jpg"]
        assert requests.get(f"{s.base}/evidence/{video_id}/e2.jpg?{query}").status_code == 403
        assert requests.get(f"{s.base}{e1}").status_code == 403
        e2 = f"/evidence/{video_id}/e2.jpg"
        r = requests.get(f"{s.base}{e2}?{sign(e2)}")
        assert r.status_code == 404 and error_code(r) == "event_not_found"
        bad = f"/evidence/{video_id}/E1.jpg"
        assert requests.get(f"{s.base}{bad}?{sign(bad)}").status_code == 404
        # /processed lists the signed URL of each evidence frame that exists (e2 has none).
        evidence = urls["evidence_urls"]
        assert list(evidence) == ["e1"], evidence
        assert evidence["e1"].startswith(f"{s.base}{e1}?") and "sig=" in evidence["e1"]
        assert requests.get(evidence["e1"]).content == files["jpg"]
        plain = requests.get(f"{s.base}/processed/{publish(s, files, events=False)}").json()
        assert "evidence_urls" not in plain
    finally:
        codes = s.stop()
    assert all(c == 0 for c in codes.values()), s.dump_logs()
