// containers.js — the Containers screen: for the chosen remote, its running
// containers' forwarded ports (local ↔ remote, state, open connections; a
// listening port opens in the browser via open_url) and its synced bind mounts
// (mode, state, files, files brought back, last sync, pending changes, progress
// of a first sync, conflicts kept side by side, errors).
// Re-read on berth://changed (the engine pushes every forward, connection and
// mount change); while the screen is visible, a slow local tick re-renders what
// was read so "last sync … ago" moves on, without asking the engine anything.

import * as api from "./api.js";
import { h, render, fmtBytes, fmtCount, fmtAgo, toast, busy } from "./dom.js";
import { store, subscribe, refreshRemotes } from "./store.js";

const $ = (id) => document.getElementById(id);
let selected = null;
let visible = false;
let timer = null;
let loading = false;
let again = false;
let shown = null; // the last answer rendered, for the tick
/** How often "… ago" texts move on; nothing is read from the engine for it. */
const AGO_TICK_MS = 10000;
// The mounts (by local path) whose conflict list the user opened: each refresh
// rebuilds the cards, and a list that snapped shut at each change would be unreadable.
const openConflicts = new Set();

export function init() {
  $("containers-remote").addEventListener("change", (e) => { selected = e.currentTarget.value; refresh(); });
  subscribe(() => { fillSelect(); if (visible) refresh(); });
}

export function show(name) {
  visible = true;
  if (name) selected = name;
  fillSelect();
  refresh();
  clearInterval(timer);
  timer = setInterval(() => {
    if (!document.hidden && shown && shown.name === selected) render($("containers-body"), view(shown.data));
  }, AGO_TICK_MS);
}

export function hide() {
  visible = false;
  clearInterval(timer);
}

function fillSelect() {
  const sel = $("containers-remote");
  const names = store.remotes.map((r) => r.name);
  if (!names.includes(selected)) {
    const firstConnected = store.remotes.find((r) => r.state === "connected");
    selected = firstConnected ? firstConnected.name : names[0] || null;
  }
  const want = store.remotes.map((r) => `${r.name}|${r.state}`).join(",");
  if (sel.dataset.built !== want) {
    sel.replaceChildren(...store.remotes.map((r) => h("option", { value: r.name },
      r.state === "connected" ? r.name : `${r.name} (${r.state})`)));
    sel.dataset.built = want;
  }
  sel.value = selected || "";
  sel.disabled = names.length === 0;
}

async function refresh() {
  const body = $("containers-body");
  const r = store.remotes.find((x) => x.name === selected);
  if (!r) {
    render(body, h("p", { class: "empty" }, "No remotes yet: add one on the Remotes screen."));
    return;
  }
  if (r.state !== "connected") {
    render(body, h("div", { class: "empty" },
      h("p", {}, r.state === "connecting" ? `Connecting to ${r.name}…` : `${r.name} is not connected.`),
      r.state === "error" && r.error ? h("p", { class: "error-line" }, r.error) : null,
      r.state === "connecting" ? null : h("button", {
        type: "button", id: "containers-connect", class: "primary", "data-focus-key": "connect",
        onclick: (e) => busy(e.currentTarget, () => api.connect(r.name)).catch((x) => toast(api.errorText(x), "error")).then(() => refreshRemotes()),
      }, `Connect ${r.name}`)));
    return;
  }
  if (loading) { again = true; return; }
  loading = true;
  let data;
  try {
    data = await api.containers(r.name);
  } catch (e) {
    render(body, h("p", { class: "error-line", role: "alert" }, api.errorText(e)));
    return;
  } finally {
    loading = false;
    if (again) { again = false; setTimeout(refresh, 0); }
  }
  if (!visible || selected !== r.name) return;
  shown = { name: r.name, data };
  render(body, view(data)); // focus is kept by render()
}

function view({ forwards = [], mounts = [] }) {
  const names = new Map(forwards.map((f) => [f.container, f.name]));
  const byContainer = new Map();
  for (const f of forwards) {
    if (!byContainer.has(f.container)) byContainer.set(f.container, []);
    byContainer.get(f.container).push(f);
  }
  return [
    h("h2", {}, "Forwarded ports"),
    forwards.length === 0
      ? h("p", { class: "empty small" }, "No forwarded ports. Run a container with -p, e.g. docker run -p 8080:80 nginx.")
      : h("table", { class: "table", id: "forwards" },
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Container"), h("th", { scope: "col" }, "Local ↔ remote"),
          h("th", { scope: "col" }, "State"), h("th", { scope: "col", class: "num" }, "Connections"))),
        h("tbody", {}, [...byContainer.values()].flatMap((fs) => fs.map((f, i) => forwardRow(f, i === 0, fs.length))))),
    h("h2", {}, "Synced mounts"),
    mounts.length === 0
      ? h("p", { class: "empty small" }, "No synced bind mounts. A container run with -v ./src:/app gets its files synced to the remote.")
      : h("div", { class: "cards" }, mounts.map((m) => mountCard(m, names))),
  ];
}

function localUrl(local) {
  const host = local.replace(/^(0\.0\.0\.0|127\.0\.0\.1):/, "localhost:");
  return `http://${host}`;
}

