// The event search page (/search): motion events filtered by camera, time, zone and
// minimum score, newest first, a page at a time. A row opens the player 10 s before the
// event began (for accounts that may play back), by the same link as the wall's events.

import { applyTexts, dateTimeText, language, setLanguage, t } from "./i18n.js";
import { api, can, me } from "./session.js";
import { eventPlaybackURL } from "./links.js";

// PAGE events are shown at a time; one more is asked for to know whether older ones exist.
const PAGE = 50;

const rows = document.getElementById("rows");
const older = document.getElementById("older");
const status = document.getElementById("status");
const cameraSelect = document.getElementById("camera");
let cameras = []; // /api/cameras entries, for the names
let shown = []; // the events listed, for a redraw in another language
let before = null; // the last listed event's start: the next page starts before it
let playback = false; // the account may play back: rows link to the player

// query builds the API parameters from the form; datetime-local values are local time.
function query() {
  const q = new URLSearchParams({ limit: String(PAGE + 1) });
  for (const id of ["from", "to"]) {
    const v = document.getElementById(id).value;
    if (v) q.set(id, new Date(v).toISOString());
  }
  const zone = document.getElementById("zone").value.trim();
  if (zone) q.set("zone", zone);
  const min = document.getElementById("min-score").value;
  if (min) q.set("min_score", min);
  if (cameraSelect.value) q.set("camera", cameraSelect.value);
  return q;
}

// load lists the first page of a new search (reset) or the next older page.
async function load(reset) {
  const q = query();
  if (reset) {
    shown = [];
    before = null;
  }
  if (before) q.set("before", before);
  status.textContent = "";
  const res = await api(`api/events?${q}`);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    status.textContent = t("searchFailed", { msg: body.error ?? `HTTP ${res.status}` });
    if (reset) rows.replaceChildren();
    return;
  }
  const page = body.slice(0, PAGE);
  shown.push(...page);
  // The API's start is exact to the nanosecond; passed back as it came, the cursor
  // neither repeats nor skips the event it was read from.
  if (page.length) before = page.at(-1).start;
  older.hidden = body.length <= PAGE;
  render();
}

function render() {
  rows.replaceChildren(...shown.map(row));
  if (!shown.length) status.textContent = t("noEvents");
}

function cell(...content) {
  const td = document.createElement("td");
  td.append(...content);
  return td;
}

function row(e) {
  const tr = document.createElement("tr");
  tr.dataset.event = e.id;
  const img = document.createElement("img");
  if (e.snapshot_url) {
    img.loading = "lazy";
    img.alt = "";
    img.src = e.snapshot_url.replace(/^\//, "");
  }
  const name = cameras.find((c) => c.id === e.camera)?.name || e.camera;
  const score = e.score.toLocaleString(language(), { maximumFractionDigits: 2 });
  tr.append(
    cell(e.snapshot_url ? img : ""),
    cell(name),
    cell(dateTimeText(new Date(e.start))),
    cell(e.end ? dateTimeText(new Date(e.end)) : t("ongoing")),
    cell(score),
    cell(e.zones.join(", ")),
  );
  if (playback) {
    const link = document.createElement("a");
    link.className = "pb-link";
    link.href = eventPlaybackURL(e);
    link.textContent = t("playbackLink");
    tr.append(cell(link));
    tr.classList.add("opens");
    // The whole row is the target; the link itself is there for the keyboard and for
    // opening in another tab.
    tr.addEventListener("click", (ev) => ev.target !== link && link.click());
  }
  return tr;
}

function fillCameras() {
  const chosen = cameraSelect.value;
  cameraSelect.replaceChildren(new Option(t("allCameras"), ""), ...cameras.map((c) => new Option(c.name || c.id, c.id)));
  cameraSelect.value = chosen;
}

function renderTexts() {
  applyTexts();
  fillCameras();
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === language()));
  }
  if (shown.length) render();
}

document.getElementById("filters").addEventListener("submit", (e) => {
  e.preventDefault();
  load(true);
});
older.addEventListener("click", () => load(false));
for (const button of document.querySelectorAll("[data-lang]")) {
  button.addEventListener("click", () => setLanguage(button.dataset.lang));
}
document.addEventListener("townwatch:language", renderTexts);

const who = await me();
playback = can(who, "playback");
const res = await api("api/cameras");
if (res.ok) cameras = await res.json();
renderTexts();
await load(true);
document.body.dataset.ready = "1";
