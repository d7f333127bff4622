// Who is logged in, and what to do when the session ends. Every page but the login page
// starts with me(); any request answered 401 (logged out elsewhere, expired, account
// disabled) sends the person to the login page, which brings them back afterwards.

import { applyTexts, roleName, t } from "./i18n.js";

// POLL_HEADER marks requests the page makes by itself, so they do not keep an unattended
// page's session alive (the server's idle expiry ignores them).
export const POLL_HEADER = { "X-Townwatch-Poll": "1" };

// LIVE_HINT (session storage, this tab only) remembers that the last session check of the
// wall allowed live view, so that a reload can ask for the camera list beside the session
// check instead of after it (app.js). Only a session check or a login (login.js, from its
// answer) that allowed live view sets it, and leaving for the login page or logging out
// forgets it: the next person at the same tab does not send a camera list request their
// account would be refused (and logged).
const LIVE_HINT = "townwatch.live";

// liveHinted reports whether this tab's last session check allowed live view.
export function liveHinted() {
  try {
    return sessionStorage.getItem(LIVE_HINT) === "1";
  } catch {
    return false; // storage disabled: ask in order
  }
}

// noteLive keeps (allowed) or forgets the hint.
export function noteLive(allowed) {
  try {
    if (allowed) sessionStorage.setItem(LIVE_HINT, "1");
    else sessionStorage.removeItem(LIVE_HINT);
  } catch {
    // Storage disabled: the next load asks in order.
  }
}

export function toLogin() {
  noteLive(false);
  const next = location.pathname + location.search;
  location.assign(`login?next=${encodeURIComponent(next)}`);
}

// api fetches a URL of the API; a 401 leaves for the login page (the returned promise
// then never settles, so callers do not flash an error on the way out).
export async function api(url, options = {}) {
  const res = await fetch(url, { cache: "no-store", ...options });
  if (res.status === 401) {
    toLogin();
    return new Promise(() => {});
  }
  return res;
}

// me returns {name, roles, cameras, actions} and shows the account in the header's
// #user element, with a working logout button (#logout).
export async function me() {
  const res = await api("api/me");
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  const who = await res.json();
  const render = () => {
    const el = document.getElementById("user");
    if (el) el.textContent = `${who.name} · ${who.roles.map(roleName).join(", ")}`;
  };
  render();
  document.addEventListener("townwatch:language", render);
  document.getElementById("logout")?.addEventListener("click", logout);
  applyTexts();
  return who;
}

export function can(who, action) {
  return who.actions.includes(action);
}

export async function logout() {
  noteLive(false);
  try {
    await fetch("api/logout", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
  } finally {
    location.assign("login");
  }
}

export { t };
