"""A scriptable video origin on 127.0.0.2 for the reliability and Celery interop tests.

It serves files of one directory, slowly or with failures, so that tests can hold a task in a
known stage for a known time without burning CPU:
    /file/NAME                       the file
    /drip/SECONDS/DELAY/NAME         waits DELAY s before answering, then sends the file in small
                                     pieces spread evenly over SECONDS (Content-Length is sent)
    /flaky/KEY/N/NAME                503 for the first N requests with this KEY, then the file;
                                     N = "always": 503 for ever
    /code/STATUS/NAME                always answers STATUS
    /gate/KEY/NAME                   the Nth request with this KEY waits until the test calls
                                     origin.open_gate(KEY, N, status): then the file, or status
Hits are counted per path (origin.hits(path)). It runs in a thread of the test process.
"""
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from conftest import ALLOWED_HOST, ffmpeg, free_port

DRIP_PIECES_PER_S = 4


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep pytest's output clean
        pass

    def do_GET(self):
        origin = self.server.origin
        origin.count(self.path)
        parts = urlsplit(self.path).path.strip("/").split("/")
        try:
            if parts[0] == "file" and len(parts) == 2:
                return self._send_file(parts[1])
            if parts[0] == "drip" and len(parts) == 4:
                time.sleep(float(parts[2]))
                return self._send_file(parts[3], spread_s=float(parts[1]))
            if parts[0] == "flaky" and len(parts) == 4:
                n = origin.count("flaky-key:" + parts[1])
                if parts[2] == "always" or n <= int(parts[2]):
                    return self._send_status(503)
                return self._send_file(parts[3])
            if parts[0] == "code" and len(parts) == 3:
                return self._send_status(int(parts[1]))
            if parts[0] == "gate" and len(parts) == 3:
                status = origin.wait_gate(parts[1], origin.count("gate-key:" + parts[1]))
                return self._send_status(status) if status else self._send_file(parts[2])
        except (BrokenPipeError, ConnectionResetError):
            return None  # the worker went away (killed, cancelled): nothing to do
        return self._send_status(404)

    def _send_status(self, status):
        body = b"origin says %d\n" % status
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _send_file(self, name, spread_s=0.0):
        path = os.path.join(self.server.origin.root, os.path.basename(name))
        if not os.path.isfile(path):
            return self._send_status(404)
        with open(path, "rb") as f:
            data = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if spread_s <= 0:
            self.wfile.write(data)
            return None
        pieces = max(1, int(spread_s * DRIP_PIECES_PER_S))
        size = -(-len(data) // pieces)
        start = time.monotonic()
        for i in range(pieces):
            self.wfile.write(data[i * size:(i + 1) * size])
            self.wfile.flush()
            pause = start + (i + 1) * spread_s / pieces - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        return None


class Origin:
    """The server; url(path) gives the address a task should fetch. It listens on `host`
    (test_multihost.py: the test's own address on its network of namespaces)."""

    def __init__(self, root, host=ALLOWED_HOST):
        self.root = root
        self.host = host
        self.port = free_port(host)
        self._hits = {}
        self._lock = threading.Lock()
        self._gates = {}  # (key, n) -> status to answer (0: the file), once opened
        self._gate_opened = threading.Condition(self._lock)
        self.httpd = ThreadingHTTPServer((host, self.port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.origin = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def count(self, key):
        with self._lock:
            self._hits[key] = self._hits.get(key, 0) + 1
            return self._hits[key]

    def open_gate(self, key, n, status=0):
        """Lets the nth request of /gate/KEY/... go on: with the file, or with status."""
        with self._lock:
            self._gates[(key, n)] = status
            self._gate_opened.notify_all()

    def wait_gate(self, key, n, timeout=600):
        with self._lock:
            self._gate_opened.wait_for(lambda: (key, n) in self._gates, timeout)
            return self._gates.get((key, n), 503)

    def hits(self, path):
        with self._lock:
            return self._hits.get(path, 0)

    def url(self, path):
        return f"http://{self.host}:{self.port}/{path.lstrip('/')}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def make_origin_media(directory, long=True):
    """drip.mp4: 4 s H.264/AAC, about 350 kB (remuxed: cheap; enough bytes to drip for 90 s
    above curl's low-speed limit). long.avi: 20 s 720p MPEG-4 that takes seconds to transcode
    (made unless long=False)."""
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4",
           "-f", "lavfi", "-i", "sine=frequency=440:duration=4",
           "-c:v", "libx264", "-b:v", "800k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
           os.path.join(directory, "drip.mp4"))
    if not long:
        return
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=20",
           "-c:v", "mpeg4", "-q:v", "6", os.path.join(directory, "long.avi"))


_SHARED = {}


def shared_origin(tmp_path_factory):
    """One Origin (and its generated media) per pytest process, whatever module asks first."""
    if "origin" not in _SHARED:
        d = tmp_path_factory.mktemp("origin")
        make_origin_media(str(d))
        _SHARED["origin"] = Origin(str(d))
    return _SHARED["origin"]
