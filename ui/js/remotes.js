// remotes.js — the Remotes screen: one card per remote with its state,
// connect/disconnect, test, edit, remove and the "Use as default Docker
// context" toggle (warning when DOCKER_HOST overrides contexts), plus the
// import of hosts from ~/.ssh/config.

import * as api from "./api.js";
import { h, openModal, render, setError, toast, confirmDialog, busy } from "./dom.js";
import { store, subscribe, refreshRemotes, refreshSettings, toRemote } from "./store.js";
import { openRemoteForm } from "./remote-form.js";
import { openTest } from "./test-connection.js";

const STATE_LABEL = { disconnected: "Disconnected", connecting: "Connecting…", connected: "Connected", error: "Error" };

let goTo = () => {};

export function init(navigate) {
  goTo = navigate;
  document.getElementById("add-remote").addEventListener("click", () => openRemoteForm(null));
  document.getElementById("import-ssh-config").addEventListener("click", (e) => openImport(e.currentTarget));
  document.getElementById("cancel-import").addEventListener("click", () => document.getElementById("import-dialog").close());
  document.getElementById("import-form").addEventListener("submit", (e) => {
    e.preventDefault();
    busy(document.getElementById("import-selected"), importSelected);
  });
  subscribe(renderList);
}

function dockerHostWarning() {
  const dh = store.settings && store.settings.docker_host;
  return dh ? `DOCKER_HOST is set (${dh}) in Berth's environment, and it overrides docker contexts: unset it in your shell profile for the default context to take effect.` : null;
}

function renderList() {
  const list = document.getElementById("remote-list");
  document.getElementById("remotes-empty").hidden = store.remotes.length > 0;
  render(list, store.remotes.map(card));
}

function card(r) {
  const n = r.name;
  const key = (what) => `${n}/${what}`;
  const connected = r.state === "connected";
  const live = connected || r.state === "connecting";
  const where = `${r.user}@${r.host}${r.port && r.port !== 22 ? ":" + r.port : ""}`;
  const details = [];
  if (connected) {
    details.push(h("p", { class: "detail" },
      "Docker ", h("strong", {}, r.docker_version || "?"), " via ", h("code", {}, r.endpoint || "?")));
    details.push(h("p", { class: "detail" }, "Local endpoint ", h("code", {}, r.listen)));
  }
  if (r.state === "error" && r.error) details.push(h("p", { class: "error-line", role: "alert" }, r.error));

  let toggle = null;
  if (connected) {
    const warn = dockerHostWarning();
    toggle = h("div", { class: "toggle-row" },
      h("label", { class: "check" },
        h("input", {
          type: "checkbox", class: "default-context", "data-focus-key": key("default"),
          checked: !!r.default_context, onchange: (e) => setDefault(r, e.currentTarget),
        }),
        "Use as default Docker context ", h("code", {}, `berth-${n}`)),
      warn && r.default_context ? h("p", { class: "note warn small" }, warn) : null,
      warn && !r.default_context ? h("p", { class: "hint small" }, `Note: DOCKER_HOST is set (${store.settings.docker_host}); it overrides contexts.`) : null);
  }

  return h("article", { class: "card remote", "data-remote": n, "data-state": r.state, "aria-label": `Remote ${n}` },
    h("div", { class: "card-head" },
      h("div", { class: "title" },
        h("h2", {}, n),
        h("span", { class: "badge state", "data-state": r.state }, STATE_LABEL[r.state] || r.state)),
      h("div", { class: "actions" },
        live
          ? h("button", { type: "button", class: "disconnect", "data-focus-key": key("conn"), onclick: (e) => run(e.currentTarget, () => api.disconnect(n)) }, "Disconnect")
          : h("button", { type: "button", class: "connect primary", "data-focus-key": key("conn"), onclick: (e) => run(e.currentTarget, () => api.connect(n)) }, "Connect"),
        h("button", { type: "button", class: "test", "data-focus-key": key("test"), onclick: () => openTest(toRemote(r)) }, "Test"),
        h("button", { type: "button", class: "edit", "data-focus-key": key("edit"), onclick: () => openRemoteForm(r) }, "Edit"),
        h("button", { type: "button", class: "remove", "data-focus-key": key("remove"), "aria-label": `Remove ${n}`, onclick: () => remove(n) }, "Remove"))),
    h("p", { class: "detail muted" }, where, " · ", authLabel(r.auth), " · ", dockerLabel(r.docker)),
    details,
    toggle,
    connected ? h("p", { class: "detail" },
      h("button", { type: "button", class: "link show-containers", "data-focus-key": key("containers"), onclick: () => goTo("containers", n) }, "Show containers →")) : null);
}

