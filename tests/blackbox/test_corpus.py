"""The media corpus of issue 4, run through the real service (serve + worker, Redis, nginx).

A module fixture generates every clip with ffmpeg lavfi into a private directory (nothing is
committed), serves it with nginx on 127.0.0.2, submits all clips at once to a service with
WORKER_CONCURRENCY=2 and waits for all of them. Each clip carries its expected outcome:

- accepted clips: status success; output duration within 0.2 s of the clip's real duration;
  display width/height; audio presence (and AAC 48 kHz stereo after a transcode); the mode
  (remux exactly where the input is H.264 8-bit yuv420p with AAC or no audio in MP4/MOV, upright,
  square pixels, constant frame rate, even dimensions; transcode elsewhere); H.264 yuv420p output
  whose moov box precedes mdat (read from the file's top-level boxes, not only from metadata).
- rejected clips: status failed with the expected code.

Per-file timings from metadata processing.timings_ms are written to a JSON file under /tmp
(the benchmark hook: remux vs transcode time per file) and printed at the end.

A second test mounts a 2 MiB tmpfs as PROCESSED_DIR (needs root) and checks that a full disk
fails a task with storage_full, leaves nothing under a final name and the service keeps serving.
Run: IA_BIN=build/interview-api /usr/bin/python3 -m pytest -q tests/blackbox/test_corpus.py
"""
import json
import os
import random
import struct
import subprocess
import sys
import time

import pytest
import requests

from conftest import SLOW, FileServer, Redis, Service

BENCH_JSON = "/tmp/interview-api-corpus-timings.json"
DURATION_TOLERANCE = 0.2


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True, timeout=120)


def ffprobe_json(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                          "-show_streams", path], capture_output=True, text=True,
                         timeout=60)
    return json.loads(out.stdout or "{}")


def video_src(size="320x240", rate=25, duration=2):
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={duration}"]


def audio_src(rate=48000, duration=2, layout="stereo"):
    return ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}:duration={duration},"
            f"aformat=channel_layouts={layout}"]


H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
AAC = ["-c:a", "aac", "-b:a", "96k"]


class Clip:
    """One corpus file: how to make it and what the service must answer."""

    def __init__(self, name, make, code=None, duration=2.0, size=(320, 240), audio=True,
                 mode="transcode", source_size=None, note=""):
        self.name = name
        self.make = make          # callable(path) or a list of ffmpeg args before the output
        self.code = code          # None: success; else the expected failure code
        self.duration = duration  # the real duration, seconds
        self.size = size          # expected output (display) width, height
        self.audio = audio        # expected audio in the output
        self.mode = mode          # expected processing.mode
        self.source_size = source_size or size  # source display width, height in the metadata
        self.note = note

    def generate(self, directory):
        path = os.path.join(directory, self.name)
        if callable(self.make):
            self.make(path)
        else:
            ffmpeg(*self.make, path)
        return path


def make_moov_at_end(path):
    ffmpeg(*video_src(), *audio_src(), *H264, *AAC, "-shortest", path)


def make_rotated(path):
    tmp = path + ".src.mp4"
    ffmpeg(*video_src(), *audio_src(), *H264, *AAC, "-shortest", tmp)
    # ffmpeg 5.1 has no -display_rotation; the mov muxer turns the rotate tag into a matrix.
    ffmpeg("-i", tmp, "-c", "copy", "-metadata:s:v:0", "rotate=90", "-movflags", "+faststart",
           path)
    os.unlink(tmp)


def make_subtitled(path, audio=AAC, subs="mov_text"):
    srt = path + ".srt"
    with open(srt, "w") as f:
        f.write("1\n00:00:00,000 --> 00:00:01,500\nHello candidate\n")
    ffmpeg(*video_src(), *audio_src(), "-i", srt, "-map", "0:v", "-map", "1:a", "-map", "2:s",
           *H264, *audio, "-c:s", subs, path)
    os.unlink(srt)


def make_subtitled_mkv(path):
    make_subtitled(path, audio=["-c:a", "libopus"], subs="srt")


def make_truncated_moov_lost(path):
    """An MP4 with its moov at the end, cut in half: the index is gone."""
    make_moov_at_end(path)
    cut_file(path, 0.5)


