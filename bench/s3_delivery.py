"""Delivery of a 200 MiB object from S3 (a one-node radosgw on loopback): GET /stream through
serve with MEDIA_DELIVERY=redirect (the 302 followed) and =proxy, against a presigned GET
straight at radosgw. Each way is timed by curl (-o /dev/null) RUNS times, interleaved after
one warm-up read; the median is reported, with serve's peak RSS over the proxied runs.

    /usr/bin/python3 bench/s3_delivery.py --bin build/interview-api [--mib 200] [--runs 5]
                                          [--pin] [--host]

--pin gives the store a core of its own (radosgw's processes on CPU 0; serve and every client
curl on the others), as the store has machines of its own in the deployment the proxy mode is
for; without it the store, serve and the client share every core.
--host puts radosgw on a host of its own: a network namespace joined by veth pairs and a bridge
(tests/blackbox/netns.py, as test_multihost.py does), so that every byte from the store crosses
a network device as it would between machines. serve and the clients stay on the test's host.

Everything runs on loopback or on the namespaces' private bridge; every process is ours and
stopped by PID.
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "s3"))
sys.path.insert(0, os.path.join(ROOT, "tests", "blackbox"))
from rgw import Rgw  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing on port {port}")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


CLIENT_PREFIX = []  # taskset for --pin


def pin(pid, cpus):
    """Every thread of pid onto cpus (a taskset list)."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True,
                   stdout=subprocess.DEVNULL)


def curl(url, location=False):
    """(seconds, bytes per second) of one download to /dev/null."""
    args = CLIENT_PREFIX + ["curl", "-s", "-o", "/dev/null", "--noproxy", "*", "-w",
            "%{http_code} %{time_total} %{speed_download} %{size_download}"]
    if location:
        args.append("-L")
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "200", out
    return float(out[1]), float(out[2]), int(out[3])


def hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "interview-api"))
    ap.add_argument("--mib", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pin", action="store_true", help="the store on CPU 0, the rest elsewhere")
    ap.add_argument("--host", action="store_true", help="the store on a namespace host of its own")
    a = ap.parse_args()
    others = f"1-{os.cpu_count() - 1}"
    a.bin = os.path.abspath(a.bin)
    tmp = tempfile.mkdtemp(prefix="ia-bench-s3-")
    net = rgw = None
    procs = []
    try:
        if a.host:
            from netns import Net
            net = Net()
            h = net.host("rgw")
            rgw = Rgw(base=tmp, host=h.addr, prefix=h.prefix())
        else:
            rgw = Rgw(base=tmp)
        env = dict(os.environ, STORAGE_URL=f"s3://bench/b{uuid.uuid4().hex[:6]}",
                   AWS_ENDPOINT_URL_S3=rgw.endpoint, AWS_REGION=rgw.region,
                   AWS_ACCESS_KEY_ID=rgw.access_key, AWS_SECRET_ACCESS_KEY=rgw.secret_key,
                   S3_ALLOW_CIDRS=f"{rgw.host}/32", S3_TIMEOUT_S="3600", LOG_LEVEL="warn")
        s3 = lambda *args: subprocess.run([a.bin, "s3", *args], env=env, check=True,  # noqa
                                          capture_output=True, cwd=tmp).stdout
        s3("mb")
        vid = str(uuid.uuid4())
        path = os.path.join(tmp, "big.mp4")
        with open(path, "wb") as f:
            for _ in range(a.mib):
                f.write(os.urandom(1 << 20))
        s3("put", path, f"processed_{vid}.mp4", "video/mp4")
        os.unlink(path)
        with open(os.path.join(tmp, "m.json"), "w") as f:
            json.dump({"video_id": vid}, f)
        s3("put", os.path.join(tmp, "m.json"), f"processed_{vid}.json", "application/json")
        rport = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(rport), "--bind",
                                       "127.0.0.1", "--save", "", "--dir", tmp],
                                      stdout=subprocess.DEVNULL))
        wait_port(rport)
        serves = {}
        for mode in ("redirect", "proxy"):
            port = free_port()
            senv = dict(env, HOST="127.0.0.1", PORT=str(port), MEDIA_DELIVERY=mode,
                        PROCESSED_DIR=os.path.join(tmp, mode), SERVE_THREADS="2",
                        CELERY_BROKER_URL=f"redis://127.0.0.1:{rport}/0",
                        CELERY_BACKEND_URL=f"redis://127.0.0.1:{rport}/1")
            p = subprocess.Popen([a.bin, "serve"], env=senv, cwd=tmp,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            wait_port(port)
            serves[mode] = (p, f"http://127.0.0.1:{port}/stream/{vid}")
        if a.pin:
            for p in rgw.procs:
                pin(p.pid, "0")
            for p, _ in serves.values():
                pin(p.pid, others)
            CLIENT_PREFIX[:] = ["taskset", "-c", others]
        names = ("direct", "redirect", "proxy")
        runs = {name: [] for name in names}
        curl(serves["proxy"][1])  # a first read warms radosgw's caches for every way alike
        for _ in range(a.runs):  # interleaved, so that drift hits every way alike
            for name in names:
                if name == "direct":
                    url = s3("presign", f"processed_{vid}.mp4", "600").decode().strip()
                    runs[name].append(curl(url))
                else:
                    runs[name].append(curl(serves[name][1], location=(name == "redirect")))
        results = {}
        for name in names:
            assert all(r[2] == a.mib << 20 for r in runs[name]), runs[name]
            results[name] = (statistics.median(r[0] for r in runs[name]),
                             statistics.median(r[1] for r in runs[name]) / (1 << 20))
        rss = hwm_kib(serves["proxy"][0].pid)
        where = "the store on CPU 0, serve and curl on " + others if a.pin else "shared cores"
        link = "the store on a namespace host, over veth" if a.host else "loopback"
        print(f"object {a.mib} MiB, {a.runs} runs each, median (curl -o /dev/null, {link}, "
              f"{where})")
        for name, (secs, mibs) in results.items():
            print(f"  {name:9s} {secs:7.3f} s  {mibs:8.1f} MiB/s")
        print(f"  proxy serve peak RSS (VmHWM): {rss / 1024:.1f} MiB")
    finally:
        for p in procs:
            stop(p)
        if rgw:
            rgw.stop()
        if net:
            net.close()


if __name__ == "__main__":
    main()
