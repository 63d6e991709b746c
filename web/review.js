// The reviewer's page: submit a URL or upload a file (tus, resumable), follow the task, list the
// interviews, and review one: player, timeline, score chart, events with decisions, facts.
"use strict";

const $ = (id) => document.getElementById(id);

// Builds an element: props are properties (or attributes when not one), children appended.
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k in e && !k.includes("-")) e[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return e;
}

// ---- API

function apiKey() { return sessionStorage.getItem("apiKey") || ""; }
function authHeaders() { return apiKey() ? { Authorization: "Bearer " + apiKey() } : {}; }

function askKey(why) {
  const key = prompt(why || "This service needs an API key:");
  if (key !== null) sessionStorage.setItem("apiKey", key.trim());
  showKeyState();
  return key !== null && key.trim() !== "";
}

function showKeyState() {
  $("key-button").textContent = apiKey() ? "API key ✓" : "API key";
}

// fetch() with the API key; asks for one on 401 and tries again once.
async function api(path, options = {}, asked = false) {
  const headers = Object.assign({}, options.headers || {}, authHeaders());
  const r = await fetch(path, Object.assign({}, options, { headers }));
  if (r.status === 401 && !asked && askKey()) return api(path, options, true);
  return r;
}

// { status, body } where body is the parsed JSON (or null).
async function apiJson(path, options) {
  const r = await api(path, options);
  let body = null;
  try { body = await r.json(); } catch (_) { /* no JSON body */ }
  return { status: r.status, body };
}

// ---- Words

const STAGES = {
  queued: "Waiting for a worker", starting: "Starting", fetching: "Downloading the video",
  probing: "Checking the file", processing: "Converting the video",
  analysing: "Analysing the interview", publishing: "Saving the results",
  retrying: "A temporary problem: trying again soon",
};
const HINTS = {
  url_not_allowed: "This address cannot be fetched from here (a private network, or a port that is not allowed).",
  fetch_network_error: "Check that the address works and try again.",
  fetch_http_error: "The server holding the video refused it: check the address.",
  not_a_video: "Upload or link a video file (MP4, WebM, MOV, …).",
  decode_error: "The file may be damaged or incomplete: try to export it again.",
  too_large: "Try a shorter or smaller recording.",
  too_long: "Try a shorter recording.",
};
const LEVELS = { NO_ALERT: "no alert", SUSPICIOUS_BEHAVIOR: "suspicious", CHEATING_DETECTED: "cheating detected" };
const STATUSES = { to_review: "to review", reviewed: "reviewed", no_events: "no events" };

const words = (s) => String(s || "").replaceAll("_", " ");

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function megabytes(n) { return (n / 1e6).toFixed(n < 1e7 ? 1 : 0) + " MB"; }

// ---- Progress of one upload or task

function showProgress(text, fraction, state) {
  $("task").hidden = false;
  const pct = Math.round(Math.min(Math.max(fraction || 0, 0), 1) * 100);
  $("bar-fill").style.width = pct + "%";
  $("bar").setAttribute("aria-valuenow", String(pct));
  $("bar").dataset.state = state || "running";
  $("task-state").textContent = text;
  $("task-state").className = state === "failed" ? "error" : "";
}

function showFailure(what, detail, code) {
  const hint = HINTS[code] ? " " + HINTS[code] : "";
  showProgress(`${what}: ${detail || "something went wrong"}.${hint}`, 0, "failed");
}

let following = 0; // the id of the task being followed; a new one stops the old loop

async function follow(taskId) {
  const mine = ++following;
  for (;;) {
    let s;
    try {
      s = await apiJson("/status/" + taskId);
    } catch (_) {
      showProgress("The service cannot be reached; trying again…", 0, "running");
      await new Promise((done) => setTimeout(done, 2000));
      continue;
    }
    if (mine !== following) return;
    if (s.status !== 200) return showFailure("Cannot follow this task", s.body?.detail, s.body?.code);
    const b = s.body;
    if (b.status === "success") {
      loadList();
      // "done" only once the review is open: the address then names the video.
      if (await openReview(b.video_id)) showProgress("Done: the interview is ready below.", 1, "done");
      return;
    }
    if (b.status === "failed") return showFailure("Processing failed", b.error, b.code);
    const stage = STAGES[b.stage] || words(b.stage);
    showProgress(`${stage}… ${Math.round((b.progress || 0) * 100)}%`, b.progress, "running");
    await new Promise((done) => setTimeout(done, 700));
  }
}