function authLabel(a) {
  if (!a) return "";
  if (a.kind === "keychain") return `key “${a.key}” (keychain)`;
  if (a.kind === "key-file") return `key file ${a.path}`;
  return "ssh-agent";
}

function dockerLabel(d) {
  if (!d || d.kind === "auto") return "Docker: automatic";
  if (d.kind === "unix") return `Docker: ${d.path}`;
  return `Docker: tcp ${d.addr}`;
}

async function run(button, work) {
  try {
    await busy(button, work);
  } catch (e) {
    toast(api.errorText(e), "error");
  }
  await refreshRemotes().catch((e) => toast(api.errorText(e), "error"));
}

async function setDefault(r, box) {
  const on = box.checked;
  try {
    await busy(box, () => api.setDefaultContext(on ? r.name : null));
    toast(on ? `Docker now uses the context berth-${r.name}` : "The previous Docker context is restored");
  } catch (e) {
    box.checked = !on;
    toast(api.errorText(e), "error");
  }
  await Promise.all([refreshRemotes(), refreshSettings()]).catch((e) => toast(api.errorText(e), "error"));
}

async function remove(name) {
  if (!(await confirmDialog(`Remove the remote “${name}”? It is disconnected first; its containers on the remote are left alone.`))) return;
  try {
    await api.removeRemote(name);
    toast(`Removed ${name}`);
  } catch (e) {
    toast(api.errorText(e), "error");
  }
  await refreshRemotes().catch((e) => toast(api.errorText(e), "error"));
}

// --- import from ~/.ssh/config ---------------------------------------------

let drafts = [];

async function openImport(button) {
  const dlg = document.getElementById("import-dialog");
  const list = document.getElementById("import-list");
  const err = document.getElementById("import-error");
  setError(err, null);
  try {
    drafts = await busy(button, () => api.importSshConfig());
  } catch (e) {
    toast(api.errorText(e), "error");
    return;
  }
  const existing = new Set(store.remotes.map((r) => r.name));
  list.replaceChildren(...drafts.map((d, i) => {
    const taken = existing.has(d.name);
    return h("li", { "data-import": d.name },
      h("label", { class: "check" },
        h("input", { type: "checkbox", class: "import-pick", value: String(i), disabled: taken, checked: false }),
        h("strong", {}, d.name), " ", h("span", { class: "muted" }, `${d.user}@${d.host}${d.port !== 22 ? ":" + d.port : ""}`),
        taken ? h("span", { class: "hint" }, " — already added") : null),
      h("button", { type: "button", class: "review-import link", disabled: taken, onclick: () => { dlg.close(); openRemoteForm(null, d); } }, "Review…"));
  }));
  if (drafts.length === 0) list.replaceChildren(h("li", { class: "empty" }, "No hosts found in ~/.ssh/config (wildcard entries are skipped)."));
  document.getElementById("import-selected").disabled = drafts.length === 0;
  openModal(dlg);
  const first = list.querySelector("input:not(:disabled)");
  if (first) first.focus();
}

async function importSelected() {
  const picks = [...document.querySelectorAll("#import-list .import-pick:checked")].map((b) => drafts[Number(b.value)]);
  const err = document.getElementById("import-error");
  if (picks.length === 0) { setError(err, "Pick at least one host."); return; }
  const failed = [];
  for (const d of picks) {
    try { await api.saveRemote(null, d); } catch (e) { failed.push(`${d.name}: ${api.errorText(e)}`); }
  }
  await refreshRemotes().catch(() => {});
  if (failed.length) { setError(err, failed.join("\n")); return; }
  document.getElementById("import-dialog").close();
  toast(`Added ${picks.length} remote${picks.length === 1 ? "" : "s"}`);
}
