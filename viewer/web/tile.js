// One camera on the wall: its picture (a WHEP session), its state badge and, when there
// is no picture, the reason in plain words. A tile holds a session only while it is worth
// the bandwidth: the camera streams, the tile is on screen and the page is shown.
//
// data-state on the tile element is what the tile shows (tests and CSS use it):
// connecting | live | offline | busy | paused | error.

import { WhepSession } from "./whep.js";
import { t, timeText } from "./i18n.js";
import { PLAYBACK_PREROLL_MS, playbackURL } from "./links.js";

// WATCH_MS is how often a session's decoder counters are read: often enough to notice a
// dead picture within seconds, rare enough to cost nothing with 32 tiles.
const WATCH_MS = 1000;
// STALL_MS: no newly decoded frame for this long means the session is dead even if the
// peer connection says otherwise (cameras send at least a few frames per second).
const STALL_MS = 5000;
// FIRST_FRAME_MS is the allowance for the first frame: the server sends its cached group
// of pictures at once, so this only bites when media cannot get through at all.
const FIRST_FRAME_MS = 10000;
// Reconnect backoff: quick for a blip, capped so a long outage costs one request per
// half minute per tile; jitter keeps a wall of tiles from retrying in lockstep.
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
// BUSY_RETRY_MS: a viewer slot frees only when someone closes a tile, so a refused tile
// asks rarely instead of adding load to a server that is already full.
const BUSY_RETRY_MS = 15000;

// Ingest states in which the camera's stream is down and the reason is worth showing.
const DOWN = { backoff: "stateBackoff", failed: "stateFailed", stopped: "stateStopped" };

export class Tile {
  // playback: the account may play recordings back; the tile then links to the player.
  constructor(camera, { onOpen, onClose, onState, playback = false }) {
    this.onState = onState;
    this.playback = playback;
    this.id = camera.id;
    this.camera = camera;
    this.visible = false; // on screen (IntersectionObserver)
    this.active = true; // page shown and not hidden behind another enlarged tile
    this.enlarged = false;
    this.session = null;
    this.sessions = 0; // sessions started, for the debug hook
    this.firstFrame = null; // {fromPost, fromAsk} in ms, of the current session
    this.retryTimer = 0;
    this.retryAt = 0;
    this.backoffMs = BACKOFF_MIN_MS;
    this.state = "connecting";
    this.detail = "";
    this.down = null; // {state, reason, since} of the stream's last outage, shown while offline
    this.el = this.#build(onOpen, onClose);
    this.render();
  }

