"""Delivery from an S3 bucket (a real radosgw on loopback): with STORAGE_URL set, the media
routes find the video in the bucket and answer with a 302 to a presigned URL
(MEDIA_DELIVERY=redirect) or stream the object through serve (MEDIA_DELIVERY=proxy). Range,
If-None-Match and HEAD are answered by the store; our own signed URLs are checked first; a
missing video is our 404, an unreachable bucket 503, never a false 404.

One worker publishes a clip once for the module; each mode is a serve process of its own on the
same Redis and bucket."""
import hashlib
import os
import sys
import time
import urllib.parse
import uuid

import pytest
import requests

from conftest import SLOW, Redis, Service, free_port, s3, s3env

MODES = ["redirect", "proxy"]


class World:
    """A clip published to the bucket by a real worker, and serve processes by mode."""

    def __init__(self, tmp, rgw, file_server):
        self.tmp = tmp
        self.rgw = rgw
        self.file_server = file_server
        os.makedirs(os.path.join(tmp, "redis"))
        self.redis = Redis(os.path.join(tmp, "redis"))
        self.prefix = f"dlv-{uuid.uuid4().hex[:8]}"
        self.env = s3env(rgw, self.prefix)
        self.services = {}
        self.publisher = self.spawn("publisher", {}, workers=1)
        r = requests.post(self.publisher.base + "/submit",
                          json={"video_url": file_server.url("clip.mp4"), "analysis": False},
                          timeout=10)
        assert r.status_code in (200, 202), r.text
        self.task_id = r.json()["task_id"]
        code, body = self.publisher.wait_done(self.task_id)
        assert code == 200 and body["status"] == "success", body
        self.video_id = body["video_id"]
        self.mp4 = s3(self.env, "cat", f"processed_{self.video_id}.mp4").stdout
        assert len(self.mp4) > 1000

    def spawn(self, name, extra, workers=0):
        env = dict(self.env)
        env.pop("PATH")
        env.update(extra)
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        svc = Service(d, self.redis, self.file_server, extra_env=env, workers=workers)
        self.services[name] = svc
        return svc

    def serve(self, mode):
        if mode not in self.services:
            self.spawn(mode, {"MEDIA_DELIVERY": mode})
        return self.services[mode]

    def stop(self):
        codes = {}
        for name, svc in self.services.items():
            for role, code in svc.stop().items():
                codes[f"{name}.{role}"] = code
        self.redis.stop()
        return codes


@pytest.fixture(scope="module")
def world(tmp_path_factory, rgw, bucket, file_server, media):
    w = World(str(tmp_path_factory.mktemp("s3dlv")), rgw, file_server)
    yield w
    codes = w.stop()
    if any(c != 0 for c in codes.values()):
        for svc in w.services.values():
            sys.stderr.write(svc.dump_logs())
    assert all(c == 0 for c in codes.values()), f"unclean exit (sanitizers?): {codes}"


def get(svc, mode, path, method="GET", headers=None):
    """The final answer to method path: in redirect mode the 302 is checked and followed by
    hand with the same request headers (as a browser would); in proxy mode serve answers."""
    headers = headers or {}
    r = requests.request(method, svc.base + path, headers=headers, allow_redirects=False,
                         timeout=30)
    if mode != "redirect" or r.status_code != 302:
        return r
    assert r.headers["Cache-Control"] == "no-store"
    location = r.headers["Location"]
    assert location.startswith(svc.env["AWS_ENDPOINT_URL_S3"] + "/"), location
    return requests.request(method, location, headers=headers, allow_redirects=False,
                            timeout=30)


def sha(b):
    return hashlib.sha256(b).hexdigest()


@pytest.mark.parametrize("mode", MODES)
def test_full_get_is_the_object(world, mode):
    svc = world.serve(mode)
    r = get(svc, mode, f"/stream/{world.video_id}")
    assert r.status_code == 200, r.text
    assert sha(r.content) == sha(world.mp4)
    assert int(r.headers["Content-Length"]) == len(world.mp4)
    assert r.headers["Content-Type"] == "video/mp4"
    assert r.headers["ETag"] and r.headers["Last-Modified"]


