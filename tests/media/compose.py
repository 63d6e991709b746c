#!/usr/bin/python3
"""Synthetic interviews composed from real photographs, with exact ground truth.

A "candidate" is a real face photograph that Debian ships (libdlib19.1's examples: PASCAL VOC
photos with ground-truth face boxes in faces/training.xml and testing.xml, the bald_guys.jpg
collage, Tom_Cruise_avp_2014_4.jpg and the 150x150 face chips in johns/), cut out as head and
shoulders around its face box and pasted on a background (a plain wall, a room-like gradient or a
skimage texture), scaled so that the face is a chosen fraction of the frame height. Speech is
espeak-ng, silence is digital silence. Every frame gets a little sensor noise and the candidate
sways by a pixel or two, so that no two frames are identical (except where a scenario freezes
the picture on purpose). Everything is deterministic: fixed seeds, no clock, no network.

Because we compose the video, we know exactly when everything happens: each file comes with a
ground-truth JSON (events {kind, start, end}, kinds that must not appear, the photos used).

Usage:  compose.py OUTDIR [NAME...]     composes all scenarios (or the named ones) into OUTDIR
        compose.py --list               lists the scenarios
Library: compose_all(outdir, names=None) -> {name: truth}; still_frame(...) for benchmarks.
"""
import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import wave
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

DLIB = "/usr/share/doc/libdlib19.1/examples"
FACES_DIR = os.path.join(DLIB, "faces")
JOHNS_DIR = os.path.join(DLIB, "johns")
FPS = 25
SIZE = (640, 360)
AUDIO_RATE = 22050  # espeak-ng's own rate; ffmpeg resamples for the encoder
VERSION = 1  # bump when a recipe changes (cached files are keyed by it)

# Kinds that a control must never show: a face, a person or an attention event.
PRESENCE_KINDS = ("face_absent", "multiple_faces", "other_person", "looking_away", "gaze_away",
                  "phone", "object", "face_mismatch")


# ---------------------------------------------------------------------------------------------
# Photographs

@dataclass(frozen=True)
class Photo:
    """One face in one photograph. box: (x, y, w, h) in dlib's labelling convention; clip: the
    part of the file the cutout may use (a collage tile), None for the whole file; others: the
    boxes of other faces in the same file, masked out of the cutout."""
    key: str
    file: str
    box: tuple
    person: str
    clip: tuple = None
    others: tuple = ()
    notes: str = ""


# bald_guys.jpg is a collage of 24 tiles (four men). No truth boxes ship with it: these boxes are
# what dlib's own HOG face detector (dlib's labelling convention) gives, each checked by eye;
# the tile rectangles were drawn by hand. (x, y, w, h), (x0, y0, x1, y1), person, notes.
_COLLAGE = {
    0: ((54, 74, 181, 181), (0, 0, 297, 297), "vin_diesel", "frontal"),
    1: ((314, 231, 125, 125), (292, 190, 495, 378), "vin_diesel", ""),
    2: ((342, 54, 105, 105), (297, 0, 487, 188), "jason_statham", "frontal"),
    3: ((532, 114, 180, 180), (495, 0, 828, 333), "vin_diesel", "fist under the chin"),
    4: ((875, 128, 150, 150), (830, 0, 1108, 313), "jason_statham", ""),
    5: ((1437, 95, 310, 311), (1110, 0, 1775, 650), "dwayne_johnson", "brown skin, suit"),
    6: ((54, 373, 181, 180), (0, 310, 280, 598), "vin_diesel", "frontal"),
    7: ((327, 443, 150, 151), (281, 380, 497, 668), "jason_statham", "dark background"),
    8: ((552, 433, 180, 180), (497, 335, 820, 722), "vin_diesel", "frontal"),
    9: ((871, 413, 180, 180), (820, 315, 1108, 655), "jason_statham", "mugshot"),
    10: ((1828, 446, 105, 104), (1780, 377, 1986, 648), "dwayne_johnson", ""),
    11: ((62, 709, 150, 150), (32, 600, 280, 900), "jason_statham", ""),
    12: ((1050, 751, 180, 180), (1000, 652, 1330, 1008), "bruce_willis", "smiling"),
    13: ((1655, 699, 105, 105), (1332, 652, 1986, 1255), "dwayne_johnson", "wrestler, body"),
    14: ((62, 991, 150, 150), (0, 902, 290, 1188), "bruce_willis", "crowd behind"),
    15: ((400, 830, 216, 216), (290, 670, 725, 1140), "jason_statham", ""),
    16: ((771, 811, 180, 180), (727, 722, 1000, 1128), "bruce_willis", "frontal, white wall"),
    17: ((352, 1260, 216, 216), (297, 1142, 688, 1545), "bruce_willis", "on a phone, turned"),
    18: ((771, 1249, 180, 180), (690, 1130, 1000, 1545), "bruce_willis", ""),
    19: ((1107, 1074, 150, 150), (1000, 1010, 1330, 1253), "bruce_willis", ""),
    20: ((18, 1260, 216, 216), (0, 1190, 295, 1545), "vin_diesel", "turned"),
    22: ((1070, 1309, 180, 180), (1000, 1255, 1352, 1545), "dwayne_johnson", "frontal, smiling"),
    23: ((1461, 1351, 126, 125), (1354, 1255, 1685, 1545), "dwayne_johnson", "young"),
    24: ((1786, 1289, 181, 180), (1687, 1255, 1986, 1545), "dwayne_johnson",
         "head turned to the picture's right (his left), about 35-40 degrees"),
}

