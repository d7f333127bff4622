// The events panel: the latest motion events (newest first) with their snapshots, for a
// dispatcher or officer who asks "what happened in front of the town hall just now".
// It reads /api/events only while open; a click on an event enlarges that camera live.

import { dateTimeText, t } from "./i18n.js";
import { api, POLL_HEADER } from "./session.js";
import { eventPlaybackURL } from "./links.js";

// REFRESH_MS: while the panel is open, new events appear within this long.
const REFRESH_MS = 10000;
// LIMIT is one screenful and a bit; older events are for a search, not a glance.
const LIMIT = 50;

const panel = document.getElementById("events");
const list = document.getElementById("events-list");
const filter = document.getElementById("events-camera");
const toggle = document.getElementById("events-toggle");
let timer = 0;
let cameras = () => [];
let openCamera = () => {};
let playbackLinks = false;

// initEvents wires the panel to the wall: cameraList returns the wall's /api/cameras
// entries, open(id) enlarges that camera; playback adds a link to the recording per event.
export function initEvents(cameraList, open, playback) {
  cameras = cameraList;
  openCamera = open;
  playbackLinks = playback;
  toggle.addEventListener("click", () => setOpen(panel.hidden));
  filter.addEventListener("change", refresh);
}

function setOpen(open) {
  panel.hidden = !open;
  toggle.setAttribute("aria-pressed", String(open));
  clearTimeout(timer);
  if (open) refresh();
}

// renderEventsTexts redraws the panel in the current language.
export function renderEventsTexts() {
  fillFilter();
  if (!panel.hidden) refresh();
}

function fillFilter() {
  const chosen = filter.value;
  filter.replaceChildren(new Option(t("allCameras"), ""));
  for (const c of cameras()) filter.append(new Option(c.name || c.id, c.id));
  filter.value = chosen;
}

async function refresh() {
  clearTimeout(timer);
  if (panel.hidden) return;
  if (filter.options.length !== cameras().length + 1) fillFilter();
  const query = new URLSearchParams({ limit: String(LIMIT) });
  if (filter.value) query.set("camera", filter.value);
  try {
    const res = await api(`api/events?${query}`, { headers: POLL_HEADER });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    render(await res.json());
  } catch {
    list.replaceChildren(message(t("eventsFailed")));
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function render(events) {
  if (events.length === 0) {
    list.replaceChildren(message(t("noEvents")));
    return;
  }
  const names = new Map(cameras().map((c) => [c.id, c.name || c.id]));
  list.replaceChildren(
    ...events.map((e) => {
      const li = document.createElement("li");
      li.className = "event";
      li.dataset.event = e.id;
      li.tabIndex = 0;
      if (e.snapshot_url) {
        const img = document.createElement("img");
        img.loading = "lazy";
        img.alt = "";
        img.src = e.snapshot_url.replace(/^\//, "");
        li.append(img);
      }
      const text = document.createElement("div");
      const start = new Date(e.start);
      const length = e.end ? `${Math.max(1, Math.round((new Date(e.end) - start) / 1000))} s` : t("ongoing");
      text.append(line("event-camera", names.get(e.camera) ?? e.camera), line("event-time", `${dateTimeText(start)} · ${length}`));
      if (e.zones.length > 0) text.append(line("event-zones", e.zones.join(", ")));
      if (playbackLinks) {
        const link = document.createElement("a");
        link.className = "pb-link";
        link.href = eventPlaybackURL(e);
        link.textContent = t("playbackLink");
        link.addEventListener("click", (ev) => ev.stopPropagation());
        text.append(link);
      }
      li.append(text);
      li.addEventListener("click", () => openCamera(e.camera));
      li.addEventListener("keydown", (ev) => ev.key === "Enter" && openCamera(e.camera));
      return li;
    }),
  );
}

function line(className, text) {
  const el = document.createElement("div");
  el.className = className;
  el.textContent = text;
  return el;
}

function message(text) {
  const li = document.createElement("li");
  li.className = "events-message";
  li.textContent = text;
  return li;
}
