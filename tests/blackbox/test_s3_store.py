"""STORAGE_URL=s3://...: the worker publishes a video's files to the bucket (a real radosgw),
the metadata object last; DELETE /videos removes them, metadata first. Nothing is left in
PROCESSED_DIR but scratch space."""
import json
import os
import re
import subprocess
import sys
import uuid

import pytest
import requests

from conftest import BUCKET, IA_BIN, Service, s3, s3env


@pytest.fixture
def s3_service(tmp_path, redis_server, file_server, rgw, bucket, request):
    prefix = f"svc-{uuid.uuid4().hex[:8]}"
    env = s3env(rgw, prefix)
    env.pop("PATH")
    svc = Service(str(tmp_path), redis_server, file_server, extra_env=env)
    svc.prefix = prefix
    svc.s3env = s3env(rgw, prefix)
    yield svc
    codes = svc.stop()
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    if failed or any(c != 0 for c in codes.values()):
        sys.stderr.write(svc.dump_logs())
    assert all(c == 0 for c in codes.values()), f"unclean exit (sanitizers?): {codes}"


def listing(env):
    out = s3(env, "ls").stdout.decode().splitlines()
    return {line.split("\t")[0]: int(line.split("\t")[1]) for line in out}


def test_worker_publishes_to_the_bucket_metadata_last(s3_service, file_server):
    svc = s3_service
    r = requests.post(svc.base + "/submit", json={"video_url": file_server.url("clip.mp4"),
                                                  "analysis": False}, timeout=10)
    assert r.status_code in (200, 202), r.text
    task_id = r.json()["task_id"]
    code, body = svc.wait_done(task_id)
    assert code == 200 and body["status"] == "success", body
    objects = listing(svc.s3env)
    names = {f"processed_{task_id}.{ext}" for ext in ("mp4", "jpg", "json")}
    assert set(objects) == names, objects
    assert all(size > 0 for size in objects.values())
    meta = json.loads(s3(svc.s3env, "cat", f"processed_{task_id}.json").stdout)
    assert meta["video_id"] == task_id
    # The bucket holds the results; the directory only scratch space.
    assert not [n for n in os.listdir(svc.processed) if n.startswith("processed_")]
    # The order of publication, from the worker's log: the metadata last.
    log = open(svc.logs[1], "rb").read().decode(errors="replace")
    order = re.findall(rf"store: published processed_{task_id}\.([a-z0-9.-]+) to s3://", log)
    assert order == ["jpg", "mp4", "json"], order
    head = dict(line.split("=", 1) for line in
                s3(svc.s3env, "head", f"processed_{task_id}.mp4").stdout.decode().splitlines())
    assert int(head["size"]) == objects[f"processed_{task_id}.mp4"]
    # Deleting the video removes its objects (metadata first) and its task.
    d = requests.delete(f"{svc.base}/videos/{task_id}", timeout=30)
    assert d.status_code == 204, d.text
    assert listing(svc.s3env) == {}
    assert requests.get(f"{svc.base}/status/{task_id}", timeout=10).status_code == 404
    assert requests.delete(f"{svc.base}/videos/{task_id}", timeout=30).status_code == 404


def test_bad_s3_configuration_stops_start_up(tmp_path, redis_server, rgw):
    env = dict(os.environ, PROCESSED_DIR=str(tmp_path / "p"),
               CELERY_BROKER_URL=redis_server.url(0), CELERY_BACKEND_URL=redis_server.url(1),
               STORAGE_URL=f"s3://{BUCKET}/x",
               AWS_ENDPOINT_URL_S3=rgw.endpoint, AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="")
    for role in ("worker", "serve"):
        out = subprocess.run([IA_BIN, role], env=env, capture_output=True, text=True,
                             timeout=60, cwd=tmp_path)
        assert out.returncode == 1 and "AWS_SECRET_ACCESS_KEY" in out.stderr, (role, out.stderr)
