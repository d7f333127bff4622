// Zones and masks drawn on a camera's snapshot: polygons in coordinates normalised to
// 0..1 (origin top left), as the configuration keeps them, so they fit any resolution.
// The SVG over the picture has the viewBox 0 0 1 1 and is stretched to the picture, so a
// click's position in the element's box is the normalised point as it is.

import { t } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";

export class PolygonEditor {
  // overlay: the <svg>; list: the <ol> naming the polygons; finish: the button that
  // closes the polygon being drawn.
  constructor(overlay, list, finish) {
    this.overlay = overlay;
    this.list = list;
    this.finishButton = finish;
    this.polygons = []; // {kind: "zones"|"masks", name, points: [[x, y], ...]}
    this.drawing = null; // the polygon being drawn, also in polygons
    overlay.addEventListener("click", (e) => this.click(e));
    finish.addEventListener("click", () => this.finish());
  }

  // set replaces the polygons with a camera's motion.zones and motion.masks.
  set(zones = [], masks = []) {
    this.polygons = [
      ...zones.map((z) => ({ kind: "zones", name: z.name ?? "", points: z.points })),
      ...masks.map((m) => ({ kind: "masks", name: m.name ?? "", points: m.points })),
    ];
    this.drawing = null;
    this.render();
  }

  // start begins a new zone or mask, named after how many of its kind there are.
  start(kind) {
    if (this.drawing) this.finish();
    const n = this.polygons.filter((p) => p.kind === kind).length + 1;
    this.drawing = { kind, name: `${kind === "zones" ? t("zoneWord") : t("maskWord")}${n}`, points: [] };
    this.polygons.push(this.drawing);
    this.render();
  }

  click(e) {
    if (!this.drawing) return;
    const box = this.overlay.getBoundingClientRect();
    const round = (v) => Math.round(Math.min(1, Math.max(0, v)) * 1000) / 1000;
    this.drawing.points.push([round((e.clientX - box.left) / box.width), round((e.clientY - box.top) / box.height)]);
    this.render();
  }

  // finish closes the polygon being drawn; one with fewer than 3 points is dropped, as
  // the configuration would refuse it.
  finish() {
    const p = this.drawing;
    this.drawing = null;
    if (p && p.points.length < 3) this.polygons.splice(this.polygons.indexOf(p), 1);
    this.render();
  }

  // motion returns {zones, masks} for the camera's motion section, and the index of each
  // polygon there (problems name motion.zones[i]).
  motion() {
    if (this.drawing) this.finish();
    const out = { zones: [], masks: [] };
    for (const p of this.polygons) {
      p.index = out[p.kind].length;
      const entry = { points: p.points };
      if (p.name || p.kind === "zones") entry.name = p.name;
      out[p.kind].push(entry);
    }
    return out;
  }

  render() {
    this.finishButton.disabled = !this.drawing;
    this.overlay.replaceChildren();
    this.list.replaceChildren();
    this.overlay.classList.toggle("drawing", Boolean(this.drawing));
    const counts = { zones: 0, masks: 0 };
    for (const p of this.polygons) {
      const index = counts[p.kind]++;
      const shape = document.createElementNS(SVG, p === this.drawing ? "polyline" : "polygon");
      shape.setAttribute("points", p.points.map((pt) => pt.join(",")).join(" "));
      shape.setAttribute("class", p.kind);
      this.overlay.append(shape);
      for (const [x, y] of p === this.drawing ? p.points : []) {
        const dot = document.createElementNS(SVG, "circle");
        dot.setAttribute("cx", x);
        dot.setAttribute("cy", y);
        dot.setAttribute("r", "0.008");
        dot.setAttribute("class", p.kind);
        this.overlay.append(dot);
      }
      const li = document.createElement("li");
      li.dataset.field = `motion.${p.kind}[${index}]`;
      li.dataset.kind = p.kind;
      const name = document.createElement("input");
      name.value = p.name;
      name.setAttribute("aria-label", t(p.kind === "zones" ? "zoneName" : "maskName"));
      name.addEventListener("input", () => (p.name = name.value.trim()));
      const what = document.createElement("span");
      what.textContent = `${t(p.kind === "zones" ? "zoneWord" : "maskWord")} · ${t("pointsCount", { n: p.points.length })}`;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = t("delete");
      remove.addEventListener("click", () => {
        if (p === this.drawing) this.drawing = null;
        this.polygons.splice(this.polygons.indexOf(p), 1);
        this.render();
      });
      li.append(name, what, remove);
      this.list.append(li);
    }
  }
}
