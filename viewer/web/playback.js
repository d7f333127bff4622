// The player page (/playback): the officer picks 1–4 cameras, a day and a time and says
// why (audited by POST /api/playback) before anything loads; then the tiles play in sync
// on one shared clock over the day timeline.
//
// The clock is wall time. While a tile plays healthily the clock follows that tile's video
// (the leader), so the clock never runs ahead of the picture; the other tiles follow the
// clock. When no shown camera has a recording at the clock, it jumps to the next one.

import { applyTexts, language, setLanguage, t, timeText } from "./i18n.js";
import { api, me } from "./session.js";
import { PlaybackTile } from "./pbtile.js";
import { ScrubPreview } from "./scrub.js";
import { Timeline } from "./timeline.js";

const MAX_CAMERAS = 4;
// TICK_MS: how often the tiles are brought to the clock and the playhead is redrawn; a
// gap is crossed within a tick or two of the picture reaching it.
const TICK_MS = 100;
const EVICT_EVERY = 50; // ticks
// SCRUB_MS: while dragging on the timeline, seek at most this often.
const SCRUB_MS = 120;
const TIMELINE_BUCKET = "60s";

const form = document.getElementById("start");
const cameraList = document.getElementById("camera-list");
const timeOut = document.getElementById("time");
const playButton = document.getElementById("play");
let cameras = []; // /api/cameras entries
let tiles = [];
let day = null; // {start, end} epoch ms of the viewed day's local midnights
let timeline = null;
const preview = new ScrubPreview(
  document.getElementById("preview"),
  () => document.getElementById("timeline"),
  () => clock.now(),
  () => lost(),
);
let timelineData = new Map(); // camera id → its /api/timeline row, in ms
let ticks = 0;
let ticker = 0; // the tick interval while the player runs
let lastScrub = 0;
let pendingSeek = null; // {target, at}: the last seek, until its frame is presented
const seeks = []; // measured seeks: {target, presented, ms, kind, camera}

const clock = {
  wall: 0, // wall ms at performance time `at`
  at: 0,
  rate: 1,
  playing: false,
  now() {
    return this.playing ? this.wall + (performance.now() - this.at) * this.rate : this.wall;
  },
  set(w) {
    this.wall = w;
    this.at = performance.now();
  },
};

