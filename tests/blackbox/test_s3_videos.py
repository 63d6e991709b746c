"""STORAGE_URL=s3://...: GET /videos, the reviewer's decisions, retention and the evidence_urls of
/processed read the bucket (a real radosgw), so that several API hosts with their own
PROCESSED_DIR and the same Redis and bucket see the same videos and keep every decision.

The metadata objects are published by hand (`interview-api s3 put`, as the worker would: the
metadata last) to get chosen dates, levels and scores at once; test_s3_store.py and
test_s3_delivery.py go through the real worker.
"""
import concurrent.futures
import json
import os
import re
import sys
import time
import uuid

import pytest
import requests

from conftest import SLOW, SANITIZER_ENV, Redis, Service, free_port, s3, s3env
from test_docs import check

KEYS = "alice:key-a,bob:key-b"
ALICE = {"Authorization": "Bearer key-a"}
BOB = {"Authorization": "Bearer key-b"}


class Hosts:
    """Two API hosts (serve only, each its own PROCESSED_DIR) on one Redis and one bucket prefix."""

    def __init__(self, tmp, rgw, extras=({}, {})):
        self.tmp = tmp
        os.makedirs(os.path.join(tmp, "redis"))
        self.redis = Redis(os.path.join(tmp, "redis"))
        self.prefix = f"vid-{uuid.uuid4().hex[:8]}"
        self.env = s3env(rgw, self.prefix)
        self.hosts = [self.spawn(f"host{i}", extra) for i, extra in enumerate(extras)]

    def spawn(self, name, extra):
        env = dict(self.env, API_KEYS=KEYS, **extra)
        env.pop("PATH")
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        return Service(d, self.redis, None, extra_env=env, workers=0)

    def stop(self):
        codes = {}
        for i, h in enumerate(self.hosts):
            codes.update({f"host{i}.{k}": v for k, v in h.stop().items()})
        self.redis.stop()
        return codes

    def logs(self):
        return "\n".join(h.dump_logs() for h in self.hosts)


@pytest.fixture
def hosts(tmp_path, rgw, bucket):
    # The second host lists the bucket 3 keys a request: its listings take several pages.
    h = Hosts(str(tmp_path), rgw, extras=({}, {"S3_LIST_PAGE": "3"}))
    yield h
    codes = h.stop()
    if any(c != 0 for c in codes.values()):
        sys.stderr.write(h.logs())
    assert all(c == 0 for c in codes.values()), f"unclean exit (sanitizers?): {codes}"


def put(env, tmp, key, data, ctype="application/json"):
    path = os.path.join(tmp, f"obj-{uuid.uuid4().hex}")
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else json.dumps(data).encode())
    s3(env, "put", path, key, ctype)
    os.remove(path)


def meta_of(vid, second, level="NO_ALERT", score=10, events=2):
    meta = {
        "schema": 1, "video_id": vid, "task_id": vid,
        "started_at": f"2026-01-01T00:00:{second:02d}.000000Z",
        "completed_at": f"2026-01-01T00:00:{second:02d}.500000Z",
        "source": {"url": f"https://example.test/v/{second}.webm", "duration": 12.0, "video": {}},
        "output": {"duration": 12.0, "bytes": 1, "sha256": "0" * 64, "width": 640, "height": 360},
        "processing": {"mode": "remux"},
    }
    if level is not None:
        kinds = ["face_absent", "multiple_faces", "silence", "phone"]
        meta["analysis"] = {
            "events": [{"id": f"e{i + 1}", "kind": kinds[i % 4], "start": i, "end": i + 1}
                       for i in range(events)],
            "summary": {"final_level": level, "max_score": float(score)},
        }
    return meta


def publish(h, second, level="NO_ALERT", score=10, events=2, env=None):
    """A complete video in the bucket: its poster, then its metadata (what makes it complete)."""
    vid = str(uuid.uuid4())
    env = env or h.env
    put(env, h.tmp, f"processed_{vid}.jpg", b"\xff\xd8\xff\xe0 poster", "image/jpeg")
    put(env, h.tmp, f"processed_{vid}.json", meta_of(vid, second, level, score, events))
    return vid


def listing(env):
    out = s3(env, "ls").stdout.decode().splitlines()
    return sorted(line.split("\t")[0] for line in out)


def get(svc, path, headers=ALICE, **params):
    return requests.get(svc.base + path, headers=headers, params=params, timeout=60)


def patch(svc, vid, eid, body, headers=ALICE):
    return requests.patch(f"{svc.base}/videos/{vid}/events/{eid}", data=json.dumps(body),
                          timeout=60, headers=dict(headers, **{"Content-Type": "application/json"}))


def all_pages(svc, limit, **params):
    pages, cursor = [], None
    while True:
        q = dict(params, limit=limit, **({"cursor": cursor} if cursor else {}))
        r = get(svc, "/videos", **q)
        assert r.status_code == 200, r.text
        check(r, "get", "/videos")
        body = r.json()
        pages.append([v["video_id"] for v in body["videos"]])
        cursor = body["next_cursor"]
        if cursor is None:
            assert body["remaining"] == 0
            return pages


