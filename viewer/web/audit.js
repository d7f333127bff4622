// The auditor's page: the access log filtered by time, user, camera and action, a page of
// rows at a time, a CSV export of the same query, and a check of the hash chain.

import { applyTexts, setLanguage, t, timeText } from "./i18n.js";
import { api, me } from "./session.js";

const rows = document.getElementById("rows");
const more = document.getElementById("more");
const status = document.getElementById("status");
let after = null; // the last row id shown, for the next page

// query builds the API parameters from the form; datetime-local values are local time.
function query() {
  const q = new URLSearchParams();
  for (const [id, param] of [["from", "from"], ["to", "to"]]) {
    const v = document.getElementById(id).value;
    if (v) q.set(param, new Date(v).toISOString());
  }
  for (const [id, param] of [["actor", "user"], ["camera", "camera"], ["action", "action"]]) {
    const v = document.getElementById(id).value.trim();
    if (v) q.set(param, v);
  }
  return q;
}

async function load(reset) {
  const q = query();
  document.getElementById("csv").href = `api/audit?${q}&format=csv`;
  if (reset) {
    rows.replaceChildren();
    after = null;
  }
  if (after !== null) q.set("after", String(after));
  status.textContent = "";
  const res = await api(`api/audit?${q}`);
  const body = await res.json();
  if (!res.ok) {
    status.textContent = body.error ?? `HTTP ${res.status}`;
    return;
  }
  for (const e of body.entries) rows.append(row(e));
  if (!rows.children.length) status.textContent = t("noRows");
  after = body.next_after;
  more.hidden = after === null;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (cls) td.className = cls;
  return td;
}

function row(e) {
  const tr = document.createElement("tr");
  tr.dataset.outcome = e.outcome;
  const when = new Date(e.time);
  const details = { ...e.details };
  for (const k of ["reason", "case", "recipient", "from", "to"]) if (e[k]) details[k] = e[k];
  tr.append(
    cell(String(e.id)),
    cell(`${when.toLocaleDateString()} ${timeText(when, true)}`),
    cell(`${e.actor}${e.roles.length ? ` (${e.roles.join(", ")})` : ""}`),
    cell(e.action),
    cell(e.camera),
    cell(e.client),
    cell(e.outcome),
    cell(JSON.stringify(details), "details"),
  );
  return tr;
}

document.getElementById("filters").addEventListener("submit", (e) => {
  e.preventDefault();
  load(true);
});
more.addEventListener("click", () => load(false));
document.getElementById("verify").addEventListener("click", async () => {
  const res = await api("api/audit/verify");
  const v = await res.json();
  if (!res.ok) status.textContent = v.error ?? `HTTP ${res.status}`;
  else if (v.ok) status.textContent = t("verifyOK", { n: v.rows, head: String(v.head).slice(0, 16) });
  else status.textContent = t("verifyBad", { id: v.first_bad.id, reason: v.first_bad.reason });
  document.body.dataset.verified = String(v.ok);
});
for (const button of document.querySelectorAll("[data-lang]")) {
  button.addEventListener("click", () => setLanguage(button.dataset.lang));
}
document.addEventListener("townwatch:language", () => applyTexts());
applyTexts();
await me();
load(true);
