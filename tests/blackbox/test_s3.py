"""The S3 client (store/s3.c, our SigV4) against a real radosgw, through `interview-api s3`.

The radosgw checks signatures (a wrong secret gets 403), serves Range and presigned URLs; it is
started once per session by the `rgw` fixture. Hostile answers come from a small local server.
"""
import hashlib
import http.server
import os
import subprocess
import threading
import time
import uuid

import pytest
import requests

from conftest import BUCKET, IA_BIN, SLOW, free_port, s3, s3env


@pytest.fixture
def prefix():
    return f"t-{uuid.uuid4().hex[:12]}"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def random_file(path, size):
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    return sha256_file(path)


def test_radosgw_started_once_and_checks_signatures(rgw, bucket):
    assert rgw.start_seconds > 0
    # Anonymous requests are refused: the store checks who asks.
    r = requests.get(f"{rgw.endpoint}/{BUCKET}/", timeout=10)
    assert r.status_code == 403


def test_put_get_round_trip(rgw, bucket, prefix, tmp_path):
    env = s3env(rgw, prefix)
    src = tmp_path / "src.bin"
    digest = random_file(src, 3 * 1024 * 1024 + 17)
    s3(env, "put", str(src), "videos/a b+c.bin", "video/mp4")
    dst = tmp_path / "dst.bin"
    s3(env, "get", "videos/a b+c.bin", str(dst))
    assert sha256_file(dst) == digest
    head = s3(env, "head", "videos/a b+c.bin").stdout.decode()
    fields = dict(line.split("=", 1) for line in head.splitlines())
    assert fields["size"] == str(3 * 1024 * 1024 + 17)
    assert fields["etag"].startswith('"') and "-" not in fields["etag"]  # one PUT, no parts
    assert fields["last_modified"].endswith("GMT")
    # The key is under STORAGE_URL's prefix, as a raw request sees it.
    listed = s3(s3env(rgw, ""), "ls", prefix + "/").stdout.decode().splitlines()
    assert [line.split("\t")[0] for line in listed] == [f"{prefix}/videos/a b+c.bin"]
    small = tmp_path / "small.json"
    small.write_bytes(b'{"ok": true}\n')
    s3(env, "put", str(small), "meta.json", "application/json")
    assert s3(env, "cat", "meta.json").stdout == b'{"ok": true}\n'


def test_multipart_above_threshold(rgw, bucket, prefix, tmp_path):
    five = 5 * 1024 * 1024
    env = s3env(rgw, prefix, S3_MULTIPART_THRESHOLD=five, S3_PART_SIZE=five)
    src = tmp_path / "big.bin"
    digest = random_file(src, 2 * five + 12345)
    s3(env, "put", str(src), "big.bin")
    head = dict(line.split("=", 1) for line in
                s3(env, "head", "big.bin").stdout.decode().splitlines())
    assert head["size"] == str(2 * five + 12345)
    assert head["etag"].endswith('-3"'), head  # S3's ETag of a 3-part upload
    dst = tmp_path / "back.bin"
    s3(env, "get", "big.bin", str(dst))
    assert sha256_file(dst) == digest
    # Exactly at the threshold is multipart too; one byte below is not.
    exact = tmp_path / "exact.bin"
    random_file(exact, five)
    s3(env, "put", str(exact), "exact.bin")
    assert s3(env, "head", "exact.bin").stdout.decode().count('-1"') == 1
    below = tmp_path / "below.bin"
    random_file(below, five - 1)
    s3(env, "put", str(below), "below.bin")
    assert "-" not in s3(env, "head", "below.bin").stdout.decode().split("etag=")[1].split("\n")[0]


