"""A test-only Celery app with a stand-in process_video task, for interop checks.

Run a Python worker that consumes what interview-api publishes:
    CELERY_BROKER_URL=redis://127.0.0.1:PORT/0 CELERY_BACKEND_URL=redis://127.0.0.1:PORT/1 \
    /usr/bin/python3 -m celery -A celery_stub_app worker -P solo -c 1 --without-gossip \
        --without-mingle --without-heartbeat -l info
(with tests/blackbox on PYTHONPATH). Or use it as a client: app.send_task('process_video', ...)
and app.AsyncResult(task_id).get(timeout=...).

The task returns {"echo": video_url, "worker": "python-stub"} (plus "analysis" and
"callback_url" when the message has those keyword arguments) so that a test can see that the Python worker received exactly the
arguments interview-api sent. A URL containing "fail" makes it
raise RuntimeError, to check FAILURE records written by Celery itself.
"""
import os

from celery import Celery

app = Celery(
    "celery_stub_app",
    broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("CELERY_BACKEND_URL", "redis://127.0.0.1:6379/1"),
)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_track_started=True,
    broker_connection_retry_on_startup=True,
)
if os.environ.get("CELERY_VISIBILITY_TIMEOUT"):
    # To check how kombu's restore_visible() treats the leases interview-api records.
    app.conf.broker_transport_options = {
        "visibility_timeout": float(os.environ["CELERY_VISIBILITY_TIMEOUT"])}


@app.task(name="process_video", bind=True)
def process_video(self, video_url, analysis=None, callback_url=None):
    """Echoes its arguments, after one PROGRESS update like the real worker sends."""
    self.update_state(state="PROGRESS", meta={"stage": "fetching", "progress": 0.1})
    if "fail" in video_url:
        raise RuntimeError("stub failure for " + video_url)
    result = {"echo": video_url, "worker": "python-stub",
              "retries": self.request.retries, "task_id": self.request.id}
    if analysis is not None:  # the "analysis" keyword argument, when the message has one
        result["analysis"] = analysis
    if callback_url is not None:  # a webhook's URL (docs/webhooks.md): only echoed here
        result["callback_url"] = callback_url
    return result
