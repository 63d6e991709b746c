"""The reviewer's page in a real browser (issue 11, items 1 and 2).

Debian's chromium, headless, driven by playwright-core from npm (tests/browser/review_page.cjs;
packages pinned in scripts/browser-test.lock, installed by scripts/browser-test.sh into
tests/browser/node_modules), against the real service and the loopback file server. The
browser uploads a composed interview from the page over tus, with its second chunk's connection
dropped, and submits another by URL (and one that is no video, which fails in plain words);
sees the progress bar reach done; plays the video; clicks an event and sees the player seek to
it; presses j; dismisses an event and sees the decision survive a reload; finds both interviews
in the list; runs axe-core (no serious or critical violation) at laptop and phone sizes;
and saves screenshots at laptop and phone sizes into tests/browser/artifacts/ (gitignored).

Nothing here bounds wall-clock time: the timeout only stops a hung run.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest
import requests

from conftest import ROOT, SLOW

sys.path.insert(0, os.path.join(ROOT, "tests", "media"))
import compose  # noqa: E402  (tests/media is not a package)

BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
ARTIFACTS = os.path.join(BROWSER_DIR, "artifacts")
GUARD_S = 900 * SLOW  # a guard against a hung run, not a time bound
UPLOADED, SUBMITTED = "absent", "second_face"  # scenarios with events


@pytest.fixture(scope="module")
def browser_packages():
    assert os.access("/usr/bin/chromium", os.X_OK), "chromium missing: run scripts/deps.sh test"
    assert shutil.which("node"), "node (Node.js 20 or later, for playwright-core) is missing"
    subprocess.run([os.path.join(ROOT, "scripts", "browser-test.sh")], check=True, timeout=900)
    return os.path.join(BROWSER_DIR, "node_modules")


@pytest.fixture(scope="module")
def interviews(media):
    """Two composed interviews in the file server's folder: {name: truth}."""
    return compose.compose_all(str(media / "interviews"), names=[UPLOADED, SUBMITTED])


def run_page(tmp_path, config):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    proc = subprocess.run(["node", os.path.join(BROWSER_DIR, "review_page.cjs"), str(path)],
                          capture_output=True, text=True, timeout=GUARD_S, cwd=tmp_path)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    return proc, result


def test_the_reviewers_page_in_a_real_browser(service, file_server, media, interviews,
                                              browser_packages, tmp_path):
    profile = tmp_path / "profile"  # a fresh --user-data-dir
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    proc, out = run_page(tmp_path, {
        "base": service.base,
        "upload_file": str(media / "interviews" / interviews[UPLOADED]["file"]),
        "submit_url": file_server.url("interviews/" + interviews[SUBMITTED]["file"]),
        "not_a_video_url": file_server.url("notes.txt"),
        "artifacts": ARTIFACTS, "node_modules": browser_packages, "profile": str(profile),
        "timeout_ms": int(GUARD_S * 1000),
    })
    assert proc.returncode == 0 and "error" not in out, (
        f"{out.get('error')}\nsteps: {out.get('steps')}\nstderr: {proc.stderr[-4000:]}\n"
        + service.dump_logs())
    steps = out["steps"]
    names = [s["step"] for s in steps]
    assert names == ["upload", "play", "seek", "keyboard", "decision", "submit_not_a_video",
                     "submit", "list", "axe", "axe", "phone"]
    by = {s["step"]: s for s in steps}

    # The upload: tus from the page, the dropped chunk resumed from HEAD's offset, then done.
    up = by["upload"]
    assert (up["state"], up["value"]) == ("done", "100"), up
    reqs = out["requests"]
    assert reqs[0] == "POST /uploads", reqs
    first_head = next(i for i, r in enumerate(reqs) if r.startswith("HEAD "))
    assert [r.split()[0] for r in reqs[1:first_head]] == ["PATCH", "PATCH"], reqs
    assert reqs[first_head + 1:] and all(r.startswith("PATCH ") for r in reqs[first_head + 1:])
    assert len({r.split()[1] for r in reqs[1:]}) == 1  # one upload, resumed

    # The video plays, and a click on an event seeks the player to it.
    assert by["play"]["currentTime"] > 0.5 and by["play"]["videoWidth"] > 0, by["play"]
    seek = by["seek"]
    assert abs(seek["currentTime"] - seek["start"]) < 0.1, seek
    assert by["keyboard"]["selected"], by["keyboard"]

    # The decision survives a reload, and the API shows it too.
    dec = by["decision"]
    assert (dec["decision"], dec["note"]) == ("dismissed", "a poster on the wall"), dec
    uploaded_id = up["video"]
    r = requests.get(f"{service.base}/videos/{uploaded_id}/decisions", timeout=10)
    assert r.status_code == 200
    kept = r.json()["decisions"][dec["event"]]
    assert (kept["decision"], kept["note"], kept["decided_by"]) == (
        "dismissed", "a poster on the wall", None)

    # A URL of a file that is no video fails, and the page says why in plain words.
    bad = by["submit_not_a_video"]
    assert bad["state"] == "failed", bad
    assert bad["text"].startswith("Processing failed: the file is not a video."), bad

    # The URL submitted from the page is done too, and both are in the list, newest first.
    sub = by["submit"]
    assert (sub["state"], sub["value"]) == ("done", "100"), sub
    rows = [row["id"] for row in by["list"]["rows"]]
    assert rows.index(sub["video"]) < rows.index(uploaded_id), rows
    listed = requests.get(f"{service.base}/videos", timeout=10).json()["videos"]
    assert [v["video_id"] for v in listed] == [sub["video"], uploaded_id]
    assert listed[1]["dismissed"] == 1 and listed[1]["events"] >= 1

    # Accessibility, phone width, console.
    for audit in (s for s in steps if s["step"] == "axe"):
        bad = [v for v in audit["violations"] if v["impact"] in ("serious", "critical")]
        assert bad == [], (audit["size"], bad)
    assert by["phone"]["horizontal_overflow_px"] <= 0
    errors = [e for e in out["console_errors"]
              if not ("ERR_CONNECTION_RESET" in e["text"] and "/uploads/" in e["url"])]
    assert errors == [], errors
    for name in ("review-laptop.png", "review-phone.png"):
        assert os.path.getsize(os.path.join(ARTIFACTS, name)) > 10000, name
