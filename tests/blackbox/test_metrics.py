"""GET /metrics of serve and of a worker (WORKER_METRICS_PORT), and the request and stage log lines.

The scrapes are read with a strict parser of the text format 0.0.4 written here (and, as a
second opinion, with Debian's prometheus_client when it is installed); counters are compared
before and after known requests, so each must grow by exactly what the test did.
"""
import math
import os
import re
import socket
import time
import uuid

import pytest
import requests

from conftest import SLOW, Service, free_port, raw_exchange

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


# A strict parser of the text exposition format, version 0.0.4.

def unescape(text, quotes):
    """Undoes \\\\, \\n (and \\" in label values); any other escape is an error."""
    out, i = [], 0
    allowed = {"\\": "\\", "n": "\n"} | ({'"': '"'} if quotes else {})
    while i < len(text):
        c = text[i]
        if c == "\\":
            assert i + 1 < len(text) and text[i + 1] in allowed, f"bad escape in {text!r}"
            out.append(allowed[text[i + 1]])
            i += 2
            continue
        assert not (quotes and c == '"'), f"unescaped quote in {text!r}"
        assert c != "\n"
        out.append(c)
        i += 1
    return "".join(out)


def parse_labels(text):
    """'a="x",b="y"' (a trailing comma allowed) -> {"a": "x", "b": "y"}."""
    labels, i = {}, 0
    while i < len(text):
        m = re.compile(LABEL + '="').match(text, i)
        assert m, f"bad label at {text[i:]!r}"
        name = m.group(0)[:-2]
        j = m.end()
        value = []
        while text[j] != '"':
            if text[j] == "\\":
                value.append(text[j:j + 2])
                j += 2
            else:
                value.append(text[j])
                j += 1
        assert name not in labels, f"label {name} twice"
        labels[name] = unescape("".join(value), quotes=True)
        i = j + 1
        if i < len(text):
            assert text[i] == ",", f"expected , at {text[i:]!r}"
            i += 1
    return labels


def parse_value(text):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    assert re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text), f"bad value {text!r}"
    return float(text)


