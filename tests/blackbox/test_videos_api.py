"""GET /videos (the list of interviews) and reviewer decisions
(PATCH /videos/{video_id}/events/{event_id}, GET /videos/{video_id}/decisions), issue 11 item 1.

The list is read from the metadata files, so these tests publish metadata files by hand (as the
worker would, by rename) to get many interviews with chosen dates, levels and scores at once;
test_review_page.py goes through the real worker. The service runs with named and bare API keys.
"""
import concurrent.futures
import hashlib
import json
import os
import uuid

import pytest
import requests

from conftest import Service
from test_docs import check  # the documented status and JSON shape of a response

KEYS = "alice:key-a,key-b"
ALICE = {"Authorization": "Bearer key-a"}
BARE = {"Authorization": "Bearer key-b"}
BARE_NAME = "key-" + hashlib.sha256(b"key-b").hexdigest()[:8]


@pytest.fixture
def svc(tmp_path, redis_server, file_server):
    s = Service(str(tmp_path), redis_server, file_server, extra_env={"API_KEYS": KEYS})
    yield s
    assert all(c == 0 for c in s.stop().values()), s.dump_logs()


def publish(svc, second, level="NO_ALERT", score=10, events=2, url=None):
    """Publishes the metadata of a fake interview completed at 2026-01-01T00:00:<second>."""
    vid = str(uuid.uuid4())
    kinds = ["face_absent", "multiple_faces", "silence", "phone"]
    meta = {
        "schema": 1, "video_id": vid, "task_id": vid,
        "started_at": f"2026-01-01T00:00:{second:02d}.000000Z",
        "completed_at": f"2026-01-01T00:00:{second:02d}.500000Z",
        "source": {"url": url or f"https://example.test/v/{second}.webm", "duration": 12.0,
                   "video": {}},
        "output": {"duration": 12.0, "bytes": 1, "sha256": "0" * 64, "width": 640, "height": 360},
        "processing": {"mode": "remux"},
    }
    if level is not None:
        meta["analysis"] = {
            "events": [{"id": f"e{i + 1}", "kind": kinds[i % 4], "start": i, "end": i + 1}
                       for i in range(events)],
            "summary": {"final_level": level, "max_score": float(score)},
        }
    path = os.path.join(svc.processed, f"processed_{vid}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(meta, f)
    os.rename(path + ".tmp", path)
    return vid


def get(svc, path, headers=ALICE, **params):
    return requests.get(svc.base + path, headers=headers, params=params, timeout=10)


def patch(svc, vid, eid, body, headers=ALICE):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.patch(f"{svc.base}/videos/{vid}/events/{eid}", data=data, timeout=10,
                          headers=dict(headers, **{"Content-Type": "application/json"}))


def all_pages(svc, limit, **params):
    """Every page of the list, following next_cursor: [[ids of page 1], [ids of page 2], ...]."""
    pages, cursor = [], None
    while True:
        q = dict(params, limit=limit, **({"cursor": cursor} if cursor else {}))
        body = get(svc, "/videos", **q).json()
        pages.append([v["video_id"] for v in body["videos"]])
        cursor = body["next_cursor"]
        if cursor is None:
            assert body["remaining"] == 0
            return pages


def test_the_list_is_newest_first_paged_sorted_and_filtered(svc):
    assert get(svc, "/videos").json() == {"videos": [], "next_cursor": None, "remaining": 0}
    plan = [(1, "NO_ALERT", 5), (2, "CHEATING_DETECTED", 90), (3, "SUSPICIOUS_BEHAVIOR", 45),
            (4, None, 0), (5, "CHEATING_DETECTED", 75), (6, "NO_ALERT", 0),
            (7, "SUSPICIOUS_BEHAVIOR", 45)]
    ids = {second: publish(svc, second, level, score) for second, level, score in plan}
    newest = [ids[s] for s in range(7, 0, -1)]
    pages = all_pages(svc, 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sum(pages, []) == newest

    first = get(svc, "/videos", limit=1).json()
    item = first["videos"][0]
    thumb = item.pop("thumbnail_url")  # signed: API_KEYS alone derive a signing key
    assert thumb.startswith(f"{svc.base}/thumbnail/{ids[7]}?expires=") and "&sig=" in thumb
    assert item == {
        "video_id": ids[7], "completed_at": "2026-01-01T00:00:07.500000Z", "duration": 12.0,
        "source": "7.webm", "status": "to_review", "alert_level": "SUSPICIOUS_BEHAVIOR",
        "score": 45, "events": 2, "confirmed": 0, "dismissed": 0}
    assert first["remaining"] == 6

    # Highest score first; equal scores newest first; not analysed last.
    by_score = sum(all_pages(svc, 2, sort="score"), [])
    assert by_score == [ids[2], ids[5], ids[7], ids[3], ids[1], ids[6], ids[4]]
    assert [v["score"] for v in get(svc, "/videos", sort="score").json()["videos"]][-1] is None

    assert sum(all_pages(svc, 1, level="CHEATING_DETECTED"), []) == [ids[5], ids[2]]
    assert sum(all_pages(svc, 5, level="none"), []) == [ids[4]]
    assert sum(all_pages(svc, 5, level="NO_ALERT", sort="score"), []) == [ids[1], ids[6]]
    assert sum(all_pages(svc, 5, status="no_events"), []) == [ids[4]]
    assert len(sum(all_pages(svc, 5, status="to_review"), [])) == 6


def test_a_video_published_between_pages_neither_repeats_nor_shifts_them(svc):
    ids = [publish(svc, s) for s in range(1, 6)]
    page1 = get(svc, "/videos", limit=2).json()
    assert [v["video_id"] for v in page1["videos"]] == [ids[4], ids[3]]
    publish(svc, 9)  # newer than everything
    os.remove(os.path.join(svc.processed, f"processed_{ids[3]}.json"))  # deleted meanwhile
    page2 = get(svc, "/videos", limit=2, cursor=page1["next_cursor"]).json()
    assert [v["video_id"] for v in page2["videos"]] == [ids[2], ids[1]]
    page3 = get(svc, "/videos", limit=2, cursor=page2["next_cursor"]).json()
    assert [v["video_id"] for v in page3["videos"]] == [ids[0]]
    assert page3["next_cursor"] is None


def test_list_refusals(svc):
    assert get(svc, "/videos", headers={}).status_code == 401
    assert get(svc, "/videos", headers={"Authorization": "Bearer nope"}).status_code == 403
    newest_cursor = None
    for _ in range(3):
        publish(svc, 1)
    newest_cursor = get(svc, "/videos", limit=1).json()["next_cursor"]
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"sort": "oldest"},
                   {"status": "done"}, {"level": "HIGH"}, {"cursor": "nope"},
                   {"cursor": newest_cursor, "sort": "score"}):
        r = get(svc, "/videos", **params)
        assert (r.status_code, r.json()["code"]) == (422, "invalid_input"), params


