// The reviewer's page in a real browser: Debian's chromium, headless, driven by playwright-core
// (never a downloaded browser). Run by tests/blackbox/test_review_page.py, which starts the
// service and the loopback file server and checks what this prints: one JSON object with what
// happened, in order. Everything the page does goes to loopback only.
//
// Usage: node review_page.cjs CONFIG.json   (base, upload_file, submit_url, not_a_video_url,
//                                            artifacts, node_modules, profile, timeout_ms)
"use strict";

const fs = require("fs");
const path = require("path");

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const { chromium } = require(path.join(config.node_modules, "playwright-core"));
const AXE = path.join(config.node_modules, "axe-core", "axe.min.js");
const LAPTOP = { width: 1366, height: 900 };
const PHONE = { width: 390, height: 844 };
const T = config.timeout_ms; // a guard against a hung run, not a time bound

const out = { steps: [], console_errors: [], requests: [] };
const step = (name, facts = {}) => out.steps.push(Object.assign({ step: name }, facts));

async function axeViolations(page) {
  await page.addScriptTag({ path: AXE });
  const res = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  return res.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length,
                                      help: v.help, target: v.nodes[0]?.target }));
}

async function waitDone(page) {
  await page.waitForFunction(() => {
    const s = document.getElementById("bar").dataset.state;
    return s === "done" || s === "failed";
  }, null, { timeout: T, polling: 200 });
  return page.evaluate(() => ({
    state: document.getElementById("bar").dataset.state,
    value: document.getElementById("bar").getAttribute("aria-valuenow"),
    text: document.getElementById("task-state").textContent,
    video: new URLSearchParams(location.search).get("video"),
  }));
}

async function waitReview(page) {
  await page.waitForFunction(() => !document.getElementById("review").hidden &&
    document.querySelectorAll("#events li.event-item").length > 0, null, { timeout: T });
}

async function uploadWithADroppedChunk(page) {
  let patches = 0;
  // The second chunk's connection is dropped: the page must ask HEAD and go on from there.
  await page.route("**/uploads/*", (route) => {
    if (route.request().method() === "PATCH" && ++patches === 2) return route.abort("connectionreset");
    return route.continue();
  });
  await page.setInputFiles("#file-input", config.upload_file);
  const done = await waitDone(page);
  await page.unroute("**/uploads/*");
  step("upload", done);
}

async function playAndSeek(page) {
  await waitReview(page);
  const played = await page.evaluate(async () => {
    const p = document.getElementById("player");
    p.muted = true;
    await p.play();
    await new Promise((resolve) => {
      const check = () => (p.currentTime > 0.5 ? resolve() : setTimeout(check, 100));
      check();
    });
    p.pause();
    return { currentTime: p.currentTime, videoWidth: p.videoWidth, videoHeight: p.videoHeight };
  });
  step("play", played);
  // Click the last event on the timeline; the player seeks to its start.
  const target = await page.evaluate(() => {
    const b = [...document.querySelectorAll("#timeline .event")].pop();
    return { id: b.dataset.id, label: b.getAttribute("aria-label") };
  });
  const seeked = page.evaluate(() => new Promise((resolve) =>
    document.getElementById("player").addEventListener("seeked", resolve, { once: true })));
  await page.click(`#timeline .event[data-id="${target.id}"]`);
  await seeked;
  const at = await page.evaluate(() => document.getElementById("player").currentTime);
  const meta = await page.evaluate(async (id) => {
    const vid = new URLSearchParams(location.search).get("video");
    const m = await (await fetch("/metadata/" + vid)).json();
    return m.analysis.events.find((e) => e.id === id);
  }, target.id);
  step("seek", { event: target.id, start: meta.start, currentTime: at });
  // Keyboard: j selects the next event and seeks to it.
  await page.click("#review-title");
  await page.keyboard.press("j");
  const selected = await page.evaluate(() => document.querySelector("#events li.selected")?.dataset.id);
  step("keyboard", { selected });
}