def family_of(sample, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample[:-len(suffix)] if sample.endswith(suffix) else None
        if base and types.get(base) in ("histogram", "summary"):
            return base
    return sample


def parse_exposition(text):
    """{family: {"type", "help", "samples": {(name, ((label, value), ...)): value}}}."""
    assert text.endswith("\n"), "the last line must end with a line feed"
    assert "\r" not in text
    families, types, order = {}, {}, []
    current = None
    for line in text[:-1].split("\n"):
        assert line.strip() != "", "no empty lines"
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (" + NAME + r") (.*)", line)
            assert m, f"bad comment line {line!r}"
            kind, name, rest = m.groups()
            fam = families.setdefault(name, {"type": "untyped", "help": None, "samples": {}})
            assert not fam["samples"], f"{kind} of {name} after its samples"
            if kind == "HELP":
                assert fam["help"] is None, f"two HELP lines for {name}"
                fam["help"] = unescape(rest, quotes=False)
            else:
                assert name not in types, f"two TYPE lines for {name}"
                assert rest in TYPES, f"bad type {rest!r}"
                types[name] = fam["type"] = rest
            if current != name:
                assert name not in order, f"{name} is not in one group"
                order.append(name)
                current = name
            continue
        m = re.fullmatch(r"(" + NAME + r")(?:\{(.*)\})? (\S+)(?: (-?\d+))?", line)
        assert m, f"bad sample line {line!r}"
        sample, labels, value = m.group(1), parse_labels(m.group(2) or ""), parse_value(m.group(3))
        fam_name = family_of(sample, types)
        if current != fam_name:
            assert fam_name not in order, f"{fam_name}'s samples are not in one group"
            order.append(fam_name)
            current = fam_name
        fam = families.setdefault(fam_name, {"type": "untyped", "help": None, "samples": {}})
        key = (sample, tuple(sorted(labels.items())))
        assert key not in fam["samples"], f"series twice: {line!r}"
        fam["samples"][key] = value
    for name, fam in families.items():
        if fam["type"] == "histogram":
            check_histogram(name, fam["samples"])
        if fam["type"] == "counter":
            assert all(v >= 0 for v in fam["samples"].values()), name
    return families


def check_histogram(name, samples):
    """Per label set: le ascending and ending at +Inf, counts cumulative, +Inf == _count, _sum."""
    groups = {}
    for (sample, labels), value in samples.items():
        rest = tuple(kv for kv in labels if kv[0] != "le")
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sample == name + "_bucket":
            le = dict(labels)["le"]
            g["buckets"].append((parse_value(le), value))
        elif sample == name + "_sum":
            g["sum"] = value
        elif sample == name + "_count":
            g["count"] = value
        else:
            raise AssertionError(f"{sample} in histogram {name}")
    for rest, g in groups.items():
        assert g["sum"] is not None and g["count"] is not None, (name, rest)
        les = [le for le, _ in g["buckets"]]
        assert les == sorted(les) and len(set(les)) == len(les), (name, rest, les)
        assert les and math.isinf(les[-1]), f"{name}{rest}: no +Inf bucket"
        counts = [c for _, c in g["buckets"]]
        assert counts == sorted(counts), f"{name}{rest}: buckets not cumulative {counts}"
        assert counts[-1] == g["count"], f"{name}{rest}: +Inf {counts[-1]} != _count {g['count']}"
        assert g["sum"] >= 0


def scrape(url, headers=None):
    r = requests.get(url, headers=headers or {}, timeout=10 * SLOW)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["Content-Type"] == CONTENT_TYPE
    families = parse_exposition(r.text)
    try:  # a second opinion when Debian's python3-prometheus-client is installed
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        return families
    theirs = {f.name: f for f in text_string_to_metric_families(r.text)}
    ours = sum(len(f["samples"]) for f in families.values())
    assert sum(len(f.samples) for f in theirs.values()) == ours
    return families


def value(families, family, sample=None, **labels):
    """A sample's value, 0 when the series is absent (a counter not yet counted)."""
    key = (sample or family, tuple(sorted(labels.items())))
    return families.get(family, {"samples": {}})["samples"].get(key, 0)


def all_label_values(families):
    return {v for f in families.values() for (_, labels) in f["samples"] for _, v in labels}


# The service under test: serve and one worker with its metrics endpoint.

@pytest.fixture
def metered(tmp_path, redis_server, file_server):
    port = free_port()
    svc = Service(str(tmp_path), redis_server, file_server,
                  extra_env={"WORKER_METRICS_PORT": str(port)})
    svc.metrics_url = f"http://127.0.0.1:{port}/metrics"
    svc.worker_metrics_port = port
    svc.wait_workers_ready()
    yield svc
    codes = svc.stop()
    assert all(c == 0 for c in codes.values()), svc.dump_logs()


def read_log(svc, index):
    with open(svc.logs[index], "rb") as f:
        return f.read().decode(errors="replace")


def test_counters_grow_by_exactly_the_requests_made_and_the_task(metered, file_server):
    base = metered.base
    before = scrape(base + "/metrics")
    statuses = {}  # (route, method, status) -> how many this test made

    def made(route, method, status):
        statuses[(route, method, status)] = statuses.get((route, method, status), 0) + 1

    for _ in range(3):
        assert requests.get(base + "/healthz", timeout=10).status_code == 200
        made("/healthz", "GET", "200")
    stranger = "x" + uuid.uuid4().hex  # never a label value: the pattern is
    for path in (f"/status/{uuid.uuid4()}", f"/status/{stranger}"):
        r = requests.get(base + path, timeout=10)
        assert r.status_code == 404
        made("/status/{task_id}", "GET", "404")
    assert requests.put(f"{base}/status/{stranger}", timeout=10).status_code == 405
    made("/status/{task_id}", "PUT", "405")
    assert requests.get(f"{base}/{stranger}/x", timeout=10).status_code == 404
    made("unmatched", "GET", "404")
    r = requests.post(base + "/submit", json={"video_url": file_server.url("clip.mp4"),
                                              "analysis": False}, timeout=10)
    assert r.status_code == 200, r.text
    made("/submit", "POST", "200")
    tid = r.json()["task_id"]
    deadline = time.time() + 120 * SLOW
    while True:  # our own polling, so that every /status answer is counted here
        r = requests.get(f"{base}/status/{tid}", timeout=10)
        made("/status/{task_id}", "GET", str(r.status_code))
        if r.json()["status"] != "processing":
            break
        assert time.time() < deadline, metered.dump_logs()
        time.sleep(0.1)
    assert r.json()["status"] == "success", r.text
    size = len(requests.get(f"{base}/stream/{tid}", timeout=10).content)
    made("/stream/{video_id}", "GET", "200")
    r = requests.get(f"{base}/stream/{tid}", headers={"Range": "bytes=0-99"}, timeout=10)
    assert r.status_code == 206 and len(r.content) == 100
    made("/stream/{video_id}", "GET", "206")
    made("/metrics", "GET", "200")  # the first scrape, counted once answered

    after = scrape(base + "/metrics")
    req = "interview_http_requests_total"
    for (route, method, status), n in statuses.items():
        grew = (value(after, req, route=route, method=method, status=status) -
                value(before, req, route=route, method=method, status=status))
        assert grew == n, (route, method, status, grew, n)
    total = sum(after[req]["samples"].values()) - sum(before[req]["samples"].values())
    assert total == sum(statuses.values())  # nothing else was counted
    hist = "interview_http_request_duration_seconds"
    for route in ("/healthz", "/status/{task_id}", "/stream/{video_id}"):
        n = sum(c for (r_, m, s), c in statuses.items() if r_ == route)
        grew = (value(after, hist, hist + "_count", route=route) -
                value(before, hist, hist + "_count", route=route))
        assert grew == n, route
    body = "interview_http_response_body_bytes_total"
    grew = (value(after, body, route="/stream/{video_id}") -
            value(before, body, route="/stream/{video_id}"))
    assert grew == size + 100
    handed = sum(after[body]["samples"].values()) - sum(before[body]["samples"].values())
    sent = "interview_http_sent_bytes_total"
    on_the_wire = value(after, sent) - value(before, sent)
    assert on_the_wire > handed  # every body was read whole, and heads come on top
    labels = all_label_values(after)
    assert not any(stranger in v or tid in v for v in labels)
    assert value(after, "interview_redis_up") == 1
    assert value(after, "interview_queue_depth") == 0
    for outcome in ("delivered", "retry", "failed"):  # for the webhook sender to come
        assert ("interview_webhook_deliveries_total", (("outcome", outcome),)) in \
            after["interview_webhook_deliveries_total"]["samples"]
    assert "interview_tasks_total" not in after  # serve runs no task

    worker = scrape(metered.metrics_url)
    assert value(worker, "interview_tasks_total", outcome="success", code="ok") == 1
    assert sum(worker["interview_tasks_total"]["samples"].values()) == 1
    stage = "interview_task_stage_duration_seconds"
    for name, n in (("fetch", 1), ("process", 1), ("publish", 1), ("analyse", 0)):
        assert value(worker, stage, stage + "_count", stage=name) == n, name
    assert value(worker, stage, stage + "_sum", stage="process") > 0
    assert value(worker, "interview_worker_slots") == 2
    assert 0 <= value(worker, "interview_worker_slots_busy") <= 2

    serve_log, worker_log = read_log(metered, 0), read_log(metered, 1)
    line = re.search(r"info  http: req=([0-9a-f]{16}) method=PUT route=/status/\{task_id\} "
                     r"status=405 bytes=\d+ ms=\d+\.\d{3} path=\"/status/" + stranger + '"',
                     serve_log)
    assert line, serve_log[-3000:]
    for name in ("fetch", "process", "publish"):
        assert re.search(rf"worker: task={tid} stage={name} ms=\d+ result=ok\n", worker_log)
    assert f"task={tid} stage=analyse" not in worker_log  # turned off for this task


def test_a_failed_task_counts_with_its_code_and_the_stage_it_failed_in(metered, file_server):
    before = scrape(metered.metrics_url)
    r = requests.post(metered.base + "/submit", json={"video_url": file_server.url("notes.txt")},
                      timeout=10)
    tid = r.json()["task_id"]
    code, body = metered.wait_done(tid, timeout=120)
    assert body["code"] == "not_a_video", body
    after = scrape(metered.metrics_url)
    tasks = "interview_tasks_total"
    assert (value(after, tasks, outcome="failure", code="not_a_video") -
            value(before, tasks, outcome="failure", code="not_a_video")) == 1
    assert sum(after[tasks]["samples"].values()) - sum(before[tasks]["samples"].values()) == 1
    stage = "interview_task_stage_duration_seconds"
    for name, n in (("fetch", 1), ("process", 1), ("analyse", 0), ("publish", 0)):
        grew = (value(after, stage, stage + "_count", stage=name) -
                value(before, stage, stage + "_count", stage=name))
        assert grew == n, name
    log = read_log(metered, 1)
    assert re.search(rf"task={tid} stage=fetch ms=\d+ result=ok\n", log)
    assert re.search(rf"task={tid} stage=process ms=\d+ result=not_a_video\n", log)


def test_request_log_line_escapes_the_path_and_names_the_request(metered):
    r = requests.get(metered.base + "/status/%22%0a%1b%C3%A9", timeout=10)
    assert r.status_code == 404
    rid = r.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{16}", rid)
    log = read_log(metered, 0)
    lines = [l for l in log.splitlines() if f"req={rid} " in l]
    assert len(lines) == 1, log[-3000:]
    assert re.search(r' http: req=[0-9a-f]{16} method=GET route=/status/\{task_id\} status=404 '
                     r'bytes=\d+ ms=\d+\.\d{3} path="/status/\\"\\x0a\\x1b\\xc3\\xa9"$',
                     lines[0]), lines[0]
    other = requests.get(metered.base + "/healthz", timeout=10).headers["X-Request-Id"]
    assert other != rid


def test_sent_bytes_stop_where_a_client_left(metered):
    """A 256 MiB file whose reader leaves after 1 MiB: handed whole, sent only in part."""
    vid = str(uuid.uuid4())
    with open(os.path.join(metered.processed, f"processed_{vid}.mp4"), "wb") as f:
        f.truncate(256 << 20)  # sparse: costs no disk
    before = scrape(metered.base + "/metrics")
    with socket.create_connection(("127.0.0.1", metered.port), timeout=30 * SLOW) as s:
        s.sendall(f"GET /stream/{vid} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        got = 0
        while got < 1 << 20:
            chunk = s.recv(65536)
            assert chunk
            got += len(chunk)
    # Closed with unread bytes: the next write fails and the connection goes.
    log_line = re.compile(r"route=/stream/\{video_id\} status=200 bytes=268435456 ")
    deadline = time.time() + 30 * SLOW
    while not log_line.search(read_log(metered, 0)):
        assert time.time() < deadline
        time.sleep(0.1)
    after = scrape(metered.base + "/metrics")
    body = "interview_http_response_body_bytes_total"
    assert (value(after, body, route="/stream/{video_id}") -
            value(before, body, route="/stream/{video_id}")) == 256 << 20
    sent = "interview_http_sent_bytes_total"
    grew = value(after, sent) - value(before, sent)
    # Socket buffers hold a few MiB at most. No lower bound: libevent runs a bufferevent's
    # output callbacks deferred, and those still pending when the connection is freed are lost
    # (seen once on a loaded machine: 3 KiB counted). Whole bodies are checked elsewhere.
    assert grew < 128 << 20
    assert requests.get(metered.base + "/healthz", timeout=10).status_code == 200
    later = value(scrape(metered.base + "/metrics"), sent) - value(before, sent)
    assert later < 128 << 20  # nothing more went to the client that left


def test_metrics_answer_while_redis_is_down(metered, redis_server):
    redis_server.stop()
    for url in (metered.base + "/metrics", metered.metrics_url):
        families = scrape(url)
        assert value(families, "interview_redis_up") == 0
        assert not families["interview_queue_depth"]["samples"]
        assert "interview_http_requests_total" in families
    redis_server.start()
    deadline = time.time() + 30 * SLOW
    while value(scrape(metered.base + "/metrics"), "interview_redis_up") != 1:
        assert time.time() < deadline
        time.sleep(0.2)


def status_of(response):
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.") else None


def test_worker_endpoint_survives_hostile_clients(metered):
    port = metered.worker_metrics_port
    garbage = os.urandom(4096).replace(b"\n", b"x")
    assert status_of(raw_exchange(port, garbage + b"\r\n\r\n")) in (None, 400)
    huge = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 64 * 1024 + b"\r\n\r\n"
    assert status_of(raw_exchange(port, huge)) in (None, 400, 413, 431)
    many = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 60 + b"\r\n"
    assert status_of(raw_exchange(port, many)) == 431
    body = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"
    assert status_of(raw_exchange(port, body)) == 413
    long_target = b"GET /" + b"a" * 4096 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert status_of(raw_exchange(port, long_target)) in (400, 414)
    r = raw_exchange(port, b"GET /../../etc/passwd HTTP/1.0\r\n\r\n")
    assert status_of(r) == 404 and b"root:" not in r
    assert requests.delete(metered.metrics_url, timeout=10).status_code == 405
    # A client that never finishes its head is closed (REQUEST deadline 5 s; a wide margin).
    with socket.create_connection(("127.0.0.1", port), timeout=60 * SLOW) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        assert s.recv(1024) == b""
    families = scrape(metered.metrics_url)  # still serving
    counted = families["interview_http_requests_total"]["samples"]
    assert all(dict(labels)["route"] in ("/metrics", "unmatched") for _, labels in counted)
    assert metered.workers[0].poll() is None


@pytest.fixture
def keyed(tmp_path, redis_server, file_server):
    port = free_port()
    svc = Service(str(tmp_path), redis_server, file_server,
                  extra_env={"API_KEYS": "prometheus:key-1", "WORKER_METRICS_PORT": str(port)})
    svc.metrics_url = f"http://127.0.0.1:{port}/metrics"
    svc.wait_workers_ready()
    yield svc
    assert all(c == 0 for c in svc.stop().values()), svc.dump_logs()


def test_metrics_need_the_api_key_when_keys_are_set(keyed):
    for url in (keyed.base + "/metrics", keyed.metrics_url):
        r = requests.get(url, timeout=10)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert "interview_" not in r.text
        r = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
        assert r.status_code == 403 and "interview_" not in r.text
        families = scrape(url, headers={"Authorization": "Bearer key-1"})
        assert value(families, "interview_redis_up") == 1