def make_truncated_faststart(path):
    """A faststart MP4 cut at 40%: the index promises 2 s, the data stops early."""
    ffmpeg(*video_src(), *audio_src(), *H264, *AAC, "-shortest", "-movflags", "+faststart", path)
    cut_file(path, 0.4)


def make_truncated_mkv(path):
    ffmpeg(*video_src(duration=3), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
           "yuv420p", path)
    cut_file(path, 0.35)


def cut_file(path, fraction):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * fraction))


def make_zero(path):
    open(path, "wb").close()


def make_random(path):
    rng = random.Random(4)
    with open(path, "wb") as f:
        f.write(bytes(rng.getrandbits(8) for _ in range(200_000)))


def make_html(path):
    with open(path, "w") as f:
        f.write("<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
                "<body><h1>Not Found</h1><p>The requested video was not found.</p>" * 20 +
                "</body></html>\n")


def make_png(path):
    ffmpeg(*video_src(duration=1), "-frames:v", "1", "-f", "image2", "-c:v", "png", path)


def make_gif_still(path):
    ffmpeg(*video_src(duration=1), "-frames:v", "1", "-f", "gif", path)


# Each clip with its expected outcome. docs/metadata.md states the remux rule these follow.
CORPUS = [
    Clip("h264_aac_faststart.mp4",
         [*video_src(), *audio_src(), *H264, *AAC, "-shortest", "-movflags", "+faststart"],
         mode="remux"),
    Clip("h264_aac_moov_end.mp4", make_moov_at_end, mode="remux",
         note="remux moves moov to the front"),
    Clip("mediarecorder_vp8_opus.webm",
         [*video_src(), *audio_src(), "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
          "-b:v", "400k", "-c:a", "libopus", "-f", "webm", "-live", "1",
          "-cluster_time_limit", "1000", "-cluster_size_limit", "200000"],
         note="no duration, no cues"),
    Clip("vp9_opus.webm",
         [*video_src(), *audio_src(), "-c:v", "libvpx-vp9", "-deadline", "realtime",
          "-cpu-used", "8", "-b:v", "300k", "-c:a", "libopus"]),
    Clip("hevc_aac.mp4",
         [*video_src(), *audio_src(), "-c:v", "libx265", "-preset", "ultrafast",
          "-x265-params", "log-level=error", "-tag:v", "hvc1", *AAC, "-shortest"]),
    Clip("av1_opus.webm",
         [*video_src(), *audio_src(), "-c:v", "libaom-av1", "-cpu-used", "8", "-row-mt", "1",
          "-usage", "realtime", "-b:v", "200k", "-c:a", "libopus"]),
    Clip("prores_pcm.mov",
         [*video_src(), *audio_src(), "-c:v", "prores_ks", "-profile:v", "0", "-c:a",
          "pcm_s16le"]),
    Clip("h264_aac.ts", [*video_src(), *audio_src(), *H264, *AAC, "-f", "mpegts"],
         note="MPEG-TS is not MP4/MOV: transcoded"),
    Clip("h264_10bit.mp4",
         [*video_src(), *audio_src(), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
          "yuv420p10le", *AAC, "-shortest"]),
    Clip("odd_321x241.mkv",
         [*video_src(), *audio_src(), "-vf", "scale=321:241,format=yuv444p", "-c:v", "libx264",
          "-preset", "ultrafast", "-c:a", "libopus"],
         size=(320, 240), source_size=(321, 241),
         note="odd sizes need 4:4:4 in H.264; output even"),
    Clip("anamorphic_16x9.mp4",
         [*video_src(), *audio_src(), *H264, "-aspect", "16:9", *AAC, "-shortest"],
         size=(426, 240), source_size=(427, 240), note="SAR 4:3: square pixels out"),
    Clip("portrait_240x426.mp4",
         [*video_src(size="240x426"), *audio_src(), *H264, *AAC, "-shortest"],
         size=(240, 426), mode="remux"),
    Clip("rotated_90.mp4", make_rotated, size=(240, 320), note="display matrix -90"),
    Clip("vfr.mp4",
         [*video_src(rate=30), *audio_src(), "-vf",
          "select='not(between(mod(n\\,10)\\,3\\,7))'", "-fps_mode", "vfr", *H264, *AAC,
          "-shortest"],
         note="frames dropped in bursts"),
    Clip("no_audio.mp4", [*video_src(), *H264, "-movflags", "+faststart"], audio=False,
         mode="remux"),
    Clip("video_ends_early.mkv",
         [*video_src(duration=1), *audio_src(duration=3), *H264, "-c:a", "libopus"],
         duration=3.0, note="camera off before the microphone: not truncated"),
    Clip("mediarecorder_video_ends_early.webm",
         [*video_src(duration=1), *audio_src(duration=3), "-c:v", "libvpx", "-deadline",
          "realtime", "-cpu-used", "8", "-b:v", "400k", "-c:a", "libopus", "-f", "webm",
          "-live", "1"],
         duration=3.0, note="no duration; the audio is longer"),
    Clip("audio_only.m4a", [*audio_src(), *AAC], code="not_a_video"),
    Clip("audio_with_cover_art.mp3",
         [*audio_src(), "-f", "lavfi", "-i", "testsrc2=size=300x300:duration=1", "-map", "0:a",
          "-map", "1:v", "-frames:v", "1", "-c:a", "libmp3lame", "-c:v", "mjpeg",
          "-disposition:v:0", "attached_pic"],
         code="not_a_video", note="cover art is not a video"),
    Clip("aac_8k_mono.mp4",
         [*video_src(), *audio_src(rate=8000, layout="mono"), *H264, *AAC, "-shortest"],
         mode="remux", note="AAC is remuxed as is"),
    Clip("pcm_8k_mono.mov",
         [*video_src(), *audio_src(rate=8000, layout="mono"), *H264, "-c:a", "pcm_s16le"],
         note="not AAC: resampled to 48 kHz stereo"),
    Clip("ac3_5_1.mkv",
         [*video_src(), *audio_src(layout="5.1"), *H264, "-c:a", "ac3"]),
    Clip("aac_5_1.mp4",
         [*video_src(), *audio_src(layout="5.1"), *H264, *AAC, "-shortest"], mode="remux"),
    Clip("two_audio_tracks.mp4",
         [*video_src(), *audio_src(),
          "-f", "lavfi", "-i", "sine=frequency=880:sample_rate=48000:duration=2",
          "-map", "0:v", "-map", "1:a", "-map", "2:a", *H264, *AAC, "-shortest"],
         mode="remux", note="first audio kept"),
    Clip("subtitles_mov_text.mp4", make_subtitled, mode="remux", note="subtitles dropped"),
    Clip("subtitles_srt.mkv", make_subtitled_mkv, note="subtitles dropped"),
    Clip("single_frame.mp4", [*video_src(), "-frames:v", "1", *H264], duration=0.04,
         audio=False, mode="remux", note="a one-frame video is a video"),
    Clip("animated.gif", [*video_src(rate=10), "-f", "gif"], audio=False,
         note="an animated GIF is a video"),
    Clip("still.gif", make_gif_still, code="not_a_video", note="one-frame GIF is an image"),
    Clip("long_gop.mp4",
         [*video_src(duration=3), *audio_src(duration=3), *H264, "-g", "250", *AAC, "-shortest"],
         duration=3.0, mode="remux"),
    Clip("fragmented.mp4",
         [*video_src(), *audio_src(), *H264, *AAC, "-shortest", "-movflags",
          "frag_keyframe+empty_moov"],
         mode="remux", note="remux writes a plain MP4"),
    Clip("truncated_moov_lost.mp4", make_truncated_moov_lost, code="decode_error"),
    Clip("truncated_faststart.mp4", make_truncated_faststart, code="decode_error"),
    Clip("truncated.mkv", make_truncated_mkv, code="decode_error"),
    Clip("zero_bytes.mp4", make_zero, code="not_a_video"),
    Clip("random_bytes.mp4", make_random, code="not_a_video"),
    Clip("html_page.mp4", make_html, code="not_a_video"),
    Clip("png_image.mp4", make_png, code="not_a_video"),
]


