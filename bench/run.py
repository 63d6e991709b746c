#!/usr/bin/python3
"""interview-api benchmarks: each figure side by side with its physical reference in the same run.

HTTP figures against nginx (wrk), processing figures against bare ffmpeg and curl (hyperfine),
memory from /proc; then face detection and head pose on frames composed from real photographs,
beside OpenCV's Haar cascade (vision_accuracy.py, with `vision-eval` from the binary's folder).
Everything runs on loopback and is stopped by PID at the end, also on errors.
Writes bench/results/<date>-<commit>.json and the table in docs/benchmarks.md; with --smoke, one
short iteration of each into --out. Exit status: 0 when every benchmark ran (goals met or not),
1 when a benchmark is broken (cannot run, or wrong answers).
"""
import argparse
import datetime
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import requests

from clips import ArgvCapture, make_clip, make_interview_clip, worker_commands
from harness import BenchBroken, Nginx, Procs, Redis, Service, rss_kb
from loadgen import hyperfine, lua_script, wrk
import report
import vision_accuracy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FULL = {"runs": 3, "wrk_s": 5, "patchers": 10, "stream_mb": 200, "size": (1280, 720), "media_s": 10,
        "overhead_s": [10, 60], "queue_n": 50, "queue_s": 10, "warmup": 1, "interview_s": 60}
SMOKE = {"runs": 1, "wrk_s": 1, "patchers": 2, "stream_mb": 32, "size": (320, 240), "media_s": 2,
         "overhead_s": [2, 4], "queue_n": 4, "queue_s": 2, "warmup": 0, "interview_s": 4}
SLOTS = 2
# The benchmarks --only may name (the rest need the worker and clips: the whole run).
PARTS = ("small_json", "stream", "submit", "status_under_patch")
PATCH_CHUNK = 16 * 1048576  # a tus PATCH as clients send them (the largest serve takes)
PATCH_CHUNKS = 4            # per upload; the last one completes it (and syncs it)
# Generated clips are kept between runs (bump the version when their recipe changes).
CLIP_CACHE = os.path.join(tempfile.gettempdir(), "ia-bench-clips-v1")
MIB = 1048576


