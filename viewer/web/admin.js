// The administrator's camera page: the configured cameras with their live and recording
// state and stored bytes; adding one (ONVIF discovery or a typed URL → probe with a
// snapshot → id, name, recording → zones and masks drawn on the snapshot → save), editing,
// and removing. Everything goes through the camera configuration API, which validates the
// whole configuration before it writes anything: its problems are shown at their fields.
//
// Passwords are write-only: the API never returns one (a camera shows password_set), and
// an empty password field on edit sends no password, which the API reads as "unchanged".

import { applyTexts, setLanguage, t } from "./i18n.js";
import { PolygonEditor } from "./polygons.js";
import { api, me, POLL_HEADER } from "./session.js";

// POLL_MS is how soon the list shows a camera coming up or going down.
const POLL_MS = 3000;
const JSON_HEADERS = { "Content-Type": "application/json" };

const $ = (id) => document.getElementById(id);
const rows = $("rows");
const editor = $("editor");
const status = $("status");
const polygons = new PolygonEditor($("overlay"), $("polygons"), $("finish-polygon"));

let configured = []; // /api/config/cameras' cameras
let revision = ""; // ... and the revision they are of
let running = new Map(); // camera id → /api/admin/cameras entry
// editing is the camera being edited: {id, revision, doc}; null while adding, undefined
// while the editor is closed.
let editing;

async function poll() {
  try {
    await refresh();
  } catch (err) {
    status.textContent = String(err.message ?? err);
  }
  setTimeout(poll, POLL_MS);
}

async function refresh() {
  const [cfgRes, liveRes] = await Promise.all([
    api("api/config/cameras", { headers: POLL_HEADER }),
    api("api/admin/cameras", { headers: POLL_HEADER }),
  ]);
  if (!cfgRes.ok) throw new Error((await cfgRes.json()).error ?? `HTTP ${cfgRes.status}`);
  ({ cameras: configured, revision } = await cfgRes.json());
  running = new Map(liveRes.ok ? (await liveRes.json()).map((c) => [c.id, c]) : []);
  renderList();
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (cls) td.className = cls;
  return td;
}

function button(key, onClick, disabled = false) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = t(key);
  b.dataset.action = key;
  b.disabled = disabled;
  b.addEventListener("click", onClick);
  return b;
}

// bytesText is a byte count in binary units, as `df -h` and the configuration write them.
function bytesText(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) [n, i] = [n / 1024, i + 1];
  return `${new Intl.NumberFormat(document.documentElement.lang, { maximumFractionDigits: i ? 1 : 0 }).format(n)} ${units[i]}`;
}

function renderList() {
  rows.replaceChildren();
  for (const cam of configured) {
    const live = running.get(cam.id);
    const tr = document.createElement("tr");
    tr.dataset.camera = cam.id;
    tr.dataset.state = cam.disabled ? "disabled" : (live?.state ?? "not_running");
    const state = live ? [live.state, live.reason].filter(Boolean).join(" – ") : t(cam.disabled ? "disabledState" : "notRunning");
    const rec = live?.recording;
    const actions = document.createElement("td");
    if (cam.hand_written) {
      actions.textContent = t("handWritten");
    } else {
      actions.append(
        button("edit", () => openEditor(cam.id)),
        button(cam.disabled ? "enable" : "disable", () => setDisabled(cam, !cam.disabled)),
        button("remove", () => confirmRemove(cam)),
      );
    }
    tr.append(
      cell(cam.id),
      cell(cam.name),
      cell(state, "state"),
      cell(rec ? [rec.state, rec.reason].filter(Boolean).join(" – ") : "–", "recording"),
      cell(rec ? bytesText(rec.bytes_stored) : "–", "bytes"),
      actions,
    );
    rows.append(tr);
  }
}