async function submitUrl(ev) {
  ev.preventDefault();
  showProgress("Submitting…", 0, "running");
  let r;
  try {
    r = await apiJson("/submit", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ video_url: $("video-url").value.trim() }),
    });
  } catch (_) {
    return showFailure("Not submitted", "the service cannot be reached");
  }
  if (r.status !== 200) return showFailure("Not submitted", r.body?.detail, r.body?.code);
  history.replaceState(null, "", "/?task=" + r.body.task_id);
  follow(r.body.task_id);
}

async function uploadFile(file) {
  if (!file) return;
  following++; // stop following an earlier task
  const upload = new TusUpload(file, {
    chunkSize: window.iaChunkBytes, // tests make chunks small; the default is 8 MiB
    headers: authHeaders,
    onProgress: (sent, total) => showProgress(
      `Uploading ${file.name}: ${megabytes(sent)} of ${megabytes(total)}`,
      total ? sent / total : 1, "running"),
    onRetry: (n, delay, why) => showProgress(
      `Upload interrupted (${why}); resuming in ${Math.round(delay / 1000) || 1} s…`,
      upload.offset / file.size, "running"),
  });
  try {
    const taskId = await upload.start();
    history.replaceState(null, "", "/?task=" + taskId);
    follow(taskId);
  } catch (err) {
    if (err.status === 401 && askKey()) return uploadFile(file);
    showFailure("Upload failed", err.message + (err.fatal ? "" : " (choose the same file again to resume)"));
  }
}

function setupDrop() {
  const zone = $("drop");
  $("file-input").addEventListener("change", () => uploadFile($("file-input").files[0]));
  for (const type of ["dragenter", "dragover"])
    zone.addEventListener(type, (ev) => { ev.preventDefault(); zone.classList.add("over"); });
  for (const type of ["dragleave", "drop"])
    zone.addEventListener(type, () => zone.classList.remove("over"));
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    if (ev.dataTransfer?.files?.length) uploadFile(ev.dataTransfer.files[0]);
  });
}

// ---- The list

let listCursor = null;

function listQuery(cursor) {
  const q = new URLSearchParams();
  if ($("filter-status").value) q.set("status", $("filter-status").value);
  if ($("filter-level").value) q.set("level", $("filter-level").value);
  q.set("sort", $("filter-sort").value);
  q.set("limit", "20");
  if (cursor) q.set("cursor", cursor);
  return "/videos?" + q;
}

function videoItem(v) {
  const decided = v.confirmed + v.dismissed;
  const level = v.alert_level ? LEVELS[v.alert_level] || words(v.alert_level) : "not analysed";
  const link = el("a", { href: "/?video=" + v.video_id, class: "video-link",
                         onclick: (ev) => { ev.preventDefault(); openReview(v.video_id, true); } },
    el("img", { src: v.thumbnail_url, alt: "", loading: "lazy", width: 96, height: 54 }),
    el("span", { class: "video-name" }, v.source || v.video_id.slice(0, 8)));
  return el("li", { class: "video", "data-id": v.video_id },
    link,
    el("span", { class: "video-when" }, v.completed_at ? new Date(v.completed_at).toLocaleString() : ""),
    el("span", { class: "video-duration" }, clock(v.duration)),
    el("span", { class: "badge status-" + v.status }, STATUSES[v.status] || v.status,
       v.events ? ` (${decided}/${v.events})` : ""),
    el("span", { class: "badge level-" + (v.alert_level || "none") }, level),
    el("span", { class: "video-score" }, v.score === null ? "–" : "score " + v.score));
}

async function loadList(more = false) {
  if (!more) listCursor = null;
  let r;
  try {
    r = await apiJson(listQuery(more ? listCursor : null));
  } catch (_) {
    $("list-state").textContent = "The list cannot be loaded: the service cannot be reached.";
    return;
  }
  if (r.status !== 200) {
    $("list-state").textContent = "The list cannot be loaded: " + (r.body?.detail || r.status);
    return;
  }
  const items = r.body.videos.map(videoItem);
  if (more) $("videos").append(...items); else $("videos").replaceChildren(...items);
  listCursor = r.body.next_cursor;
  $("more").hidden = !listCursor;
  const shown = $("videos").children.length;
  $("list-state").textContent = shown ? (listCursor ? `${shown} shown, ${r.body.remaining} more` : "")
                                      : "No interviews match.";
}

