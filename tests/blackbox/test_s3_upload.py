"""STORAGE_URL=s3://...: direct uploads (tus and POST /upload) are staged in the bucket (a real
radosgw) as uploads/<id>/<offset> pieces, with their state in Redis. Two serve processes and a
worker, each with its own PROCESSED_DIR, share only Redis and the bucket: an upload begun on one
serve is continued on the other and processed by the worker; its pieces leave the bucket after
the task."""
import hashlib
import os
import struct
import sys
import threading
import time
import uuid

import pytest
import requests

from conftest import SLOW, Service, free_port, s3, s3env

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"
MIB = 1 << 20


class Cluster:
    """serve A, serve B and a worker (with its own serve), one PROCESSED_DIR each."""

    def __init__(self, tmp, redis, rgw):
        self.tmp = tmp
        self.redis = redis
        self.prefix = f"upl-{uuid.uuid4().hex[:8]}"
        # Pieces must go up in one PUT even above the multipart threshold (5 MiB here).
        self.s3env = s3env(rgw, self.prefix, S3_MULTIPART_THRESHOLD=5 * MIB)
        self.services = {}
        self.a = self.spawn("a", {})
        self.b = self.spawn("b", {})
        self.w = self.spawn("w", {}, workers=1)
        self.w.wait_workers_ready()

    def spawn(self, name, extra, workers=0):
        env = dict(self.s3env)
        env.pop("PATH")
        env.update(extra)
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        svc = Service(d, self.redis, extra_env=env, workers=workers)
        self.services[name] = svc
        return svc

    def listing(self, prefix="", etags=None):
        out = s3(self.s3env, "ls", prefix).stdout.decode().splitlines()
        if etags is not None:
            etags.update({line.split("\t")[0]: line.split("\t")[2] for line in out})
        return {line.split("\t")[0]: int(line.split("\t")[1]) for line in out}

    def stop(self):
        codes = {}
        for name, svc in self.services.items():
            for role, code in svc.stop().items():
                codes[f"{name}.{role}"] = code
        return codes

    def dump_logs(self):
        return "\n".join(svc.dump_logs() for svc in self.services.values())


@pytest.fixture
def cluster(tmp_path, redis_server, rgw, bucket, request):
    c = Cluster(str(tmp_path), redis_server, rgw)
    yield c
    codes = c.stop()
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    if failed or any(v != 0 for v in codes.values()):
        sys.stderr.write(c.dump_logs())
    assert all(v == 0 for v in codes.values()), f"unclean exit (sanitizers?): {codes}"


def padded_clip(media, size):
    """clip.mp4 followed by a top-level 'free' box: a valid MP4 of exactly size bytes."""
    clip = (media / "clip.mp4").read_bytes()
    pad = size - len(clip)
    assert pad > 8
    return clip + struct.pack(">I", pad) + b"free" + os.urandom(pad - 8)


def create(svc, length):
    h = dict(TUS, **{"Upload-Length": str(length)})
    r = requests.post(svc.base + "/uploads", headers=h, timeout=10)
    assert r.status_code == 201, r.text
    return r.headers["Location"].rsplit("/", 1)[1]


def patch(svc, upload_id, offset, data):
    h = dict(TUS, **{"Upload-Offset": str(offset), "Content-Type": OCTETS})
    return requests.patch(f"{svc.base}/uploads/{upload_id}", data=data, headers=h,
                          timeout=120 * SLOW)


def head(svc, upload_id):
    return requests.head(f"{svc.base}/uploads/{upload_id}", headers=TUS, timeout=10)


def pieces(cluster, upload_id):
    return cluster.listing(f"uploads/{upload_id}/")


def no_local_staging(svc):
    """Nothing of an upload on this host's disk: no .uploads/, no temporary file in .work/."""
    assert not os.path.exists(os.path.join(svc.processed, ".uploads"))
    work = os.path.join(svc.processed, ".work")
    left = [n for n in os.listdir(work) if n.startswith("upload-")] if os.path.isdir(work) else []
    assert left == [], left


