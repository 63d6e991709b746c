#!/usr/bin/python3
"""Publication of a 60 s interview's outputs (issue 12): the worker's publish stage to an S3
bucket (a one-node radosgw on loopback, STORAGE_URL) against the same stage to a local
directory (PROCESSED_DIR: temporary name, fsync, rename, fsync of the directory).

A real worker runs the whole task with the analysis on (VP8/Opus WebM interview, bench/clips.py),
so the outputs are the real ones: poster, video, metadata, events, review rendition, evidence
frames. The figure is the stage the worker times itself (`task=<id> stage=publish ms=N`: the
metadata written, every file published, the metadata last). Local and S3 tasks alternate,
RUNS of each; the median is reported with the files' count and size.

    /usr/bin/python3 bench/s3_publish.py --bin build/interview-api [--runs 3] [--smoke]

--smoke: a 4 s 320x240 interview, one task each way (for `make bench-smoke`). Exit status 1
when something is broken (a task fails, the bucket lacks a file the directory has). Everything
runs on loopback, every process is ours and stopped by PID.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "s3"))
from rgw import Rgw  # noqa: E402
from clips import make_interview_clip  # noqa: E402
from harness import BenchBroken, Nginx, Procs, Redis, Service  # noqa: E402

CLIP_CACHE = os.path.join(tempfile.gettempdir(), "ia-bench-clips-v1")  # as bench/run.py
FULL = {"size": (1280, 720), "seconds": 60, "runs": 3}
SMOKE = {"size": (320, 240), "seconds": 4, "runs": 1}


class Way:
    """One serve + worker (own PROCESSED_DIR and Redis), local or on the bucket."""

    def __init__(self, procs, binary, tmp, origin_port, extra):
        os.makedirs(tmp)
        redis = Redis(procs, tmp)  # its own, so that one worker never takes the other's task
        saved = dict(os.environ)
        os.environ.update(extra)  # harness.Service takes its environment from ours
        try:
            self.svc = Service(procs, binary, tmp, redis, origin_port, threads=2, slots=1)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        self.svc.env["LOG_LEVEL"] = "info"  # the worker's stage timings are info lines
        self.svc.start_worker()
        self.log = os.path.join(tmp, "worker.log")

    def publish_ms(self, url):
        """Runs one task; returns (video id, the publish stage in ms)."""
        task = self.svc.submit(url, analysis=True)
        body = self.svc.wait_success(task, timeout=1200)
        with open(self.log, "rb") as f:
            text = f.read().decode(errors="replace")
        m = re.search(rf"task={task} stage=publish ms=(\d+) result=ok", text)
        if not m:
            raise BenchBroken(f"no publish stage for task {task}\n{self.svc.logs()}")
        return body["video_id"], int(m.group(1))


def local_files(processed, vid):
    names = [n for n in os.listdir(processed) if n.startswith(f"processed_{vid}.")]
    return {n.split(".", 1)[1]: os.path.getsize(os.path.join(processed, n)) for n in names}


def bucket_files(s3, vid):
    out = {}
    for line in s3("ls", f"processed_{vid}.").decode().splitlines():
        key, size = line.split("\t")[:2]
        out[key.split(".", 1)[1]] = int(size)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "interview-api"))
    ap.add_argument("--runs", type=int)
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    s = dict(SMOKE if a.smoke else FULL)
    if a.runs:
        s["runs"] = a.runs
    binary = os.path.abspath(a.bin)
    tmp = tempfile.mkdtemp(prefix="ia-bench-s3pub-")
    os.makedirs(CLIP_CACHE, exist_ok=True)
    procs = Procs()
    rgw = None
    try:
        clip = make_interview_clip(CLIP_CACHE, *s["size"], s["seconds"])
        rgw = Rgw(base=tmp)
        s3env = {"STORAGE_URL": f"s3://bench/p{uuid.uuid4().hex[:6]}",
                 "AWS_ENDPOINT_URL_S3": rgw.endpoint, "AWS_REGION": rgw.region,
                 "AWS_ACCESS_KEY_ID": rgw.access_key, "AWS_SECRET_ACCESS_KEY": rgw.secret_key,
                 "S3_ALLOW_CIDRS": "127.0.0.1/32"}
        cli_env = dict(os.environ, **s3env)

        def s3(*args):
            return subprocess.run([binary, "s3", *args], env=cli_env, check=True,
                                  capture_output=True, cwd=tmp).stdout
        s3("mb")
        ndir = os.path.join(tmp, "nginx")
        os.makedirs(ndir)
        nginx = Nginx(procs, ndir, CLIP_CACHE, ndir, ndir, 1)
        url = nginx.origin_url(clip)
        ways = {name: Way(procs, binary, os.path.join(tmp, name), nginx.origin_port, extra)
                for name, extra in (("local", {}), ("s3", s3env))}
        times = {name: [] for name in ways}
        files = {}
        print(f"[s3_publish] {clip}: {s['runs']} task(s) each way, alternating", flush=True)
        for _ in range(s["runs"]):
            for name, way in ways.items():
                vid, ms = way.publish_ms(url)
                times[name].append(ms)
                files[name] = (local_files(way.svc.processed, vid) if name == "local"
                               else bucket_files(s3, vid))
        if set(files["local"]) != set(files["s3"]) or "json" not in files["s3"]:
            raise BenchBroken(f"published files differ: {files}")
        n = len(files["s3"])
        mib = sum(files["s3"].values()) / 1048576
        print(f"{clip}: {n} files, {mib:.1f} MiB ({', '.join(sorted(files['s3']))})")
        print("publish stage, median of the runs (worker's own timing)")
        for name in ways:
            med = statistics.median(times[name])
            print(f"  {name:6s} {med / 1000:7.3f} s  runs {[t / 1000 for t in times[name]]}"
                  f"  {mib / (med / 1000) if med else float('inf'):8.1f} MiB/s")
        return 0
    except BenchBroken as e:
        print(f"[s3_publish] BROKEN: {e}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        if rgw:
            rgw.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