// openEditor opens the form: empty for a new camera, or filled with camera id's
// configuration as of now (its revision goes with the save as If-Match).
async function openEditor(id) {
  clearProblems();
  editor.reset();
  $("probe-result").textContent = "";
  $("devices").replaceChildren();
  $("snapshot").removeAttribute("src");
  editing = null;
  $("cam-id").readOnly = false;
  if (id) {
    const res = await api(`api/config/cameras/${encodeURIComponent(id)}`);
    const doc = await res.json();
    if (!res.ok) {
      status.textContent = doc.error ?? `HTTP ${res.status}`;
      return;
    }
    editing = { id, revision: res.headers.get("ETag").replaceAll('"', ""), doc };
    fill(doc);
    $("cam-id").readOnly = true; // an id names the camera's footage: it cannot change
  } else {
    polygons.set();
  }
  $("editor-title").textContent = id ? t("editCamera", { id }) : t("addCamera");
  $("discovery").hidden = Boolean(id);
  editor.hidden = false;
  editor.scrollIntoView();
}

function fill(shown) {
  const doc = sendable(shown);
  $("cam-id").value = doc.id;
  $("cam-name").value = doc.name ?? "";
  for (const key of ["main", "sub"]) {
    const st = doc[key] ?? {};
    $(`${key}-url`).value = st.url ?? "";
    $(`${key}-username`).value = st.username ?? "";
    // Never filled: the password is write-only. Empty keeps the stored one.
    $(`${key}-password`).value = "";
    $(`${key}-password`).placeholder = shown[key]?.password_set ? t("passwordUnchanged") : "";
  }
  $("main-transport").value = doc.main?.transport ?? "tcp";
  $("record-mode").value = doc.record?.mode ?? "continuous";
  $("record-retention").value = doc.record?.retention ?? "";
  $("motion-enabled").checked = Boolean(doc.motion?.enabled);
  polygons.set(doc.motion?.zones ?? [], doc.motion?.masks ?? []);
}

// sendable is a camera as the API showed it, made fit to send back: without the keys
// the API adds (hand_written, password_set) and without the empty password_file and
// password_env it shows (the API refuses those keys, set or not). Its passwords stay as
// stored.
function sendable(doc) {
  const cam = structuredClone(doc);
  delete cam.hand_written;
  for (const st of [cam.main, cam.sub]) {
    if (!st) continue;
    st.url = unredacted(st);
    delete st.password_set;
    for (const key of ["password_file", "password_env"]) if (!st[key]) delete st[key];
  }
  return cam;
}

// unredacted is a stream's URL as the API shows it made fit to send back: when a password
// is kept the API writes the user name and a "***" password into the URL, and a URL sent
// to it must hold no password (the password is kept in its own file), so the marker goes.
function unredacted(st) {
  try {
    const u = new URL(st.url);
    if (u.password !== "***") return st.url;
    u.password = "";
    if (st.username) u.username = ""; // the API put the username key's value there
    return u.href;
  } catch {
    return st.url;
  }
}

// setDisabled stops (or starts again) a camera without changing anything else of it:
// a disabled camera keeps its configuration and its footage, and does not run.
async function setDisabled(cam, disabled) {
  const res = await api(`api/config/cameras/${encodeURIComponent(cam.id)}`, {
    method: "PUT",
    headers: { ...JSON_HEADERS, "If-Match": `"${revision}"` },
    body: JSON.stringify({ ...sendable(cam), disabled }),
  });
  const answer = await res.json();
  if (res.status === 412) status.textContent = t("changedElsewhere", { id: cam.id });
  else if (!res.ok) status.textContent = answer.error ?? (answer.problems ?? []).map((p) => `${p.path}: ${p.message}`).join("; ");
  else status.textContent = t(disabled ? "disabledDone" : "enabledDone", { id: cam.id });
  await refresh();
}

// stream builds main or sub from the form over what the camera had (stall timeout,
// certificate pin, ... stay as they were); null for a sub stream without a URL.
function stream(key, before = {}) {
  const url = $(`${key}-url`).value.trim();
  if (key === "sub" && !url) return null;
  const out = { ...before, url };
  const username = $(`${key}-username`).value.trim();
  if (username) out.username = username;
  else delete out.username;
  const password = $(`${key}-password`).value;
  if (password) out.password = password; // absent: the stored password stays
  if (key === "main") out.transport = $("main-transport").value;
  return out;
}

