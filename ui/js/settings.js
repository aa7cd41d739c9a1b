// settings.js — the Settings screen: start at login, and the Docker context
// Berth manages (which remote is the default, restore the previous context,
// and a warning when DOCKER_HOST is set, since it overrides contexts).

import * as api from "./api.js";
import { setError, toast, busy } from "./dom.js";
import { store, subscribe, refreshSettings, refreshRemotes } from "./store.js";

const $ = (id) => document.getElementById(id);

export function init() {
  $("start-at-login").addEventListener("change", onStartAtLogin);
  $("restore-context").addEventListener("click", (e) => busy(e.currentTarget, restore));
  subscribe(renderSettings);
}

export function show() {
  refreshSettings().catch((e) => setError($("settings-error"), api.errorText(e)));
}

function renderSettings() {
  const s = store.settings;
  if (!s) return;
  const box = $("start-at-login");
  if (!box.matches(":disabled")) box.checked = !!s.start_at_login;
  const ctx = $("settings-context");
  ctx.replaceChildren();
  if (s.default_context) {
    ctx.append("Docker's current context is ");
    const c = document.createElement("code");
    c.textContent = `berth-${s.default_context}`;
    ctx.append(c, ` (the remote ${s.default_context}), set by Berth. The context that was current before is restored when you turn this off.`);
  } else {
    ctx.textContent = "Berth does not manage your current Docker context. Turn on “Use as default Docker context” on a connected remote to make the docker CLI use it without DOCKER_HOST.";
  }
  $("restore-context").hidden = !s.default_context;
  const dh = $("settings-docker-host");
  dh.textContent = s.docker_host ? `DOCKER_HOST is set (${s.docker_host}): it overrides any docker context, including Berth's. Unset it in your shell profile, or point it at the remote's local endpoint.` : "";
  dh.hidden = !s.docker_host;
}

async function onStartAtLogin(e) {
  const box = e.currentTarget;
  const on = box.checked;
  setError($("settings-error"), null);
  try {
    await busy(box, () => api.setStartAtLogin(on));
    toast(on ? "Berth will start when you log in" : "Berth will not start at login");
  } catch (x) {
    box.checked = !on;
    setError($("settings-error"), api.errorText(x));
  }
  await refreshSettings().catch(() => {});
}

async function restore() {
  try {
    await api.setDefaultContext(null);
    toast("The previous Docker context is restored");
  } catch (x) {
    toast(api.errorText(x), "error");
  }
  await Promise.all([refreshSettings(), refreshRemotes()]).catch(() => {});
}