@pytest.mark.parametrize("mode", MODES)
def test_range_gives_206_with_the_right_bytes(world, mode):
    svc = world.serve(mode)
    n = len(world.mp4)
    r = get(svc, mode, f"/stream/{world.video_id}", headers={"Range": "bytes=100-1099"})
    assert r.status_code == 206, r.text
    assert r.content == world.mp4[100:1100]
    assert r.headers["Content-Range"] == f"bytes 100-1099/{n}"
    assert int(r.headers["Content-Length"]) == 1000
    r = get(svc, mode, f"/stream/{world.video_id}", headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == world.mp4[-10:]
    assert r.headers["Content-Range"] == f"bytes {n - 10}-{n - 1}/{n}"


@pytest.mark.parametrize("mode", MODES)
def test_unsatisfiable_range_is_416(world, mode):
    svc = world.serve(mode)
    n = len(world.mp4)
    r = get(svc, mode, f"/stream/{world.video_id}", headers={"Range": f"bytes={n}-"})
    assert r.status_code == 416, (r.status_code, r.text)


@pytest.mark.parametrize("mode", MODES)
def test_if_none_match_is_304(world, mode):
    svc = world.serve(mode)
    etag = get(svc, mode, f"/stream/{world.video_id}").headers["ETag"]
    r = get(svc, mode, f"/stream/{world.video_id}", headers={"If-None-Match": etag})
    assert r.status_code == 304, r.status_code
    assert r.content == b""
    r = get(svc, mode, f"/stream/{world.video_id}", headers={"If-None-Match": '"other"'})
    assert r.status_code == 200 and sha(r.content) == sha(world.mp4)


@pytest.mark.parametrize("mode", MODES)
def test_head(world, mode):
    svc = world.serve(mode)
    r = get(svc, mode, f"/stream/{world.video_id}", method="HEAD")
    assert r.status_code == 200, r.status_code
    assert int(r.headers["Content-Length"]) == len(world.mp4)
    assert r.content == b""


def test_redirect_of_a_head_is_signed_for_head_only(world):
    svc = world.serve("redirect")
    r = requests.head(f"{svc.base}/stream/{world.video_id}", timeout=30)
    assert r.status_code == 302
    location = r.headers["Location"]
    assert requests.head(location, timeout=30).status_code == 200
    # The store checks the method signed in: the HEAD URL does not open a GET.
    assert requests.get(location, timeout=30).status_code == 403
    r = requests.get(f"{svc.base}/stream/{world.video_id}", allow_redirects=False, timeout=30)
    assert requests.head(r.headers["Location"], timeout=30).status_code == 403


@pytest.mark.parametrize("mode", MODES)
def test_download_is_an_attachment(world, mode):
    svc = world.serve(mode)
    r = get(svc, mode, f"/download/{world.video_id}")
    assert r.status_code == 200
    assert r.headers["Content-Disposition"] == \
        f'attachment; filename="processed_{world.video_id}.mp4"'
    assert sha(r.content) == sha(world.mp4)
    if mode == "redirect":
        r = requests.get(f"{svc.base}/download/{world.video_id}", allow_redirects=False,
                         timeout=30)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(r.headers["Location"]).query)
        assert query["response-content-disposition"] == \
            [f'attachment; filename="processed_{world.video_id}.mp4"']
        assert query["response-content-type"] == ["video/mp4"]  # ours, by route