// ---- The review view

const review = { id: null, events: [], decisions: {}, selected: -1, duration: 1, evidence: {} };

function fact(dl, name, value) {
  if (value === undefined || value === null || value === "") return;
  dl.append(el("dt", {}, name), el("dd", {}, String(value)));
}

const KNOWN_KINDS = ["face_absent", "multiple_faces", "other_person", "looking_away", "gaze_away",
                     "phone", "object", "face_mismatch", "speech_without_candidate", "silence"];

function eventLabel(e) {
  const dir = e.details?.direction ? ` (${e.details.direction})` : "";
  return `${words(e.kind)}${dir}` + (e.details?.label ? `: ${e.details.label}` : "");
}

function seek(t, play) {
  const p = $("player");
  p.currentTime = Math.max(0, t);
  if (play) p.play().catch(() => {});
}

function selectEvent(i, { scroll = true, seekTo = true } = {}) {
  if (!review.events.length) return;
  review.selected = (i + review.events.length) % review.events.length;
  const e = review.events[review.selected];
  for (const li of $("events").children) li.classList.toggle("selected", li.dataset.id === e.id);
  for (const b of $("timeline").querySelectorAll(".event"))
    b.classList.toggle("selected", b.dataset.id === e.id);
  const li = $("events").querySelector(`li[data-id="${e.id}"]`);
  if (li && scroll) li.scrollIntoView({ block: "nearest" });
  if (seekTo) seek(e.start ?? 0);
}

// One lane per event kind, in the order kinds first appear.
function laneFor(kind) {
  let lane = $("timeline").querySelector(`.lane[data-kind="${kind}"]`);
  if (!lane) {
    lane = el("div", { class: "lane", "data-kind": kind }, el("span", { class: "lane-name" }, words(kind)));
    $("timeline").append(lane);
  }
  return lane;
}

function decisionText(d) {
  if (!d) return "Not decided";
  const who = d.decided_by ? ` by ${d.decided_by}` : "";
  return `${d.decision === "confirmed" ? "Confirmed" : "Dismissed"}${who}` + (d.note ? ` — “${d.note}”` : "");
}

function showDecision(eventId) {
  const li = $("events").querySelector(`li[data-id="${eventId}"]`);
  if (!li) return;
  const d = review.decisions[eventId];
  li.dataset.decision = d ? d.decision : "";
  li.querySelector(".decision").textContent = decisionText(d);
  for (const b of $("timeline").querySelectorAll(`.event[data-id="${eventId}"]`))
    b.dataset.decision = d ? d.decision : "";
}

async function decide(eventId, decision) {
  const li = $("events").querySelector(`li[data-id="${eventId}"]`);
  const note = li.querySelector("input.note").value;
  li.querySelector(".decision").textContent = "Saving…";
  let r;
  try {
    r = await apiJson(`/videos/${review.id}/events/${eventId}`, {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ decision, note }),
    });
  } catch (_) {
    r = { status: 0, body: { detail: "the service cannot be reached" } };
  }
  if (r.status !== 200) {
    li.querySelector(".decision").textContent = "Not saved: " + (r.body?.detail || r.status);
    return;
  }
  review.decisions[eventId] = r.body;
  showDecision(eventId);
  loadList();
}

function eventItem(e, i) {
  const start = e.start ?? 0, end = e.end ?? start;
  const note = el("input", { type: "text", class: "note", maxLength: 500, placeholder: "Note (optional)",
                             "aria-label": `Note on event ${e.id}` });
  const d = review.decisions[e.id];
  if (d) note.value = d.note || "";
  return el("li", { "data-id": e.id, class: "event-item" },
    el("button", { type: "button", class: "seek", onclick: () => selectEvent(i) },
       `${clock(start)}–${clock(end)}`),
    el("span", { class: "event-kind" }, eventLabel(e)),
    e.evidence ? el("img", { class: "evidence", loading: "lazy", src: review.evidence[e.id] || `/evidence/${review.id}/${e.id}.jpg`,
                             alt: `Evidence frame of ${words(e.kind)} at ${clock(start)}` }) : null,
    el("div", { class: "decide" }, note,
       el("button", { type: "button", class: "confirm", onclick: () => decide(e.id, "confirmed") }, "Confirm"),
       el("button", { type: "button", class: "dismiss", onclick: () => decide(e.id, "dismissed") }, "Dismiss"),
       el("span", { class: "decision", "aria-live": "polite" }, decisionText(d))));
}