def test_decisions_are_validated_kept_named_and_listed(svc):
    vid = publish(svc, 1, "CHEATING_DETECTED", 80, events=2)
    assert get(svc, f"/videos/{vid}/decisions").json() == {
        "video_id": vid, "decisions": {}, "status": "to_review",
        "counts": {"events": 2, "confirmed": 0, "dismissed": 0}}
    for bad in (b"", b"{", b"[]", {"decision": "maybe"}, {"decision": "confirmed", "x": 1},
                {"decision": "confirmed", "note": 5}, {"decision": "dismissed", "note": "a" * 501},
                {"decision": "dismissed", "note": "bell\u0007"}):
        r = patch(svc, vid, "e1", bad)
        assert (r.status_code, r.json()["code"]) == (422, "invalid_input"), bad
    assert patch(svc, vid, "e1", b" " * 17000).status_code == 413
    assert patch(svc, vid, "e9", {"decision": "confirmed"}).json()["code"] == "event_not_found"
    assert patch(svc, vid, "x", {"decision": "confirmed"}).status_code == 404
    other = str(uuid.uuid4())
    r = patch(svc, other, "e1", {"decision": "confirmed"})
    assert (r.status_code, r.json()["code"]) == (404, "video_not_found")
    assert patch(svc, vid, "e1", {"decision": "confirmed"}, headers={}).status_code == 401

    r = patch(svc, vid, "e1", {"decision": "dismissed", "note": "a poster, é中"})
    assert r.status_code == 200
    body = r.json()
    assert (body["video_id"], body["event_id"], body["decision"], body["note"],
            body["decided_by"]) == (vid, "e1", "dismissed", "a poster, é中", "alice")
    assert patch(svc, vid, "e2", {"decision": "confirmed"}, headers=BARE).status_code == 200
    dec = get(svc, f"/videos/{vid}/decisions").json()
    assert dec["status"] == "reviewed"
    assert dec["counts"] == {"events": 2, "confirmed": 1, "dismissed": 1}
    assert dec["decisions"]["e1"]["note"] == "a poster, é中"
    assert dec["decisions"]["e2"]["decided_by"] == BARE_NAME
    assert dec["decisions"]["e2"]["note"] == ""
    # A later decision replaces the earlier one on the same event.
    assert patch(svc, vid, "e1", {"decision": "confirmed", "note": "no poster"}).status_code == 200
    item = get(svc, "/videos").json()["videos"][0]
    assert (item["status"], item["confirmed"], item["dismissed"]) == ("reviewed", 2, 0)
    assert get(svc, "/videos", status="reviewed").json()["videos"][0]["video_id"] == vid
    assert get(svc, "/videos", status="to_review").json()["videos"] == []
    # Kept beside the video, published whole.
    with open(os.path.join(svc.processed, f"processed_{vid}.decisions.json")) as f:
        kept = json.load(f)
    assert kept["video_id"] == vid and set(kept["decisions"]) == {"e1", "e2"}