class Bench:
    """One benchmark run: its processes, files and figures."""

    def __init__(self, binary, settings, tmp, only=None):
        self.binary, self.s, self.tmp = binary, settings, tmp
        self.only = only
        self.threads = os.cpu_count() or 1
        self.procs = Procs()
        self.figures = []
        self.memory = {}
        self.media = {}
        self.clips = CLIP_CACHE
        self.static = os.path.join(tmp, "static")
        os.makedirs(self.clips, exist_ok=True)
        os.makedirs(self.static)

    def log(self, msg):
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    # ---- setup ----

    def make_clips(self):
        w, h = self.s["size"]
        self.log("generating clips")
        self.tiny = make_clip(self.clips, "h264_aac_mp4", 320, 240, 1)
        self.remux_clip = make_clip(self.clips, "h264_aac_mp4", w, h, self.s["media_s"])
        self.transcode_clip = make_clip(self.clips, "vp8_opus_webm", w, h, self.s["media_s"])
        self.overhead_clips = [make_clip(self.clips, "h264_aac_mp4", w, h, n)
                               for n in self.s["overhead_s"]]
        self.queue_clip = make_clip(self.clips, "h264_aac_mp4", w, h, self.s["queue_s"])
        self.interview_clip = make_interview_clip(self.clips, w, h, self.s["interview_s"])

    def start(self):
        self.redis = Redis(self.procs, self.tmp)
        processed = os.path.join(self.tmp, "processed")
        os.makedirs(processed)
        self.nginx = Nginx(self.procs, self.tmp, self.clips, processed, self.static,
                           self.threads)
        self.svc = Service(self.procs, self.binary, self.tmp, self.redis,
                           self.nginx.origin_port, self.threads, SLOTS)
        self.svc.start_worker()

    def memory_sample(self, role, when):
        proc = self.svc.serve if role == "serve" else self.svc.worker
        self.memory[f"{role}_{when}"] = rss_kb(proc.pid)

    # ---- HTTP against nginx ----

    def interleaved(self, ours, ref, conns, script, key):
        """Alternates wrk runs on our URL and nginx's; returns (our runs, nginx runs) of key."""
        a, b = [], []
        for _ in range(self.s["runs"]):
            a.append(wrk(ours, script, conns, self.s["wrk_s"]))
            b.append(wrk(ref, script, conns, self.s["wrk_s"]))
        return [r[key] for r in a], [r[key] for r in b], a, b

    def finished_task(self):
        """A real finished task; writes nginx's copy of its /status body."""
        task = self.svc.submit(self.nginx.origin_url(self.tiny))
        body = self.svc.wait_success(task, timeout=60)
        raw = self.svc.session.get(f"{self.svc.base}/status/{task}", timeout=5).content
        with open(os.path.join(self.static, "status.json"), "wb") as f:
            f.write(raw)
        check_same(f"{self.svc.base}/status/{task}", self.nginx.ref_url("/status.json"))
        return task, body["video_id"]

    def bench_small_json(self, task, video_id):
        get = lua_script(self.tmp, None)
        self.log("GET /status and /metadata vs nginx, 50 connections")
        ours, ref, a, b = self.interleaved(f"{self.svc.base}/status/{task}",
                                           self.nginx.ref_url("/status.json"), 50, get, "rps")
        self.add("status_rps", "GET /status/{id} (finished task), 50 conns", "req/s", ours, ref,
                 "nginx static JSON", ("ratio_min", 0.5))
        self.add("status_p99", "GET /status/{id} p99 latency, 50 conns", "ms",
                 [r["p99_ms"] for r in a], [r["p99_ms"] for r in b], "nginx static JSON",
                 ("ratio_max", 2.0))
        check_same(f"{self.svc.base}/metadata/{video_id}",
                   self.nginx.ref_url(f"/processed_{video_id}.json"))
        ours, ref, _, _ = self.interleaved(f"{self.svc.base}/metadata/{video_id}",
                                           self.nginx.ref_url(f"/processed_{video_id}.json"),
                                           50, get, "rps")
        self.add("metadata_rps", "GET /metadata/{id}, 50 conns", "req/s", ours, ref,
                 "nginx, same JSON file", ("ratio_min", 0.5))

    def big_file(self):
        """A stream file written straight into PROCESSED_DIR (no processing needed)."""
        vid = str(uuid.uuid4())
        size = self.s["stream_mb"] * MIB
        base = os.path.join(self.svc.processed, f"processed_{vid}")
        block = os.urandom(MIB)
        with open(base + ".mp4", "wb") as f:
            for _ in range(self.s["stream_mb"]):
                f.write(block)
        with open(base + ".json", "w") as f:
            f.write('{"bench": true}\n')
        return vid, size

    def bench_stream(self):
        vid, size = self.big_file()
        ours, ref = f"{self.svc.base}/stream/{vid}", self.nginx.ref_url(f"/processed_{vid}.mp4")
        check_same(ours, ref, {"Range": "bytes=1000-1049575"}, 206)
        self.log(f"GET /stream of {self.s['stream_mb']} MiB vs nginx, 4 connections")
        a, b, _, _ = self.interleaved(ours, ref, 4, lua_script(self.tmp, None), "bytes_per_s")
        self.add("stream_mbps", f"GET /stream/{{id}} whole {self.s['stream_mb']} MiB file, "
                 "4 conns", "MB/s", [x / 1e6 for x in a], [x / 1e6 for x in b],
                 "nginx sendfile", ("ratio_min", 0.9))
        self.log("GET /stream random 1 MiB ranges vs nginx, 4 connections")
        script = lua_script(self.tmp, "range", {"SIZE": size})
        a, b, _, _ = self.interleaved(ours, ref, 4, script, "rps")
        self.add("range_rps", "GET /stream/{id} random 1 MiB Range, 4 conns", "req/s", a, b,
                 "nginx, same ranges", ("ratio_min", 0.8))

    def bench_submit(self):
        """POST /submit without a worker (nothing is processed), purged after each run."""
        self.svc.stop_worker()
        url = self.nginx.origin_url("missing-fails-fast.mp4")
        self.svc.submit(url)
        self.redis.cli("FLUSHALL")
        post = lua_script(self.tmp, "post", {"BODY": f'{{"video_url":"{url}"}}'})
        get = lua_script(self.tmp, None)
        self.log("POST /submit vs nginx static JSON, 50 connections")
        ours, ref = [], []
        for _ in range(self.s["runs"]):
            ours.append(wrk(f"{self.svc.base}/submit", post, 50, self.s["wrk_s"])["rps"])
            queued = int(self.redis.cli("LLEN", "celery"))
            self.redis.cli("FLUSHALL")
            ref.append(wrk(self.nginx.ref_url("/status.json"), get, 50, self.s["wrk_s"])["rps"])
        if queued == 0:
            raise BenchBroken("POST /submit load queued no task")
        self.add("submit_rps", "POST /submit (fail-fast URL, no worker), 50 conns", "req/s",
                 ours, ref, "nginx static JSON (GET)", ("ratio_min", 0.3),
                 {"queued_in_last_run": queued})

    def patcher(self, stop, counts, errors):
        """One tus client until stop: uploads of PATCH_CHUNKS chunks of 16 MiB, then removed."""
        chunk = os.urandom(PATCH_CHUNK)
        session = requests.Session()
        tus = {"Tus-Resumable": "1.0.0"}
        uploads = os.path.join(self.svc.processed, ".uploads")
        while not stop.is_set():
            r = session.post(f"{self.svc.base}/uploads", timeout=60,
                             headers=dict(tus, **{"Upload-Length": str(PATCH_CHUNK * PATCH_CHUNKS)}))
            if r.status_code != 201:
                errors.append(f"POST /uploads: {r.status_code}")
                return
            url, upload_id = r.headers["Location"], r.headers["Location"].rsplit("/", 1)[1]
            for i in range(PATCH_CHUNKS):
                r = session.patch(url, data=chunk, timeout=120, headers=dict(
                    tus, **{"Upload-Offset": str(i * PATCH_CHUNK),
                            "Content-Type": "application/offset+octet-stream"}))
                if r.status_code == 503:  # the body budget is full: as a client would, retry
                    time.sleep(0.1)
                    continue
                if r.status_code != 204:
                    errors.append(f"PATCH: {r.status_code} {r.text[:100]}")
                    return
                counts.append(1)
                if stop.is_set():
                    break
            for ext in ("bin", "len", "task"):
                try:
                    os.unlink(os.path.join(uploads, f"{upload_id}.{ext}"))
                except FileNotFoundError:
                    pass

    def putter(self, path, stop, counts, errors):
        """The same load on nginx: 16 MiB bodies PUT to path until stop (a file of its own under
        /put/, which nginx writes to disk, or /discard, which it reads and drops)."""
        chunk = os.urandom(PATCH_CHUNK)
        session = requests.Session()
        if path == "/put/":
            path += uuid.uuid4().hex
        while not stop.is_set():
            r = session.put(self.nginx.ref_url(path), data=chunk, timeout=120)
            if r.status_code not in (201, 204):
                errors.append(f"PUT {path}: {r.status_code}")
                return
            counts.append(1)

    def p99_under_load(self, url, get, client, args):
        """/status p99 (10 conns) while self.s["patchers"] threads run client(*args, stop,
        counts, errors); returns (p99 in ms, bodies sent)."""
        stop, counts, errors = threading.Event(), [], []
        threads = [threading.Thread(target=client, args=(*args, stop, counts, errors))
                   for _ in range(self.s["patchers"])]
        for t in threads:
            t.start()
        time.sleep(1)  # the bodies are flowing
        try:
            p99 = wrk(url, get, 10, self.s["wrk_s"])["p99_ms"]
        finally:
            stop.set()
            for t in threads:
                t.join()
        if errors:
            raise BenchBroken(f"body clients failed: {errors[:3]}\n{self.svc.logs()}")
        return p99, len(counts)

    def bench_status_under_patch(self, task):
        """GET /status p99 while clients PATCH 16 MiB chunks, against nginx's p99 for the same
        answer while the same clients PUT 16 MiB bodies to it; and each alone."""
        self.svc.stop_worker()  # the completed uploads make tasks: nobody runs them
        get = lua_script(self.tmp, None)
        ours_url, ref_url = f"{self.svc.base}/status/{task}", self.nginx.ref_url("/status.json")
        n = self.s["patchers"]
        self.log(f"GET /status p99 while {n} clients send 16 MiB bodies, 10 conns, vs nginx")
        alone, loaded, ref_alone, ref_loaded, ref_discard = [], [], [], [], []
        chunks = {"ours": [], "nginx_put": [], "nginx_discard": []}
        for _ in range(self.s["runs"]):
            alone.append(wrk(ours_url, get, 10, self.s["wrk_s"])["p99_ms"])
            ref_alone.append(wrk(ref_url, get, 10, self.s["wrk_s"])["p99_ms"])
            for runs, url, client, args, key in (
                    (loaded, ours_url, self.patcher, (), "ours"),
                    (ref_loaded, ref_url, self.putter, ("/put/",), "nginx_put"),
                    (ref_discard, ref_url, self.putter, ("/discard",), "nginx_discard")):
                p99, sent = self.p99_under_load(url, get, client, args)
                runs.append(p99)
                chunks[key].append(sent)
        self.redis.cli("FLUSHALL")
        self.add("status_p99_patch", f"GET /status/{{id}} p99 while {n} clients send 16 MiB "
                 "bodies, 10 conns", "ms", loaded, ref_loaded,
                 "nginx's /status.json p99 while the same clients PUT 16 MiB to it (stored)",
                 ("ratio_max", 2.0),
                 {"bodies_per_run": chunks, "p99_alone_ms": alone, "nginx_p99_alone_ms": ref_alone,
                  "nginx_p99_discarding_ms": ref_discard,
                  "ratio_to_own_p99_alone": round(statistics.median(loaded)
                                                  / statistics.median(alone), 1)})

    # ---- processing against bare ffmpeg and curl ----

    def task_runs(self, clip, runs):
        """Submits clip `runs` times one after another; wall seconds and stage timings (ms)."""
        walls, stages = [], []
        for _ in range(runs):
            t0 = time.monotonic()
            task = self.svc.submit(self.nginx.origin_url(clip))
            body = self.svc.wait_success(task)
            walls.append(time.monotonic() - t0)
            meta = self.svc.metadata(body["video_id"])
            timings = meta.get("processing", {}).get("timings_ms")
            if not isinstance(timings, dict) or "process" not in timings:
                raise BenchBroken(f"metadata of {clip} has no processing.timings_ms")
            stages.append({**timings, "mode": meta["processing"].get("mode")})
        return walls, stages

    def captured_task(self, clip):
        """One unmeasured task with the worker's ffmpeg argv captured; returns the capture."""
        with ArgvCapture(self.svc.worker.pid) as cap:
            self.task_runs(clip, 1)
        return cap

    def bare_times(self, clip, commands, warmup):
        """One hyperfine run (after warmup ones) of bare curl and of the worker's commands;
        seconds by stage."""
        curl = ["curl", "-sSf", "-o", os.path.join(self.tmp, "bare-fetch"),
                self.nginx.origin_url(clip)]
        groups = [("fetch", [curl]), ("probe", commands["probes"]),
                  ("convert", [commands["convert"]]), ("outprobe", commands["outprobes"]),
                  ("poster", [commands["poster"]] if commands["poster"] else []),
                  ("analysis", commands["analysis"])]
        flat = [argv for _, argvs in groups for argv in argvs]
        medians = iter(r["median_s"] for r in hyperfine(flat, 1, warmup, self.tmp))
        return {name: sum(next(medians) for _ in argvs) for name, argvs in groups}

    def service_and_bare(self, clip):
        """A warm-up task (its child commands captured), then runs alternating one task through
        the service with one bare run (hyperfine) of curl and of the same child commands."""
        cap = self.captured_task(clip)
        walls, stages, bares = [], [], []
        for i in range(self.s["runs"]):
            w, st = self.task_runs(clip, 1)
            walls += w
            stages += st
            if i == 0:
                commands, source = worker_commands(
                    cap, st[0]["mode"], os.path.join(self.clips, clip),
                    os.path.join(self.tmp, "bare-out.mp4"), os.path.join(self.tmp, "bare-poster.jpg"))
            bares.append(self.bare_times(clip, commands, self.s["warmup"] if i == 0 else 0))
        bare = {k: report.median([b[k] for b in bares]) for k in bares[0]}
        worker = {k: report.median([st[k] for st in stages]) for k in ("probe", "process", "poster")}
        return {"clip": clip, "mode": stages[0]["mode"], "walls_s": walls,
                "wall_s": report.median(walls), "stages_ms": stages, "worker_ms": worker,
                "bare_s": bare, "bare_runs_s": bares, "argv_source": source, "commands": commands}

    def bench_convert(self):
        for clip in (self.remux_clip, self.transcode_clip):
            self.log(f"{clip}: through the service and bare ffmpeg")
            m = self.service_and_bare(clip)
            self.media[clip] = m
            bare_ms = [(b["convert"] + b["outprobe"]) * 1000 for b in m["bare_runs_s"]]
            self.add(f"{m['mode']}_process", f"{m['mode']} of {clip}: worker's process stage "
                     "(ffmpeg writing video and poster, + reading and hashing the output)", "ms", [s["process"] for s in m["stages_ms"]],
                     bare_ms, "the same commands, bare", ("ratio_max", 1.05),
                     {"bare_ffmpeg_ms": m["bare_s"]["convert"] * 1000,
                      "argv_source": m["argv_source"], "commands": m["commands"]})

    def bench_overhead(self):
        for clip in self.overhead_clips:
            self.log(f"{clip}: submit → success vs bare fetch + ffmpeg")
            m = self.media.get(clip) or self.service_and_bare(clip)
            self.media[clip] = m
            bare = [b["fetch"] + b["convert"] for b in m["bare_runs_s"]]
            self.add(f"overhead_{clip}", f"submit → success, {clip}", "s", m["walls_s"],
                     bare, "bare curl + ffmpeg", ("overhead_max", 0.3),
                     {"bare_s": m["bare_s"], "worker_ms": m["worker_ms"],
                      "argv_source": m["argv_source"]})

    def queue_once(self, n):
        """Submits n tasks at once; seconds until the last one succeeded."""
        url = self.nginx.origin_url(self.queue_clip)
        t0 = time.monotonic()
        pending = [self.svc.submit(url) for _ in range(n)]
        while pending:
            if self.svc.poll(pending[0])["status"] == "success":
                pending.pop(0)
            else:
                time.sleep(0.02)
        return time.monotonic() - t0

    def bench_queue(self):
        """Alternates one task alone (the reference, × n / slots) with n tasks queued at once."""
        n = self.s["queue_n"]
        self.log(f"{n} queued {self.queue_clip} with {SLOTS} slots")
        ones, runs = [], []
        for _ in range(self.s["runs"]):
            ones += self.task_runs(self.queue_clip, 1)[0]
            runs.append(self.queue_once(n))
        self.add("queue", f"{n} queued {self.queue_clip}, {SLOTS} worker slots", "s", runs,
                 [one * n / SLOTS for one in ones], f"one task alone × {n / SLOTS:g}",
                 ("ratio_max", 1.1), {"one_task_s": ones})

    # ---- the analysis of an interview ----

    def bench_interview(self):
        """A whole task with the analysis on, for a VP8/Opus WebM interview: the analysis stage
        and the task against the video's duration (no bare reference does this work)."""
        seconds = self.s["interview_s"]
        self.log(f"{self.interview_clip}: a whole task with the analysis")
        walls, analysis, wall_ms = [], [], []
        for _ in range(self.s["runs"]):
            t0 = time.monotonic()
            task = self.svc.submit(self.nginx.origin_url(self.interview_clip), analysis=True)
            body = self.svc.wait_success(task, timeout=600)
            walls.append((time.monotonic() - t0) / seconds)
            meta = self.svc.metadata(body["video_id"])
            ms = meta["processing"]["timings_ms"].get("analysis")
            if ms is None or "events" not in meta.get("analysis", {}):
                raise BenchBroken(f"{self.interview_clip}: no analysis in the metadata")
            analysis.append(ms / 1000 / seconds)
            wall_ms.append(meta["analysis"]["sampling"].get("wall_ms"))
        self.add("analysis_stage", f"analysis stage / duration, {self.interview_clip}", "×",
                 analysis, None, None, ("max", 0.2), {"wall_ms_by_part": wall_ms})
        self.add("interview_task", f"submit → success / duration, {self.interview_clip}", "×",
                 walls, None, None, ("max", 0.6))
        self.memory_sample("worker", "with_models")

    # ---- memory ----

    def memory_figures(self):
        goals = {"serve": 10, "worker": 16}
        for key, sample in self.memory.items():
            role, when = key.split("_", 1)
            goal = 200 if when == "with_models" else goals[role]
            self.add(f"rss_{key}", f"RSS of `{role}`, {when.replace('_', ' ')}", "MiB",
                     [sample["VmRSS"] / 1024], None, None, ("max", goal),
                     {k + "_MiB": v / 1024 for k, v in sample.items() if k != "VmRSS"})

    def add(self, fid, title, unit, runs, ref_runs, ref_name, goal, detail=None):
        f = report.figure(fid, title, unit, runs, goal, ref_runs, ref_name, detail)
        self.figures.append(f)
        ratio = f" ({f['ratio']:.2f}×)" if f["ratio"] else ""
        ref = "—" if f["reference"] is None else f"{f['reference']:.4g}"
        self.log(f"  {title}: {f['value']:.4g} {unit} vs {ref}{ratio} "
                 f"goal {f['goal']['text']}: {'MET' if f['met'] else 'NOT MET'}")

    def run_only(self):
        """The benchmarks named by --only (HTTP ones: no clips, no processing)."""
        self.tiny = make_clip(self.clips, "h264_aac_mp4", 320, 240, 1)
        self.start()
        time.sleep(1)
        task, video_id = self.finished_task()
        if "small_json" in self.only:
            self.bench_small_json(task, video_id)
        if "stream" in self.only:
            self.bench_stream()
        if "status_under_patch" in self.only:
            self.bench_status_under_patch(task)
        if "submit" in self.only:
            self.bench_submit()

    def run(self):
        if self.only:
            self.run_only()
            return
        self.make_clips()
        self.start()
        time.sleep(1)
        self.memory_sample("serve", "idle")
        self.memory_sample("worker", "idle")
        task, video_id = self.finished_task()
        self.bench_small_json(task, video_id)
        self.bench_stream()
        # Before the submits: their FLUSHALL would take the task whose /status is timed (once
        # its cached copy expires, it is a 404).
        self.bench_status_under_patch(task)
        self.bench_submit()
        self.memory_sample("serve", "after_load")
        self.svc.start_worker()
        self.bench_convert()
        self.bench_overhead()
        self.bench_queue()
        self.memory_sample("worker", "after_load")
        self.bench_interview()
        self.memory_figures()