function drawEvents() {
  $("events").replaceChildren();
  for (const lane of $("timeline").querySelectorAll(".lane")) lane.remove();
  if (!review.events.length) $("events").append(el("li", {}, "No events in this interview's report."));
  review.events.forEach((e, i) => {
    const start = e.start ?? 0, end = e.end ?? start;
    const kind = KNOWN_KINDS.includes(e.kind) ? e.kind : "other";
    laneFor(e.kind).append(el("button", {
      type: "button", class: "event kind-" + kind, "data-id": e.id,
      "aria-label": `${clock(start)} ${eventLabel(e)}`, title: `${clock(start)} ${eventLabel(e)}`,
      style: `left:${100 * start / review.duration}%;width:${100 * Math.max(end - start, 0) / review.duration}%`,
      onclick: (ev) => { ev.stopPropagation(); selectEvent(i, { scroll: true }); },
    }));
    $("events").append(eventItem(e, i));
    showDecision(e.id);
  });
}

// The score over time as an SVG line (at most one point per 1/1000 of the video: the highest).
function drawChart(analysis) {
  const svg = $("chart");
  for (const n of [...svg.children]) if (n.tagName !== "title") n.remove();
  const tl = analysis.timeline || {};
  const fields = tl.fields || [], rows = tl.rows || [];
  const ti = fields.indexOf("t"), si = fields.indexOf("score");
  $("timeline-box").classList.toggle("no-chart", ti < 0 || si < 0 || !rows.length);
  if (ti < 0 || si < 0 || !rows.length) return;
  const buckets = new Map();
  for (const row of rows) {
    const x = Math.round(1000 * row[ti] / review.duration), y = row[si] ?? 0;
    if (!buckets.has(x) || buckets.get(x) < y) buckets.set(x, y);
  }
  const ns = "http://www.w3.org/2000/svg";
  const line = (y, cls) => {
    const l = document.createElementNS(ns, "line");
    Object.entries({ x1: 0, x2: 1000, y1: 120 - 1.2 * y, y2: 120 - 1.2 * y, class: cls })
      .forEach(([k, v]) => l.setAttribute(k, v));
    svg.append(l);
  };
  line(40, "level suspicious");
  line(70, "level cheating");
  const points = [...buckets.entries()].sort((a, b) => a[0] - b[0])
    .map(([x, y]) => `${x},${(120 - 1.2 * y).toFixed(1)}`).join(" ");
  const poly = document.createElementNS(ns, "polyline");
  poly.setAttribute("points", points);
  poly.setAttribute("class", "score");
  svg.append(poly);
}

function drawSummary(meta) {
  const s = meta.analysis?.summary, dl = $("summary");
  dl.replaceChildren();
  if (!s) {
    fact(dl, "Analysis", meta.analysis?.error ? "failed (" + meta.analysis.error + ")" : "not run");
    return;
  }
  fact(dl, "Final level", LEVELS[s.final_level] || words(s.final_level));
  fact(dl, "Highest score", s.max_score);
  fact(dl, "Time present", s.time_present_s !== undefined ? clock(s.time_present_s) : null);
  fact(dl, "Facing the screen", s.facing_screen_pct !== undefined ? `${s.facing_screen_pct} %` : null);
  fact(dl, "Time away", s.time_away_s !== undefined ? clock(s.time_away_s) : null);
  const kinds = Object.entries(s.events_by_kind || {}).map(([k, n]) => `${words(k)} ×${n}`).join(", ");
  fact(dl, "Events by kind", kinds || "none");
  fact(dl, "Quality flags", (s.quality_flags || []).map(words).join(", ") || "none");
}

function drawFacts(meta) {
  const out = meta.output || {}, src = meta.source || {}, proc = meta.processing || {};
  const dl = $("facts");
  dl.replaceChildren();
  fact(dl, "Source", src.url);
  fact(dl, "Source file", [src.container, src.video?.codec, src.video && `${src.video.width}×${src.video.height}`,
                           src.bytes && megabytes(src.bytes)].filter(Boolean).join(" · "));
  fact(dl, "Duration", clock(out.duration));
  fact(dl, "Output", [out.width && `${out.width}×${out.height}`, out.video_codec,
                      out.audio_codec || "no audio", out.bytes && megabytes(out.bytes)].filter(Boolean).join(" · "));
  fact(dl, "Processing", [proc.mode, (proc.normalizations || []).map(words).join(", ")].filter(Boolean).join(": "));
  fact(dl, "Completed", meta.completed_at && new Date(meta.completed_at).toLocaleString());
}