def generate_corpus(directory):
    for clip in CORPUS:
        clip.generate(directory)


def top_level_boxes(path):
    """The four-character types of an MP4's top-level boxes, in file order."""
    boxes = []
    size_total = os.path.getsize(path)
    with open(path, "rb") as f:
        off = 0
        while off + 8 <= size_total:
            f.seek(off)
            size, kind = struct.unpack(">I4s", f.read(8))
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0]
            elif size == 0:
                size = size_total - off
            if size < 8:
                break
            boxes.append(kind.decode("latin-1"))
            off += size
    return boxes


def stop_all(svc, fs, redis):
    codes = svc.stop()
    fs.stop()
    redis.stop()
    if any(c != 0 for c in codes.values()):
        sys.stderr.write(svc.dump_logs())
    assert all(c == 0 for c in codes.values()), f"unclean exit (sanitizers?): {codes}"


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    generate_corpus(str(d))
    return d


@pytest.fixture(scope="module")
def corpus_service(corpus_dir, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("corpus-svc"))
    fs = FileServer(str(corpus_dir), str(tmp_path_factory.mktemp("corpus-nginx")))
    redis = Redis(tmp)
    svc = Service(tmp, redis, fs)
    yield svc, fs
    stop_all(svc, fs, redis)


@pytest.fixture(scope="module")
def corpus_results(corpus_service):
    """Submits every clip at once, then waits for all.

    Returns {name: (task id, status body, metadata or None, seconds from the first submit)}.
    """
    svc, fs = corpus_service
    started = time.time()
    tasks = {}
    for clip in CORPUS:
        r = svc.submit(fs.url(clip.name))
        assert r.status_code == 200, (clip.name, r.text)
        tasks[clip.name] = r.json()["task_id"]
    results = {}
    for clip in CORPUS:
        # 170 s for all of them is a guard (scaled by SLOW, as wait_done scales its timeout).
        left = max(5.0, 170 - (time.time() - started) / SLOW)
        _, body = svc.wait_done(tasks[clip.name], timeout=left)
        meta = None
        if body.get("status") == "success":
            meta = requests.get(body["metadata_url"], timeout=10).json()
        results[clip.name] = (tasks[clip.name], body, meta, time.time() - started)
    return results


