// Scrub previews: while the pointer hovers over or drags along the timeline, a small
// picture of the camera under it at that moment. The server keeps a thumbnail every 10 s
// (every 2 s during motion events) per segment and serves each segment's as one JPEG
// sprite; this module reads the index of the range on screen, fetches and decodes the
// sprites it lacks ahead of time, and on each pointer move only picks the tile (a binary
// search) and copies it from the decoded sprite: no request, no decoding while scrubbing.
//
// The sprites are fetched nearest first: the one under the pointer (or, without one, at
// the shared clock), then outward, at most MAX_SPRITES at a time within the page's media
// request slots (mediaslots.js), behind the video. Which sprite a fetch is for is decided
// only when it gets a slot, so a pointer that moved far leaves nothing queued for where
// it was; sprites farther than NEAR from it wait until it comes near them.

import { MAX_SPRITES, SPRITE, acquire } from "./mediaslots.js";
import { api } from "./session.js";
import { timeText } from "./i18n.js";

// MAX_RANGE is the most one index request may span (the server's limit); a wider view
// loads the two hours around the pointer instead.
const MAX_RANGE = 6 * 3600e3;
const AROUND = 3600e3;
// NEAREST: the picture shown is the thumbnail nearest to the pointer's time, if it is at
// most this far (half the 10 s cadence and some slack); farther is a hole.
const NEAREST = 6e3;
// RELOAD_MS: a range reaching the live edge is read again this often, for the thumbnails
// of the segment being recorded.
const RELOAD_MS = 30e3;
// NEAR: sprites of segments farther than this from the pointer (or the clock) are not
// fetched: as much as hovering over the day view loads around the pointer.
const NEAR = AROUND;

export class ScrubPreview {
  // box is the preview element (a picture and a time label inside), shown just above the
  // element anchor() returns (the timeline); clock() is the shared clock's wall time, where
  // sprites are fetched from while no pointer hovers; onLost is called when the server
  // answers 428 (the playback session is gone).
  constructor(box, anchor, clock, onLost) {
    this.box = box;
    this.anchor = anchor;
    this.clock = clock;
    this.pic = box.querySelector(".pb-preview-pic"); // a canvas
    this.picContext = this.pic.getContext("2d");
    this.label = box.querySelector(".pb-preview-time");
    this.onLost = onLost;
    this.cameras = [];
    this.thumbs = new Map(); // camera → sorted [{t, segment (id), col, row, width, height}]
    this.segments = []; // the index's segments: [{camera, id, url, count, start, end}]
    this.sprites = new Map(); // segment id → {count (tiles fetched), bitmap (decoded, or null)}
    this.fetching = new Set(); // segment ids whose sprite is being fetched (each holds a slot)
    this.waitingSlots = 0; // fetches waiting for a media request slot
    this.stopper = new AbortController(); // stop() abandons the waiting fetches
    this.pointer = null; // {camera, w} while the pointer is over the timeline
    this.range = null; // {from, to, at}: what the index was read for, and when
    this.pending = null; // a hover waiting for its sprite
    this.measures = []; // {w, thumb, ms}: pointer event → matching picture on screen
    this.timer = null;
  }

  setCameras(ids) {
    this.cameras = ids;
  }

