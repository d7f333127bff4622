// Scrub previews: while the pointer hovers over or drags along the timeline, a small
// picture of the camera under it at that moment. The server keeps a thumbnail every 10 s
// (every 2 s during motion events) per segment and serves each segment's as one JPEG
// sprite; this module reads the index of the range on screen, fetches and decodes the
// sprites it lacks ahead of time, and on each pointer move only picks the tile (a binary
// search) and moves the sprite inside a clipping box: no request, no decoding while
// scrubbing.

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

export class ScrubPreview {
  // box is the preview element (a picture and a time label inside), shown just above the
  // element anchor() returns (the timeline); onLost is called when the server answers 428
  // (the playback session is gone).
  constructor(box, anchor, onLost) {
    this.box = box;
    this.anchor = anchor;
    this.pic = box.querySelector(".pb-preview-pic"); // clips the sprite to one tile
    this.sprite = null; // the decoded sprite <img> in it
    this.label = box.querySelector(".pb-preview-time");
    this.onLost = onLost;
    this.cameras = [];
    this.thumbs = new Map(); // camera → sorted [{t, sprite, col, row, width, height}]
    this.sprites = new Map(); // sprite URL → {count, url (blob:), ready: Promise}
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
    const waits = [];
    for (const [i, res] of answers.entries()) {
      if (!res.ok) continue;
      const body = await res.json();
      const list = [];
      for (const seg of body.segments) {
        waits.push(this.#sprite(seg.sprite, seg.times.length));
        seg.times.forEach((t, k) => {
          list.push({ t: Date.parse(t), sprite: seg.sprite, col: k % seg.columns, row: Math.floor(k / seg.columns), width: seg.width, height: seg.height });
        });
      }
      list.sort((a, b) => a.t - b.t);
      this.thumbs.set(cams[i], list);
    }
    await Promise.all(waits);
    // Sprites of what is no longer loaded are let go: a day of one camera's would be
    // 1 440 of them.
    const used = new Set([...this.thumbs.values()].flat().map((th) => th.sprite));
    for (const [url, s] of this.sprites) {
      if (used.has(url)) continue;
      if (s.url) URL.revokeObjectURL(s.url);
      this.sprites.delete(url);
    }
    // Only now is the range held: every sprite of it is decoded.
    this.range = { from, to, at: Date.now() };
    if (this.pending) this.show(...this.pending);
  }

  // #sprite fetches a sprite once (again when it has gained tiles) and decodes it, so that
  // showing a tile of it costs nothing.
  #sprite(url, count) {
    const held = this.sprites.get(url);
    if (held && held.count >= count) return held.ready;
    const entry = { count, url: null, img: null, ready: null };
    entry.ready = (async () => {
      const res = await api(url);
      if (!res.ok) return;
      const blob = URL.createObjectURL(await res.blob());
      // The element decoded here is the one shown: a new one would load it again.
      const img = new Image();
      img.alt = "";
      img.src = blob;
      await img.decode().catch(() => {});
      if (held?.url) URL.revokeObjectURL(held.url);
      entry.url = blob;
      entry.img = img;
    })();
    this.sprites.set(url, entry);
    return entry.ready;
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
    const r = this.range;
    if (!r || w < r.from || w > r.to) this.wantRange(w - AROUND, w + AROUND);
    this.box.hidden = false;
    const a = this.anchor();
    this.box.style.left = `${Math.max(0, Math.min(a.clientWidth - this.box.offsetWidth, a.offsetLeft + x - this.box.offsetWidth / 2))}px`;
    this.box.style.top = `${a.offsetTop - this.box.offsetHeight - 6}px`;
    this.label.textContent = timeText(new Date(w), true);
    const th = this.pick(camera, w);
    const sprite = th && this.sprites.get(th.sprite);
    if (!sprite?.img) {
      this.sprite?.remove();
      this.sprite = null;
      this.box.dataset.thumb = "";
      this.pending = th || !this.range ? [camera, w, x, since] : null;
      return;
    }
    this.pending = null;
    this.pic.style.width = `${th.width}px`;
    this.pic.style.height = `${th.height}px`;
    if (this.sprite !== sprite.img) {
      this.pic.replaceChildren(sprite.img);
      this.sprite = sprite.img;
    }
    this.sprite.style.left = `${-th.col * th.width}px`;
    this.sprite.style.top = `${-th.row * th.height}px`;
    this.box.dataset.thumb = String(th.t);
    this.box.dataset.camera = camera;
    requestAnimationFrame(() => this.measures.push({ w, thumb: th.t, ms: performance.now() - since }));
  }

  hide() {
    this.box.hidden = true;
    this.pending = null;
  }

  stop() {
    clearTimeout(this.timer);
    for (const s of this.sprites.values()) if (s.url) URL.revokeObjectURL(s.url);
    this.sprites.clear();
    this.thumbs.clear();
    this.range = null;
    this.hide();
  }
}