async function dismissAndReload(page) {
  const li = "#events li.event-item:first-child";
  const id = await page.getAttribute(li, "data-id");
  await page.fill(`${li} input.note`, "a poster on the wall");
  await page.click(`${li} button.dismiss`);
  await page.waitForFunction((sel) => document.querySelector(sel).dataset.decision === "dismissed",
                             li, { timeout: T });
  await page.reload();
  await waitReview(page);
  const after = await page.evaluate((eid) => {
    const item = document.querySelector(`#events li[data-id="${eid}"]`);
    return { decision: item.dataset.decision, note: item.querySelector("input.note").value,
             text: item.querySelector(".decision").textContent };
  }, id);
  step("decision", Object.assign({ event: id }, after));
}

async function submitUrl(page, url, name) {
  await page.fill("#video-url", url);
  await page.click("#submit-form button[type=submit]");
  await page.waitForFunction(() => document.getElementById("bar").dataset.state === "running",
                             null, { timeout: T });
  step(name, await waitDone(page));
}

async function findInList(page, ids) {
  await page.waitForFunction((want) => want.every((id) =>
    document.querySelector(`#videos li[data-id="${id}"]`)), ids, { timeout: T });
  const rows = await page.evaluate(() => [...document.querySelectorAll("#videos li.video")].map((li) => ({
    id: li.dataset.id, text: li.textContent })));
  step("list", { rows });
}

async function main() {
  fs.mkdirSync(config.artifacts, { recursive: true });
  const context = await chromium.launchPersistentContext(config.profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--autoplay-policy=no-user-gesture-required"],
    viewport: LAPTOP,
  });
  const page = context.pages()[0] || await context.newPage();
  out.page = page;
  page.setDefaultTimeout(T);
  page.on("console", (m) => {
    if (m.type() === "error") out.console_errors.push({ text: m.text(), url: m.location().url || "" });
  });
  page.on("pageerror", (e) => out.console_errors.push({ text: String(e), url: "" }));
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith("/uploads")) out.requests.push(`${r.method()} ${u.pathname}`);
  });
  await page.addInitScript(() => { window.iaChunkBytes = 256 * 1024; });
  // The page's own failed request (the dropped chunk) logs an error: it is expected, once.
  await page.goto(config.base + "/");
  await uploadWithADroppedChunk(page);
  const uploaded = new URL(page.url()).searchParams.get("video");
  await playAndSeek(page);
  await dismissAndReload(page);
  await submitUrl(page, config.not_a_video_url, "submit_not_a_video");
  await submitUrl(page, config.submit_url, "submit");
  await waitReview(page);
  const submitted = new URL(page.url()).searchParams.get("video");
  await findInList(page, [uploaded, submitted]);
  // Back to the uploaded interview (it has a dismissed event) for the pictures and the audit.
  await page.goto(`${config.base}/?video=${uploaded}`);
  await waitReview(page);
  await page.evaluate(() => { window.scrollTo(0, 0); document.activeElement?.blur(); });
  await page.screenshot({ path: path.join(config.artifacts, "review-laptop.png"), fullPage: true });
  step("axe", { size: "laptop", violations: await axeViolations(page) });
  await page.setViewportSize(PHONE);
  await page.reload();
  await waitReview(page);
  await page.screenshot({ path: path.join(config.artifacts, "review-phone.png"), fullPage: true });
  step("axe", { size: "phone", violations: await axeViolations(page) });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  step("phone", { horizontal_overflow_px: overflow });
  await context.close();
}

function report() {
  const page = out.page;
  delete out.page;
  process.stdout.write(JSON.stringify(out) + "\n");
  return page;
}

main().then(report, async (err) => {
  out.error = String(err && err.stack || err);
  const page = out.page;
  if (page) await page.screenshot({ path: path.join(config.artifacts, "failure.png"), fullPage: true })
    .catch(() => {});
  report();
  process.exit(1);
});
