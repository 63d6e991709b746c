"""The interview analysis against ground truth (issue 9, "The bar").

Interviews are composed at test time from real photographs that Debian ships, espeak-ng speech
and digital silence (tests/media/compose.py, once per session); each file comes with its truth:
events {kind, start, end} and kinds that must not appear. Every scenario goes through the real
service (one service for this module, every file submitted at once). For each one:

- the task succeeds and the metadata has an `analysis` section;
- every truth event is found: same kind, start and end within 0.5 s (looking_away: same
  direction, as seen in the picture);
- no forbidden kind appears (controls: no face, person or attention event at all);
- GET /events/{video_id}.vtt lists every event, and GET /evidence/{video_id}/{event_id}.jpg is a
  JPEG for each;
- hostile or odd files (one frame, video that stops before the audio, eight faces, a face filling
  the frame) end with a report, never a crash or a hang.

Nothing here bounds wall-clock time: the waits below only stop a hung run. With
IA_ANALYSIS_DIGEST=FILE, what the analysis found on every interview is written to FILE.
"""
import json
import os
import sys

import cv2
import numpy as np
import pytest
import requests

from conftest import ROOT, SLOW, Redis, Service

sys.path.insert(0, os.path.join(ROOT, "tests", "media"))
import compose  # noqa: E402  (tests/media is not a package)

TOL_S = 0.5
# A guard against a hung task, not a time bound: every file is queued at once on 2 slots.
TASK_TIMEOUT_S = 900 * SLOW
SCENARIOS = compose.by_name()
CHECKED = [n for n, s in SCENARIOS.items() if s.check == "events"]
HOSTILE = [n for n, s in SCENARIOS.items() if s.check == "report"]


@pytest.fixture(scope="session")
def interviews(media):
    """Composes every scenario once per session into the file server's folder: {name: truth}."""
    return compose.compose_all(str(media / "interviews"))


class Analysed:
    """One service for the module: every interview submitted at once, results fetched lazily."""

    def __init__(self, svc, file_server, truths):
        self.svc, self.truths = svc, truths
        self.tasks, self.done = {}, {}
        for name, t in truths.items():
            r = svc.submit(file_server.url("interviews/" + t["file"]))
            assert r.status_code == 200, (name, r.status_code, r.text)
            self.tasks[name] = r.json()["task_id"]

    def result(self, name):
        """(status body, metadata or None) of a scenario's task, once it has finished."""
        if name not in self.done:
            _, body = self.svc.wait_done(self.tasks[name], timeout=TASK_TIMEOUT_S)
            meta = None
            if body.get("status") == "success":
                meta = requests.get(body["metadata_url"], timeout=30).json()
            self.done[name] = (body, meta)
        return self.done[name]


@pytest.fixture(scope="module")
def analysed(interviews, file_server, tmp_path_factory, request):
    tmp = str(tmp_path_factory.mktemp("interview-analysis"))
    redis = Redis(tmp)
    svc = Service(tmp, redis, file_server)
    failed_before = request.session.testsfailed
    runs = Analysed(svc, file_server, interviews)
    try:
        yield runs
    finally:
        if os.environ.get("IA_ANALYSIS_DIGEST"):
            write_digest(runs, os.environ["IA_ANALYSIS_DIGEST"])
        codes = svc.stop()
        redis.stop()
        if request.session.testsfailed > failed_before or any(c != 0 for c in codes.values()):
            sys.stderr.write(svc.dump_logs())
    assert all(c == 0 for c in codes.values()), f"unclean exit (sanitizers?): {codes}"


def write_digest(runs, path):
    """IA_ANALYSIS_DIGEST=FILE: what the analysis found on each interview (for people)."""
    out = {}
    for name in runs.truths:
        body, meta = runs.result(name)
        a = (meta or {}).get("analysis") or {}
        out[name] = {"status": body.get("status"), "truth": runs.truths[name]["events"],
                     "events": [{k: e.get(k) for k in ("kind", "start", "end", "confidence",
                                                        "details")} for e in a.get("events", [])],
                     "summary": a.get("summary"), "baseline": a.get("baseline")}
    with open(path, "w") as f:
        json.dump(out, f, indent=1)


