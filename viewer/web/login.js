// The login page: POST /api/login with the name and password as JSON, then back to the
// page that sent the person here (only a path on this server, never another site).

import { applyTexts, setLanguage, t } from "./i18n.js";
import { can, noteLive } from "./session.js";

const form = document.getElementById("login");
const error = document.getElementById("error");

// nextPath is where to go after logging in: ?next= when it is a local path, else the wall.
function nextPath() {
  const next = new URLSearchParams(location.search).get("next") ?? "";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  error.textContent = "";
  const body = JSON.stringify({
    username: document.getElementById("username").value.trim(),
    password: document.getElementById("password").value,
  });
  let res;
  try {
    res = await fetch("api/login", { method: "POST", headers: { "Content-Type": "application/json" }, body });
  } catch (err) {
    error.textContent = t("loginError", { msg: err.message });
    return;
  }
  if (res.ok) {
    // The answer is the account's session check (as /api/me): the wall this leads to may
    // ask for its camera list beside its own check, as on a reload, only if it allows
    // live view.
    const who = await res.json().catch(() => null);
    noteLive(who !== null && can(who, "live"));
    location.assign(nextPath());
    return;
  }
  document.getElementById("password").value = "";
  if (res.status === 401) error.textContent = t("loginFailed");
  else if (res.status === 429) error.textContent = t("loginThrottled", { s: res.headers.get("Retry-After") ?? "?" });
  else error.textContent = t("loginError", { msg: (await res.json().catch(() => ({}))).error ?? `HTTP ${res.status}` });
});

for (const button of document.querySelectorAll("[data-lang]")) {
  button.addEventListener("click", () => setLanguage(button.dataset.lang));
}
document.addEventListener("townwatch:language", () => applyTexts());
applyTexts();
document.getElementById("username").focus();