def test_both_hosts_list_the_bucket_in_pages(hosts):
    a, b = hosts.hosts
    assert get(a, "/videos").json() == {"videos": [], "next_cursor": None, "remaining": 0}
    plan = [(1, "NO_ALERT", 5), (2, "CHEATING_DETECTED", 90), (3, "SUSPICIOUS_BEHAVIOR", 45),
            (4, None, 0), (5, "CHEATING_DETECTED", 75)]
    ids = {second: publish(hosts, second, level, score) for second, level, score in plan}
    # A video whose metadata is not there yet is not complete: not listed.
    put(hosts.env, hosts.tmp, f"processed_{uuid.uuid4()}.jpg", b"poster", "image/jpeg")
    newest = [ids[s] for s in range(5, 0, -1)]
    for svc in (a, b):
        pages = all_pages(svc, 2)
        assert [len(p) for p in pages] == [2, 2, 1]
        assert sum(pages, []) == newest
        assert sum(all_pages(svc, 2, sort="score"), []) == [ids[2], ids[5], ids[3], ids[1],
                                                            ids[4]]
        assert sum(all_pages(svc, 5, level="CHEATING_DETECTED"), []) == [ids[5], ids[2]]
        assert sum(all_pages(svc, 5, status="no_events"), []) == [ids[4]]
    item = get(a, "/videos", limit=1).json()["videos"][0]
    thumb = item.pop("thumbnail_url")
    assert thumb.startswith(f"{a.base}/thumbnail/{ids[5]}?expires=") and "&sig=" in thumb
    assert item == {
        "video_id": ids[5], "completed_at": "2026-01-01T00:00:05.500000Z", "duration": 12.0,
        "source": "5.webm", "status": "to_review", "alert_level": "CHEATING_DETECTED",
        "score": 75, "events": 2, "confirmed": 0, "dismissed": 0}
    # Cached between requests, but the bucket stays the truth: a video deleted by another host
    # leaves both lists, one published later enters both.
    assert requests.delete(f"{b.base}/videos/{ids[3]}", headers=ALICE, timeout=60).status_code \
        == 204
    late = publish(hosts, 9)
    for svc in (a, b):
        assert sum(all_pages(svc, 10), []) == [late] + [i for i in newest if i != ids[3]]
    log = open(a.logs[0], "rb").read().decode(errors="replace")
    assert "listed 5 video(s) of the bucket in 1 request(s)" in log
    log = open(b.logs[0], "rb").read().decode(errors="replace")
    assert "listed 5 video(s) of the bucket in 4 request(s)" in log  # 11 keys, 3 a page


def test_concurrent_decisions_from_two_hosts_are_all_kept(hosts):
    a, b = hosts.hosts
    vid = publish(hosts, 1, "SUSPICIOUS_BEHAVIOR", 50, events=24)
    other = publish(hosts, 2)
    # Both hosts cached the video before the decisions exist.
    for svc in (a, b):
        assert get(svc, f"/videos/{vid}/decisions").json()["counts"]["confirmed"] == 0

    def decide(i):
        svc, who = (a, ALICE) if i % 2 else (b, BOB)
        return patch(svc, vid, f"e{i + 1}", {"decision": "confirmed", "note": str(i)}, who)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(decide, range(24)))
    assert [r.status_code for r in answers] == [200] * 24, [r.text for r in answers]
    check(answers[0], "patch", "/videos/{video_id}/events/{event_id}")
    want = {f"e{i + 1}": str(i) for i in range(24)}
    for svc in (a, b):
        r = get(svc, f"/videos/{vid}/decisions")
        check(r, "get", "/videos/{video_id}/decisions")
        dec = r.json()
        assert {k: v["note"] for k, v in dec["decisions"].items()} == want
        assert {v["decided_by"] for v in dec["decisions"].values()} == {"alice", "bob"}
        assert dec["status"] == "reviewed"
        item = [v for v in get(svc, "/videos").json()["videos"] if v["video_id"] == vid][0]
        assert (item["status"], item["confirmed"]) == ("reviewed", 24)
    kept = json.loads(s3(hosts.env, "cat", f"processed_{vid}.decisions.json").stdout)
    assert set(kept["decisions"]) == set(want)
    # No lock is left behind (each released by its owner).
    assert hosts.redis.cli("KEYS", "interview-lock-*", db=1).strip() == ""
    r = patch(a, str(uuid.uuid4()), "e1", {"decision": "confirmed"})
    assert (r.status_code, r.json()["code"]) == (404, "video_not_found")
    assert patch(a, vid, "e99", {"decision": "confirmed"}).json()["code"] == "event_not_found"
    # Deleting the video deletes its decisions with it.
    assert requests.delete(f"{b.base}/videos/{vid}", headers=ALICE, timeout=60).status_code == 204
    assert [k for k in listing(hosts.env) if vid in k] == []
    assert get(a, f"/videos/{vid}/decisions").status_code == 404
    assert [k for k in listing(hosts.env) if other in k] != []