// body is the camera to send: the form over the configuration it was opened with, so
// keys the form does not show (motion tuning, quota, ...) are kept.
function body() {
  const before = sendable(editing?.doc ?? {});
  const cam = structuredClone(before);
  cam.id = $("cam-id").value.trim();
  cam.name = $("cam-name").value.trim() || undefined;
  cam.main = stream("main", before.main);
  const sub = stream("sub", before.sub);
  if (sub) cam.sub = sub;
  else delete cam.sub;
  cam.record = { ...before.record, mode: $("record-mode").value };
  const retention = $("record-retention").value.trim();
  if (retention) cam.record.retention = retention;
  cam.motion = { ...before.motion, enabled: $("motion-enabled").checked, ...polygons.motion() };
  return cam;
}

async function save(e) {
  e.preventDefault();
  clearProblems();
  const cam = body();
  const url = editing ? `api/config/cameras/${encodeURIComponent(editing.id)}` : "api/config/cameras";
  const headers = editing ? { ...JSON_HEADERS, "If-Match": `"${editing.revision}"` } : JSON_HEADERS;
  const res = await api(url, { method: editing ? "PUT" : "POST", headers, body: JSON.stringify(cam) });
  const answer = await res.json();
  if (res.status === 422) {
    showProblems(answer.problems);
    return;
  }
  if (res.status === 412) {
    // Someone else changed the configuration since the form was filled: show theirs.
    const id = editing.id;
    await Promise.all([openEditor(id), refresh()]);
    status.textContent = t("changedElsewhere", { id });
    return;
  }
  if (!res.ok) {
    status.textContent = answer.error ?? `HTTP ${res.status}`;
    return;
  }
  status.textContent = answer.apply_error ? t("savedNotApplied", { err: answer.apply_error }) : t("saved", { id: cam.id });
  closeEditor();
  await refresh();
}

function closeEditor() {
  editor.hidden = true;
  editing = undefined;
}

// fieldOf finds the form element a problem's path belongs to: the path without its
// cameras[...] prefix, or the nearest enclosing key that has a field
// (motion.zones[0].points[1] → the zone's list entry).
function fieldOf(path) {
  let p = path.replace(/^cameras\[[^\]]*\]\.?/, "");
  while (p) {
    const el = editor.querySelector(`[data-field="${CSS.escape(p)}"]`);
    if (el) return el;
    const enclosing = p.replace(/(\.[^.[\]]+|\[\d+\])$/, "");
    if (enclosing === p) break;
    p = enclosing;
  }
  return null;
}

function showProblems(problems = []) {
  const general = $("problems");
  for (const { path, message } of problems) {
    const field = fieldOf(path ?? "");
    const note = document.createElement(field ? "span" : "li");
    note.className = "problem";
    note.textContent = field ? message : [path, message].filter(Boolean).join(": ");
    if (!field) {
      general.append(note);
      continue;
    }
    note.dataset.problemFor = field.dataset.field;
    field.setAttribute("aria-invalid", "true");
    (field.closest("label, li") ?? field).append(note);
  }
  editor.querySelector("[aria-invalid=true]")?.focus();
}