def analysis_of(analysed, name):
    """The analysis section of a finished scenario (asserts that there is one)."""
    body, meta = analysed.result(name)
    assert body.get("status") == "success", (name, body)
    assert meta is not None and isinstance(meta.get("analysis"), dict), (name, meta)
    a = meta["analysis"]
    assert "error" not in a, (name, a.get("error"))
    assert isinstance(a.get("events"), list) and isinstance(a.get("summary"), dict), a.keys()
    return body, meta, a


def describe(a):
    """A compact view of what the analysis found, for failure messages."""
    evs = [f"{e['kind']} [{e['start']:.2f}, {e['end']:.2f}] {e.get('details', {})}"
           for e in a["events"]]
    return "events:\n  " + "\n  ".join(evs or ["(none)"]) + f"\nsummary: {a['summary']}"


def matches(event, want):
    if event["kind"] != want["kind"]:
        return False
    if abs(event["start"] - want["start"]) > TOL_S or abs(event["end"] - want["end"]) > TOL_S:
        return False
    direction = want.get("details", {}).get("direction")
    return direction is None or event.get("details", {}).get("direction") == direction


@pytest.mark.parametrize("name", CHECKED)
def test_truth_events_are_found(analysed, name):
    truth = analysed.truths[name]
    _, _, a = analysis_of(analysed, name)
    for want in truth["events"]:
        assert any(matches(e, want) for e in a["events"]), \
            f"{name}: missing {want}\n{describe(a)}\nscenario: {truth['notes']}"
    forbidden = [e for e in a["events"] if e["kind"] in truth["forbid"]]
    assert not forbidden, f"{name}: unexpected {[e['kind'] for e in forbidden]}\n{describe(a)}"


@pytest.mark.parametrize("name", CHECKED)
def test_events_have_cues_and_evidence(analysed, name):
    body, _, a = analysis_of(analysed, name)
    duration = analysed.truths[name]["duration"]
    base, video_id = analysed.svc.base, body["video_id"]
    ids = [e["id"] for e in a["events"]]
    assert len(set(ids)) == len(ids), ids
    for e in a["events"]:
        assert 0 <= e["start"] <= e["end"] <= duration + TOL_S, e
        assert 0 <= e["confidence"] <= 1, e
    r = requests.get(f"{base}/events/{video_id}.vtt", timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/vtt"), r.headers
    text = r.content.decode("utf-8")
    assert text.startswith("WEBVTT"), text[:200]
    for e in a["events"]:
        assert f"\n{e['id']}\n" in text, (e, text)
        assert e["kind"] in text, (e, text)
        r = requests.get(f"{base}/evidence/{video_id}/{e['id']}.jpg", timeout=30)
        assert r.status_code == 200, (name, e, r.status_code, r.text[:200])
        assert r.headers["Content-Type"].startswith("image/jpeg"), r.headers
        img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[0] > 0 and img.shape[1] > 0, (name, e)


@pytest.mark.parametrize("name", [n for n in CHECKED if n.split("_")[0] in ("control", "absent")])
def test_summary_agrees_with_the_truth(analysed, name):
    """Time present and the timeline agree with what was composed."""
    truth = analysed.truths[name]
    _, _, a = analysis_of(analysed, name)
    present = sum(s["end"] - s["start"] for s in truth["layout"] if s["faces"])
    summary = a["summary"]
    assert abs(summary["time_present_s"] - present) <= 1.0, (present, describe(a))
    kinds = {}
    for e in a["events"]:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    assert summary["events_by_kind"] == kinds, (summary, kinds)
    if name.startswith("control"):
        assert summary["facing_screen_pct"] >= 90, describe(a)
    rows = a["timeline"]["rows"]
    fps = a.get("sampling", {}).get("fps", 5)
    assert abs(len(rows) - truth["duration"] * fps) <= 2, (len(rows), truth["duration"], fps)


@pytest.mark.parametrize("name", HOSTILE)
def test_odd_input_ends_with_a_report(analysed, name):
    _, _, a = analysis_of(analysed, name)
    assert isinstance(a["summary"].get("events_by_kind"), dict), describe(a)
    assert "final_level" in a["summary"], describe(a)
