"""Load and timing tools: wrk (HTTP load, figures read from a Lua done() hook) and hyperfine."""
import json
import os
import shlex
import subprocess
import tempfile

from harness import BenchBroken

LUA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lua")


def lua_script(tmp, name, subst=None):
    """Writes lua/<name>.lua (placeholders @KEY@ replaced) followed by the report hook; returns
    the path of the combined script."""
    parts = []
    for part in ([name] if name else []) + ["report"]:
        with open(os.path.join(LUA_DIR, part + ".lua")) as f:
            parts.append(f.read())
    text = "\n".join(parts)
    for key, value in (subst or {}).items():
        text = text.replace(f"@{key}@", str(value))
    fd, path = tempfile.mkstemp(prefix=f"wrk-{name or 'get'}-", suffix=".lua", dir=tmp)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def wrk(url, script, conns, duration_s, threads=2):
    """One wrk run; returns requests/s, bytes/s, p50/p99 (ms) and error counts.

    BenchBroken when wrk fails, when any answer is not 2xx/3xx, or when more than 1% of the
    requests hit socket errors: those are wrong answers, not slowness.
    """
    args = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration_s}s", "--timeout", "30s",
            "--latency", "-s", script, url]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=duration_s + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchBroken(f"wrk failed ({proc.returncode}): {proc.stderr[-500:]}")
    raw = json.loads(line[len("BENCHJSON "):])
    secs = raw["duration_us"] / 1e6
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    out = {
        "requests": raw["requests"], "seconds": round(secs, 3),
        "rps": raw["requests"] / secs, "bytes_per_s": raw["bytes"] / secs,
        "p50_ms": raw["p50_us"] / 1000, "p99_ms": raw["p99_us"] / 1000,
        "non_2xx": raw["status"], "socket_errors": errors,
    }
    if raw["requests"] == 0 or raw["status"] > 0 or errors > 0.01 * raw["requests"]:
        raise BenchBroken(f"wrk {url}: {raw['requests']} requests, {raw['status']} not 2xx/3xx, "
                          f"{errors} socket errors")
    return out


def hyperfine(commands, runs, warmup, tmp):
    """Times argv lists with hyperfine (no shell); returns median seconds for each, in order.

    BenchBroken when a command fails.
    """
    export = os.path.join(tmp, "hyperfine.json")
    args = ["hyperfine", "--shell=none", "--style", "none", "--runs", str(runs),
            "--warmup", str(warmup), "--export-json", export]
    args += [shlex.join(cmd) for cmd in commands]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise BenchBroken(f"hyperfine failed: {proc.stderr[-800:]}")
    with open(export) as f:
        results = json.load(f)["results"]
    return [{"median_s": r["median"], "runs_s": r["times"]} for r in results]
