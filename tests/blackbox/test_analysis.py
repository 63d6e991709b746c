"""Analysis end to end: a long pause in speech becomes a silence event, with its evidence and cue."""
import subprocess

import requests


def speech_with_pause(media):
    """Speech (espeak-ng), 3 s without speech, speech again: about 2.2 + 3 + 2.2 s."""
    say = media / "say.wav"
    subprocess.run(["espeak-ng", "-w", str(say), "I have five years of experience."],
                   check=True, timeout=60)
    out = media / "pause.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=9",
                    "-i", str(say), "-i", str(say), "-filter_complex",
                    "[1:a]apad=pad_dur=3[a1];[a1][2:a]concat=n=2:v=0:a=1[a]",
                    "-map", "0:v", "-map", "[a]", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-shortest", str(out)], check=True, timeout=60)
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                            "-of", "csv=p=0", str(say)], capture_output=True, text=True)
    return out, float(probe.stdout)


def test_pause_in_speech_is_a_silence_event(service, file_server, media):
    path, said = speech_with_pause(media)
    task_id = service.submit(file_server.url(path.name)).json()["task_id"]
    code, body = service.wait_done(task_id)
    assert body["status"] == "success", body
    meta = requests.get(body["metadata_url"]).json()
    analysis = meta["analysis"]
    assert analysis["audio"]["present"] and analysis["audio"]["audible"]
    silences = [e for e in analysis["events"] if e["kind"] == "silence"]
    assert len(silences) >= 1, analysis["events"]
    pause = min(silences, key=lambda e: abs(e["start"] - said))
    assert abs(pause["end"] - (said + 3.0)) < 0.5, pause
    assert pause["start"] < said + 0.5, pause
    assert "analysis" in meta["processing"]["timings_ms"]
    base = service.base
    ev = requests.get(f"{base}/evidence/{task_id}/{pause['id']}.jpg")
    assert ev.status_code == 200 and ev.content[:2] == b"\xff\xd8"
    vtt = requests.get(f"{base}/events/{task_id}.vtt")
    assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
    assert f"\n{pause['id']}\n" in vtt.text