function clearProblems() {
  for (const el of editor.querySelectorAll(".problem")) el.remove();
  for (const el of editor.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  status.textContent = "";
}

async function probe() {
  const out = $("probe-result");
  out.textContent = t("probing");
  const req = {
    url: $("main-url").value.trim(),
    username: $("main-username").value.trim(),
    password: $("main-password").value,
    transport: $("main-transport").value,
  };
  const res = await api("api/cameras/probe", { method: "POST", headers: JSON_HEADERS, body: JSON.stringify(req) });
  const r = await res.json();
  if (!res.ok) {
    out.textContent = r.error ?? `HTTP ${res.status}`;
    return;
  }
  if (!r.ok) {
    out.textContent = t("probeFailed", { failure: r.failure, reason: r.reason ?? "" });
    return;
  }
  const fps = r.fps ? `${Math.round(r.fps * 10) / 10} fps` : "";
  out.textContent = [r.codec, r.profile, `${r.width}×${r.height}`, fps, r.transport].filter(Boolean).join(" · ");
  if (r.snapshot_jpeg) $("snapshot").src = `data:image/jpeg;base64,${r.snapshot_jpeg}`;
  else if (r.snapshot_error) out.textContent += ` · ${r.snapshot_error}`;
}

async function discover() {
  const list = $("devices");
  const note = $("discover-status");
  list.replaceChildren();
  note.textContent = t("searching");
  const res = await api("api/onvif/discover");
  const ans = await res.json();
  if (!res.ok) {
    note.textContent = ans.error ?? `HTTP ${res.status}`;
    return;
  }
  note.textContent = t("devicesFound", { n: ans.devices.length, added: ans.already_added });
  for (const dev of ans.devices) {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = [dev.name, dev.hardware, dev.location, dev.host].filter(Boolean).join(" · ");
    li.append(label, button("useDevice", () => profiles(dev, li)));
    list.append(li);
  }
}

// profiles reads a discovered camera's media profiles with the credentials typed in the
// main stream's fields and offers its streams for main and sub, pre-selecting the
// suggested ones.
async function profiles(dev, li) {
  const req = { xaddr: dev.xaddr, username: $("main-username").value.trim(), password: $("main-password").value };
  const res = await api("api/onvif/profiles", { method: "POST", headers: JSON_HEADERS, body: JSON.stringify(req) });
  const ans = await res.json();
  li.querySelector(".profiles")?.remove();
  const box = document.createElement("div");
  box.className = "profiles";
  li.append(box);
  if (!res.ok || !ans.ok) {
    box.textContent = !res.ok ? (ans.error ?? `HTTP ${res.status}`) : t("probeFailed", { failure: ans.failure, reason: ans.reason ?? "" });
    return;
  }
  for (const key of ["main", "sub"]) {
    const label = document.createElement("label");
    const caption = document.createElement("span");
    caption.textContent = t(key === "main" ? "mainStream" : "subStream");
    const select = document.createElement("select");
    if (key === "sub") select.append(new Option("–", ""));
    for (const p of ans.profiles.filter((p) => p.supported && p.stream_uri)) {
      const text = `${p.name} · ${p.encoding} ${p.width}×${p.height}${p.fps ? ` ${p.fps} fps` : ""}`;
      select.append(new Option(text, p.stream_uri, false, p.token === ans[key]?.token));
    }
    const apply = () => {
      $(`${key}-url`).value = select.value;
      if (select.value) {
        $(`${key}-username`).value = req.username;
        if (key === "sub") $("sub-password").value = req.password;
      }
    };
    select.addEventListener("change", apply);
    apply();
    label.append(caption, select);
    box.append(label);
  }
  if (!$("cam-name").value && dev.name) $("cam-name").value = dev.name;
}

function confirmRemove(cam) {
  const dialog = $("confirm-remove");
  $("remove-text").textContent = t("removeQuestion", { id: cam.id, name: cam.name ?? cam.id });
  dialog.returnValue = "";
  dialog.onclose = async () => {
    if (dialog.returnValue !== "remove") return;
    // The revision of the list the administrator looked at: a change by someone else in
    // between makes this a 412, not a removal of something they did not see.
    const res = await api(`api/config/cameras/${encodeURIComponent(cam.id)}`, {
      method: "DELETE",
      headers: { "If-Match": `"${revision}"` },
    });
    const answer = await res.json();
    if (res.status === 412) status.textContent = t("changedElsewhere", { id: cam.id });
    else status.textContent = res.ok ? t("removed", { id: cam.id }) : (answer.error ?? `HTTP ${res.status}`);
    await refresh();
  };
  dialog.showModal();
}

$("add").addEventListener("click", () => openEditor(null));
$("cancel").addEventListener("click", closeEditor);
$("probe").addEventListener("click", probe);
$("discover").addEventListener("click", discover);
$("new-zone").addEventListener("click", () => polygons.start("zones"));
$("new-mask").addEventListener("click", () => polygons.start("masks"));
editor.addEventListener("submit", save);
// No <form method="dialog">: the pages' CSP has form-action 'none'.
$("remove-yes").addEventListener("click", () => $("confirm-remove").close("remove"));
$("remove-no").addEventListener("click", () => $("confirm-remove").close("cancel"));
// The drawing area takes the picture's shape, so the polygons' 0..1 are the picture's.
$("snapshot").addEventListener("load", (e) => {
  $("draw").style.aspectRatio = `${e.target.naturalWidth} / ${e.target.naturalHeight}`;
});
for (const b of document.querySelectorAll("[data-lang]")) b.addEventListener("click", () => setLanguage(b.dataset.lang));
document.addEventListener("townwatch:language", () => {
  applyTexts();
  renderList();
  polygons.render();
});
applyTexts();
await me();
poll();
