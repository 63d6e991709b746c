"""SSRF: hostile video URLs aimed at loopback are refused, and nothing connects to loopback.

Every URL below targets this machine's loopback on a port the policy ALLOWS (the file server's
port number, FP), so that only the address checks stand between the fetcher and the listeners
this test opens on 127.0.0.1:FP and [::1]:FP. URLs on ports the policy refuses hit listeners on
127.0.0.1:Q and 127.0.0.2:Q. No listener may see a single connection, each task must fail with
`url_not_allowed`, and a legitimate URL on the allowed origin must still work in the same run.

Names that the resolver would send to DNS (`localhost.`, or `ip6-localhost` when /etc/hosts does
not list it) are left out on purpose: the query would leave the machine, which these tests must
never cause. Host names come only from /etc/hosts (when "files" is consulted first) and from
libcurl's built-in handling of `localhost` and `*.localhost`.
"""
import ipaddress
import os
import socket
import threading
import time

import pytest
import requests

from conftest import ALLOWED_HOST, SLOW, free_port

GENERIC_MESSAGE = "the video URL is not allowed"


class Listener:
    """Accepts and records connections on one address until stopped."""

    def __init__(self, family, host, port):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.where = f"{host}:{port}"
        self.seen = []
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            try:
                conn, peer = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.seen.append(peer)
            conn.close()

    def stop(self):
        self.running = False
        self.thread.join()
        self.sock.close()



@pytest.fixture(autouse=True)
def workers_ready(request):
    """These tests can be over before a worker has started; stopping it then would kill it."""
    for name in ("service", "limited"):
        if name in request.fixturenames:
            request.getfixturevalue(name).wait_workers_ready()

def loopback_names_from_hosts():
    """Names /etc/hosts maps to loopback only, if the files source is consulted before DNS."""
    try:
        with open("/etc/nsswitch.conf") as f:
            hosts = [ln.split(":", 1)[1].split() for ln in f if ln.startswith("hosts:")]
        if not hosts or hosts[0][:1] != ["files"]:
            return []
        with open("/etc/hosts") as f:
            lines = [ln.split("#", 1)[0].split() for ln in f]
    except OSError:
        return []
    verdict = {}
    for fields in lines:
        if len(fields) < 2:
            continue
        try:
            loop = ipaddress.ip_address(fields[0]).is_loopback
        except ValueError:
            continue
        for name in fields[1:]:
            verdict[name] = verdict.get(name, True) and loop
    return sorted(n for n, loop in verdict.items() if loop and not n.endswith("."))


def hostile_urls(fp, q, fs):
    """(label, url) pairs the fetcher must refuse; fs is the allowed origin host:port."""
    lo = f"127.0.0.1:{fp}"
    table = [
        ("plain", f"http://{lo}/clip.mp4"),
        ("no path", f"http://{lo}"),
        ("https", f"https://{lo}/clip.mp4"),
        ("upper-case scheme", f"HTTP://{lo}/clip.mp4"),
        ("decimal", f"http://2130706433:{fp}/"),
        ("octal dotted", f"http://0177.0.0.1:{fp}/"),
        ("octal whole", f"http://017700000001:{fp}/"),
        ("leading zeros", f"http://127.000.000.001:{fp}/"),
        ("hex short", f"http://0x7f.1:{fp}/"),
        ("hex whole", f"http://0x7f000001:{fp}/"),
        ("hex dotted", f"http://0x7F.0x0.0x0.0x1:{fp}/"),
        ("short 127.1", f"http://127.1:{fp}/"),
        ("short 127.0.1", f"http://127.0.1:{fp}/"),
        ("other loopback", f"http://127.0.0.3:{fp}/"),
        ("zero", f"http://0:{fp}/"),
        ("unspecified v4", f"http://0.0.0.0:{fp}/"),
        ("v6 loopback", f"http://[::1]:{fp}/"),
        ("v6 loopback long", f"http://[0:0:0:0:0:0:0:1]:{fp}/"),
        ("v6 loopback zeros", f"http://[0000::1]:{fp}/"),
        ("v6 loopback zone", f"http://[::1%25lo]:{fp}/"),
        ("v6 unspecified", f"http://[::]:{fp}/"),
        ("v4-mapped dotted", f"http://[::ffff:127.0.0.1]:{fp}/"),
        ("v4-mapped hex", f"http://[::ffff:7f00:1]:{fp}/"),
        ("v4-mapped long", f"http://[0:0:0:0:0:ffff:7f00:1]:{fp}/"),
        ("v4-compatible", f"http://[::127.0.0.1]:{fp}/"),
        ("nat64", f"http://[64:ff9b::7f00:1]:{fp}/"),
        ("v4-translated", f"http://[::ffff:0:7f00:1]:{fp}/"),
        ("localhost", f"http://localhost:{fp}/"),
        ("LOCALHOST", f"http://LOCALHOST:{fp}/"),
        ("LocalHost", f"http://LocalHost:{fp}/"),
        ("sub.localhost", f"http://video.localhost:{fp}/"),
        ("encoded localhost", f"http://%6c%6f%63%61%6c%68%6f%73%74:{fp}/"),
        ("encoded digits", f"http://%31%32%37.0.0.1:{fp}/"),
        ("userinfo to loopback", f"http://{fs}@{lo}/"),
        ("userinfo on allowed", f"http://user:pass@{fs}/clip.mp4"),
        ("user only on allowed", f"http://user@{fs}/clip.mp4"),
        ("encoded slash userinfo", f"http://127.0.0.1%2f@{ALLOWED_HOST}/"),
        ("fragment trick", f"http://{lo}#@{fs}/clip.mp4"),
        ("redirect to 127.0.0.1", f"http://{fs}/redirect-to-loopback"),
        ("redirect to [::1]", f"http://{fs}/redirect-to-v6loop"),
        ("redirect to decimal", f"http://{fs}/redirect-to-decimal"),
        ("redirect to localhost", f"http://{fs}/redirect-to-localhost"),
        ("redirect to userinfo", f"http://{fs}/redirect-to-userinfo"),
        ("redirect to file://", f"http://{fs}/redirect-to-file"),
        ("redirect to gopher://", f"http://{fs}/redirect-to-gopher"),
        ("relative redirect chain", f"http://{fs}/redirect-chain"),
        ("refused port, allowed host", f"http://{ALLOWED_HOST}:{q}/clip.mp4"),
        ("refused port, loopback", f"http://127.0.0.1:{q}/"),
        ("refused port 22", f"http://{ALLOWED_HOST}:22/"),
        ("port 0", f"http://{ALLOWED_HOST}:0/"),
        ("port out of range", f"http://{ALLOWED_HOST}:65536/"),
    ]
    for name in loopback_names_from_hosts():
        table.append((f"/etc/hosts {name}", f"http://{name}:{fp}/"))
        table.append((f"/etc/hosts {name.upper()}", f"http://{name.upper()}:{fp}/"))
    return table


