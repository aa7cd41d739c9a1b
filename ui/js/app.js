// app.js — the entry module: loads the dev mock when asked (?mock, and only
// when there is no real window.__TAURI__), wires the screens, switches them
// from the left nav (and the URL hash), and keeps the shared remotes fresh
// from the berth://changed event.

import * as api from "./api.js";
import { toast } from "./dom.js";
import { setRemotes, refreshRemotes, refreshSettings } from "./store.js";
import * as remotes from "./remotes.js";
import * as remoteForm from "./remote-form.js";
import * as testConnection from "./test-connection.js";
import * as containers from "./containers.js";
import * as keys from "./keys.js";
import * as activity from "./activity.js";
import * as settings from "./settings.js";

const SCREENS = { remotes, containers, keys, activity, settings };
let current = null;

function navigate(name, arg) {
  if (!SCREENS[name]) name = "remotes";
  if (current && current !== name && SCREENS[current].hide) SCREENS[current].hide();
  for (const key of Object.keys(SCREENS)) {
    document.getElementById(`screen-${key}`).hidden = key !== name;
    const nav = document.getElementById(`nav-${key}`);
    if (key === name) nav.setAttribute("aria-current", "page");
    else nav.removeAttribute("aria-current");
  }
  current = name;
  if (location.hash !== `#${name}`) history.replaceState(null, "", `${location.pathname}${location.search}#${name}`);
  if (SCREENS[name].show) SCREENS[name].show(arg);
}

async function boot() {
  if (!window.__TAURI__) {
    if (new URLSearchParams(location.search).has("mock")) {
      await import("../dev/mock-tauri.js");
    } else {
      throw new Error("Berth's API is not available: open this window from the Berth app, or add ?mock to the URL to use the development mock.");
    }
  }
  remotes.init(navigate);
  remoteForm.init();
  testConnection.init();
  containers.init();
  keys.init();
  activity.init();
  settings.init();

  for (const btn of document.querySelectorAll(".nav [data-screen]")) {
    btn.addEventListener("click", () => navigate(btn.dataset.screen));
  }
  window.addEventListener("hashchange", () => navigate(location.hash.slice(1)));

  await api.onChanged((views) => setRemotes(views));
  try {
    await Promise.all([refreshSettings(), refreshRemotes()]);
  } catch (e) {
    toast(api.errorText(e), "error");
  }
  navigate(location.hash.slice(1) || "remotes");
  document.body.dataset.ready = "true";
}

boot();