def check_same(ours, ref, headers=None, status=200):
    """Both servers answer status with the same body; BenchBroken otherwise."""
    a = requests.get(ours, headers=headers, timeout=30)
    b = requests.get(ref, headers=headers, timeout=30)
    if a.status_code != status or b.status_code != status or a.content != b.content:
        raise BenchBroken(f"{ours} ({a.status_code}, {len(a.content)} bytes) and {ref} "
                          f"({b.status_code}, {len(b.content)} bytes) disagree")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True, help="interview-api binary (the normal build)")
    p.add_argument("--smoke", action="store_true", help="one short iteration of each")
    p.add_argument("--out", help="directory for results (default bench/results; docs/ is only "
                   "rewritten without --out)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--only", help="comma-separated HTTP benchmarks to run alone (needs --out): "
                   + ", ".join(PARTS))
    return p.parse_args(argv)


def sanitized(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True)
    return "libasan" in out.stdout or "libubsan" in out.stdout


def settings_text(s, threads):
    return (f"SERVE_THREADS={threads}, nginx worker_processes={threads}, WORKER_CONCURRENCY="
            f"{SLOTS}, wrk -t2 for {s['wrk_s']} s a run, {s['runs']} run(s) a figure, "
            f"clips {s['size'][0]}x{s['size'][1]} 25 fps.")


