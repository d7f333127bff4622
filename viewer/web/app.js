// The live wall: every camera in a grid sized to fit the screen, one tile enlarged on
// click, camera states polled from /api/cameras. Tiles own their WHEP sessions (tile.js);
// this module decides which tiles are on screen and wanted.

import { applyTexts, language, LANGUAGES, setLanguage, t, timeText } from "./i18n.js";
import { initEvents, renderEventsTexts } from "./events.js";
import { api, can, liveHinted, me, noteLive, POLL_HEADER } from "./session.js";
import { Tile } from "./tile.js";
import { prepare, unprepare } from "./whep.js";

// POLL_MS is how soon the wall notices a camera going down or coming back.
const POLL_MS = 3000;
// TILE_MIN_WIDTH (px): smaller pictures are not legible on a dispatch screen, so beyond
// this many cameras the wall scrolls (off-screen tiles pause) instead of shrinking.
const TILE_MIN_WIDTH = 240;
const ASPECT = 16 / 9;
const GAP = 4; // px, as --gap in style.css (between tiles and around the wall)

const wall = document.getElementById("wall");
const tiles = new Map(); // camera id → Tile, in /api/cameras order
let focused = null; // the enlarged tile
let loaded = false; // the camera list arrived at least once
let liveAllowed = true; // the account's roles include live view
let playbackAllowed = false; // ... and playback: tiles link to the player

const observer = new IntersectionObserver((entries) => {
  for (const entry of entries) tiles.get(entry.target.dataset.camera)?.setVisible(entry.isIntersecting);
});

// cameras asks for the camera list.
function cameras() {
  return api("api/cameras", { headers: POLL_HEADER });
}

// poll refreshes the camera list every POLL_MS; asked, if given, is the first request,
// already on its way.
async function poll(asked = null) {
  try {
    const res = await (asked ?? cameras());
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    update(await res.json());
    document.body.dataset.server = "up";
  } catch {
    // Tiles keep playing: media does not go through this request. Only the banner shows.
    document.body.dataset.server = "down";
  }
  setTimeout(poll, POLL_MS);
}

// update adds, refreshes and removes tiles to match the server's camera list.
function update(cameras) {
  loaded = true;
  const seen = new Set();
  const added = [];
  for (const camera of cameras) {
    seen.add(camera.id);
    const tile = tiles.get(camera.id);
    if (tile) {
      tile.setCamera(camera);
      continue;
    }
    const fresh = new Tile(camera, { onOpen: open, onClose: close, onState: renderHeader, playback: playbackAllowed });
    tiles.set(camera.id, fresh);
    wall.append(fresh.el);
    fresh.setActive(isActive(fresh));
    observer.observe(fresh.el);
    added.push(fresh);
  }
  for (const [id, tile] of tiles) {
    if (seen.has(id)) continue;
    if (tile === focused) unfocus();
    tile.stop();
    observer.unobserve(tile.el);
    tile.el.remove();
    tiles.delete(id);
  }
  document.body.dataset.cameras = String(tiles.size);
  renderHeader();
  layout();
  // New tiles on screen connect now: the observer's first report only comes with the next
  // rendered frame, tens of milliseconds later (more on a busy dispatch PC), and the
  // first picture would wait for it. The observer still pauses them when they scroll off.
  for (const tile of added) {
    if (onScreen(tile.el)) tile.setVisible(true);
  }
}

function onScreen(el) {
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.bottom > 0 && r.right > 0 && r.top < window.innerHeight && r.left < window.innerWidth;
}

function isActive(tile) {
  return document.visibilityState === "visible" && (!focused || focused === tile);
}

function refreshActive() {
  for (const tile of tiles.values()) tile.setActive(isActive(tile));
}

// open enlarges a tile (main stream); the browser's back button returns to the wall.
function open(tile) {
  if (focused) return;
  focused = tile;
  wall.classList.add("focus");
  history.pushState({ townwatch: tile.id }, "", `#${encodeURIComponent(tile.id)}`);
  tile.setEnlarged(true);
  refreshActive();
  tile.el.focus();
}

function close() {
  if (!focused) return;
  if (history.state?.townwatch) history.back(); // popstate unfocuses
  else unfocus();
}

function unfocus() {
  const tile = focused;
  if (!tile) return;
  focused = null;
  wall.classList.remove("focus");
  tile.setEnlarged(false);
  refreshActive();
  layout();
  tile.el.focus();
}