// stamp writes wall time w as HH:MM:SS.mmm in the browser's time zone.
function stamp(w) {
  const d = new Date(w);
  return `${timeText(d, true)}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

function pad(n) {
  return String(n).padStart(2, "0");
}

// ---- the start form ----

function params() {
  const q = new URLSearchParams(location.search);
  const chosen = q.getAll("camera").flatMap((c) => c.split(",")).filter(Boolean);
  const at = Date.parse(q.get("t") ?? "");
  return { chosen, at: Number.isNaN(at) ? Date.now() - 10 * 60e3 : at };
}

// fillForm ticks the cameras chosen and sets the form's day and time to wall time at.
function fillForm({ chosen, at } = params()) {
  cameraList.replaceChildren(
    ...cameras.map((c) => {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = c.id;
      box.checked = chosen.includes(c.id);
      label.append(box, ` ${c.name || c.id}`);
      return label;
    }),
  );
  const d = new Date(at);
  document.getElementById("start-date").value = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  document.getElementById("start-time").value = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

async function submit(e) {
  e.preventDefault();
  const error = document.getElementById("start-error");
  const ids = [...cameraList.querySelectorAll("input:checked")].map((b) => b.value);
  const reason = document.getElementById("reason").value.trim();
  if (ids.length === 0 || ids.length > MAX_CAMERAS) {
    error.textContent = t("chooseCameras");
    return;
  }
  if (!reason) {
    error.textContent = t("needReason");
    return;
  }
  const [y, m, dd] = document.getElementById("start-date").value.split("-").map(Number);
  const [hh, mm, ss = 0] = document.getElementById("start-time").value.split(":").map(Number);
  const res = await api("api/playback", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ cameras: ids, reason, case: document.getElementById("case").value.trim() }),
  });
  if (res.status !== 201) {
    const body = await res.json().catch(() => ({}));
    error.textContent = t("startFailed", { msg: body.error ?? `HTTP ${res.status}` });
    return;
  }
  // The day is the browser's local day: midnight to midnight (23 or 25 h when the clocks
  // change).
  day = { start: new Date(y, m - 1, dd).getTime(), end: new Date(y, m - 1, dd + 1).getTime() };
  start(ids, new Date(y, m - 1, dd, hh, mm, ss).getTime());
}

// ---- the player ----

function start(ids, at) {
  document.body.dataset.phase = "player";
  form.hidden = true;
  document.getElementById("player").hidden = false;
  const box = document.getElementById("tiles");
  box.dataset.count = String(ids.length);
  tiles = ids.map((id) => {
    const tile = new PlaybackTile(cameras.find((c) => c.id === id), day, { onChange: drawRows, onLost: lost });
    tile.onFrame = presentedFrame;
    box.append(tile.el);
    return tile;
  });
  timeline = new Timeline(document.getElementById("timeline"), day, scrub);
  preview.setCameras(ids);
  timeline.onView = (from, span) => preview.wantRange(from, from + span);
  timeline.onHover = (w, id, x, since) => (w === null ? preview.hide() : preview.show(id, w, x, since));
  timeline.zoom(1 / 24); // an hour around the start: the day view is one button away
  loadTimeline(ids);
  clock.playing = true;
  seekAll(at);
  renderTexts();
  ticker = setInterval(tick, TICK_MS);
}

// lost goes back to the form when a playback request answers 428: the server no longer
// knows why the officer looks (playback sessions live in its memory, and it restarted).
// The cameras and the time stay filled in; the reason must be given, and audited, again.
function lost() {
  if (document.body.dataset.phase !== "player") return;
  const chosen = tiles.map((tile) => tile.id);
  const at = clock.now();
  clearInterval(ticker);
  for (const tile of tiles) tile.stop();
  tiles = [];
  timelineData = new Map();
  pendingSeek = null;
  timeline = null;
  preview.stop();
  // A fresh canvas for the next timeline: the old one's listeners go with the old canvas.
  const canvas = document.getElementById("timeline");
  canvas.replaceWith(canvas.cloneNode());
  document.getElementById("tiles").replaceChildren();
  document.getElementById("player").hidden = true;
  form.hidden = false;
  document.body.dataset.phase = "start";
  fillForm({ chosen, at });
  document.getElementById("reason").value = "";
  document.getElementById("start-error").textContent = t("reasonAgain");
}

async function loadTimeline(ids) {
  const q = new URLSearchParams({
    cameras: ids.join(","),
    from: new Date(day.start).toISOString(),
    to: new Date(day.end).toISOString(),
    bucket: TIMELINE_BUCKET,
  });
  const res = await api(`api/timeline?${q}`);
  if (res.status === 428) lost();
  if (!res.ok) return;
  const body = await res.json();
  const span = (s) => ({ start: Date.parse(s.start), end: Date.parse(s.end) });
  for (const c of body.cameras) {
    timelineData.set(c.id, {
      recorded: c.recorded.map(span),
      gaps: c.gaps.map(span),
      motion: c.motion,
      bucket: body.bucket_seconds * 1000,
      from: Date.parse(body.from),
      events: c.events.map((ev) => ({ start: Date.parse(ev.start), score: ev.score })),
    });
  }
  drawRows();
}

function drawRows() {
  if (!timeline) return;
  timeline.setRows(
    tiles.map((tile) => {
      const data = timelineData.get(tile.id) ?? { recorded: [], gaps: [], motion: [], bucket: 60e3, events: [] };
      return { id: tile.id, name: tile.name, deleted: tile.deleted, ...data };
    }),
  );
}

// seekAll sends the clock and every tile to wall time w.
function seekAll(w) {
  w = Math.max(day.start, Math.min(day.end - 1, w));
  clock.set(w);
  pendingSeek = { target: w, at: performance.now() };
  for (const tile of tiles) tile.seek(w);
  timeline.setPlayhead(w);
  renderTime();
  // The previews around the new time come first (behind the seek's own requests).
  preview.fetchNear();
}

// presentedFrame measures a seek when the main tile presents a new frame for it: within a
// frame and a half of the target (the frame holding the target starts up to a frame
// before it). The element's seeking flag is no guide: 'seeked' may come after the frame.
function presentedFrame(tile) {
  if (!pendingSeek || tile !== mainTile(pendingSeek.target)) return;
  const frame = tile.frameDuration(pendingSeek.target);
  if (Math.abs(tile.presented - pendingSeek.target) > frame * 1.5) return;
  seeks.push({ target: pendingSeek.target, presented: tile.presented, ms: performance.now() - pendingSeek.at, kind: tile.seekKind, camera: tile.id });
  pendingSeek = null;
  renderTime();
}

function scrub(w, final) {
  if (!final && performance.now() - lastScrub < SCRUB_MS) return;
  lastScrub = performance.now();
  seekAll(w);
}

function tick() {
  let w = clock.now();
  if (w >= day.end) {
    clock.playing = false;
    clock.set((w = day.end - 1));
  }
  const leader = clock.playing ? tiles.find((tile) => tile.healthy(w)) : undefined;
  if (leader) clock.set((w = leader.position()));
  // No shown camera has a recording here: go on where the next one starts.
  if (clock.playing && !tiles.some((tile) => tile.hasRecording(w) || tile.seekingTo !== null || !tile.knows(w))) {
    const next = Math.min(...tiles.map((tile) => tile.nextRecording(w) ?? Infinity));
    if (next < Infinity) {
      seekAll(next);
      w = next;
    }
  }
  for (const tile of tiles) tile.follow(w, clock.playing, clock.rate, tile === leader);
  if (++ticks % EVICT_EVERY === 0) tiles.forEach((tile) => tile.evict());
  timeline.setPlayhead(w);
  renderTime();
}

// mainTile is the tile whose frame the time display shows: the first with a recording.
function mainTile(w) {
  return tiles.find((tile) => tile.hasRecording(w));
}

function renderTime() {
  const w = clock.now();
  const tile = mainTile(w);
  // The frame on screen, unless it is not (yet) the clock's: then the clock, greyed. Paused,
  // the frame holding the clock's time began less than a frame and a half before it.
  const near = clock.playing ? 1000 : 1.5 * (tile?.frameDuration(w) ?? 40);
  const settled = tile && tile.presented !== null && Math.abs(tile.presented - w) <= near;
  const shown = settled ? tile.presented : w;
  timeOut.textContent = `${new Date(w).toLocaleDateString(language())} ${stamp(shown)}`;
  timeOut.dataset.presented = String(shown);
  timeOut.classList.toggle("pb-no-frame", !settled);
  playButton.textContent = t(clock.playing ? "pause" : "play");
}

function setPlaying(playing) {
  const w = clock.now();
  // Paused, the clock stands on the frame the officer sees, so a step starts from it.
  const tile = mainTile(w);
  clock.set(!playing && tile?.presented != null ? tile.presented : w);
  clock.playing = playing;
  tick();
}

// step moves one frame (the segment's frame duration) while paused; +1 ms lands inside
// the frame rather than on the rounding of its edge.
function step(dir) {
  if (clock.playing) setPlaying(false);
  const w = clock.now();
  const tile = mainTile(w);
  if (!tile) return;
  const from = tile.presented ?? w;
  seekAll(from + dir * tile.frameDuration(from) + 1);
}

function setRate(rate) {
  clock.set(clock.now());
  clock.rate = rate;
  document.getElementById("speed").value = String(rate);
}

function renderTexts() {
  applyTexts();
  for (const tile of tiles) tile.render();
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === language()));
  }
  if (tiles.length) renderTime();
  timeline?.draw();
}

form.addEventListener("submit", submit);
cameraList.addEventListener("change", (e) => {
  // At most four tiles: a fifth box cannot be ticked.
  if (cameraList.querySelectorAll("input:checked").length > MAX_CAMERAS) e.target.checked = false;
});
playButton.addEventListener("click", () => setPlaying(!clock.playing));
document.getElementById("step-back").addEventListener("click", () => step(-1));
document.getElementById("step-forward").addEventListener("click", () => step(1));
document.getElementById("speed").addEventListener("change", (e) => setRate(Number(e.target.value)));
document.getElementById("zoom-in").addEventListener("click", () => timeline.zoom(0.5));
document.getElementById("zoom-out").addEventListener("click", () => timeline.zoom(2));
document.getElementById("whole-day").addEventListener("click", () => timeline.wholeDay());
document.addEventListener("keydown", (e) => {
  if (!tiles.length || e.target.closest("input, textarea, select")) return;
  if (e.key === " ") {
    e.preventDefault();
    setPlaying(!clock.playing);
  } else if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
    e.preventDefault();
    step(e.key === "ArrowLeft" ? -1 : 1);
  }
});
document.addEventListener("townwatch:language", renderTexts);
for (const button of document.querySelectorAll("[data-lang]")) {
  button.addEventListener("click", () => setLanguage(button.dataset.lang));
}

// window.townwatch is the page's test and support hook (the browser tests and the seek
// benchmark use it; handy in the devtools console). It does what the controls do.
//   state()  → {phase, playing, rate, clock, presented, tiles: [{id, state, presented}]}
//   seeks    measured seeks {target, presented, ms (seek → frame on screen), kind, camera}
//   traces() each tile's last seeks, step by step: [{id, traces: [{target, kind, at
//             (performance.now()), from, keyframe, steps: [[what, ms since at]]}]}] (see
//             PlaybackTile.traces)
//   seek(ms), play(), pause(), step(±1), setRate(r)
//   view(start, span)  shows that part of the timeline; viewRange() → {start, span};
//             kindAt(id, ms) what it shows there
//   previews  measured scrub previews {w, thumb (its capture time), ms (pointer event →
//             picture on screen)}; preview() → {shown, camera, thumb, tile, painted, range,
//             outstanding}
window.townwatch = {
  state: () => ({
    phase: document.body.dataset.phase,
    playing: clock.playing,
    rate: clock.rate,
    clock: clock.now(),
    presented: Number(timeOut.dataset.presented ?? NaN),
    tiles: tiles.map((tile) => ({ id: tile.id, state: tile.el.dataset.state, presented: tile.presented })),
  }),
  seeks,
  traces: () => tiles.map((tile) => ({ id: tile.id, traces: tile.traces.map(({ target, kind, at, from, keyframe, steps }) => ({ target, kind, at, from, keyframe, steps })) })),
  seek: (w) => seekAll(w),
  play: () => setPlaying(true),
  pause: () => setPlaying(false),
  step,
  setRate,
  view: (start, span) => timeline.setView(start, span),
  viewRange: () => timeline.view,
  kindAt: (id, w) => timeline.kindAt(id, w),
  previews: preview.measures,
  preview: () => ({
    shown: !preview.box.hidden,
    camera: preview.box.dataset.camera ?? null,
    thumb: Number(preview.box.dataset.thumb || NaN),
    tile: preview.pic.dataset.tile ?? "", // "column row" of the sprite tile drawn, "" none
    // whether the canvas holds a picture (any opaque pixel), not only a tile number
    painted: preview.picContext.getImageData(0, 0, preview.pic.width, preview.pic.height).data.some((v, i) => i % 4 === 3 && v > 0),
    range: preview.range,
    outstanding: preview.outstanding(), // sprites near the pointer or clock still to come
  }),
  language,
  setLanguage,
};

renderTexts();
await me();
const res = await api("api/cameras");
if (res.ok) cameras = await res.json();
fillForm();
document.body.dataset.ready = "1";
