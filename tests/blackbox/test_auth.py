"""Access control: bearer API keys and signed, expiring media URLs."""
import json
import os
import subprocess
import time
import uuid

import pytest
import requests

from conftest import Service

KEY = "k-" + "a" * 30


@pytest.fixture
def secured(tmp_path, redis_server):
    svc = Service(str(tmp_path), redis_server,
                  extra_env={"API_KEYS": f"other-key, {KEY}", "SIGNING_KEY": "sign-me",
                             "SIGNED_URL_TTL_S": "60"})
    yield svc
    codes = svc.stop()
    assert all(c == 0 for c in codes.values()), svc.dump_logs()


def auth(key=KEY):
    return {"Authorization": f"Bearer {key}"}


def publish_fake_video(svc):
    video_id = str(uuid.uuid4())
    for ext, data in (("mp4", b"\0" * 1000), ("json", b'{"schema": 1}')):
        with open(os.path.join(svc.processed, f"processed_{video_id}.{ext}"), "wb") as f:
            f.write(data)
    return video_id


def test_api_keys(secured):
    missing = f"{secured.base}/status/{uuid.uuid4()}"
    r = requests.get(missing)
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert requests.get(missing, headers=auth("wrong")).status_code == 403
    assert requests.get(missing, headers=auth(KEY[:-1])).status_code == 403
    assert requests.get(missing, headers={"Authorization": KEY}).status_code == 403
    assert requests.get(missing, headers=auth()).status_code == 404
    assert requests.get(missing, headers=auth("other-key")).status_code == 404
    assert requests.post(secured.base + "/submit", json={"video_url": "http://x.example/"}
                         ).status_code == 401
    assert requests.get(secured.base + "/healthz").status_code == 200
    assert requests.get(secured.base + "/readyz").status_code == 200


def test_signed_media_urls(secured):
    video_id = publish_fake_video(secured)
    p = requests.get(f"{secured.base}/processed/{video_id}", headers=auth())
    assert p.status_code == 200
    urls = p.json()
    for name in ("video_url", "download_video_url", "metadata_url"):
        url = urls[name]
        assert "sig=" in url and "expires=" in url
        assert requests.get(url).status_code == 200, name  # no bearer key needed
        unsigned = url.split("?")[0]
        assert requests.get(unsigned, headers=auth()).status_code == 403
        tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
        assert requests.get(tampered).status_code == 403
        other = url.replace(video_id, str(uuid.uuid4()))
        assert requests.get(other).status_code == 403
    base, query = urls["video_url"].split("?")
    params = dict(kv.split("=") for kv in query.split("&"))
    expired = f"{base}?expires={int(time.time()) - 1}&sig={params['sig']}"
    assert requests.get(expired).status_code == 403
    later = f"{base}?expires={int(params['expires']) + 1000}&sig={params['sig']}"
    assert requests.get(later).status_code == 403
    assert requests.get(urls["video_url"], headers={"Range": "bytes=0-9"}).status_code == 206


def test_idempotency_key_belongs_to_its_api_key(secured):
    """Another client's use of the same Idempotency-Key is another key: it neither replays A's
    task (same body) nor learns that A used the key (another body, no 409)."""
    def submit(key, idem, url):
        return requests.post(secured.base + "/submit", json={"video_url": url}, timeout=10,
                             headers={**auth(key), "Idempotency-Key": idem})

    url, other_url = "http://127.0.0.2:9/clip.mp4", "http://127.0.0.2:9/other.mp4"
    a = submit(KEY, "order-17", url)
    b = submit("other-key", "order-17", url)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert b.json()["task_id"] != a.json()["task_id"]
    assert "Idempotent-Replayed" not in b.headers
    assert submit(KEY, "order-18", url).status_code == 200
    probe = submit("other-key", "order-18", other_url)
    assert probe.status_code == 200, probe.text
    again = submit(KEY, "order-17", url)
    assert again.status_code == 200 and again.json()["task_id"] == a.json()["task_id"]
    assert again.headers["Idempotent-Replayed"] == "true"


def test_task_result_urls_are_signed_like_the_apis(tmp_path, redis_server, file_server):
    """A Celery client reads the same signed URLs from the task's result as /status gives."""
    svc = Service(str(tmp_path), redis_server, file_server,
                  extra_env={"API_KEYS": KEY, "SIGNING_KEY": "sign-me", "ANALYSIS": "0"})
    try:
        r = svc.submit(file_server.url("clip.mp4"), headers=auth())
        tid = r.json()["task_id"]
        code, status = svc.wait_done(tid, headers=auth())
        assert (code, status["status"]) == (200, "success"), status
        result = json.loads(redis_server.cli("GET", f"celery-task-meta-{tid}", db=1))["result"]
        for name in ("video_url", "download_video_url", "metadata_url"):
            url = result[name]
            assert url.startswith(f"{svc.base}/") and "sig=" in url and "expires=" in url, url
            assert requests.get(url, timeout=10).status_code == 200, name  # no bearer key
            assert requests.get(url.split("?")[0], timeout=10).status_code == 403, name
        assert status["video_url"].split("?")[0] == result["video_url"].split("?")[0]
    finally:
        codes = svc.stop()
    assert all(c == 0 for c in codes.values()), svc.dump_logs()


def test_api_keys_alone_still_give_playable_media_urls(tmp_path, redis_server):
    """A browser's <video> sends no bearer key: with API_KEYS and no SIGNING_KEY, media URLs are
    signed with a key derived from the API keys, and a bearer key still opens media too."""
    svc = Service(str(tmp_path), redis_server, extra_env={"API_KEYS": KEY}, workers=0)
    try:
        video_id = publish_fake_video(svc)
        urls = requests.get(f"{svc.base}/processed/{video_id}", headers=auth(), timeout=10).json()
        url = urls["video_url"]
        assert "sig=" in url and "expires=" in url, url
        assert requests.get(url, timeout=10).status_code == 200  # what the page's player does
        unsigned = url.split("?")[0]
        assert requests.get(unsigned, headers=auth(), timeout=10).status_code == 200
        assert requests.get(unsigned, timeout=10).status_code == 401
        assert requests.get(unsigned, headers=auth("wrong"), timeout=10).status_code == 403
        tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
        assert requests.get(tampered, timeout=10).status_code == 401
    finally:
        codes = svc.stop()
    assert all(c == 0 for c in codes.values()), svc.dump_logs()
    check = subprocess.run([os.environ["IA_BIN"], "check-config"], capture_output=True,
                           text=True, timeout=30, env={**svc.env})
    assert "SIGNING_KEY=(derived from API_KEYS, redacted)" in check.stdout, check.stdout
    assert KEY not in check.stdout