def test_concurrent_decisions_on_one_video_are_all_kept(svc):
    vid = publish(svc, 1, "SUSPICIOUS_BEHAVIOR", 50, events=24)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: patch(svc, vid, f"e{i + 1}",
                                              {"decision": "dismissed", "note": str(i)}).status_code,
                              range(24)))
    assert codes == [200] * 24
    dec = get(svc, f"/videos/{vid}/decisions").json()
    assert {k: v["note"] for k, v in dec["decisions"].items()} == {
        f"e{i + 1}": str(i) for i in range(24)}


def test_deleting_a_video_deletes_its_decisions(svc):
    vid = publish(svc, 1)
    keep = publish(svc, 2)
    assert patch(svc, vid, "e1", {"decision": "confirmed"}).status_code == 200
    assert requests.delete(f"{svc.base}/videos/{vid}", headers=ALICE, timeout=10).status_code == 204
    assert not [n for n in os.listdir(svc.processed) if vid in n]
    assert get(svc, f"/videos/{vid}/decisions").status_code == 404
    assert patch(svc, vid, "e1", {"decision": "confirmed"}).status_code == 404
    assert not [n for n in os.listdir(svc.processed) if vid in n]
    assert [v["video_id"] for v in get(svc, "/videos").json()["videos"]] == [keep]


def test_the_responses_have_their_documented_shapes(svc):
    vid = publish(svc, 1, "CHEATING_DETECTED", 80)
    publish(svc, 2, None)
    check(get(svc, "/videos", limit=1), "get", "/videos")
    check(get(svc, "/videos", sort="score"), "get", "/videos")
    check(get(svc, "/videos", limit=0), "get", "/videos")
    check(patch(svc, vid, "e1", {"decision": "dismissed", "note": "x"}), "patch",
          "/videos/{video_id}/events/{event_id}")
    check(patch(svc, vid, "e1", {"decision": "x"}), "patch", "/videos/{video_id}/events/{event_id}")
    check(patch(svc, vid, "e7", {"decision": "confirmed"}), "patch",
          "/videos/{video_id}/events/{event_id}")
    check(get(svc, f"/videos/{vid}/decisions"), "get", "/videos/{video_id}/decisions")
    check(get(svc, f"/videos/{uuid.uuid4()}/decisions"), "get", "/videos/{video_id}/decisions")