function forwardRow(f, first, span) {
  const ok = f.state === "listening";
  return h("tr", { "data-testid": "forward", "data-container": f.name || f.container, "data-local": f.local, "data-state": ok ? "listening" : "failed" },
    first ? h("td", { rowSpan: span, class: "container-name" }, h("strong", {}, f.name || f.container.slice(0, 12)),
      h("div", { class: "muted small" }, f.container.slice(0, 12))) : null,
    h("td", {},
      ok ? h("button", {
        type: "button", class: "link open-port", "data-focus-key": `open/${f.local}`, title: `Open ${localUrl(f.local)} in the browser`,
        onclick: () => api.openUrl(localUrl(f.local)).catch((e) => toast(api.errorText(e), "error")),
      }, f.local, " ↗") : h("code", {}, f.local),
      h("span", { class: "muted" }, " ↔ "), h("code", {}, f.remote)),
    h("td", {}, ok ? h("span", { class: "badge", "data-state": "connected" }, "listening")
      : h("span", { class: "error-line small" }, `failed: ${f.error || "unknown error"}`)),
    h("td", { class: "num" }, String(f.connections ?? 0), f.bytes ? h("div", { class: "muted small" }, fmtBytes(f.bytes)) : null));
}

const MOUNT_STATE = { "initial sync": "connecting", syncing: "connecting", watching: "connected", error: "error" };
const MOUNT_MODE = {
  "two-way": ["Two-way", "Changes flow both ways: what containers write on the remote comes back to this computer"],
  "one-way": ["One-way", "The remote mirrors this computer: what containers write there is overwritten, nothing comes back"],
};

// changes waiting in each direction: here for the remote, and on the remote for here
function pendingText(m) {
  const out = m.pending_changes || 0;
  const back = m.pending_remote_changes || 0;
  if (!out && !back) return "no pending changes";
  return h("strong", { "data-testid": "pending" },
    [out ? `${fmtCount(out, "change")} to send` : null, back ? `${fmtCount(back, "change")} to bring back` : null]
      .filter(Boolean).join(", "));
}

function mountCard(m, names) {
  const p = m.progress;
  const inFirst = m.state === "initial sync" && p && p.files_total > 0;
  const who = (m.containers || []).map((id) => names.get(id) || id.slice(0, 12)).join(", ");
  const mode = MOUNT_MODE[m.mode];
  // one-way never fetches: "0 brought back" there would only suggest it might
  const fetched = m.mode === "two-way" || m.fetched_files > 0;
  const conflicts = m.conflicts || [];
  return h("article", {
    class: "card mount", "data-testid": "mount", "data-local": m.local, "data-state": m.state,
    "data-mode": m.mode || null, "data-conflicts": conflicts.length,
  },
    h("div", { class: "card-head" },
      h("div", { class: "title wrap" }, h("code", { class: "path" }, m.local), h("span", { class: "muted" }, " → "), h("code", { class: "path" }, m.remote)),
      h("div", { class: "badges" },
        mode ? h("span", { class: "badge", "data-testid": "mount-mode", title: mode[1] }, mode[0]) : null,
        h("span", { class: "badge", "data-state": MOUNT_STATE[m.state] || "disconnected" }, m.state))),
    inFirst ? h("div", { class: "progress" },
      h("progress", { max: p.bytes_total || p.files_total, value: p.bytes_total ? p.bytes_done : p.files_done, "aria-label": "First sync" }),
      h("span", { class: "small" }, `${fmtCount(p.files_done, "file")} of ${p.files_total.toLocaleString("en-US")} · ${fmtBytes(p.bytes_done)} of ${fmtBytes(p.bytes_total)}${p.bytes_per_sec ? ` · ${fmtBytes(p.bytes_per_sec)}/s` : ""}`)) : null,
    h("p", { class: "detail small" },
      fmtCount(m.files || 0, "file"), " · ", fmtBytes(m.bytes),
      fetched ? [" · ", h("span", { "data-testid": "fetched-files" }, fmtCount(m.fetched_files || 0, "file"), " brought back from the remote")] : null,
      " · last sync ", fmtAgo(m.last_sync_unix),
      " · ", pendingText(m)),
    who ? h("p", { class: "detail small muted" }, "Used by ", who) : null,
    h("p", { class: "detail small muted", "data-testid": "exclusions" },
      (m.exclusions || []).length ? ["Excluded: ", ...m.exclusions.flatMap((x, i) => [i ? ", " : "", h("code", {}, x)])]
        : "Nothing excluded"),
    conflicts.length ? conflictList(m.local, conflicts) : null,
    m.error ? h("p", { class: "error-line", role: "alert" }, m.error) : null);
}

// The status keeps the newest 50 conflicts; at that many, older ones may have
// been dropped, so the count says it is the latest rather than the total.
const CONFLICTS_KEPT = 50;

function conflictList(local, conflicts) {
  const n = conflicts.length;
  const label = n >= CONFLICTS_KEPT ? `${n} latest conflicts` : fmtCount(n, "conflict");
  return h("details", {
    class: "conflicts", "data-testid": "conflicts", open: openConflicts.has(local),
    ontoggle: (e) => { if (e.currentTarget.open) openConflicts.add(local); else openConflicts.delete(local); },
  },
    h("summary", { "data-focus-key": `conflicts/${local}` }, h("span", { "aria-hidden": "true" }, "⚠ "), label, ": both versions kept"),
    h("p", { class: "small muted" },
      "Each path keeps one version, the other is kept beside it, here and on the remote: compare them, then delete the one you don't need."),
    // newest first: the status lists them newest last
    h("ul", { class: "conflict-list small" }, [...conflicts].reverse().map(conflictItem)));
}

function conflictItem(c) {
  // the winner's version is at the path; the other side's is kept_as
  const other = c.winner === "remote" ? "this computer's version" : "the remote version";
  const at = c.at_unix ? new Date(c.at_unix * 1000) : null;
  return h("li", { "data-testid": "conflict", "data-path": c.path },
    h("code", {}, c.path), ": both sides changed it; ", other, " is kept as ", h("code", {}, c.kept_as),
    at ? [" ", h("time", { class: "muted", datetime: at.toISOString(), title: at.toLocaleString() }, `(${fmtAgo(c.at_unix)})`)] : null);
}
