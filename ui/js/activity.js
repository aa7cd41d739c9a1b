// activity.js — the Activity screen: the app's recent log lines (newest last)
// and its own CPU and memory use, read with `activity` every 2 s while the
// screen is shown and the window is visible.

import * as api from "./api.js";
import { fmtBytes, setError } from "./dom.js";

const $ = (id) => document.getElementById(id);
let timer = null;
let lastText = null;

export function init() {
  document.addEventListener("visibilitychange", () => { if (timer && !document.hidden) refresh(); });
}

export function show() {
  lastText = null;
  refresh();
  clearInterval(timer);
  timer = setInterval(() => { if (!document.hidden) refresh(); }, 2000);
}

export function hide() {
  clearInterval(timer);
  timer = null;
}

async function refresh() {
  let a;
  try {
    a = await api.activity();
  } catch (e) {
    setError($("activity-error"), api.errorText(e));
    return;
  }
  setError($("activity-error"), null);
  $("activity-cpu").textContent = `${Number(a.cpu_percent || 0).toFixed(1)} %`;
  $("activity-rss").textContent = fmtBytes(a.rss_bytes);
  const log = $("activity-log");
  const text = (a.logs || []).join("\n") || "No log lines yet.";
  if (text === lastText) return;
  lastText = text;
  // Follow the newest line unless the user scrolled up to read.
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  log.textContent = text;
  if (atBottom) log.scrollTop = log.scrollHeight;
}