def check_output_file(svc, clip, meta):
    path = os.path.join(svc.processed, f"processed_{meta['video_id']}.mp4")
    boxes = top_level_boxes(path)
    assert "moov" in boxes and "mdat" in boxes, boxes
    assert boxes.index("moov") < boxes.index("mdat"), f"not faststart: {boxes}"
    assert "moof" not in boxes, f"output left fragmented: {boxes}"
    info = ffprobe_json(path)
    videos = [s for s in info["streams"] if s["codec_type"] == "video"]
    audios = [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert len(info["streams"]) == len(videos) + len(audios), "subtitle/data stream kept"
    assert len(videos) == 1 and videos[0]["codec_name"] == "h264"
    assert videos[0]["pix_fmt"] == "yuv420p"
    assert not videos[0].get("side_data_list"), "rotation left as metadata"
    assert videos[0].get("sample_aspect_ratio", "1:1") in ("1:1", "0:1"), videos[0]
    assert (videos[0]["width"], videos[0]["height"]) == clip.size
    assert len(audios) == (1 if clip.audio else 0)
    if audios:
        assert audios[0]["codec_name"] == "aac"
        if clip.mode == "transcode":
            assert (int(audios[0]["sample_rate"]), audios[0]["channels"]) == (48000, 2)
    duration = float(info["format"]["duration"])
    assert abs(duration - clip.duration) <= DURATION_TOLERANCE, duration
    poster = os.path.join(svc.processed, f"processed_{meta['video_id']}.jpg")
    with open(poster, "rb") as f:
        assert f.read(2) == b"\xff\xd8"


def check_metadata(clip, meta):
    assert meta["schema"] == 1
    out, src, proc = meta["output"], meta["source"], meta["processing"]
    assert proc["mode"] == clip.mode, proc
    assert out["faststart"] is True
    assert (out["width"], out["height"]) == clip.size
    assert (src["video"]["display_width"], src["video"]["display_height"]) == clip.source_size
    assert abs(out["duration"] - clip.duration) <= DURATION_TOLERANCE, out
    assert abs(src["duration"] - clip.duration) <= DURATION_TOLERANCE, src
    assert (out["audio_codec"] == "aac") == clip.audio
    assert out["video_codec"] == "h264"
    assert set(proc["timings_ms"]) >= {"probe", "process", "poster"}


@pytest.mark.parametrize("clip", CORPUS, ids=[c.name for c in CORPUS])
def test_corpus_clip(clip, corpus_service, corpus_results):
    svc, _ = corpus_service
    task_id, body, meta, _ = corpus_results[clip.name]
    if clip.code:
        assert body["status"] == "failed", body
        assert body["code"] == clip.code, body
        # The video is named after the task: nothing of a failed task is published.
        assert not [n for n in os.listdir(svc.processed) if task_id in n]
        return
    assert body["status"] == "success", body
    check_metadata(clip, meta)
    check_output_file(svc, clip, meta)


def test_zz_benchmark_timings(corpus_results, capsys):
    """The benchmark hook: remux vs transcode time per file, from processing.timings_ms."""
    rows = {}
    for clip in CORPUS:
        _, body, meta, done_after = corpus_results[clip.name]
        row = {"expected": clip.code or f"success/{clip.mode}", "status": body.get("status"),
               "code": body.get("code"), "done_after_s": round(done_after, 2)}
        if meta:
            row.update(mode=meta["processing"]["mode"], timings_ms=meta["processing"]["timings_ms"],
                       source_bytes=meta["source"].get("bytes"),
                       output_bytes=meta["output"]["bytes"])
        rows[clip.name] = row
    with open(BENCH_JSON, "w") as f:
        json.dump(rows, f, indent=2, sort_keys=True)
    with capsys.disabled():
        print(f"\ncorpus timings ({BENCH_JSON}):")
        for name, row in rows.items():
            t = row.get("timings_ms", {})
            print(f"  {name:30} {row['status']:8} {row.get('mode') or row['code']:14} "
                  f"probe={t.get('probe', '-')!s:>5} process={t.get('process', '-')!s:>5} "
                  f"poster={t.get('poster', '-')!s:>5}")
    assert len(rows) == len(CORPUS) >= 25
    assert all(r["status"] in ("success", "failed") for r in rows.values())


def make_noisy(path, seconds):
    """H.264/AAC MP4 that compresses badly: about 1.2 MB per second at 320x240."""
    ffmpeg(*video_src(duration=seconds), *audio_src(duration=seconds), "-vf",
           "noise=alls=30:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18",
           "-pix_fmt", "yuv420p", *AAC, "-shortest", "-movflags", "+faststart", path)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MiB tmpfs mounted where the service keeps PROCESSED_DIR (through sudo when not root,
    as scripts/deps.sh installs packages)."""
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    processed = tmp_path / "processed"
    processed.mkdir()
    r = subprocess.run(sudo + ["mount", "-t", "tmpfs", "-o", f"size=2m,mode=0700,uid={os.getuid()}",
                               "tmpfs", str(processed)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"cannot mount a tmpfs: {r.stderr.strip()}"
    yield processed
    subprocess.run(sudo + ["umount", str(processed)], check=True, timeout=30)


def test_full_disk_fails_with_storage_full(tmp_path, tiny_disk):
    src = tmp_path / "src"
    src.mkdir()
    make_noisy(str(src / "big.mp4"), 2)     # larger than the disk: the download fails
    make_noisy(str(src / "medium.mp4"), 1)  # the download fits, the remuxed copy does not
    ffmpeg(*CORPUS[0].make, str(src / "small.mp4"))
    assert os.path.getsize(src / "big.mp4") > 2 << 20
    assert 1 << 20 < os.path.getsize(src / "medium.mp4") < 2 << 20
    (tmp_path / "nginx").mkdir()
    fs = FileServer(str(src), str(tmp_path / "nginx"))
    redis = Redis(str(tmp_path))
    svc = Service(str(tmp_path), redis, fs)
    try:
        for name in ("big.mp4", "medium.mp4"):
            task_id = svc.submit(fs.url(name)).json()["task_id"]
            _, body = svc.wait_done(task_id, timeout=60)
            assert body["status"] == "failed" and body["code"] == "storage_full", (name, body)
            assert str(tiny_disk) not in body.get("error", "")
            left = sorted(os.listdir(tiny_disk))
            assert left == [".work"], f"{name}: files left in PROCESSED_DIR: {left}"
            assert os.listdir(tiny_disk / ".work") == [], name
            assert requests.get(svc.base + "/healthz", timeout=5).status_code == 200
        task_id = svc.submit(fs.url("small.mp4")).json()["task_id"]
        _, body = svc.wait_done(task_id, timeout=60)
        assert body["status"] == "success", (body, svc.dump_logs())
        assert requests.get(body["video_url"], timeout=10).status_code == 200
    finally:
        stop_all(svc, fs, redis)


if __name__ == "__main__":
    os.makedirs(sys.argv[1], exist_ok=True)
    generate_corpus(sys.argv[1])