function showOutputs(p) {
  const player = $("player");
  for (const t of player.querySelectorAll("track")) t.remove();
  if (p.events_url)
    player.append(el("track", { kind: "captions", label: "Analysis events", srclang: "en",
                                src: p.events_url, default: true }));
  $("review-switch").hidden = !p.review_url;
  $("show-review").checked = false;
  $("show-review").onchange = () => {
    const at = player.currentTime, playing = !player.paused;
    player.src = $("show-review").checked ? p.review_url : p.video_url;
    player.addEventListener("loadedmetadata", () => { player.currentTime = at; if (playing) player.play().catch(() => {}); },
                            { once: true });
  };
}

async function openReview(videoId, push) {
  const r = await apiJson("/processed/" + videoId);
  if (r.status !== 200) {
    showFailure("Cannot open this interview", r.body?.detail, r.body?.code);
    return false;
  }
  const p = r.body;
  const [metaR, decR] = await Promise.all([fetch(p.metadata_url), apiJson(`/videos/${videoId}/decisions`)]);
  const meta = await metaR.json();
  if (push) history.pushState(null, "", "/?video=" + videoId);
  else history.replaceState(null, "", "/?video=" + videoId);
  review.id = videoId;
  review.evidence = p.evidence_urls || {};
  review.duration = meta.output?.duration || 1;
  review.events = meta.analysis?.events || [];
  review.decisions = decR.status === 200 ? decR.body.decisions : {};
  review.selected = -1;
  $("review").hidden = false;
  $("review-title").textContent = "Review: " + (meta.source?.url?.startsWith("upload:") ? "uploaded file"
                                                : (meta.source?.url || videoId));
  const player = $("player");
  player.poster = p.thumbnail_url;
  player.src = p.video_url;
  $("download").href = p.download_video_url;
  $("metadata-link").href = p.metadata_url;
  showOutputs(p);
  drawEvents();
  drawChart(meta.analysis || {});
  drawSummary(meta);
  drawFacts(meta);
  $("review").scrollIntoView({ block: "start" });
  return true;
}

function setupPlayer() {
  const player = $("player");
  player.addEventListener("timeupdate", () => {
    $("cursor").style.left = (100 * player.currentTime / review.duration) + "%";
  });
  const seekFromClick = (node) => (ev) => {
    const box = node.getBoundingClientRect();
    seek(review.duration * (ev.clientX - box.left) / box.width);
  };
  $("timeline").addEventListener("click", seekFromClick($("timeline")));
  $("chart").addEventListener("click", seekFromClick($("chart")));
}

// Keys act on the review unless the reviewer is typing or on a control that uses them.
function onKey(ev) {
  if ($("review").hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const t = ev.target;
  if (t.closest && t.closest("input, textarea, select")) return;
  const player = $("player");
  const current = () => review.events[review.selected];
  switch (ev.key) {
  case "j": case "J": selectEvent(review.selected + 1); break;
  case "k": case "K": selectEvent(review.selected < 0 ? -1 : review.selected - 1); break;
  case " ":
    if (t.closest && t.closest("button, a, video")) return;
    if (player.paused) player.play().catch(() => {}); else player.pause();
    break;
  case "c": case "C": if (current()) decide(current().id, "confirmed"); break;
  case "d": case "D": if (current()) decide(current().id, "dismissed"); break;
  default: return;
  }
  ev.preventDefault();
}

function start() {
  showKeyState();
  $("key-button").addEventListener("click", () => { askKey("API key (empty: none):"); loadList(); });
  $("submit-form").addEventListener("submit", submitUrl);
  setupDrop();
  setupPlayer();
  for (const id of ["filter-status", "filter-level", "filter-sort"])
    $(id).addEventListener("change", () => loadList());
  $("more").addEventListener("click", () => loadList(true));
  document.addEventListener("keydown", onKey);
  window.addEventListener("popstate", () => route());
  loadList();
  route();
}

function route() {
  const params = new URLSearchParams(location.search);
  if (params.get("task")) follow(params.get("task"));
  else if (params.get("video")) openReview(params.get("video"));
}

start();