# A body without a visible face: the wrestler tile below his chin (for false-face checks).
BODY_CROPS = (
    ("bald_guys.jpg", (1332, 830, 1986, 1255), "wrestler's torso, arms and shorts"),
    ("2009_004587.jpg", (0, 135, 262, 500), "man's shirt, arm and belt"),
    ("2009_004587.jpg", (236, 370, 400, 500), "woman's checked shirt"),
    ("2008_001322.jpg", (0, 290, 500, 375), "three people's suits and shirts"),
    ("2008_001009.jpg", (0, 320, 360, 480), "cardigan and bag strap"),
    ("2008_002506.jpg", (0, 210, 500, 375), "three men's shirts and a T-shirt"),
)


def body_crop_faces(name, crop):
    """The known face boxes (truth or collage) that overlap a body crop: must be none."""
    x0, y0, x1, y1 = crop
    out = []
    for p in photos().values():
        if os.path.basename(p.file) == name:
            x, y, w, h = p.box
            if x < x1 and x + w > x0 and y < y1 and y + h > y0:
                out.append(p.key)
    return out


@functools.lru_cache(maxsize=None)
def voc_photos():
    """Every face with a truth box in dlib's examples/faces/*.xml, as Photo('voc:FILE#i')."""
    out = {}
    for name in ("training.xml", "testing.xml"):
        for image in ET.parse(os.path.join(FACES_DIR, name)).getroot().iter("image"):
            boxes = [tuple(int(b.get(k)) for k in ("left", "top", "width", "height"))
                     for b in image.iter("box")]
            stem = image.get("file")
            for i, box in enumerate(boxes):
                key = f"voc:{stem[:-4]}#{i}"
                others = tuple(b for j, b in enumerate(boxes) if j != i)
                out[key] = Photo(key, os.path.join(FACES_DIR, stem), box, key, None, others)
    return out


@functools.lru_cache(maxsize=None)
def photos():
    """All photographs by key: voc:*, bald:N, tom, salley:ID."""
    out = dict(voc_photos())
    bald = os.path.join(FACES_DIR, "bald_guys.jpg")
    for i, (box, clip, person, notes) in _COLLAGE.items():
        out[f"bald:{i}"] = Photo(f"bald:{i}", bald, box, person, clip, (), notes)
    out["tom"] = Photo("tom", os.path.join(FACES_DIR, "Tom_Cruise_avp_2014_4.jpg"),
                       (39, 286, 447, 447), "tom_cruise", None, (),
                       "high resolution, nearly frontal (box from dlib's HOG detector)")
    for chip in ("000179_02159509", "000190_02159501"):
        out[f"salley:{chip}"] = Photo(
            f"salley:{chip}", os.path.join(JOHNS_DIR, "John_Salley", chip + ".jpg"),
            (21, 21, 108, 108) if chip == "000179_02159509" else (11, 11, 130, 130),
            "john_salley", None, (), "dark skin; a 150x150 aligned face chip (no shoulders)")
    # Refine the notes of the VOC faces we use by name.
    notes = {
        "voc:2008_002506#0": "glasses, smiling",
        "voc:2008_002506#2": "brown skin",
        "voc:2008_001009#0": "glasses, laughing",
    }
    for key, text in notes.items():
        out[key] = replace(out[key], notes=text)
    return out


@functools.lru_cache(maxsize=64)
def _read(path):
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    return img


