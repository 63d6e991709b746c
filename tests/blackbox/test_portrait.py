"""Portrait videos keep their orientation and resolution: MAX_HEIGHT (1080 by default) caps the
shorter side, as "1080p" means for a phone held upright."""
import json
import os
import subprocess

import requests

from conftest import ffmpeg


def video_size(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=width,height", "-of", "json", path],
                         capture_output=True, text=True, check=True, timeout=60)
    stream = json.loads(out.stdout)["streams"][0]
    return stream["width"], stream["height"]


def portrait_clip(media, width, height):
    name = f"portrait-{width}x{height}.mp4"
    if not os.path.exists(media / name):
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=5:duration=1",
               "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
               str(media / name))
    return name


def test_portrait_videos_keep_their_resolution(service, file_server, media):
    expected = {(720, 1280): (720, 1280), (2160, 3840): (1080, 1920)}
    tasks = {}
    for size in expected:
        r = requests.post(service.base + "/submit", timeout=10,
                          json={"video_url": file_server.url(portrait_clip(media, *size)),
                                "analysis": False})
        assert r.status_code == 200, r.text
        tasks[size] = r.json()["task_id"]
    for size, task_id in tasks.items():
        code, body = service.wait_done(task_id, timeout=300)
        assert code == 200 and body["status"] == "success", (body, service.dump_logs())
        stored = os.path.join(service.processed, f"processed_{body['video_id']}.mp4")
        assert video_size(stored) == expected[size], size
        meta = requests.get(body["metadata_url"], timeout=10).json()
        out = meta["output"]
        assert (out["width"], out["height"]) == expected[size], size