def refused_at_api(fp):
    """URLs /submit itself must answer 422 for: only absolute http(s) URLs are accepted."""
    lo = f"127.0.0.1:{fp}"
    return [
        "file:///etc/passwd",
        "file://localhost/etc/passwd",
        f"ftp://{lo}/clip.mp4",
        f"gopher://{lo}/_INFO",
        f"dict://{lo}/info",
        f"ldap://{lo}/dc=x",
        f"tftp://{lo}/clip.mp4",
        f"telnet://{lo}/",
        f"sftp://{lo}/clip.mp4",
        "data:video/mp4;base64,AAAA",
        f"//{lo}/clip.mp4",
        f"http:/{lo}/clip.mp4",
        f"http:{lo}/clip.mp4",
        f"http:///{lo}/",
        f"http://{lo}/\r\nX-Injected: 1",
        f"http://{lo}/ clip.mp4",
    ]


def open_listeners(fp, q):
    specs = [(socket.AF_INET, "127.0.0.1", fp), (socket.AF_INET6, "::1", fp),
             (socket.AF_INET, "127.0.0.1", q), (socket.AF_INET, ALLOWED_HOST, q),
             (socket.AF_INET, "127.0.0.3", fp)]
    listeners = [Listener(*s) for s in specs]
    for lst, (family, host, port) in zip(listeners, specs):  # prove that they do record
        with socket.create_connection((host, port), timeout=2):
            pass
        deadline = time.time() + 5 * SLOW
        while not lst.seen and time.time() < deadline:
            time.sleep(0.01)
        assert len(lst.seen) == 1, lst.where
        lst.seen.clear()
    return listeners


def wait_all(service, ids, timeout):
    """Polls until no task is processing; returns {task_id: body}."""
    deadline = time.time() + timeout
    done = {}
    while time.time() < deadline and len(done) < len(ids):
        for tid in ids:
            if tid in done:
                continue
            r = requests.get(f"{service.base}/status/{tid}", timeout=5)
            if r.status_code != 200 or r.json()["status"] != "processing":
                done[tid] = r.json()
        time.sleep(0.2)
    return done


def test_hostile_urls_are_refused_and_nothing_connects(service, file_server):
    fp = file_server.port
    q = free_port(ALLOWED_HOST)
    fs = f"{ALLOWED_HOST}:{fp}"
    table = hostile_urls(fp, q, fs)
    listeners = open_listeners(fp, q)
    try:
        api_refused = refused_at_api(fp)
        for url in api_refused:
            r = service.submit(url)
            assert r.status_code == 422, (url, r.status_code, r.text)
            assert r.json()["code"] == "invalid_input"
        ids = {}
        for label, url in table:
            r = service.submit(url)
            assert r.status_code == 200, (label, url, r.text)
            ids[r.json()["task_id"]] = (label, url)
        good = service.submit(file_server.url("clip.mp4")).json()["task_id"]
        results = wait_all(service, list(ids) + [good], 180 * SLOW)
    finally:
        for lst in listeners:
            lst.stop()
    assert len(table) + len(api_refused) >= 40
    wrong = {ids[t]: b for t, b in results.items() if t in ids and
             (b.get("status") != "failed" or b.get("code") != "url_not_allowed")}
    missing = [ids[t] for t in ids if t not in results]
    assert not wrong and not missing, (wrong, missing, service.dump_logs())
    # One message for every refusal: it does not tell whether anything listens there.
    assert {b["error"] for t, b in results.items() if t in ids} == {GENERIC_MESSAGE}
    assert results[good]["status"] == "success", service.dump_logs()
    for lst in listeners:
        assert lst.seen == [], f"connection reached {lst.where}: {lst.seen}"
