// The day timeline: one row per camera on a canvas, showing what is recorded, the holes,
// segments found deleted, the motion level per bucket and events as marks, with the
// playhead. Zoom from the whole day down to one minute (wheel, buttons); a click or a drag
// scrubs; a sideways wheel pans. Hovering or dragging reports the time and camera under
// the pointer (onHover) for the scrub preview, and each change of view (onView) so that
// the previews of what is on screen load ahead.

import { timeText } from "./i18n.js";

const ROW = 26; // px per camera
const AXIS = 18; // px for the time labels
const MIN_SPAN = 60e3;
// Colours differ in brightness too (as the wall's states do): recorded is mid green, a
// hole is near black, deleted is red; motion is drawn in amber on top of recorded.
const COLORS = {
  gap: "#15181d",
  recorded: "#1f6b45",
  deleted: "#8c2629",
  motion: "#e0a030",
  event: "#ffd27a",
  playhead: "#f2f4f7",
  axis: "#8a94a3",
};
// Tick steps (ms) the axis chooses from: the first that leaves room for a label.
const STEPS = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 10800].map((s) => s * 1000);

export class Timeline {
  // day: {start, end} epoch ms; onSeek(w, final) is called while scrubbing and at its end.
  constructor(canvas, day, onSeek) {
    this.canvas = canvas;
    this.day = day;
    this.onSeek = onSeek;
    this.rows = []; // [{id, name, recorded, gaps, deleted, motion, bucket, events}]
    this.view = { start: day.start, span: day.end - day.start };
    this.playhead = day.start;
    this.onHover = null; // (w, camera id, x, event timeStamp), or (null) when the pointer leaves
    this.onView = null; // (start, span)
    this.#wire();
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  setRows(rows) {
    this.rows = rows;
    this.draw();
  }

  setPlayhead(w) {
    const moved = w !== this.playhead;
    this.playhead = w;
    // The view follows a moving playhead that runs off the visible part; a standing one
    // leaves the officer free to look at another part of the day.
    const { start, span } = this.view;
    if (moved && (w < start || w > start + span)) this.setView(w - span / 2, span);
    else this.draw();
  }

  // zoom scales the visible span by factor around wall time at (the playhead by default).
  zoom(factor, at = this.playhead) {
    const { start, span } = this.view;
    const next = Math.min(this.day.end - this.day.start, Math.max(MIN_SPAN, span * factor));
    this.setView(at - ((at - start) / span) * next, next);
  }

  wholeDay() {
    this.setView(this.day.start, this.day.end - this.day.start);
  }

  // setView shows span ms from start (kept inside the day).
  setView(start, span) {
    span = Math.min(this.day.end - this.day.start, Math.max(MIN_SPAN, span));
    start = Math.max(this.day.start, Math.min(start, this.day.end - span));
    this.view = { start, span };
    this.draw();
    this.onView?.(start, span);
  }

  // x is the canvas x (CSS px) of wall time w; timeAt its inverse.
  x(w) {
    return ((w - this.view.start) / this.view.span) * this.canvas.clientWidth;
  }

  timeAt(x) {
    return this.view.start + (x / this.canvas.clientWidth) * this.view.span;
  }

  // rowY is the middle of camera id's row (CSS px), or null.
  rowY(id) {
    const i = this.rows.findIndex((r) => r.id === id);
    return i < 0 ? null : AXIS + i * ROW + ROW / 2;
  }

  // rowAt is the camera whose row is at canvas y (CSS px); over the axis, the first.
  rowAt(y) {
    const i = Math.max(0, Math.min(this.rows.length - 1, Math.floor((y - AXIS) / ROW)));
    return this.rows[i]?.id ?? null;
  }

  #wire() {
    const c = this.canvas;
    let dragging = false;
    const at = (e) => Math.max(this.day.start, Math.min(this.day.end - 1, this.timeAt(e.offsetX)));
    const hover = (e) => this.onHover?.(at(e), this.rowAt(e.offsetY), e.offsetX, e.timeStamp);
    c.addEventListener("pointerdown", (e) => {
      dragging = true;
      c.setPointerCapture(e.pointerId);
      this.onSeek(at(e), false);
    });
    c.addEventListener("pointermove", (e) => {
      hover(e);
      if (dragging) this.onSeek(at(e), false);
    });
    c.addEventListener("pointerleave", () => this.onHover?.(null));
    c.addEventListener("pointerup", (e) => {
      if (!dragging) return;
      dragging = false;
      this.onSeek(at(e), true);
    });
    c.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        if (Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
          this.setView(this.view.start + (e.deltaX / c.clientWidth) * this.view.span, this.view.span);
        } else {
          this.zoom(e.deltaY > 0 ? 1.25 : 0.8, this.timeAt(e.offsetX));
        }
      },
      { passive: false },
    );
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const height = AXIS + Math.max(1, this.rows.length) * ROW;
    c.style.height = `${height}px`;
    c.width = Math.round(c.clientWidth * dpr);
    c.height = Math.round(height * dpr);
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, c.clientWidth, height);
    this.#axis(g, height);
    this.rows.forEach((row, i) => this.#row(g, row, AXIS + i * ROW + 2, ROW - 4));
    const px = Math.round(this.x(this.playhead)) + 0.5;
    g.fillStyle = COLORS.playhead;
    g.fillRect(px - 1, AXIS - 4, 2, height - AXIS + 4);
  }

  #axis(g, height) {
    const { start, span } = this.view;
    const width = this.canvas.clientWidth;
    const step = STEPS.find((s) => (s / span) * width >= 80) ?? STEPS.at(-1);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = COLORS.axis;
    g.strokeStyle = "#262c35";
    // Ticks fall on local clock times: offset from the day's local midnight.
    for (let w = this.day.start + Math.ceil((start - this.day.start) / step) * step; w <= start + span; w += step) {
      const x = Math.round(this.x(w)) + 0.5;
      g.beginPath();
      g.moveTo(x, AXIS - 4);
      g.lineTo(x, height);
      g.stroke();
      g.fillText(timeText(new Date(w), step < 60e3), x + 3, 12);
    }
  }

  #row(g, row, y, h) {
    const span = (list, color) => {
      g.fillStyle = color;
      for (const s of list) {
        const x0 = Math.max(0, this.x(s.start));
        const x1 = Math.min(this.canvas.clientWidth, this.x(s.end));
        if (x1 > x0) g.fillRect(x0, y, Math.max(1, x1 - x0), h);
      }
    };
    g.fillStyle = COLORS.gap;
    g.fillRect(0, y, this.canvas.clientWidth, h);
    span(row.recorded, COLORS.recorded);
    span(row.deleted, COLORS.deleted);
    // Motion: a bar from the row's bottom, as high as the bucket's highest event score.
    g.fillStyle = COLORS.motion;
    row.motion.forEach((level, b) => {
      if (level <= 0) return;
      const w0 = this.day.start + b * row.bucket;
      const x0 = this.x(w0);
      const x1 = this.x(w0 + row.bucket);
      if (x1 < 0 || x0 > this.canvas.clientWidth) return;
      const bar = Math.max(2, level * h * 0.6);
      g.fillRect(x0, y + h - bar, Math.max(1, x1 - x0), bar);
    });
    g.fillStyle = COLORS.event;
    for (const ev of row.events) {
      const x = this.x(ev.start);
      if (x < -4 || x > this.canvas.clientWidth + 4) continue;
      g.beginPath();
      g.moveTo(x - 4, y);
      g.lineTo(x + 4, y);
      g.lineTo(x, y + 6);
      g.fill();
    }
    g.fillStyle = COLORS.playhead;
    g.font = "11px system-ui, sans-serif";
    g.fillText(row.name, 4, y + h / 2 + 4);
  }

  // kindAt reads the pixel drawn for camera id at wall time w and names it by its colour
  // ("recorded", "gap", "deleted", or "other" for marks and text): what the officer sees.
  kindAt(id, w) {
    const y = this.rowY(id);
    if (y === null) return null;
    const dpr = window.devicePixelRatio || 1;
    // Just above the row's bottom edge: below the name and the event marks (a motion bar
    // there reads as "other").
    const [r, gr, b] = this.canvas.getContext("2d").getImageData(Math.floor(this.x(w) * dpr), Math.floor((y + ROW / 2 - 4) * dpr), 1, 1).data;
    const hex = `#${[r, gr, b].map((v) => v.toString(16).padStart(2, "0")).join("")}`;
    return Object.entries(COLORS).find(([, c]) => c === hex)?.[0] ?? "other";
  }
}