def write_outputs(args, results):
    date, commit = results["date"], results["git"]["commit"]
    out_dir = args.out or os.path.join(ROOT, "bench", "results")
    name = f"{date}-{commit}.json"
    results["file"] = os.path.relpath(os.path.join(out_dir, name), ROOT) if not args.out \
        else os.path.join(out_dir, name)
    report.write_json(os.path.join(out_dir, name), results)
    docs = os.path.join(out_dir, "benchmarks.md") if args.out else \
        os.path.join(ROOT, "docs", "benchmarks.md")
    report.write_docs(docs, results)
    print(f"results: {os.path.join(out_dir, name)}\ntable:   {docs}")


def main(argv):
    args = parse_args(argv)
    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        print(f"bench: {binary} is not an executable; run `make build`", file=sys.stderr)
        return 1
    s = SMOKE if args.smoke else FULL
    only = set(args.only.split(",")) if args.only else None
    if only and (not only <= set(PARTS) or not args.out):
        print(f"bench: --only takes {', '.join(PARTS)}, with --out", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="ia-bench-")
    t0 = time.monotonic()
    load_start = os.getloadavg()[0]
    git = report.git_info(ROOT)  # before the run: the tree the binary was built from
    if load_start > 0.25 * (os.cpu_count() or 1):
        print(f"bench: WARNING: load average {load_start:.2f} on {os.cpu_count()} CPUs; other "
              "work on this machine will skew the figures", file=sys.stderr, flush=True)
    bench = Bench(binary, s, tmp, only)
    try:
        bench.run()
    except BenchBroken as e:
        print(f"bench: BROKEN: {e}", file=sys.stderr)
        return 1
    finally:
        bench.procs.stop_all()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if only:  # the figures alone, in --out
        path = os.path.join(args.out, f"only-{git['commit']}.json")
        os.makedirs(args.out, exist_ok=True)
        report.write_json(path, {"git": git, "settings": s, "figures": bench.figures,
                                 "loadavg_1min": {"start": load_start,
                                                  "end": os.getloadavg()[0]}})
        print(f"results: {path}")
        return 0
    try:
        vision = vision_accuracy.run(os.path.join(os.path.dirname(binary), "vision-eval"),
                                     args.smoke, args.out, docs=not args.out)
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
        print(f"bench: BROKEN: vision accuracy: {e}", file=sys.stderr)
        return 1
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "mode": "smoke" if args.smoke else "full", "git": git,
        "machine": report.machine(), "binary": binary, "sanitized_binary": sanitized(binary),
        "settings": s, "settings_text": settings_text(s, bench.threads),
        "loadavg_1min": {"start": load_start, "end": os.getloadavg()[0]},
        "elapsed_s": time.monotonic() - t0, "memory_kb": bench.memory, "figures": bench.figures,
        "breakdown": [{k: m[k] for k in ("clip", "mode", "wall_s", "worker_ms", "bare_s")}
                      for m in bench.media.values()],
        "vision_accuracy": {k: vision[k] for k in ("frames", "met", "elapsed_s")} | {
            who: {k: vision[who][k] for k in ("found_pct", "count_pct", "false_faces",
                                              "yaw_pct")} for who in ("ours", "haar")},
    }
    write_outputs(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