def wait_pieces_gone(cluster, upload_id, timeout=30):
    deadline = time.time() + timeout * SLOW
    while pieces(cluster, upload_id) and time.time() < deadline:
        time.sleep(0.2)
    return pieces(cluster, upload_id)


def check_processed(cluster, task_id, data, upload_id):
    code, body = cluster.w.wait_done(task_id, timeout=240)
    assert code == 200 and body["status"] == "success", (body, cluster.dump_logs())
    video_id = body["video_id"]
    objects = cluster.listing("processed_")
    assert f"processed_{video_id}.mp4" in objects and f"processed_{video_id}.json" in objects
    meta = requests.get(f"{cluster.a.base}/metadata/{video_id}", timeout=30).json()
    assert meta["source"]["url"] == "upload:" + upload_id
    assert meta["source"]["bytes"] == len(data)
    assert meta["source"]["sha256"] == hashlib.sha256(data).hexdigest()
    # The worker read the bytes from the bucket (it shares no disk with the serves).
    log = open(cluster.w.logs[1], "rb").read().decode(errors="replace")
    assert f"upload={upload_id} read from the bucket: {len(data)} bytes" in log
    # The staged pieces leave the bucket after the task, and the upload is forgotten.
    assert wait_pieces_gone(cluster, upload_id) == {}, "the staged upload outlived its task"
    assert head(cluster.a, upload_id).status_code == 404
    assert head(cluster.b, upload_id).status_code == 404
    for svc in (cluster.a, cluster.b, cluster.w):
        no_local_staging(svc)


def test_tus_continued_on_another_serve(cluster, media):
    """8 MiB chunks and a small non-final one, alternating between two serves."""
    data = padded_clip(media, 20 * MIB + 12345)
    upload_id = create(cluster.a, len(data))
    chunks = [(cluster.a, 0, 8 * MIB), (cluster.b, 8 * MIB, 1 * MIB),
              (cluster.a, 9 * MIB, 8 * MIB), (cluster.b, 17 * MIB, len(data) - 17 * MIB)]
    r = None
    for i, (svc, start, n) in enumerate(chunks):
        other = cluster.b if svc is cluster.a else cluster.a
        assert head(svc, upload_id).headers["Upload-Offset"] == str(start)
        # A PATCH at a stale offset, on either serve, is tus's 409 with the real offset.
        if start > 0:
            bad = patch(other, upload_id, start - 1, data[start - 1:start + 10])
            assert bad.status_code == 409, bad.text
            assert bad.json()["code"] == "offset_mismatch"
            assert bad.headers["Upload-Offset"] == str(start)
        r = patch(svc, upload_id, start, data[start:start + n])
        assert r.status_code == 204, r.text
        assert r.headers["Upload-Offset"] == str(start + n)
        if i < len(chunks) - 1:
            assert "Upload-Task-Id" not in r.headers
            # The bytes are in the bucket, one piece per PATCH, none on the serve's disk.
            etags = {}
            got = cluster.listing(f"uploads/{upload_id}/", etags)
            assert sorted(got.values()) == sorted(c[2] for c in chunks[:i + 1]), got
            assert all("-" not in e for e in etags.values()), etags  # no multipart ETag
            no_local_staging(svc)
    task_id = r.headers["Upload-Task-Id"]
    # The other serve knows the task of the finished upload.
    h = head(cluster.a, upload_id)
    assert h.status_code == 200 and h.headers["Upload-Task-Id"] == task_id
    assert h.headers["Upload-Offset"] == str(len(data))
    again = patch(cluster.a, upload_id, len(data), b"")
    assert again.status_code in (204, 404)
    if again.status_code == 204:
        assert again.headers["Upload-Task-Id"] == task_id
    check_processed(cluster, task_id, data, upload_id)