  // wantRange asks for the previews of [from, to): read (debounced) when not already
  // held. A range wider than MAX_RANGE is not read (the day view): hovering loads its
  // surroundings instead.
  wantRange(from, to) {
    if (to - from > MAX_RANGE) return;
    const r = this.range;
    const fresh = r && Date.now() - r.at < RELOAD_MS;
    if (r && from >= r.from && to <= r.to && (fresh || r.to < Date.now() - 60e3)) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(from, to), 150);
  }

  async load(from, to) {
    const cams = this.cameras;
    const q = new URLSearchParams({ from: new Date(from).toISOString(), to: new Date(to).toISOString() });
    const answers = await Promise.all(cams.map((id) => api(`api/cameras/${encodeURIComponent(id)}/thumbs?${q}`)));
    if (answers.some((res) => res.status === 428)) {
      this.onLost();
      return;
    }
    const segments = [];
    for (const [i, res] of answers.entries()) {
      if (!res.ok) continue;
      const body = await res.json();
      const list = [];
      for (const seg of body.segments) {
        segments.push({ camera: cams[i], id: seg.id, url: seg.sprite, count: seg.times.length, start: Date.parse(seg.start), end: Date.parse(seg.end) });
        seg.times.forEach((t, k) => {
          list.push({ t: Date.parse(t), segment: seg.id, col: k % seg.columns, row: Math.floor(k / seg.columns), width: seg.width, height: seg.height });
        });
      }
      list.sort((a, b) => a.t - b.t);
      this.thumbs.set(cams[i], list);
    }
    this.segments = segments;
    this.range = { from, to, at: Date.now() };
    this.fetchNear();
    if (this.pending) this.show(...this.pending);
  }

  // outstanding is how many sprites near the focus are still to come (missing or being
  // fetched): 0 once the pointer's (or the clock's) surroundings are all on hand.
  outstanding() {
    return this.#missing().count + this.fetching.size;
  }

  // fetchNear starts fetches (up to MAX_SPRITES, counting those waiting for a slot) while
  // sprites near the pointer or the clock are missing. The page calls it after a seek.
  fetchNear() {
    while (this.waitingSlots + this.fetching.size < MAX_SPRITES && this.#missing().count > this.waitingSlots) this.#fetchOne();
  }

  // #missing finds the sprites to fetch: those of the index's segments within NEAR of the
  // focus (the pointer, else the clock) that are not held with all their tiles and not
  // being fetched. It returns how many and the nearest (on the pointer's camera first).
  #missing() {
    const w = this.pointer?.w ?? this.clock();
    const camera = this.pointer?.camera;
    let best = null;
    let bestKey = Infinity;
    let count = 0;
    for (const seg of this.segments) {
      if ((this.sprites.get(seg.id)?.count ?? 0) >= seg.count || this.fetching.has(seg.id)) continue;
      const far = w < seg.start ? seg.start - w : w > seg.end ? w - seg.end : 0;
      if (far > NEAR) continue;
      count++;
      const key = 2 * far + (seg.camera === camera ? 0 : 1);
      if (key < bestKey) [best, bestKey] = [seg, key];
    }
    return { count, nearest: best };
  }

  // #fetchOne waits for a slot, then fetches and decodes the sprite nearest to the focus
  // of that moment, then looks for the next one.
  async #fetchOne() {
    const signal = this.stopper.signal;
    this.waitingSlots++;
    let release;
    try {
      release = await acquire(SPRITE, signal);
    } catch {
      return; // stopped
    } finally {
      this.waitingSlots--;
    }
    const seg = this.#missing().nearest;
    if (!seg) {
      release();
      return;
    }
    this.fetching.add(seg.id);
    try {
      await this.#sprite(seg, signal);
    } finally {
      this.fetching.delete(seg.id);
      release();
    }
    if (signal.aborted) return;
    const p = this.pending;
    if (p && this.pick(p[0], p[1])?.segment === seg.id) this.show(...p);
    this.fetchNear();
  }

  // #sprite fetches a segment's sprite (again when it has gained tiles: the URL names
  // their count, so the browser's cache is asked, and kept, per count) and decodes it, so
  // that showing a tile of it costs nothing. A sprite that cannot be had is not asked for
  // again until the segment gains tiles; the tiles already shown stay.
  async #sprite(seg, signal) {
    const held = this.sprites.get(seg.id);
    let bitmap = null;
    try {
      // The browser's cache, unlike the API's other answers: a closed segment's sprite
      // is kept under its URL, and the rest are revalidated by their ETags.
      const res = await api(seg.url, { cache: "default", signal });
      if (res.status === 428) this.onLost();
      if (res.ok) bitmap = await createImageBitmap(await res.blob()).catch(() => null);
    } catch {
      // Stopped, or the network failed: the preview shows the time alone there.
    }
    if (signal.aborted) {
      bitmap?.close();
      return;
    }
    if (bitmap) held?.bitmap?.close();
    this.sprites.set(seg.id, { count: seg.count, bitmap: bitmap ?? held?.bitmap ?? null });
  }

  // pick is the thumbnail of camera nearest to wall time w (the earlier one on a tie),
  // if one is within NEAREST; else null (a hole in the recording).
  pick(camera, w) {
    const list = this.thumbs.get(camera) ?? [];
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].t <= w) lo = mid + 1;
      else hi = mid;
    }
    const before = list[lo - 1];
    const after = list[lo];
    const best = !after || (before && w - before.t <= after.t - w) ? before : after;
    return best && Math.abs(best.t - w) <= NEAREST ? best : null;
  }

  // show previews camera at wall time w above canvas x; since is the pointer event's
  // timeStamp, for the measure of how long the picture took.
  show(camera, w, x, since) {
    this.pointer = { camera, w };
    const r = this.range;
    if (!r || w < r.from || w > r.to) this.wantRange(w - AROUND, w + AROUND);
    this.fetchNear();
    this.box.hidden = false;
    const a = this.anchor();
    this.box.style.left = `${Math.max(0, Math.min(a.clientWidth - this.box.offsetWidth, a.offsetLeft + x - this.box.offsetWidth / 2))}px`;
    this.box.style.top = `${a.offsetTop - this.box.offsetHeight - 6}px`;
    this.label.textContent = timeText(new Date(w), true);
    const th = this.pick(camera, w);
    const sprite = th && this.sprites.get(th.segment);
    if (!sprite?.bitmap) {
      this.picContext.clearRect(0, 0, this.pic.width, this.pic.height);
      this.pic.dataset.tile = "";
      this.box.dataset.thumb = "";
      this.pending = th || !this.range ? [camera, w, x, since] : null;
      return;
    }
    this.pending = null;
    if (this.pic.width !== th.width || this.pic.height !== th.height) {
      this.pic.width = th.width;
      this.pic.height = th.height;
    }
    this.picContext.drawImage(sprite.bitmap, th.col * th.width, th.row * th.height, th.width, th.height, 0, 0, th.width, th.height);
    this.pic.dataset.tile = `${th.col} ${th.row}`;
    this.box.dataset.thumb = String(th.t);
    this.box.dataset.camera = camera;
    requestAnimationFrame(() => this.measures.push({ w, thumb: th.t, ms: performance.now() - since }));
  }

  hide() {
    this.box.hidden = true;
    this.pending = null;
    this.pointer = null; // the clock is the focus again
  }

  stop() {
    clearTimeout(this.timer);
    this.stopper.abort();
    this.stopper = new AbortController();
    for (const s of this.sprites.values()) s.bitmap?.close();
    this.sprites.clear();
    this.thumbs.clear();
    this.segments = [];
    this.range = null;
    this.hide();
  }
}
