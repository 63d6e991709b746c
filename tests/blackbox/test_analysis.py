"""Analysis end to end: a long silence in the middle of an interview becomes an event."""
import subprocess

import requests


def test_silence_in_the_middle_is_an_event(service, file_server, media):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=8",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=8",
                    "-af", "volume=enable='between(t,2,5)':volume=0",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                    str(media / "pause.mp4")], check=True, timeout=60)
    task_id = service.submit(file_server.url("pause.mp4")).json()["task_id"]
    code, body = service.wait_done(task_id)
    assert body["status"] == "success", body
    meta = requests.get(body["metadata_url"]).json()
    audio = meta["analysis"]["audio"]
    assert audio["present"] and audio["audible"]
    silences = [e for e in meta["events"] if e["kind"] == "silence"]
    assert len(silences) == 1, meta["events"]
    assert abs(silences[0]["start"] - 2.0) < 0.3 and abs(silences[0]["end"] - 5.0) < 0.3
    assert 0.3 < audio["silence_ratio"] < 0.45
