#!/usr/bin/python3
"""Before/after figures for issue 10 item 9 (fewer ffmpeg/ffprobe children per task): two
interview-api binaries side by side in one run, each with its own Redis, nginx origin, serve and
worker, their runs alternating (A B A B ...) so that the shared machine's load hits both.

For each binary and clip: submit -> success (analysis off: the pipeline alone, as the goal is
about it; and, for the first clip, analysis on), the worker's stage timings, one hyperfine run of
the worker's own child commands (captured from /proc) and one of the issue's reference, bare curl
+ a plain `ffmpeg -c copy` remux (the same command for both binaries). Prints a JSON summary.

    /usr/bin/python3 bench/children.py --before OLD/interview-api --after build/interview-api
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from clips import make_clip, mirror_argv, worker_commands
from harness import BenchBroken
import report
from run import FULL, SMOKE, Bench


def plain_reference(b, clip):
    """Seconds of bare curl and of a plain remux of clip (no poster, no probe)."""
    commands = {"probes": [], "convert": mirror_argv("remux", os.path.join(b.clips, clip),
                                                     os.path.join(b.tmp, "plain-out.mp4")),
                "outprobes": [], "poster": None, "analysis": []}
    t = b.bare_times(clip, commands, 0)
    return t["fetch"], t["convert"]


def analysis_wall(b, clip):
    t0 = time.monotonic()
    task = b.svc.submit(b.nginx.origin_url(clip), analysis=True)
    b.svc.wait_success(task)
    return time.monotonic() - t0


def measure(benches, clip, runs, with_analysis):
    out = {}
    commands = {}
    for name, b in benches.items():
        cap = b.captured_task(clip)
        _, st = b.task_runs(clip, 1)
        commands[name], source = worker_commands(
            cap, st[0]["mode"], os.path.join(b.clips, clip), os.path.join(b.tmp, "bare-out.mp4"),
            os.path.join(b.tmp, "bare-poster.jpg"))
        out[name] = {"mode": st[0]["mode"], "argv_source": source, "commands": commands[name],
                     "walls_s": [], "stages_ms": [], "bare_s": [], "plain_s": [],
                     "analysis_walls_s": []}
    for i in range(runs):
        for name, b in benches.items():
            m = out[name]
            w, st = b.task_runs(clip, 1)
            m["walls_s"] += w
            m["stages_ms"] += st
            m["bare_s"].append(b.bare_times(clip, commands[name], 1 if i == 0 else 0))
            m["plain_s"].append(plain_reference(b, clip))
            if with_analysis:
                m["analysis_walls_s"].append(analysis_wall(b, clip))
    for m in out.values():
        med = report.median
        m["wall_s"] = med(m["walls_s"])
        m["stage_ms"] = {k: med([s[k] for s in m["stages_ms"]])
                         for k in ("probe", "process", "poster")}
        m["bare_children_s"] = {k: med([b[k] for b in m["bare_s"]]) for k in m["bare_s"][0]}
        m["plain_fetch_s"] = med([p[0] for p in m["plain_s"]])
        m["plain_remux_s"] = med([p[1] for p in m["plain_s"]])
        m["overhead_s"] = med([w - sum(p) for w, p in zip(m["walls_s"], m["plain_s"])])
        m["process_ratio"] = med([s["process"] / 1000 / (b["convert"] + b["outprobe"])
                                  for s, b in zip(m["stages_ms"], m["bare_s"])])
        if m["analysis_walls_s"]:
            m["analysis_wall_s"] = med(m["analysis_walls_s"])
        del m["commands"]
    return out


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", required=True, help="interview-api binary before the change")
    p.add_argument("--after", required=True, help="interview-api binary after the change")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--smoke", action="store_true", help="small clips, one run")
    args = p.parse_args(argv)
    s = dict(SMOKE if args.smoke else FULL)
    runs = 1 if args.smoke else args.runs
    w, h = s["size"]
    tmp = tempfile.mkdtemp(prefix="ia-children-")
    benches = {}
    load = os.getloadavg()[0]
    try:
        for name, binary in (("before", args.before), ("after", args.after)):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            benches[name] = Bench(os.path.abspath(binary), s, d)
        clips = [make_clip(benches["after"].clips, "h264_aac_mp4", w, h, n)
                 for n in s["overhead_s"]]
        for b in benches.values():
            b.start()
        results = {clip: measure(benches, clip, runs, with_analysis=(k == 0))
                   for k, clip in enumerate(clips)}
    except BenchBroken as e:
        print(f"children: BROKEN: {e}", file=sys.stderr)
        return 1
    finally:
        for b in benches.values():
            b.procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                      "loadavg_1min": {"start": load, "end": os.getloadavg()[0]}, "runs": runs,
                      "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
