// The review page: submit a URL, follow the task, then watch the result with its events.
"use strict";

const $ = (id) => document.getElementById(id);

function apiKey() { return sessionStorage.getItem("apiKey") || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (apiKey()) headers.Authorization = "Bearer " + apiKey();
  const r = await fetch(path, Object.assign({}, options, { headers }));
  if (r.status === 401) {
    const key = prompt("This service needs an API key:");
    if (key) { sessionStorage.setItem("apiKey", key); return api(path, options); }
  }
  return r;
}

function showTaskState(text, fraction, isError) {
  $("task").hidden = false;
  $("bar-fill").style.width = Math.round((fraction || 0) * 100) + "%";
  $("task-state").textContent = text;
  $("task-state").className = isError ? "error" : "";
}

async function follow(taskId) {
  for (;;) {
    const r = await api("/status/" + taskId);
    const s = await r.json();
    if (r.status !== 200) return showTaskState(s.detail || "unknown task", 0, true);
    if (s.status === "success") {
      showTaskState("Done", 1, false);
      history.replaceState(null, "", "/?video=" + s.video_id);
      return review(s.video_id);
    }
    if (s.status === "failed") return showTaskState(`Failed: ${s.error} (${s.code})`, 0, true);
    showTaskState(`${s.stage}… ${Math.round(s.progress * 100)}%`, s.progress, false);
    await new Promise((done) => setTimeout(done, 700));
  }
}

function fact(name, value) {
  if (value === undefined || value === null || value === "") return;
  const dt = document.createElement("dt"), dd = document.createElement("dd");
  dt.textContent = name; dd.textContent = value;
  $("facts").append(dt, dd);
}

function clock(seconds) {
  const m = Math.floor(seconds / 60), s = Math.floor(seconds % 60);
  return `${m}:${String(s).padStart(2, "0")}`;
}

// One lane per event kind, in the order kinds first appear; each lane labelled with its kind.
function laneFor(kind) {
  let lane = $("timeline").querySelector(`.lane[data-kind="${kind}"]`);
  if (!lane) {
    lane = document.createElement("div");
    lane.className = "lane";
    lane.dataset.kind = kind;
    const name = document.createElement("span");
    name.className = "lane-name";
    name.textContent = kind.replaceAll("_", " ");
    lane.append(name);
    $("timeline").append(lane);
  }
  return lane;
}

function eventLabel(e) {
  const dir = e.details?.direction ? ` (${e.details.direction})` : "";
  return `${e.kind.replaceAll("_", " ")}${dir}: ${e.details?.label || ""}`;
}

function drawEvents(events, duration, videoId) {
  $("events").replaceChildren();
  for (const el of $("timeline").querySelectorAll(".lane")) el.remove();
  if (!events.length) {
    const li = document.createElement("li");
    li.textContent = "No events in this interview's report.";
    $("events").append(li);
  }
  for (const e of events) {
    const start = e.start ?? 0, end = e.end ?? start;
    const known = ["face_absent", "multiple_faces", "looking_away", "silence"];
    const mark = document.createElement("div");
    mark.className = "event kind-" + (known.includes(e.kind) ? e.kind : "other");
    mark.style.left = (100 * start / duration) + "%";
    mark.style.width = (100 * Math.max(end - start, 0) / duration) + "%";
    mark.title = `${clock(start)} ${eventLabel(e)}`;
    mark.onclick = (ev) => { ev.stopPropagation(); $("player").currentTime = start; };
    laneFor(e.kind).append(mark);
    const li = document.createElement("li");
    li.textContent = `${clock(start)}–${clock(end)} ${eventLabel(e)}`;
    if (e.evidence && videoId) {
      const img = document.createElement("img");
      img.className = "evidence";
      img.loading = "lazy";
      img.alt = `evidence frame of ${e.kind.replaceAll("_", " ")} at ${clock(start)}`;
      img.src = `/evidence/${videoId}/${e.id}.jpg`;
      li.append(img);
    }
    li.onclick = () => { $("player").currentTime = start; $("player").play(); };
    $("events").append(li);
  }
}

// The events as captions on the player, and a switch to the review rendition.
function showAnalysisOutputs(p) {
  for (const t of $("player").querySelectorAll("track")) t.remove();
  if (p.events_url) {
    const track = document.createElement("track");
    Object.assign(track, { kind: "captions", label: "Analysis events", srclang: "en",
                           src: p.events_url, default: true });
    $("player").append(track);
  }
  $("review-switch").hidden = !p.review_url;
  $("show-review").checked = false;
  $("show-review").onchange = () => {
    const at = $("player").currentTime;
    $("player").src = $("show-review").checked ? p.review_url : p.video_url;
    $("player").currentTime = at;
  };
}

async function review(videoId) {
  const r = await api("/processed/" + videoId);
  if (r.status !== 200) return showTaskState("No such video", 0, true);
  const p = await r.json();
  const meta = await (await fetch(p.metadata_url)).json();
  const out = meta.output || {}, src = meta.source || {}, proc = meta.processing || {};
  const duration = out.duration || 1;
  $("review").hidden = false;
  $("review-title").textContent = "Review " + videoId;
  $("player").poster = p.thumbnail_url;
  $("player").src = p.video_url;
  $("download").href = p.download_video_url;
  $("metadata-link").href = p.metadata_url;
  $("facts").replaceChildren();
  fact("Duration", clock(duration));
  fact("Resolution", out.width && `${out.width}×${out.height}`);
  fact("Codecs", [out.video_codec, out.audio_codec || "no audio"].join(" / "));
  fact("Processing", proc.mode);
  fact("Source", src.url);
  const analysis = meta.analysis || {};
  fact("Final level", analysis.summary?.final_level);
  fact("Facing the screen", analysis.summary && `${analysis.summary.facing_screen_pct} %`);
  drawEvents(analysis.events || [], duration, videoId);
  showAnalysisOutputs(p);
  $("timeline").onclick = (ev) => {
    const box = $("timeline").getBoundingClientRect();
    $("player").currentTime = duration * (ev.clientX - box.left) / box.width;
  };
  $("player").ontimeupdate = () => {
    $("cursor").style.left = (100 * $("player").currentTime / duration) + "%";
  };
}

$("submit-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const r = await api("/submit", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ video_url: $("video-url").value }),
  });
  const body = await r.json();
  if (r.status !== 200) return showTaskState(body.detail, 0, true);
  history.replaceState(null, "", "/?task=" + body.task_id);
  follow(body.task_id);
};

const params = new URLSearchParams(location.search);
if (params.get("task")) follow(params.get("task"));
else if (params.get("video")) review(params.get("video"));