  #build(onOpen, onClose) {
    const el = document.createElement("article");
    el.className = "tile";
    el.tabIndex = 0;
    el.dataset.camera = this.id;
    el.setAttribute("role", "button");
    el.innerHTML = `<video muted autoplay playsinline disablepictureinpicture></video>
      <div class="top"><span class="name"></span><span class="motion"></span><span class="badge"></span></div>
      <div class="msg"><strong class="msg-title"></strong><span class="msg-detail"></span><span class="msg-retry"></span></div>
      <div class="bottom"><span class="info"></span><a class="pb-link" hidden></a><button class="back" type="button"></button></div>`;
    this.video = el.querySelector("video");
    this.video.muted = true; // autoplay without a click needs a muted element
    el.addEventListener("click", () => (this.enlarged ? onClose() : onOpen(this)));
    el.addEventListener("keydown", (e) => {
      if ((e.key === "Enter" || e.key === " ") && e.target === el && !this.enlarged) {
        e.preventDefault();
        onOpen(this);
      }
    });
    const link = el.querySelector(".pb-link");
    link.hidden = !this.playback;
    // The link leads to what just happened: the player from PLAYBACK_PREROLL_MS ago,
    // worked out when clicked (not when the tile was drawn).
    link.addEventListener("click", (e) => {
      e.stopPropagation();
      link.href = playbackURL(this.id, Date.now() - PLAYBACK_PREROLL_MS);
    });
    el.querySelector(".back").addEventListener("click", (e) => {
      e.stopPropagation();
      onClose();
    });
    return el;
  }

  // setCamera takes a fresh /api/cameras entry.
  setCamera(camera) {
    this.camera = camera;
    this.reconcile();
    this.render(); // the motion mark and stream info change without a state change
  }

  setVisible(visible) {
    this.visible = visible;
    this.reconcile();
  }

  setActive(active) {
    this.active = active;
    this.reconcile();
  }

  // setEnlarged switches between the grid (sub stream) and the full view (main stream) at
  // once, without waiting out a pending retry.
  setEnlarged(enlarged) {
    this.enlarged = enlarged;
    this.el.classList.toggle("enlarged", enlarged);
    this.el.setAttribute("aria-expanded", String(enlarged));
    this.#cancelRetry();
    this.reconcile();
  }

  // reconnect drops the session and starts a new one (debug hook, benchmark).
  reconnect() {
    this.stop();
    this.#cancelRetry();
    this.reconcile();
  }

  // wantedStream: the main stream when enlarged; otherwise the sub stream (small, cheap)
  // unless only the main stream is up, since some picture beats none.
  wantedStream() {
    const sub = this.camera.sub;
    if (this.enlarged || !sub) return "main";
    return sub.state !== "streaming" && this.camera.state === "streaming" ? "main" : "sub";
  }

  status(stream) {
    return stream === "main" ? this.camera : this.camera.sub;
  }

  // reconcile brings the session in line with what the tile should show now.
  reconcile() {
    const stream = this.wantedStream();
    const status = this.status(stream);
    if (status.state in DOWN) {
      this.stop();
      this.#cancelRetry();
      this.backoffMs = BACKOFF_MIN_MS; // it is the camera, not the live view, that failed
      this.down = { state: status.state, reason: status.reason, since: status.since };
      this.show("offline");
      return;
    }
    if (!this.visible || !this.active) {
      this.stop();
      this.#cancelRetry();
      this.show("paused");
      return;
    }
    if (this.session?.streamName === stream) return;
    if (status.state !== "streaming") {
      // The camera is (re)connecting: nothing to play yet. A tile that was offline stays
      // offline with its reason until the stream is really back.
      this.stop();
      if (this.state !== "offline") this.show("connecting");
      return;
    }
    if (this.retryTimer) return;
    this.#connect(stream);
  }

  #connect(stream) {
    this.stop();
    this.#cancelRetry();
    const url = `api/cameras/${encodeURIComponent(this.id)}/whep?stream=${stream}`;
    const session = new WhepSession(url);
    session.streamName = stream;
    session.askedAt = performance.now();
    this.session = session;
    this.sessions++;
    this.firstFrame = null;
    this.video.srcObject = session.stream;
    this.video.play().catch(() => {
      // Autoplay of a muted video is allowed; a rejection here means the element was
      // emptied again by a newer session.
    });
    this.show("connecting");
    if ("requestVideoFrameCallback" in this.video) {
      this.video.requestVideoFrameCallback(() => this.#gotFrame(session));
    }
    session.pc.addEventListener("connectionstatechange", () => {
      const st = session.pc.connectionState;
      if (st === "connected") session.connectedAt ??= performance.now();
      if (st === "failed" || st === "disconnected") this.#fail(session, new Error(t("noVideo")));
    });
    this.#watch(session);
    session.start().catch((err) => this.#fail(session, err));
  }

  #gotFrame(session) {
    if (session !== this.session || this.firstFrame) return;
    const now = performance.now();
    this.firstFrame = { fromPost: now - session.postedAt, fromAsk: now - session.askedAt };
    this.backoffMs = BACKOFF_MIN_MS;
    this.show("live");
  }

  // #watch reads the decoder counters: a picture that stopped moving is a dead session.
  #watch(session) {
    let frames = 0;
    let progressAt = session.askedAt;
    session.timer = setInterval(async () => {
      const stats = await session.videoStats().catch(() => null);
      if (session !== this.session) return;
      const now = performance.now();
      session.stats = stats;
      if (stats && stats.framesDecoded > frames) {
        frames = stats.framesDecoded;
        progressAt = now;
        this.#gotFrame(session); // browsers without requestVideoFrameCallback
      } else if (now - progressAt > (frames ? STALL_MS : FIRST_FRAME_MS)) {
        this.#fail(session, new Error(t("noVideo")));
      }
    }, WATCH_MS);
  }

  #fail(session, err) {
    if (session !== this.session) return; // stopped or replaced meanwhile
    this.stop();
    let delay = this.backoffMs * (0.8 + 0.4 * Math.random());
    this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    const busy = err.status === 429;
    if (busy) delay = Math.max(delay, BUSY_RETRY_MS);
    delay = Math.max(delay, err.retryAfterMs ?? 0);
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = 0;
      this.reconcile();
    }, delay);
    if (busy) this.show("busy", t("busyHint"));
    else this.show("error", err.message);
  }

  #cancelRetry() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
  }

  // stop ends the session, if any, and frees the server's viewer slot.
  stop() {
    const session = this.session;
    if (!session) return;
    this.session = null;
    clearInterval(session.timer);
    session.close();
    this.video.srcObject = null;
  }

  show(state, detail = "") {
    const changed = state !== this.state;
    this.state = state;
    this.detail = detail;
    this.render();
    if (changed) this.onState();
  }

  // render writes the current state's texts; it runs again when the language changes.
  render() {
    const { el, camera } = this;
    const stream = this.session?.streamName ?? this.wantedStream();
    const status = this.status(stream);
    el.dataset.state = this.state;
    el.dataset.stream = stream;
    el.setAttribute("aria-label", t("open", { name: camera.name || camera.id }));
    el.querySelector(".name").textContent = camera.name || camera.id;
    el.querySelector(".back").textContent = `← ${t("back")}`;
    el.querySelector(".pb-link").textContent = t("playbackLink");
    el.querySelector(".pb-link").href = playbackURL(this.id, Date.now() - PLAYBACK_PREROLL_MS);

    const badge = { live: "live", connecting: "connecting", busy: "busy", paused: "paused", error: "noVideo" };
    const down = this.down;
    el.querySelector(".badge").textContent = t(this.state === "offline" ? DOWN[down.state] : badge[this.state]);
    // Motion is marked from the server's detector (polled with the camera list), so a
    // dispatcher's eye goes to the tile where something happens.
    el.dataset.motion = camera.motion?.active ? "active" : "";
    el.querySelector(".motion").textContent = camera.motion?.active ? t("motion") : "";

    let title = "";
    let detail = this.detail;
    if (this.state === "offline") {
      // The reason is the server's own words (English): exact enough to call a technician.
      title = t("offline");
      detail = [down.reason, down.since && t("since", { t: timeText(new Date(down.since)) })].filter(Boolean).join(" · ");
    } else if (this.state === "busy" || this.state === "error") {
      title = t(badge[this.state]);
    } else if (this.state === "connecting") {
      title = t("connecting");
    }
    el.querySelector(".msg-title").textContent = title;
    el.querySelector(".msg-detail").textContent = detail;
    const retry = this.retryTimer && (this.state === "busy" || this.state === "error");
    el.querySelector(".msg-retry").textContent = retry
      ? t("retryIn", { s: Math.max(1, Math.round((this.retryAt - Date.now()) / 1000)) })
      : "";

    const info = [t(stream === "main" ? "mainStream" : "subStream")];
    if (status.width) info.push(`${status.width}×${status.height}`);
    if (status.fps) info.push(`${Math.round(status.fps)} fps`);
    el.querySelector(".info").textContent = info.join(" · ");
  }

  // snapshot is this tile's entry in window.townwatch.tiles().
  async snapshot() {
    const stats = await this.session?.videoStats().catch(() => null);
    return {
      id: this.id,
      state: this.state,
      stream: this.session?.streamName ?? null,
      enlarged: this.enlarged,
      sessions: this.sessions,
      framesDecoded: stats?.framesDecoded ?? 0,
      videoWidth: this.video.videoWidth,
      videoHeight: this.video.videoHeight,
      firstFrameMs: this.firstFrame?.fromPost ?? null,
      askToFrameMs: this.firstFrame?.fromAsk ?? null,
      connectMs: this.session?.connectedAt ? this.session.connectedAt - this.session.postedAt : null,
    };
  }
}