@pytest.mark.parametrize("mode", MODES)
def test_metadata_thumbnail_processed_and_status(world, mode):
    svc = world.serve(mode)
    r = get(svc, mode, f"/metadata/{world.video_id}")
    assert r.status_code == 200 and r.json()["video_id"] == world.video_id
    assert r.headers["Content-Type"] == "application/json"
    assert "Content-Disposition" not in r.headers
    r = get(svc, mode, f"/download/{world.video_id}/metadata")
    assert r.status_code == 200 and r.json()["video_id"] == world.video_id
    assert r.headers["Content-Disposition"] == \
        f'attachment; filename="processed_{world.video_id}.json"'
    r = get(svc, mode, f"/thumbnail/{world.video_id}")
    assert r.status_code == 200 and r.content[:3] == b"\xff\xd8\xff"
    assert r.headers["Content-Type"] == "image/jpeg"
    r = requests.get(f"{svc.base}/processed/{world.video_id}", timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["video_url"].endswith(f"/stream/{world.video_id}")
    r = requests.get(f"{svc.base}/status/{world.task_id}", timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "success", r.text


@pytest.mark.parametrize("mode", MODES)
def test_missing_video_and_part_are_our_404(world, mode):
    svc = world.serve(mode)
    missing = str(uuid.uuid4())
    for path in (f"/stream/{missing}", f"/download/{missing}", f"/metadata/{missing}",
                 f"/thumbnail/{missing}", f"/processed/{missing}"):
        r = requests.get(svc.base + path, allow_redirects=False, timeout=30)
        assert r.status_code == 404, (path, r.status_code)
        assert r.json()["code"] == "video_not_found", path
        assert "Location" not in r.headers
    # The video exists but was processed without analysis: the part's own code.
    r = requests.get(f"{svc.base}/events/{world.video_id}.vtt", allow_redirects=False,
                     timeout=30)
    assert r.status_code == 404 and r.json()["code"] == "analysis_not_found", r.text
    r = requests.head(f"{svc.base}/stream/{missing}", allow_redirects=False, timeout=30)
    assert r.status_code == 404


@pytest.mark.parametrize("mode", MODES)
def test_our_signature_is_checked_first(world, mode):
    svc = world.serve(f"signed-{mode}") if f"signed-{mode}" in world.services else \
        world.spawn(f"signed-{mode}", {"MEDIA_DELIVERY": mode, "SIGNING_KEY": "k" * 32})
    r = requests.get(f"{svc.base}/stream/{world.video_id}", allow_redirects=False, timeout=30)
    assert r.status_code == 403 and r.json()["code"] == "invalid_signature", r.text
    assert "Location" not in r.headers
    signed = requests.get(f"{svc.base}/processed/{world.video_id}", timeout=30).json()
    path = signed["video_url"][len(svc.base):]
    assert "sig=" in path
    r = get(svc, mode, path, headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == world.mp4[:100]
    # A signature for another video does not open this one.
    other = path.replace(world.video_id, str(uuid.uuid4()))
    r = requests.get(svc.base + other, allow_redirects=False, timeout=30)
    assert r.status_code == 403


@pytest.mark.parametrize("mode", MODES)
def test_unreachable_bucket_is_503_not_404(world, mode):
    closed = free_port()
    svc = world.spawn(f"down-{mode}", {"MEDIA_DELIVERY": mode,
                                       "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{closed}",
                                       "S3_CONNECT_TIMEOUT_S": "2"})
    for path in (f"/stream/{world.video_id}", f"/download/{world.video_id}",
                 f"/metadata/{world.video_id}", f"/thumbnail/{world.video_id}",
                 f"/events/{world.video_id}.vtt", f"/processed/{world.video_id}",
                 f"/status/{world.task_id}", f"/stream/{uuid.uuid4()}"):
        r = requests.get(svc.base + path, allow_redirects=False, timeout=60)
        assert r.status_code == 503, (path, r.status_code, r.text)
        assert r.json()["code"] == "storage_unavailable", path
        assert r.headers["Retry-After"].isdigit(), path


MEDIA_PATHS = ["/stream/{video_id}", "/download/{video_id}", "/download/{video_id}/metadata",
               "/metadata/{video_id}", "/thumbnail/{video_id}", "/events/{video_id}.vtt",
               "/review/{video_id}", "/evidence/{video_id}/{event_id}.jpg"]


@pytest.mark.parametrize("mode", MODES)
def test_answers_have_their_documented_shapes(world, mode):
    from test_docs import check
    svc = world.serve(mode)
    down = world.services.get(f"down-{mode}") or world.spawn(
        f"down-{mode}", {"MEDIA_DELIVERY": mode,
                         "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}"})
    statuses = set()
    for spec in MEDIA_PATHS + ["/processed/{video_id}"]:
        path = spec.replace("{video_id}", world.video_id).replace("{event_id}", "e1")
        for s in (svc, down):
            for method in ("get", "head"):
                r = requests.request(method, s.base + path, allow_redirects=False, timeout=60)
                if method in world_spec_methods(spec):
                    statuses.add(check(r, method, spec).status_code)
    expected = {200, 404, 503} | ({302} if mode == "redirect" else set())
    assert expected <= statuses, statuses


def world_spec_methods(spec):
    from test_docs import SPEC
    return set(SPEC["paths"][spec].keys()) & {"get", "head"}


# The proxy against nginx, with the cases of test_delivery_vs_nginx.py whose headers the proxy
# takes into account (Range, If-Range, If-None-Match): the same bytes in the bucket and in
# nginx's root (its mtime set to the object's Last-Modified), each server's own ETag in the
# validators. (radosgw alone answers many of these differently: it ignores If-Range, weak and
# listed ETags and "*", takes "bytes=-0" or "bytes=0-1,2-3" as ranges, and sends no validators
# on a 304 and no Content-Range on a 416; so the proxy decides, and asks the bucket for bytes.)
import email.utils  # noqa: E402
import http.client  # noqa: E402

from test_delivery_vs_nginx import CASES, DATE, ETAG, FILE_SIZE, MULTI  # noqa: E402

FORWARDED = {"Range", "If-Range", "If-None-Match"}
PROXY_CASES = [c for c in CASES if set(c[1]) <= FORWARDED]


@pytest.fixture(scope="module")
def twin(world, media):
    """A FILE_SIZE object in the bucket (a complete video) and the same bytes under nginx."""
    vid = str(uuid.uuid4())
    data = os.urandom(FILE_SIZE)
    path = os.path.join(world.tmp, "twin.mp4")
    with open(path, "wb") as f:
        f.write(data)
    s3(world.env, "put", path, f"processed_{vid}.mp4", "video/mp4")
    meta = os.path.join(world.tmp, "twin.json")
    with open(meta, "w") as f:
        f.write('{"video_id": "%s"}' % vid)
    s3(world.env, "put", meta, f"processed_{vid}.json", "application/json")
    svc = world.serve("proxy")
    head = requests.head(f"{svc.base}/stream/{vid}", timeout=30)
    assert head.status_code == 200, head.text
    name = f"twin-{vid}.mp4"
    local = os.path.join(str(media), name)
    with open(local, "wb") as f:
        f.write(data)
    mtime = email.utils.parsedate_to_datetime(head.headers["Last-Modified"]).timestamp()
    os.utime(local, (mtime, mtime))
    yield {"id": vid, "data": data, "name": name, "etag": head.headers["ETag"],
           "date": head.headers["Last-Modified"]}
    os.unlink(local)


def raw_fetch(host, port, method, path, headers):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def own(headers, etag, date):
    return {k: v.replace(ETAG, etag).replace(DATE, date) for k, v in headers.items()}


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("name,headers,flags", PROXY_CASES, ids=[c[0] for c in PROXY_CASES])
def test_proxy_same_as_nginx(world, twin, file_server, method, name, headers, flags):
    svc = world.serve("proxy")
    port = int(svc.base.rsplit(":", 1)[1])
    ours = raw_fetch("127.0.0.1", port, method, f"/stream/{twin['id']}",
                     own(headers, twin["etag"], twin["date"]))
    ngx_etag = '"%x-%x"' % (int(email.utils.parsedate_to_datetime(twin["date"]).timestamp()),
                            FILE_SIZE)
    ngx = raw_fetch("127.0.0.2", file_server.port, method, "/" + twin["name"],
                    own(headers, ngx_etag, twin["date"]))
    why = f"\ncase {name!r} {method} {headers}\n nginx: {ngx[0]} {ngx[1]}\n ours:  {ours[0]} {ours[1]}"
    if MULTI in flags:  # as for a local file: the whole object, not multipart/byteranges
        assert ngx[0] == 206 and ours[0] == 200, why
        assert ours[1]["content-length"] == str(FILE_SIZE), why
        assert ours[2] == (twin["data"] if method == "GET" else b""), why
        return
    assert ours[0] == ngx[0], why
    for h in ("content-range", "accept-ranges", "last-modified"):
        assert ours[1].get(h) == ngx[1].get(h), f"{h}{why}"
    assert ("etag" in ours[1]) == ("etag" in ngx[1]), why
    if ngx[0] in (412, 416):
        assert ours[2] == b"", why
        return
    assert ours[1].get("content-length") == ngx[1].get("content-length"), why
    assert ours[2] == ngx[2], why


BIG = 64 << 20


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def big(world):
    """A 64 MiB video in the bucket, and a proxy whose ASan keeps no freed memory aside (its
    quarantine would otherwise hold every piece that went through)."""
    vid = str(uuid.uuid4())
    data = os.urandom(BIG)
    path = os.path.join(world.tmp, "big.mp4")
    with open(path, "wb") as f:
        f.write(data)
    s3(world.env, "put", path, f"processed_{vid}.mp4", "video/mp4")
    os.unlink(path)
    meta = os.path.join(world.tmp, "big.json")
    with open(meta, "w") as f:
        f.write('{"video_id": "%s"}' % vid)
    s3(world.env, "put", meta, f"processed_{vid}.json", "application/json")
    from conftest import SANITIZER_ENV
    asan = SANITIZER_ENV["ASAN_OPTIONS"] + ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
    svc = world.spawn("proxy-big", {"MEDIA_DELIVERY": "proxy", "ASAN_OPTIONS": asan})
    return {"id": vid, "sha": sha(data), "svc": svc}


def test_proxy_memory_stays_bounded_for_a_slow_client(big):
    svc = big["svc"]
    pid = svc.serve.pid
    warm = requests.get(f"{svc.base}/stream/{big['id']}", headers={"Range": "bytes=0-99999"},
                        timeout=60)
    assert warm.status_code == 206 and len(warm.content) == 100000
    before = rss_kib(pid)
    h = hashlib.sha256()
    peak = before
    with requests.get(f"{svc.base}/stream/{big['id']}", stream=True, timeout=120) as r:
        assert r.status_code == 200 and int(r.headers["Content-Length"]) == BIG
        it = r.iter_content(1 << 20)
        for i, chunk in enumerate(it):
            h.update(chunk)
            if i in (1, 20, 40):
                time.sleep(2)  # the client stalls: serve must not read ahead of it
                peak = max(peak, rss_kib(pid))
    assert h.hexdigest() == big["sha"]
    # A server that buffered ahead of the client would hold most of the 64 MiB here.
    assert peak - before < 16 * 1024, (before, peak)


def test_proxy_client_leaving_mid_stream_stops_the_transfer(big):
    svc = big["svc"]
    log = svc.logs[0]
    cut_before = open(log, "rb").read().count(b"streamed reply cut")
    r = requests.get(f"{svc.base}/stream/{big['id']}", stream=True, timeout=120)
    assert r.status_code == 200
    assert len(next(r.iter_content(1 << 20))) > 0
    r.close()  # leaves with 63 MiB unsent
    deadline = time.time() + 60 * SLOW
    while open(log, "rb").read().count(b"streamed reply cut") == cut_before:
        assert time.time() < deadline, svc.dump_logs()
        time.sleep(0.1)
    # serve goes on: the next client gets the whole object.
    full = requests.get(f"{svc.base}/stream/{big['id']}", timeout=120)
    assert full.status_code == 200 and sha(full.content) == big["sha"]


def test_redirect_lives_signed_url_ttl_s_at_most_seven_days(world):
    def expires(svc):
        r = requests.get(f"{svc.base}/stream/{world.video_id}", allow_redirects=False,
                         timeout=30)
        assert r.status_code == 302
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(r.headers["Location"]).query)
        return int(query["X-Amz-Expires"][0]), r.headers["Location"]

    assert expires(world.serve("redirect"))[0] == 3600  # SIGNED_URL_TTL_S's default
    long_lived = world.spawn("redirect-year", {"SIGNED_URL_TTL_S": "31536000"})
    seconds, location = expires(long_lived)
    assert seconds == 604800  # S3 refuses presigned URLs longer than 7 days
    r = requests.get(location, timeout=30)
    assert r.status_code == 200 and sha(r.content) == sha(world.mp4)


def test_proxy_stream_in_flight_at_shutdown_ends_cleanly(world, big):
    svc = world.spawn("proxy-stop", {"MEDIA_DELIVERY": "proxy"})
    r = requests.get(f"{svc.base}/stream/{big['id']}", stream=True, timeout=120)
    assert r.status_code == 200
    assert len(next(r.iter_content(1 << 20))) > 0  # then stalls, with the stream's window full
    from conftest import stop_process
    code = stop_process(svc.serve)
    r.close()
    assert code == 0, svc.dump_logs()  # no leak, no use after free (ASan), no hang
    # The loop ended the stream (its producer told to stop) before closing the connection.
    assert b"streamed reply cut" in open(svc.logs[0], "rb").read(), svc.dump_logs()
