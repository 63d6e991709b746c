"""Test clips generated with ffmpeg lavfi, and the ffmpeg command lines the worker runs on them."""
import os
import subprocess
import threading
import time

from harness import BenchBroken, child_cmdlines

# Container/codec families: the first takes the worker's remux path, the second its transcode.
KINDS = {
    "h264_aac_mp4": (".mp4", ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                              "-g", "50", "-c:a", "aac", "-b:a", "128k"]),
    "vp8_opus_webm": (".webm", ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
                                "-b:v", "2M", "-c:a", "libopus", "-b:a", "96k"]),
}

# What src/media/process.c passes to ffmpeg; used only when the real argv could not be seen.
FORMAT_WHITELIST = ("mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,asf,ogg,gif,apng,"
                    "mp3,wav,aac,flac,png_pipe,jpeg_pipe,bmp_pipe,webp_pipe,tiff_pipe,gif_pipe")
MIRROR_HEAD = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-v", "error",
               "-protocol_whitelist", "file", "-format_whitelist", FORMAT_WHITELIST]
MIRROR_TRANSCODE = ["-vf", "scale=w=-2:h='trunc(min(1080,ih)/2)*2'", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-profile:v", "high", "-fps_mode", "cfr",
                    "-preset", "veryfast", "-crf", "23", "-r", "25.000",
                    "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000"]
MIRROR_TAIL = ["-movflags", "+faststart", "-f", "mp4", "-progress", "pipe:1", "-y",
               "-t", "14401"]


def cached_clip(directory, name, ffmpeg_args):
    """Runs ffmpeg with ffmpeg_args + [output] unless directory already holds name (clips are
    deterministic, so they are kept between runs); the file appears only when complete."""
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        part = f"{path}.part{os.getpid()}{os.path.splitext(name)[1]}"
        try:
            subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                            *ffmpeg_args, part], check=True, timeout=600)
            os.rename(part, path)
        finally:
            if os.path.exists(part):
                os.unlink(part)
    return name


def make_clip(directory, kind, width, height, seconds):
    """A clip with a moving test pattern and a tone (cached); returns its file name."""
    ext, codec_args = KINDS[kind]
    return cached_clip(directory, f"{kind}-{height}p-{seconds}s{ext}", [
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=25:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        *codec_args, "-ac", "2", "-shortest"])


def mirror_argv(mode, input_path, output_path):
    """The worker's convert command as written in src/media/process.c (streams 0 and 1)."""
    middle = ["-c", "copy"] if mode == "remux" else MIRROR_TRANSCODE
    return (MIRROR_HEAD + ["-i", "file:" + input_path, "-map", "0:0", "-map", "0:1",
                           "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1"]
            + middle + MIRROR_TAIL + ["file:" + output_path])


def _file_arg(argv, index):
    return argv[index][len("file:"):] if argv[index].startswith("file:") else argv[index]


def rebase(commands, input_path, output_path, poster_path):
    """The worker's commands (a dict from task_commands) with its files replaced by ours: every
    input of the convert (the poster reads a second opening of it) by input_path, its outputs by
    output_path (the MP4) and poster_path (a JPEG, when the poster is one of its outputs)."""
    convert = commands["convert"]
    paths = {}
    for i, a in enumerate(convert):
        if a.startswith("file:") and i > 0 and convert[i - 1] == "-i":
            paths[_file_arg(convert, i)] = input_path
        elif a.startswith("file:"):
            paths[_file_arg(convert, i)] = poster_path if a.endswith(".jpg") else output_path
    if commands["poster"]:
        paths[_file_arg(commands["poster"], -1)] = poster_path

    def one(argv):
        return [("file:" + paths[a[5:]]) if a.startswith("file:") and a[5:] in paths
                else paths.get(a, a) for a in argv]
    return {"probes": [one(a) for a in commands["probes"]], "convert": one(convert),
            "outprobes": [one(a) for a in commands["outprobes"]],
            "poster": one(commands["poster"]) if commands["poster"] else None,
            "analysis": [one(a) for a in commands["analysis"]]}


def task_commands(children):
    """Sorts the child argvs of one task, in the order they started, into its stages:
    probes (ffprobe before the convert), convert (ffmpeg with -progress; it may write the poster
    too), outprobes (ffprobe after it), poster (the first other ffmpeg writing image2: a poster
    run of its own) and analysis (any other ffmpeg after the convert). None when no convert was
    seen."""
    out = {"probes": [], "convert": None, "outprobes": [], "poster": None, "analysis": []}
    for argv in children:
        tool = os.path.basename(argv[0])
        if tool == "ffmpeg" and "-progress" in argv and out["convert"] is None:
            out["convert"] = argv
        elif tool == "ffmpeg" and "image2" in argv and out["poster"] is None:
            out["poster"] = argv
        elif tool == "ffprobe":
            out["outprobes" if out["convert"] else "probes"].append(argv)
        elif tool == "ffmpeg" and out["convert"]:
            out["analysis"].append(argv)
    return out if out["convert"] else None


class ArgvCapture:
    """Watches a worker's children while one task runs and keeps every ffmpeg/ffprobe command
    line, in the order they started; use as a context manager around the task."""

    def __init__(self, worker_pid):
        self.pid = worker_pid
        self.seen = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self._stop.is_set():
            for pid, argv in child_cmdlines(self.pid):
                if pid not in self.seen and argv and \
                        os.path.basename(argv[0]) in ("ffmpeg", "ffprobe"):
                    self.seen[pid] = argv
            time.sleep(0.002)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def commands(self):
        return task_commands(list(self.seen.values()))


def worker_commands(capture, mode, input_path, output_path, poster_path):
    """(commands, source): the captured commands rebased on our files, else only the convert
    command as mirrored from src/media/process.c."""
    found = capture.commands() if capture is not None else None
    if found is not None:
        return rebase(found, input_path, output_path, poster_path), "captured"
    mirrored = {"probes": [], "convert": mirror_argv(mode, input_path, output_path),
                "outprobes": [], "poster": None, "analysis": []}
    return mirrored, "mirrored"


FACE_PHOTO = "/usr/share/doc/libdlib19.1/examples/faces/2008_001009.jpg"
INTERVIEW_LINE = "I have worked on video services for five years, and I enjoy hard problems."


def make_interview_clip(directory, width, height, seconds):
    """A VP8/Opus WebM interview: a real photograph (dlib's examples) with camera noise, and
    espeak-ng speech repeated with pauses (cached). Returns its file name."""
    speech = os.path.join(directory, "interview-speech.wav")
    if not os.path.exists(speech):
        subprocess.run(["espeak-ng", "-w", speech, INTERVIEW_LINE], check=True, timeout=60)
    return cached_clip(directory, f"interview-vp8_opus-{height}p-{seconds}s.webm", [
        "-loop", "1", "-framerate", "25", "-i", FACE_PHOTO,
        "-stream_loop", "-1", "-i", speech, "-t", str(seconds),
        "-vf", f"scale={width}:{height}:force_original_aspect_ratio=increase,"
               f"crop={width}:{height},noise=alls=6:allf=t,format=yuv420p",
        "-af", "apad=pad_dur=2", "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
        "-b:v", "2M", "-c:a", "libopus", "-b:a", "64k", "-ac", "2", "-shortest"])
