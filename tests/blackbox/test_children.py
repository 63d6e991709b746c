"""How many ffmpeg/ffprobe children one task starts (issue 10, item 9): one ffprobe (format,
streams and the packet scan) and one ffmpeg (the remux or transcode, with the poster as its
second output); a poster run of its own only when the convert got no frame at the poster's time.

The worker finds ffmpeg and ffprobe in PATH, so the test puts first in PATH two scripts that
write one line per run and exec the real programs: the count does not rely on the worker's own.
The worker's log line "task=<id> children=N" must say the same.
"""
import os
import re
import shutil
import stat

import pytest
import requests

from conftest import Service, ffmpeg

SHIM = """#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >> {log}
exec {real} "$@"
"""


@pytest.fixture
def counted(tmp_path, redis_server, file_server, media):
    """A service whose ffmpeg and ffprobe runs are written to runs.log, one line each."""
    bindir = tmp_path / "shim"
    bindir.mkdir()
    log = tmp_path / "runs.log"
    for tool in ("ffmpeg", "ffprobe"):
        script = bindir / tool
        script.write_text(SHIM.format(log=log, real=shutil.which(tool)))
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    svc = Service(str(tmp_path), redis_server, file_server, extra_env=env)
    svc.runs_log = log
    yield svc
    codes = svc.stop()
    assert all(c == 0 for c in codes.values()), (codes, svc.dump_logs())


def runs(svc):
    """The task runs so far (the worker's one `ffmpeg -version` at its first task aside)."""
    if not os.path.exists(svc.runs_log):
        return []
    lines = open(svc.runs_log).read().splitlines()
    return [line for line in lines if not line.endswith(" -version")]


def run_task(svc, file_server, name):
    before = len(runs(svc))
    r = requests.post(svc.base + "/submit", timeout=10,
                      json={"video_url": file_server.url(name), "analysis": False})
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    code, body = svc.wait_done(task_id)
    assert code == 200 and body["status"] == "success", (body, svc.dump_logs())
    log = open(svc.workers[0].log_name).read()
    logged = re.findall(rf"task={task_id} children=(\d+)", log)
    meta = requests.get(body["metadata_url"], timeout=10).json()
    poster = os.path.join(svc.processed, f"processed_{body['video_id']}.jpg")
    with open(poster, "rb") as f:
        assert f.read(2) == b"\xff\xd8", "poster is not a JPEG"
    return runs(svc)[before:], [int(n) for n in logged], meta


@pytest.mark.parametrize("name,mode", [("clip.mp4", "remux"), ("clip.webm", "transcode")])
def test_one_probe_and_one_ffmpeg_per_task(counted, file_server, name, mode):
    task_runs, logged, meta = run_task(counted, file_server, name)
    assert meta["processing"]["mode"] == mode
    tools = [line.split()[0] for line in task_runs]
    assert tools == ["ffprobe", "ffmpeg"], task_runs
    assert "image2" in task_runs[1], "the poster is not an output of the convert"
    assert logged == [2], logged
    assert set(meta["processing"]["timings_ms"]) >= {"probe", "process", "poster"}


def test_poster_run_of_its_own_when_the_video_ends_early(counted, file_server, media):
    """1 s of video, 20 s of audio: the poster's time (2 s) is past the last frame, so the
    convert writes no poster; the old two tries follow (2 s on the output, then its first
    frame), and the task still succeeds with a poster."""
    name = "short-video-long-audio.mp4"
    if not os.path.exists(media / name):
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1",
               "-f", "lavfi", "-i", "sine=frequency=440:duration=20",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(media / name))
    task_runs, logged, meta = run_task(counted, file_server, name)
    assert meta["processing"]["mode"] == "remux"
    assert [line.split()[0] for line in task_runs] == ["ffprobe", "ffmpeg", "ffmpeg", "ffmpeg"], \
        task_runs
    assert "-ss 2.000" in task_runs[2] and "-ss 0.000" in task_runs[3], task_runs
    assert logged == [4], logged
    assert meta["output"]["width"] == 320 and meta["output"]["height"] == 240