def test_list_pages_and_delete(rgw, bucket, prefix, tmp_path):
    env = s3env(rgw, prefix, S3_LIST_PAGE=2)
    f = tmp_path / "x"
    names = [f"k{i}&<{i}>.txt" for i in range(5)] + ["other/z.txt"]
    for name in names:
        f.write_bytes(name.encode())
        s3(env, "put", str(f), name)
    out = s3(env, "ls", "k")
    rows = [line.split("\t") for line in out.stdout.decode().splitlines()]
    assert [r[0] for r in rows] == sorted(n for n in names if n.startswith("k"))
    assert [int(r[1]) for r in rows] == [len(r[0]) for r in rows]
    assert out.stderr.decode().strip().endswith("pages=3")
    everything = s3(env, "ls")
    assert len(everything.stdout.decode().splitlines()) == 6
    assert everything.stderr.decode().strip().endswith("pages=3")
    s3(env, "rm", "k2&<2>.txt")
    gone = s3(env, "head", "k2&<2>.txt", check=False)
    assert gone.returncode == 1 and b"not_found" in gone.stderr
    # Deleting a key that is not there is not an error (S3 answers 204 either way).
    s3(env, "rm", "k2&<2>.txt")
    missing = s3(env, "cat", "never-there", check=False)
    assert missing.returncode == 1 and b"not_found" in missing.stderr
    assert len(s3(env, "ls").stdout.decode().splitlines()) == 5


def test_keys_are_sent_as_signed(rgw, bucket, prefix, tmp_path):
    """Reserved characters, dot segments and non-ASCII in keys: encoded once, never squashed."""
    env = s3env(rgw, prefix)
    f = tmp_path / "f"
    keys = ["a/../b.txt", "./c", "d//e", "x;y=z&w+v", "sp ace?#%.txt", "caf\u00e9/\u00fc.mp4"]
    for i, key in enumerate(keys):
        f.write_bytes(str(i).encode())
        s3(env, "put", str(f), key)
    for i, key in enumerate(keys):
        assert s3(env, "cat", key).stdout == str(i).encode(), key
    listed = [line.split("\t")[0] for line in s3(env, "ls").stdout.decode().splitlines()]
    # Bytes outside printable ASCII are printed escaped (\xNN), as log lines print them.
    escaped = [k.encode().decode("latin-1").encode("ascii", "backslashreplace").decode()
               for k in keys]
    assert "caf\\xc3\\xa9/\\xc3\\xbc.mp4" in escaped
    assert sorted(listed) == sorted(escaped)


def test_presigned_get_range_and_head(rgw, bucket, prefix, tmp_path):
    env = s3env(rgw, prefix)
    src = tmp_path / "clip.bin"
    data = os.urandom(100000)
    src.write_bytes(data)
    s3(env, "put", str(src), "clip v1.mp4", "video/mp4")
    url = s3(env, "presign", "clip v1.mp4", "120", "--download", "interview 1.mp4")
    url = url.stdout.decode().strip()
    assert url.startswith(f"{rgw.endpoint}/{BUCKET}/{prefix}/clip%20v1.mp4?")
    assert "X-Amz-Expires=120" in url and "response-content-disposition=" in url
    r = requests.get(url, timeout=30)
    assert r.status_code == 200 and r.content == data
    assert r.headers["Content-Disposition"] == 'attachment; filename="interview 1.mp4"'
    r = requests.get(url, headers={"Range": "bytes=1000-1999"}, timeout=30)
    assert r.status_code == 206 and r.content == data[1000:2000]
    assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    # Altering anything signed breaks it.
    tampered = url.replace("X-Amz-Expires=120", "X-Amz-Expires=121")
    assert requests.get(tampered, timeout=30).status_code == 403
    # A GET URL does not serve HEAD, and a HEAD URL does not serve GET.
    head_url = s3(env, "presign", "clip v1.mp4", "--head").stdout.decode().strip()
    h = requests.head(head_url, timeout=30)
    assert h.status_code == 200 and h.headers["Content-Length"] == str(len(data))
    assert requests.get(head_url, timeout=30).status_code == 403
    bad = s3(env, "presign", "clip v1.mp4", "604801", check=False)
    assert bad.returncode == 1 and b"invalid_input" in bad.stderr