// layout picks the column count that makes tiles largest with every camera on screen.
function layout() {
  const n = Math.max(1, tiles.size);
  // The wall's padding is one gap on each side.
  const width = wall.clientWidth - 2 * GAP;
  const height = wall.clientHeight - 2 * GAP;
  let cols = 1;
  let tileWidth = 0;
  for (let c = 1; c <= n; c++) {
    const rows = Math.ceil(n / c);
    const w = Math.min((width - GAP * (c - 1)) / c, ((height - GAP * (rows - 1)) / rows) * ASPECT);
    if (w > tileWidth) [cols, tileWidth] = [c, w];
  }
  if (tileWidth < TILE_MIN_WIDTH) {
    cols = Math.max(1, Math.floor((width + GAP) / (TILE_MIN_WIDTH + GAP)));
    tileWidth = (width - GAP * (cols - 1)) / cols;
  }
  wall.style.setProperty("--cols", String(cols));
  wall.style.setProperty("--tile-width", `${Math.floor(tileWidth)}px`);
}

function renderHeader() {
  const live = [...tiles.values()].filter((tile) => tile.state === "live").length;
  document.getElementById("count").textContent = `${t("cameras", { n: tiles.size })} · ${t("liveCount", { n: live })}`;
  const empty = document.getElementById("empty");
  empty.hidden = tiles.size > 0;
  empty.textContent = t(!liveAllowed ? "noLive" : loaded ? "noCameras" : "loading");
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === language()));
  }
}

// tick shows the dispatcher's local time, redrawn on each full second.
function tick() {
  document.getElementById("clock").textContent = timeText(new Date(), true);
  setTimeout(tick, 1000 - (Date.now() % 1000));
}

function renderTexts() {
  applyTexts();
  for (const tile of tiles.values()) tile.render();
  renderHeader();
  renderEventsTexts();
}

document.addEventListener("townwatch:language", renderTexts);
document.addEventListener("visibilitychange", refreshActive);
// Closing or leaving the page frees the server's viewer slots at once.
window.addEventListener("pagehide", () => {
  tiles.forEach((tile) => tile.stop());
  unprepare();
});
window.addEventListener("pageshow", (e) => e.persisted && tiles.forEach((tile) => tile.reconcile()));
window.addEventListener("popstate", () => focused && !history.state?.townwatch && unfocus());
document.addEventListener("keydown", (e) => e.key === "Escape" && close());
new ResizeObserver(layout).observe(wall);
for (const button of document.querySelectorAll("[data-lang]")) {
  button.addEventListener("click", () => setLanguage(button.dataset.lang));
}

// window.townwatch is the page's test and support hook, used by the end-to-end tests and
// the first-frame benchmark and handy in the devtools console. It reads state or does
// what a click would; nothing else depends on it.
//   tiles()        → per tile {id, state, stream, enlarged, sessions, framesDecoded,
//                     videoWidth, videoHeight, firstFrameMs (WHEP POST → first frame),
//                     askToFrameMs (session start → first frame),
//                     connectMs (WHEP POST → peer connection connected)}
//   open(id), close(), reconnect(id), language(), setLanguage("cs"|"en"), LANGUAGES
window.townwatch = {
  tiles: () => Promise.all([...tiles.values()].map((tile) => tile.snapshot())),
  open: (id) => tiles.has(id) && open(tiles.get(id)),
  close,
  reconnect: (id) => tiles.get(id)?.reconnect(),
  language,
  setLanguage,
  LANGUAGES,
};

// The session check goes out first, and the camera list (which every picture waits for)
// with it only when this tab's last check allowed live view (a reload): for an account
// without live view the list is a refused request, which the access log would record on
// every page load, so otherwise the list waits for the check. Either way the list is used
// only once the check allows live view. Meanwhile the browser readies the first tile's
// peer connection (whep.js, prepare).
const whoAnswer = me();
const camerasEarly = liveHinted() ? cameras() : null;
camerasEarly?.catch(() => {
  // poll reports it, or the check refused live view and it is not used.
});
prepare();

// A reload of an enlarged view starts on the wall: the history entry it left is stale.
if (history.state?.townwatch) history.replaceState(null, "", location.pathname + location.search);
renderTexts();
tick();

// What the page shows follows the account's roles: the wall for those who may watch live,
// the events panel and the event search for those who may see events, a link to the
// access log for auditors and to the camera page for administrators.
const who = await whoAnswer;
document.body.dataset.user = who.name;
document.getElementById("audit-link").hidden = !can(who, "audit");
document.getElementById("admin-link").hidden = !can(who, "admin");
playbackAllowed = can(who, "playback");
liveAllowed = can(who, "live");
noteLive(liveAllowed);
// The camera list first, the events panel after: the pictures are what the page is for.
if (liveAllowed) poll(camerasEarly);
if (can(who, "events")) {
  document.getElementById("search-link").hidden = false;
  initEvents(
    () => [...tiles.values()].map((tile) => tile.camera),
    (id) => {
      if (focused && focused.id !== id) unfocus();
      if (tiles.has(id)) open(tiles.get(id));
    },
    playbackAllowed,
  );
} else {
  document.getElementById("events-toggle").hidden = true;
}
if (!liveAllowed) {
  unprepare();
  document.body.dataset.cameras = "0";
  renderHeader();
}