def test_concurrent_patches_on_two_serves(cluster, media):
    """Two PATCHes at the same offset on two serves: one is taken, the other is a 409."""
    data = padded_clip(media, 6 * MIB)
    upload_id = create(cluster.b, len(data))
    results = {}

    def send(name, svc):
        results[name] = patch(svc, upload_id, 0, data[:4 * MIB])

    threads = [threading.Thread(target=send, args=(n, s))
               for n, s in (("a", cluster.a), ("b", cluster.b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results.values())
    assert codes == [204, 409], {n: (r.status_code, r.text) for n, r in results.items()}
    assert head(cluster.a, upload_id).headers["Upload-Offset"] == str(4 * MIB)
    assert list(pieces(cluster, upload_id).values()) == [4 * MIB]
    r = patch(cluster.a, upload_id, 4 * MIB, data[4 * MIB:])
    assert r.status_code == 204, r.text
    check_processed(cluster, r.headers["Upload-Task-Id"], data, upload_id)


def test_simple_upload_to_the_bucket(cluster, media):
    data = (media / "clip.mp4").read_bytes()
    r = requests.post(cluster.b.base + "/upload", data=data,
                      headers={"Content-Type": "video/mp4"}, timeout=60)
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    staged = [k for k in cluster.listing("uploads/")]
    assert len(staged) <= 1  # the worker may be done with it already
    code, body = cluster.w.wait_done(task_id, timeout=240)
    assert code == 200 and body["status"] == "success", (body, cluster.dump_logs())
    meta = requests.get(f"{cluster.a.base}/metadata/{body['video_id']}", timeout=30).json()
    assert meta["source"]["sha256"] == hashlib.sha256(data).hexdigest()
    upload_id = meta["source"]["url"].split(":", 1)[1]
    assert wait_pieces_gone(cluster, upload_id) == {}
    assert cluster.listing("uploads/") == {}
    for svc in (cluster.a, cluster.b, cluster.w):
        no_local_staging(svc)


def test_unreachable_bucket_is_503(cluster, media):
    down = cluster.spawn("down", {"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}",
                                  "S3_CONNECT_TIMEOUT_S": "2"})
    data = (media / "clip.mp4").read_bytes()
    upload_id = create(down, len(data))  # the state is in Redis only
    r = patch(down, upload_id, 0, data[:1000])
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "storage_unavailable"
    assert r.headers["Retry-After"].isdigit()
    # Nothing moved: the upload goes on where it was, through a serve that reaches the bucket.
    h = head(down, upload_id)
    assert h.status_code == 200 and h.headers["Upload-Offset"] == "0"
    assert patch(cluster.a, upload_id, 0, data[:1000]).status_code == 204
    r = requests.post(down.base + "/upload", data=data, headers={"Content-Type": "video/mp4"},
                      timeout=60)
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "storage_unavailable"
    no_local_staging(down)


def test_abandoned_uploads_are_swept_from_the_bucket(cluster):
    svc = cluster.spawn("expiring", {"UPLOAD_EXPIRE_S": "1"})
    upload_id = create(svc, 1000)
    assert patch(svc, upload_id, 0, b"x" * 10).status_code == 204
    assert list(pieces(cluster, upload_id).values()) == [10]
    time.sleep(2.5)
    fresh = create(svc, 1000)  # creating an upload sweeps stale ones
    assert pieces(cluster, upload_id) == {}
    assert head(svc, upload_id).status_code == 404
    assert head(cluster.a, upload_id).status_code == 404
    assert head(svc, fresh).status_code == 200
    log = open(svc.logs[0], "rb").read().decode(errors="replace")
    assert f"upload={upload_id} removing a stale upload from the bucket" in log


def test_unreachable_redis_is_503_not_404(cluster, redis_server):
    upload_id = create(cluster.a, 1000)
    assert patch(cluster.a, upload_id, 0, b"x" * 10).status_code == 204
    redis_server.stop()
    try:
        h = head(cluster.b, upload_id)
        assert h.status_code == 503, h.status_code
        assert h.headers["Retry-After"].isdigit()
        r = patch(cluster.b, upload_id, 10, b"y" * 10)
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "broker_unavailable"
    finally:
        redis_server.start()