def test_wrong_credentials_are_a_clear_error(rgw, bucket, prefix, tmp_path):
    env = s3env(rgw, prefix)
    f = tmp_path / "f"
    f.write_bytes(b"x")
    s3(env, "put", str(f), "f")
    wrong = s3(s3env(rgw, prefix, AWS_SECRET_ACCESS_KEY="not-the-secret"), "cat", "f",
               check=False)
    err = wrong.stderr.decode()
    assert wrong.returncode == 1
    assert "interview-api s3: storage_denied: HTTP 403 SignatureDoesNotMatch" in err
    assert "not-the-secret" not in err and rgw.secret_key not in err
    unknown = s3(s3env(rgw, prefix, AWS_ACCESS_KEY_ID="AKIDUNKNOWN000000000"), "put", str(f),
                 "g", check=False)
    assert unknown.returncode == 1 and "storage_denied: HTTP 403 InvalidAccessKeyId" in \
        unknown.stderr.decode()


def test_closed_port_and_policy_refusal(rgw, bucket, prefix):
    closed = s3(s3env(rgw, prefix, AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{free_port()}"),
                "head", "f", check=False)
    assert closed.returncode == 1
    assert b"interview-api s3: storage_unavailable: S3 endpoint 127.0.0.1:" in closed.stderr
    # Loopback is private: without S3_ALLOW_CIDRS the connection is refused before it is made.
    refused = s3(s3env(rgw, prefix, S3_ALLOW_CIDRS=""), "head", "f", check=False)
    assert refused.returncode == 1
    assert b"url_not_allowed: connection to 127.0.0.1 port" in refused.stderr
    other = s3(s3env(rgw, prefix, S3_ALLOW_CIDRS="127.0.0.2/32"), "head", "f", check=False)
    assert other.returncode == 1 and b"url_not_allowed" in other.stderr


def test_bad_configuration_is_refused(rgw, tmp_path):
    for extra, word in [({"STORAGE_URL": "s3://"}, b"STORAGE_URL"),
                        ({"STORAGE_URL": "s3://Bad_Bucket/x"}, b"STORAGE_URL"),
                        ({"AWS_ENDPOINT_URL_S3": "ftp://127.0.0.1:1"}, b"AWS_ENDPOINT_URL_S3"),
                        ({"AWS_ENDPOINT_URL_S3": "http://u:p@127.0.0.1:1"},
                         b"AWS_ENDPOINT_URL_S3"),
                        ({"AWS_SECRET_ACCESS_KEY": ""}, b"AWS_SECRET_ACCESS_KEY"),
                        ({"S3_ALLOW_CIDRS": "10.0.0.1/8"}, b"S3_ALLOW_CIDRS")]:
        out = s3(s3env(rgw, "p", **extra), "ls", check=False)
        assert out.returncode == 2 and word in out.stderr, (extra, out.stderr)


def test_check_config_redacts_secrets(rgw, tmp_path):
    env = s3env(rgw, "p", AWS_SESSION_TOKEN="session-token-value")
    out = subprocess.run([IA_BIN, "check-config"], env=env, capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert out.returncode == 0
    assert f"AWS_ACCESS_KEY_ID={rgw.access_key}" in out.stdout
    assert "AWS_SECRET_ACCESS_KEY=(set, redacted)" in out.stdout
    assert "AWS_SESSION_TOKEN=(set, redacted)" in out.stdout
    assert rgw.secret_key not in out.stdout and "session-token-value" not in out.stdout
    assert f"STORAGE_URL=s3://{BUCKET}/p" in out.stdout


class Hostile(http.server.BaseHTTPRequestHandler):
    """Answers every listing as truncated with the same token, every object as huge, and fails
    the second part of a multipart upload (recording the requests that follow)."""

    seen = []

    def log_message(self, *args):
        pass

    def reply(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length", "0"))
        while n > 0:
            n -= len(self.rfile.read(min(n, 1 << 16)))

    def do_POST(self):
        self.read_body()
        Hostile.seen.append(("POST", self.path))
        if self.path.endswith("?uploads="):
            self.reply(200, b"<InitiateMultipartUploadResult><UploadId>up&amp;1</UploadId>"
                            b"</InitiateMultipartUploadResult>")
        else:
            self.reply(200, b"<CompleteMultipartUploadResult/>")

    def do_PUT(self):
        self.read_body()
        Hostile.seen.append(("PUT", self.path))
        if "partNumber=2" in self.path:
            self.reply(500, b"<Error><Code>InternalError</Code></Error>")
        else:
            self.send_response(200)
            self.send_header("ETag", '"part"')
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_DELETE(self):
        Hostile.seen.append(("DELETE", self.path))
        self.reply(204)

    def do_GET(self):
        if "list-type=2" in self.path:
            body = (b"<ListBucketResult><IsTruncated>true</IsTruncated>"
                    b"<Contents><Key>p/a</Key><Size>1</Size></Contents>"
                    b"<NextContinuationToken>same</NextContinuationToken></ListBucketResult>")
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.endswith("/silent"):
            time.sleep(8 * SLOW)  # longer than the client's S3_TIMEOUT_S in the test
        elif self.path.endswith("/bad-entity"):
            body = b"<Error><Code>Bad&#0;</Code><Message>&unknown;</Message></Error>"
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(200 << 20))
            self.end_headers()
            try:
                chunk = b"\0" * (1 << 20)
                for _ in range(200):
                    self.wfile.write(chunk)
            except OSError:
                pass


@pytest.fixture
def hostile():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_hostile_endpoint(rgw, hostile, tmp_path):
    env = s3env(rgw, "p", AWS_ENDPOINT_URL_S3=hostile)
    loop = s3(env, "ls", check=False)
    assert loop.returncode == 1 and b"without a new continuation token" in loop.stderr
    big = s3(env, "cat", "huge", check=False)
    assert big.returncode == 1 and b"too_large" in big.stderr
    odd = s3(env, "cat", "bad-entity", check=False)
    assert odd.returncode == 1 and b"storage_denied: HTTP 403\n" in odd.stderr


def test_silent_endpoint_times_out(rgw, hostile):
    env = s3env(rgw, "p", AWS_ENDPOINT_URL_S3=hostile, S3_TIMEOUT_S=2)
    started = time.monotonic()
    out = s3(env, "cat", "silent", check=False)
    assert out.returncode == 1 and b"interview-api s3: timeout: S3 endpoint" in out.stderr
    assert time.monotonic() - started < 8 * SLOW  # cut by our limit, not the server's sleep


def test_endpoint_falls_back_to_aws_endpoint_url(rgw, bucket, prefix, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"fallback")
    env = s3env(rgw, prefix, AWS_ENDPOINT_URL_S3="", AWS_ENDPOINT_URL=rgw.endpoint)
    s3(env, "put", str(f), "f")
    assert s3(env, "cat", "f").stdout == b"fallback"
    # AWS_ENDPOINT_URL_S3 wins over AWS_ENDPOINT_URL.
    closed = f"http://127.0.0.1:{free_port()}"
    env = s3env(rgw, prefix, AWS_ENDPOINT_URL=closed)
    assert s3(env, "cat", "f").stdout == b"fallback"


def test_failed_multipart_upload_is_aborted(rgw, hostile, tmp_path):
    five = 5 * 1024 * 1024
    env = s3env(rgw, "p", AWS_ENDPOINT_URL_S3=hostile, S3_MULTIPART_THRESHOLD=five,
                S3_PART_SIZE=five)
    f = tmp_path / "big"
    f.write_bytes(b"\0" * (2 * five + 1))
    Hostile.seen.clear()
    out = s3(env, "put", str(f), "big", check=False)
    assert out.returncode == 1
    assert b"storage_unavailable: HTTP 500 InternalError" in out.stderr
    # Created, part 1 sent, part 2 failed, then aborted with the decoded upload id; no part 3,
    # no completion.
    assert Hostile.seen == [
        ("POST", "/iatest/p/big?uploads="),
        ("PUT", "/iatest/p/big?partNumber=1&uploadId=up%261"),
        ("PUT", "/iatest/p/big?partNumber=2&uploadId=up%261"),
        ("DELETE", "/iatest/p/big?uploadId=up%261"),
    ], Hostile.seen