@functools.lru_cache(maxsize=128)
def cutout(key):
    """Head and shoulders around a photo's face box: (bgr uint8, alpha float32 0..1, box) where
    box is the face box within the cutout. Other faces of the same photo are masked out."""
    p = photos()[key]
    img = _read(p.file)
    ih, iw = img.shape[:2]
    bx, by, bw, bh = p.box
    cx0, cy0, cx1, cy1 = p.clip or (0, 0, iw, ih)
    x0, y0 = max(cx0, int(bx - 1.1 * bw)), max(cy0, int(by - 0.9 * bh))
    x1, y1 = min(cx1, int(bx + 2.1 * bw)), min(cy1, int(by + 2.4 * bh))
    crop = img[y0:y1, x0:x1]
    h, w = crop.shape[:2]
    fx, fy = bx - x0, by - y0
    mask = np.zeros((h, w), np.float32)
    # Head, neck and shoulders, in units of the face box.
    cv2.ellipse(mask, (int(fx + bw / 2), int(fy + 0.38 * bh)), (int(0.74 * bw), int(0.98 * bh)),
                0, 0, 360, 1.0, -1)
    cv2.rectangle(mask, (int(fx + 0.18 * bw), int(fy + 0.8 * bh)),
                  (int(fx + 0.82 * bw), int(fy + 1.7 * bh)), 1.0, -1)
    cv2.ellipse(mask, (int(fx + bw / 2), int(fy + 3.0 * bh)), (int(1.55 * bw), int(1.5 * bh)),
                0, 0, 360, 1.0, -1)
    # Nobody else's face: each other truth box, enlarged, is cut away.
    for ox, oy, ow, oh in p.others:
        ex, ey = 0.10 * ow, 0.20 * oh
        cv2.rectangle(mask, (int(ox - x0 - ex), int(oy - y0 - ey)),
                      (int(ox - x0 + ow + ex), int(oy - y0 + oh + ey)), 0.0, -1)
    # Fade out at the edges of what the photo (or its collage tile) holds.
    feather = max(2, int(0.06 * bw))
    inner = np.zeros((h, w), np.float32)
    inner[feather:h - feather, feather:w - feather] = 1.0
    mask = cv2.GaussianBlur(mask * inner, (0, 0), feather / 2)
    return crop.copy(), mask, (fx, fy, bw, bh)


# ---------------------------------------------------------------------------------------------
# Backgrounds

WALL_COLOURS = ((196, 206, 214), (170, 182, 190), (205, 200, 185), (150, 160, 150),
                (215, 215, 210), (120, 130, 150))  # BGR


def _texture(name):
    from skimage import data
    img = getattr(data, name)()
    if img.ndim == 3:
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2GRAY)
    if img.dtype != np.uint8:
        img = (255 * (img.astype(np.float32) / max(1, img.max()))).astype(np.uint8)
    return img


