"""/status shows progress moving during a transcode, read from ffmpeg's -progress output."""
import subprocess
import time

import requests

from conftest import SLOW


def test_progress_moves_during_a_transcode(service, file_server, media):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=20",
                    "-f", "lavfi", "-i", "sine=frequency=300:duration=20",
                    "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "400k",
                    "-c:a", "libopus", str(media / "long.webm")], check=True, timeout=120)
    task_id = service.submit(file_server.url("long.webm")).json()["task_id"]
    seen = []
    deadline = time.time() + 180 * SLOW
    while time.time() < deadline:
        body = requests.get(f"{service.base}/status/{task_id}", timeout=5).json()
        if body["status"] != "processing":
            break
        if body["stage"] == "processing":
            seen.append(body["progress"])
        time.sleep(0.05)
    assert body["status"] == "success", body
    moving = sorted(set(p for p in seen if 0.0 < p < 1.0))
    assert len(moving) >= 2, f"progress during the transcode: {seen}"
    assert seen == sorted(seen), f"progress went backwards: {seen}"