def test_evidence_urls_of_processed_resolve(hosts):
    a, b = hosts.hosts
    vid = publish(hosts, 1, "CHEATING_DETECTED", 80, events=3)
    frame = b"\xff\xd8\xff\xe0 evidence of e2"
    put(hosts.env, hosts.tmp, f"processed_{vid}.evidence-e2.jpg", frame, "image/jpeg")
    for svc in (a, b):
        r = get(svc, f"/processed/{vid}")
        assert r.status_code == 200, r.text
        check(r, "get", "/processed/{video_id}")
        urls = r.json()["evidence_urls"]
        assert list(urls) == ["e2"], urls  # e1 and e3 have no frame
        assert urls["e2"].startswith(f"{svc.base}/evidence/{vid}/e2.jpg?expires=")
        got = requests.get(urls["e2"], timeout=60)  # our 302, then the bucket
        assert got.status_code == 200 and got.content == frame
        assert got.headers["Content-Type"] == "image/jpeg"


def test_an_unreachable_bucket_is_503_never_an_empty_list(hosts, tmp_path):
    a, _ = hosts.hosts
    vid = publish(hosts, 1)
    assert sum(all_pages(a, 5), []) == [vid]
    down = hosts.spawn("down", {"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}",
                                "S3_CONNECT_TIMEOUT_S": "2"})
    hosts.hosts.append(down)
    for method, path, body, spec in (
            ("GET", "/videos", None, "/videos"),
            ("GET", f"/videos/{vid}/decisions", None, "/videos/{video_id}/decisions"),
            ("PATCH", f"/videos/{vid}/events/e1", {"decision": "confirmed"},
             "/videos/{video_id}/events/{event_id}"),
            ("GET", f"/processed/{vid}", None, "/processed/{video_id}")):
        r = requests.request(method, down.base + path, headers=ALICE, json=body, timeout=60)
        check(r, method.lower(), spec)
        assert r.status_code == 503, (path, r.status_code, r.text)
        assert r.json()["code"] == "storage_unavailable", path
        assert r.headers["Retry-After"].isdigit(), path
    # A bucket that does not exist is not an empty list either.
    nobucket = hosts.spawn("nobucket", {"STORAGE_URL": f"s3://no-such-{uuid.uuid4().hex[:8]}/x"})
    hosts.hosts.append(nobucket)
    r = get(nobucket, "/videos")
    assert (r.status_code, r.json()["code"]) == (503, "storage_unavailable"), r.text
    assert r.headers["Retry-After"].isdigit()


def test_retention_removes_old_videos_from_the_bucket(tmp_path, rgw, bucket):
    # Objects written through a radosgw whose clock runs 3 days behind carry an old LastModified.
    past = rgw.gateway_in_the_past("-3d")
    h = Hosts(str(tmp_path), rgw, extras=())
    try:
        past_env = dict(h.env, AWS_ENDPOINT_URL_S3=past, **rgw.faketime_env("-3d"))
        past_env["ASAN_OPTIONS"] = SANITIZER_ENV["ASAN_OPTIONS"] + ":verify_asan_link_order=0"
        old = publish(h, 1, env=past_env)
        put(past_env, h.tmp, f"processed_{old}.evidence-e1.jpg", b"frame", "image/jpeg")
        put(past_env, h.tmp, f"processed_{old}.decisions.json", {"decisions": {}})
        recent = publish(h, 2)
        young_files = str(uuid.uuid4())  # old files without metadata: not a complete video
        put(past_env, h.tmp, f"processed_{young_files}.mp4", b"mp4", "video/mp4")
        h.redis.cli("SET", f"celery-task-meta-{old}", '{"status": "SUCCESS"}', db=1)
        svc = h.spawn("sweeper", {"RETENTION_DAYS": "2", "RETENTION_SWEEP_S": "1"})
        h.hosts.append(svc)
        deadline = time.time() + 60 * SLOW
        while f"video={old} deleted by retention" not in h.logs():
            assert time.time() < deadline, "no retention sweep\n" + h.logs()
            time.sleep(0.2)
        assert re.search(rf"video={old} deleted by retention \(older than 2 day\(s\)\): "
                         r"4 file\(s\)", h.logs()), h.logs()
        keys = listing(h.env)
        assert [k for k in keys if old in k] == []
        assert [k for k in keys if recent in k] == [f"processed_{recent}.jpg",
                                                    f"processed_{recent}.json"]
        assert [k for k in keys if young_files in k] == [f"processed_{young_files}.mp4"]
        assert h.redis.cli("EXISTS", f"celery-task-meta-{old}", db=1).strip() == "0"
        assert f"video={recent}" not in h.logs()
        assert sum(all_pages(svc, 5), []) == [recent]
    finally:
        codes = h.stop()
    assert all(c == 0 for c in codes.values()), f"unclean exit (sanitizers?): {codes}"