def _tile(gray, w, h, scale=1.0):
    if scale != 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    reps = (h // gray.shape[0] + 1, w // gray.shape[1] + 1)
    return np.tile(gray, reps)[:h, :w]


def background(kind, w, h, seed=0):
    """A background of w x h pixels (BGR uint8) without any face.
    kinds: wall, room, brick, grass, gravel, text, page, checker, black; pattern kinds (for the
    benchmark's false-face checks) keep their full contrast with a ":raw" suffix."""
    rng = np.random.default_rng(seed)
    raw = kind.endswith(":raw")
    kind = kind.split(":")[0]
    if kind == "black":
        return np.zeros((h, w, 3), np.uint8)
    colour = np.array(WALL_COLOURS[seed % len(WALL_COLOURS)], np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1.0 + 0.10 * np.cos((xx / w - 0.3) * math.pi) - 0.08 * (yy / h)
    if kind == "wall":
        img = light[..., None] * colour
    elif kind == "room":
        img = light[..., None] * colour
        floor = int(h * 0.78)
        shade = (0.8 + 0.2 * (yy[floor:] / h))[..., None]
        img[floor:] = np.array((70, 95, 125), np.float32) * shade
        # A door, a framed picture (abstract stripes) and a bright window, placed by the seed.
        dx = int(w * (0.04 + 0.06 * rng.random()))
        img[int(h * 0.18):floor, dx:dx + int(w * 0.16)] *= 0.72
        px, py = int(w * (0.70 + 0.1 * rng.random())), int(h * 0.14)
        pw, ph = int(w * 0.12), int(h * 0.14)
        img[py:py + ph, px:px + pw] = (40, 60, 90)
        for k in range(4):
            img[py + 4 + k * ph // 4: py + 4 + k * ph // 4 + ph // 10, px + 4:px + pw - 4] = \
                (90 + 30 * k, 140, 180 - 20 * k)
        wx = int(w * (0.40 + 0.1 * rng.random()))
        img[int(h * 0.06):int(h * 0.30), wx:wx + int(w * 0.14)] = (245, 240, 230)
        img = cv2.GaussianBlur(img, (0, 0), 1.2)
    elif kind in ("brick", "grass", "gravel", "text", "page", "checker"):
        src = {"checker": "checkerboard"}.get(kind, kind)
        scale = h / 360.0 * (0.6 if kind in ("text", "page") else 1.0)
        tex = _tile(_texture(src), w, h, max(0.25, scale)).astype(np.float32)
        if raw:
            img = np.repeat(tex[..., None], 3, axis=2)
        else:
            tint = colour / 255.0
            img = (0.55 * 255 + 0.45 * (tex - tex.mean()))[..., None] * tint * light[..., None]
    else:
        raise ValueError(f"unknown background {kind}")
    return np.clip(img, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Composition of one picture

@dataclass(frozen=True)
class Actor:
    """One person in the picture: photo key, face height as a fraction of the frame height,
    face centre as fractions of the frame, mirrored or not."""
    photo: str
    frac: float = 0.32
    cx: float = 0.5
    cy: float = 0.40
    mirror: bool = False
    role: str = "candidate"


@functools.lru_cache(maxsize=256)
def _scaled(key, mirror, scale):
    img, alpha, (fx, fy, bw, bh) = cutout(key)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=interp)
    alpha = cv2.resize(alpha, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    fx, fy, bw, bh = fx * scale, fy * scale, bw * scale, bh * scale
    if mirror:
        img, alpha = img[:, ::-1].copy(), alpha[:, ::-1].copy()
        fx = img.shape[1] - fx - bw
    return img, np.clip(alpha, 0, 1)[..., None], (fx, fy, bw, bh)


def paste(frame, actor, dx=0.0, dy=0.0):
    """Pastes an actor into frame (in place), moved by (dx, dy) pixels (sub-pixel moves are
    interpolated); returns its face box (x, y, w, h) in the frame, without the move."""
    h, w = frame.shape[:2]
    bh0 = photos()[actor.photo].box[3]
    scale = round(actor.frac * h / bh0, 4)
    img, alpha, (fx, fy, bw, bh) = _scaled(actor.photo, actor.mirror, scale)
    px, py = actor.cx * w - fx - bw / 2 + dx, actor.cy * h - fy - bh / 2 + dy
    ox, oy = int(math.floor(px)), int(math.floor(py))
    if (px, py) != (ox, oy):
        m = np.float32([[1, 0, px - ox], [0, 1, py - oy]])
        size = (img.shape[1], img.shape[0])
        img = cv2.warpAffine(img, m, size, flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(alpha, m, size, flags=cv2.INTER_LINEAR)[..., None]
    x0, y0 = max(0, ox), max(0, oy)
    x1, y1 = min(w, ox + img.shape[1]), min(h, oy + img.shape[0])
    if x1 > x0 and y1 > y0:
        src = img[y0 - oy:y1 - oy, x0 - ox:x1 - ox].astype(np.float32)
        a = alpha[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
        dst = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = (a * src + (1 - a) * dst + 0.5).astype(np.uint8)
    return (actor.cx * w - bw / 2, actor.cy * h - bh / 2, bw, bh)


def still_frame(size, bg, actors=(), seed=0, light=1.0, noise=2.0):
    """One composed picture: (BGR uint8 image, [{role, photo, person, box}]). For benchmarks."""
    w, h = size
    frame = background(bg, w, h, seed).copy()
    faces = []
    for a in actors:
        box = paste(frame, a)
        faces.append({"role": a.role, "photo": a.photo, "person": photos()[a.photo].person,
                      "mirror": a.mirror, "box": [round(v, 1) for v in box]})
    if light != 1.0:
        frame = cv2.convertScaleAbs(frame, alpha=light)
    if noise:
        rng = np.random.default_rng(seed + 7)
        n = rng.normal(0, noise, frame.shape)
        frame = np.clip(frame + n, 0, 255).astype(np.uint8)
    return frame, faces


# ---------------------------------------------------------------------------------------------
# Audio

SPEECH_TEXT = (
    "I worked on the payment service for three years and I led the migration of our billing "
    "system to a new database while keeping the old one running for the customers who still "
    "needed it and the hardest part was moving the history without stopping the invoices so we "
    "copied the data in small batches every night and compared the totals every morning until "
    "both systems agreed for a whole month and then we switched the readers one team at a time"
)


@functools.lru_cache(maxsize=4)
def speech_source(cache_dir):
    """espeak-ng reading SPEECH_TEXT, leading and trailing silence cut: float32 at AUDIO_RATE."""
    path = os.path.join(cache_dir, f"speech-v{VERSION}.wav")
    if not os.path.exists(path):
        tmp = path + ".tmp"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "-a", "140", "-w", tmp,
                        SPEECH_TEXT], check=True, timeout=120, stdout=subprocess.DEVNULL)
        os.replace(tmp, path)
    with wave.open(path) as wf:
        if wf.getframerate() != AUDIO_RATE or wf.getnchannels() != 1:
            raise RuntimeError(f"unexpected espeak-ng output format in {path}")
        a = np.frombuffer(wf.readframes(wf.getnframes()), np.int16).astype(np.float32) / 32768
    loud = np.flatnonzero(np.abs(a) > 0.02)
    return a[loud[0]:loud[-1] + 1]


def speech_track(duration, segments, cache_dir):
    """Mono float32 of `duration` seconds: speech in each (start, end), digital silence elsewhere.
    Each segment is cut from a different place of the same recording, with 10 ms fades."""
    src = speech_source(cache_dir)
    out = np.zeros(int(round(duration * AUDIO_RATE)), np.float32)
    pos = 0
    for start, end in segments:
        n = int(round((end - start) * AUDIO_RATE))
        piece = np.resize(np.roll(src, -pos), n).copy()  # wraps around if the text is short
        fade = min(n // 2, int(0.01 * AUDIO_RATE))
        if fade:
            ramp = np.linspace(0, 1, fade, dtype=np.float32)
            piece[:fade] *= ramp
            piece[-fade:] *= ramp[::-1]
        i = int(round(start * AUDIO_RATE))
        out[i:i + n] = piece[:len(out) - i]
        pos = (pos + n + int(0.7 * AUDIO_RATE)) % len(src)
    return out


def write_wav(path, samples):
    with wave.open(path, "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(AUDIO_RATE)
        wf.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())


# ---------------------------------------------------------------------------------------------
# Scenarios

@dataclass(frozen=True)
class Span:
    """From start to end (seconds), these actors are in the picture."""
    start: float
    end: float
    actors: tuple = ()


@dataclass
class Scenario:
    name: str
    duration: float
    spans: list                      # [Span]; times not covered show the empty background
    speech: list = field(default_factory=list)  # [(start, end)]
    events: list = field(default_factory=list)  # truth: [{kind, start, end, details?}]
    forbid: tuple = ()               # kinds that must not appear
    check: str = "events"            # "events": truth checked; "report": only a report expected
    group: str = "main"              # main, quality, hostile, fairness
    bg: str = "room"
    size: tuple = SIZE
    light: float = 1.0
    audio: bool = True
    container: str = "mp4"           # mp4 (H.264/AAC) or webm (VP8/Opus)
    crf: int = 20
    freeze: tuple = None             # (start, end): the exact same frame
    video_end: float = None          # the video stream stops here; audio goes on
    frames: int = None               # exact number of video frames (1-frame video)
    seed: int = 1
    notes: str = ""


# Who plays which role (see the module's docstring for the files; the report says why).
CANDIDATE = "bald:16"             # Bruce Willis: frontal, head and shoulders on a white wall
OTHER = "bald:8"                  # Vin Diesel, frontal: the second face
IMPOSTOR = "tom"                  # Tom Cruise, nearly frontal: someone else in the same place
# Dwayne Johnson: the clearest head turn among the photos (tile 24, about 25 degrees to the
# picture's right by FaceMesh) and, as his baseline, tile 13 mirrored (about 15 degrees to the
# left): 40 degrees apart. His frontal tile 22 is only 29 degrees from tile 24.
TURN_FRONT, TURN_AWAY = "bald:13", "bald:24"
GLASSES = "voc:2008_002506#0"
DARK_SKIN = "salley:000179_02159509"
BROWN_SKIN = "bald:5"
EIGHT = ("bald:16", "tom", "bald:0", "bald:22", "bald:2", "voc:2008_002506#0",
         "voc:2008_002506#2", "voc:2008_001322#2")


def _cand(photo=CANDIDATE, **kw):
    return Actor(photo, **kw)


def _present(duration, actor, gaps=()):
    """Spans with actor present except during gaps [(start, end)]."""
    spans, t = [], 0.0
    for a, b in gaps:
        if a > t:
            spans.append(Span(t, a, (actor,)))
        t = b
    if t < duration:
        spans.append(Span(t, duration, (actor,)))
    return spans


def _control(name, actor, group="main", **kw):
    return Scenario(name, 10.0, [Span(0, 10, (actor,))], speech=[(1, 4), (6, 9)],
                    forbid=PRESENCE_KINDS, group=group, **kw)


def _absent(name, actor, group="main", **kw):
    return Scenario(name, 12.0, _present(12.0, actor, [(4.0, 8.0)]), speech=[(1, 3), (9, 11)],
                    events=[{"kind": "face_absent", "start": 4.0, "end": 8.0}],
                    forbid=("multiple_faces", "face_mismatch", "other_person"), group=group,
                    **kw)


def scenarios():
    """Every scenario, in a stable order."""
    c = _cand()
    out = [
        _control("control", c, notes="Candidate present and facing the camera all along."),
        _absent("absent", c, notes="Empty room from 4 to 8 s."),
        Scenario("second_face", 12.0,
                 [Span(0, 5, (_cand(cx=0.36),)),
                  Span(5, 9, (_cand(cx=0.36), Actor(OTHER, 0.30, 0.74, 0.42, role="other"))),
                  Span(9, 12, (_cand(cx=0.36),))],
                 speech=[(1, 4), (7, 10)],
                 events=[{"kind": "multiple_faces", "start": 5.0, "end": 9.0}],
                 forbid=("face_absent", "face_mismatch"),
                 notes="A second person (a different man) stands beside the candidate."),
        Scenario("looking_away", 12.0,
                 [Span(0, 4, (Actor(TURN_FRONT, mirror=True),)), Span(4, 8, (Actor(TURN_AWAY),)),
                  Span(8, 12, (Actor(TURN_FRONT, mirror=True),))],
                 speech=[(1, 3), (9, 11)],
                 events=[{"kind": "looking_away", "start": 4.0, "end": 8.0,
                          "details": {"direction": "right"}}],
                 forbid=("face_absent", "multiple_faces", "face_mismatch"),
                 notes="The same man: a photo with his head a little towards the picture's "
                       "left (mirrored; his baseline), then one with the head turned to the "
                       "picture's right (his left), about 40 degrees apart, then back."),
        Scenario("looking_away_mirror", 12.0,
                 [Span(0, 4, (Actor(TURN_FRONT),)), Span(4, 8, (Actor(TURN_AWAY, mirror=True),)),
                  Span(8, 12, (Actor(TURN_FRONT),))],
                 speech=[(1, 3), (9, 11)],
                 events=[{"kind": "looking_away", "start": 4.0, "end": 8.0,
                          "details": {"direction": "left"}}],
                 forbid=("face_absent", "multiple_faces", "face_mismatch"),
                 notes="looking_away mirrored: the head turns towards the picture's left."),
        Scenario("mismatch", 12.0,
                 [Span(0, 6, (c,)), Span(6, 12, (Actor(IMPOSTOR),))], speech=[(1, 5), (7, 11)],
                 events=[{"kind": "face_mismatch", "start": 6.0, "end": 12.0}],
                 forbid=("face_absent", "multiple_faces"),
                 notes="Person A for 6 s, then person B (another man) in the same place."),
        Scenario("speech_absent", 10.0, _present(10.0, c, [(3.0, 7.0)]), speech=[(3.5, 6.5)],
                 events=[{"kind": "face_absent", "start": 3.0, "end": 7.0},
                         {"kind": "speech_without_candidate", "start": 3.5, "end": 6.5}],
                 forbid=("multiple_faces", "face_mismatch"),
                 notes="Someone speaks while the candidate is away."),
        Scenario("silence", 10.0, [Span(0, 10, (c,))], speech=[(0, 3), (8, 10)],
                 events=[{"kind": "silence", "start": 3.0, "end": 8.0}],
                 forbid=PRESENCE_KINDS, container="webm",
                 notes="Five seconds of digital silence in the middle (VP8/Opus WebM)."),
        # Quality
        Scenario("no_audio", 10.0, [Span(0, 10, (c,))], audio=False, group="quality",
                 events=[{"kind": "no_audio", "start": 0.0, "end": 10.0, "flag": True}],
                 forbid=PRESENCE_KINDS, notes="No audio stream at all."),
        Scenario("black", 10.0, [], bg="black", speech=[(1, 4), (6, 9)], group="quality",
                 events=[{"kind": "black_video", "start": 0.0, "end": 10.0, "flag": True}],
                 forbid=("multiple_faces", "face_mismatch", "looking_away"),
                 notes="Black picture (a covered camera) with speech."),
        Scenario("frozen", 10.0, [Span(0, 10, (c,))], speech=[(1, 4), (6, 9)],
                 freeze=(2.0, 7.0), group="quality",
                 events=[{"kind": "frozen_video", "start": 2.0, "end": 7.0}],
                 forbid=("face_absent", "multiple_faces", "face_mismatch"),
                 notes="The exact same frame from 2 to 7 s."),
        Scenario("dark", 10.0, [Span(0, 10, (c,))], speech=[(1, 4), (6, 9)], light=0.15,
                 group="quality",
                 events=[{"kind": "dark_video", "start": 0.0, "end": 10.0, "flag": True}],
                 forbid=("multiple_faces", "face_mismatch"),
                 notes="The whole picture at 15 % brightness."),
        Scenario("tiny_face", 10.0, [Span(0, 10, (_cand(frac=0.08, cy=0.45),))],
                 speech=[(1, 4), (6, 9)], group="quality",
                 events=[{"kind": "face_too_small", "start": 0.0, "end": 10.0, "flag": True}],
                 forbid=("multiple_faces", "face_mismatch"),
                 notes="The face is 8 % of the frame height (29 px): found, but under the 10 % "
                       "below which the analysis calls it too small to judge."),
        # Hostile or odd: a report, never a crash or a hang.
        Scenario("one_frame", 1 / FPS, [Span(0, 1, (c,))], audio=False, frames=1,
                 group="hostile", check="report", notes="A video of one frame, no audio."),
        Scenario("video_ends_early", 6.0, [Span(0, 6, (c,))], speech=[(0.5, 5.5)],
                 video_end=1.0, group="hostile", check="report",
                 notes="The video stream stops after 1 s; the audio goes on to 6 s."),
        Scenario("eight_faces", 10.0,
                 [Span(0, 10, tuple(Actor(p, 0.19, 0.125 + 0.25 * (i % 4),
                                          0.27 + 0.48 * (i // 4),
                                          role="candidate" if i == 0 else "other")
                                    for i, p in enumerate(EIGHT)))],
                 speech=[(1, 4), (6, 9)], group="hostile", check="report",
                 events=[{"kind": "multiple_faces", "start": 0.0, "end": 10.0}],
                 notes="Eight different people at once."),
        Scenario("face_filling", 10.0, [Span(0, 10, (_cand(frac=1.0, cy=0.5),))],
                 speech=[(1, 4), (6, 9)], group="hostile", check="report",
                 notes="The face box is as tall as the frame."),
    ]
    # Fairness: control and absent under harder conditions or with other faces.
    variants = [
        ("lowlight", {"light": 0.35}, c, "the whole picture at 35 % brightness"),
        ("glasses", {}, _cand(GLASSES), "a man with glasses (VOC 2008_002506, face 0)"),
        ("darkskin", {}, _cand(DARK_SKIN),
         "John Salley, dark skin (a 150x150 face chip: face only, no shoulders)"),
        ("brownskin", {}, _cand(BROWN_SKIN), "Dwayne Johnson, brown skin (collage tile 5)"),
        ("crf45", {"crf": 45}, c, "H.264 at crf 45 (heavy compression)"),
        ("p360", {"size": (480, 270), "container": "webm"}, c,
         "480x270 VP8/Opus WebM (below 360p; the face is 86 px tall)"),
    ]
    for tag, kw, actor, text in variants:
        out.append(_control(f"control_{tag}", actor, group="fairness", notes=text, **kw))
        out.append(_absent(f"absent_{tag}", actor, group="fairness", notes=text, **kw))
    for i, s in enumerate(out):
        s.seed = 1 + i
    return out


def by_name():
    return {s.name: s for s in scenarios()}


# ---------------------------------------------------------------------------------------------
# Video

def _sway(i):
    """A person is never perfectly still: a smooth sway of a few pixels (deterministic)."""
    t = i / FPS
    return (2.5 * math.sin(2 * math.pi * t / 3.1) + 1.0 * math.sin(2 * math.pi * t / 0.9 + 1),
            1.2 * math.sin(2 * math.pi * t / 4.3) + 0.6 * math.sin(2 * math.pi * t / 1.1 + 2))


def _exposure(i):
    """A webcam's automatic exposure breathes a little (a gain of 1 +- 1 %)."""
    t = i / FPS
    return 1.0 + 0.007 * math.sin(2 * math.pi * t / 1.7) + 0.004 * math.sin(2 * math.pi * t / 0.7)


class _Noise:
    """Sensor noise: a few fixed noise fields (sigma 4), split into what is added and what is
    subtracted so that saturating uint8 arithmetic applies them quickly."""

    def __init__(self, w, h, seed, k=9):
        rng = np.random.default_rng(1000 + seed)
        self.fields = []
        for _ in range(k):
            n = np.round(rng.normal(0, 4.0, (h, w, 3))).astype(np.int16)
            self.fields.append((np.clip(n, 0, 255).astype(np.uint8),
                                np.clip(-n, 0, 255).astype(np.uint8)))

    def apply(self, frame, i):
        plus, minus = self.fields[(i * 5) % len(self.fields)]
        out = cv2.add(frame, plus)
        return cv2.subtract(out, minus, dst=out)


def _frames(s):
    """Yields the scenario's video frames (BGR uint8)."""
    w, h = s.size
    bg = background(s.bg, w, h, s.seed)
    noise = _Noise(w, h, s.seed)
    n = s.frames if s.frames is not None else int(round((s.video_end or s.duration) * FPS))
    frozen = last = None
    for i in range(n):
        t = i / FPS
        if s.freeze and s.freeze[0] <= t < s.freeze[1]:
            if frozen is None:
                frozen = last if last is not None else bg
            yield frozen
            continue
        span = next((sp for sp in s.spans if sp.start <= t < sp.end), None)
        frame = bg.copy()
        for k, a in enumerate(span.actors if span else ()):
            paste(frame, a, *_sway(i + 37 * k))
        frame = cv2.convertScaleAbs(frame, alpha=s.light * _exposure(i))
        last = noise.apply(frame, i)
        yield last


def _layout(s):
    w, h = s.size
    out = []
    for sp in s.spans:
        frame = np.zeros((h, w, 3), np.uint8)
        faces = []
        for a in sp.actors:
            x, y, bw, bh = paste(frame, a)
            faces.append({"role": a.role, "photo": a.photo, "person": photos()[a.photo].person,
                          "mirror": a.mirror, "box": [round(x, 1), round(y, 1), round(bw, 1),
                                                      round(bh, 1)]})
        out.append({"start": sp.start, "end": min(sp.end, s.duration), "faces": faces})
    return out


def truth(s, filename):
    """The ground truth of a scenario, as written next to its file."""
    return {
        "name": s.name, "file": filename, "group": s.group, "check": s.check,
        "duration": round(s.duration, 3), "width": s.size[0], "height": s.size[1], "fps": FPS,
        "video_end": s.video_end, "frames": s.frames if s.frames is not None else
        int(round((s.video_end or s.duration) * FPS)),
        "container": s.container, "crf": s.crf, "light": s.light, "background": s.bg,
        "audio": {"present": s.audio, "speech": [list(x) for x in s.speech] if s.audio else []},
        "freeze": list(s.freeze) if s.freeze else None,
        "events": s.events, "forbid": list(s.forbid), "layout": _layout(s),
        "notes": s.notes, "version": VERSION,
    }


def compose(s, outdir, cache_dir=None):
    """Writes outdir/NAME.mp4|webm and outdir/NAME.json; returns the truth."""
    cache_dir = cache_dir or outdir
    w, h = s.size
    filename = f"{s.name}.{s.container}"
    path = os.path.join(outdir, filename)
    with tempfile.TemporaryDirectory(dir=outdir) as tmp:
        args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-nostdin",
                "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-r", str(FPS),
                "-i", "pipe:0"]
        if s.audio:
            wav = os.path.join(tmp, "audio.wav")
            write_wav(wav, speech_track(s.duration, s.speech, cache_dir))
            args += ["-i", wav, "-map", "0:v", "-map", "1:a"]
        if s.container == "mp4":
            args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(s.crf),
                     "-pix_fmt", "yuv420p", "-g", str(2 * FPS)]
            args += ["-c:a", "aac", "-b:a", "64k", "-ar", "44100"] if s.audio else []
            args += ["-movflags", "+faststart"]
        else:
            # "good" with one thread: the realtime deadline makes libvpx's output vary by run.
            args += ["-c:v", "libvpx", "-b:v", "600k", "-crf", "10", "-deadline", "good",
                     "-cpu-used", "5", "-threads", "1", "-g", str(2 * FPS), "-pix_fmt", "yuv420p"]
            args += ["-c:a", "libopus", "-b:a", "48k", "-ar", "48000"] if s.audio else []
        tmp_out = os.path.join(tmp, filename)
        args += ["-fflags", "+bitexact"]  # no random segment id: the same bytes every time
        proc = subprocess.Popen(args + [tmp_out], stdin=subprocess.PIPE)
        try:
            for frame in _frames(s):
                proc.stdin.write(frame.tobytes())
            proc.stdin.close()
            if proc.wait(timeout=300) != 0:
                raise RuntimeError(f"ffmpeg failed composing {s.name}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        os.replace(tmp_out, path)
    t = truth(s, filename)
    with open(os.path.join(outdir, s.name + ".json"), "w") as f:
        json.dump(t, f, indent=1)
    return t


def compose_all(outdir, names=None, jobs=None):
    """Composes the named scenarios (all by default) into outdir; {name: truth}."""
    os.makedirs(outdir, exist_ok=True)
    table = by_name()
    names = list(names or table)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise KeyError(f"unknown scenarios: {unknown}")
    speech_source(outdir)  # once, before any fork
    jobs = jobs or min(2, os.cpu_count() or 1)
    if jobs > 1 and len(names) > 1:
        import concurrent.futures as cf
        import multiprocessing as mp
        ctx = mp.get_context("fork")
        with cf.ProcessPoolExecutor(jobs, mp_context=ctx) as ex:
            done = list(ex.map(_compose_named, [(n, outdir) for n in names]))
    else:
        done = [_compose_named((n, outdir)) for n in names]
    return dict(zip(names, done))


def _compose_named(arg):
    name, outdir = arg
    return compose(by_name()[name], outdir)


def main(argv):
    if argv[:1] == ["--list"]:
        for s in scenarios():
            ev = ", ".join(f"{e['kind']} [{e['start']:g},{e['end']:g}]" for e in s.events)
            print(f"{s.name:24} {s.group:9} {s.duration:5.2f}s {ev or '-'}")
        return 0
    if not argv or argv[0].startswith("-"):
        print(__doc__[__doc__.index("Usage:"):].rstrip(), file=sys.stderr)
        return 2
    out = compose_all(argv[0], argv[1:] or None)
    for name, t in out.items():
        print(f"{t['file']:28} {os.path.getsize(os.path.join(argv[0], t['file'])):9,d} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
