// keys.js — the Keys screen: the keys in the OS keychain (public key, copy
// buttons, the exact authorized_keys line, delete), generating an ed25519 key
// and importing an existing private key with its passphrase. After an import
// the private key's textarea is replaced by a fresh one, so the key's text
// (and its undo history) leaves the DOM.

import * as api from "./api.js";
import { h, openModal, render, setError, toast, copyText, confirmDialog, busy } from "./dom.js";

const $ = (id) => document.getElementById(id);
let justMade = null; // id of the key generated/imported last: its card is highlighted

export function init() {
  $("generate-key-form").addEventListener("submit", onGenerate);
  $("import-key-form").addEventListener("submit", onImport);
  $("show-generate-key").addEventListener("click", () => openForm("generate-key"));
  $("show-import-key").addEventListener("click", () => openForm("import-key"));
  for (const b of document.querySelectorAll("#generate-key-dialog .close-dialog, #import-key-dialog .close-dialog")) {
    b.addEventListener("click", () => b.closest("dialog").close());
  }
  // However the import dialog closes (imported, Cancel, Escape), the pasted key leaves the DOM.
  $("import-key-dialog").addEventListener("close", () => {
    const f = $("import-key-form");
    wipe(f.elements.namedItem("privateKey"));
    wipe(f.elements.namedItem("passphrase"));
  });
}

function openForm(which) {
  setError($(`${which}-error`), null);
  const f = $(`${which}-form`);
  if (which === "generate-key") f.elements.namedItem("id").value = freeId("berth");
  openModal($(`${which}-dialog`));
  f.elements.namedItem("id").focus();
}

let knownIds = [];
function freeId(base) {
  if (!knownIds.includes(base)) return base;
  for (let i = 2; ; i++) if (!knownIds.includes(`${base}-${i}`)) return `${base}-${i}`;
}

export function show() {
  refresh();
}

async function refresh() {
  let keys;
  try {
    keys = await api.listKeys();
  } catch (e) {
    render($("key-list"), h("p", { class: "error-line", role: "alert" }, api.errorText(e)));
    return;
  }
  knownIds = keys.map((k) => k.id);
  $("keys-empty").hidden = keys.length > 0;
  render($("key-list"), keys.map(keyCard));
}

function keyCard(k) {
  const fresh = k.id === justMade;
  return h("article", { class: "card key" + (fresh ? " fresh" : ""), "data-key": k.id, "aria-label": `Key ${k.id}` },
    h("div", { class: "card-head" },
      h("div", { class: "title" }, h("h2", {}, k.id), h("span", { class: "badge" }, k.algorithm)),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "delete-key", "data-focus-key": `${k.id}/del`, "aria-label": `Delete key ${k.id}`, onclick: () => remove(k.id) }, "Delete"))),
    h("p", { class: "detail muted small" }, k.fingerprint, k.comment ? ` · ${k.comment}` : ""),
    copyField(k, "public", "Public key", k.public_key, "copy-public", "public-key"),
    copyField(k, "authorized", "Line for ~/.ssh/authorized_keys on the remote", k.authorized_keys_line, "copy-authorized", "authorized-keys-line"),
    fresh ? h("p", { class: "hint small" }, "For example, on the remote: ",
      h("code", {}, `mkdir -p ~/.ssh && echo '${k.authorized_keys_line}' >> ~/.ssh/authorized_keys`)) : null);
}

function copyField(k, what, label, text, cls, testid) {
  const id = `key-${what}-${k.id}`;
  return h("div", { class: "copy-field" },
    h("label", { for: id, class: "small" }, label),
    h("div", { class: "copy-row" },
      h("input", { id, class: "copy-text", "data-testid": testid, readOnly: true, spellcheck: false, value: text,
        onfocus: (e) => e.currentTarget.select() }),
      h("button", { type: "button", class: cls, "data-focus-key": `${k.id}/${what}`, "aria-label": `Copy: ${label}`, onclick: () => copyText(text) }, "Copy")));
}

async function onGenerate(e) {
  e.preventDefault();
  const f = e.currentTarget;
  if (!f.reportValidity()) return;
  const id = f.elements.namedItem("id").value.trim();
  const comment = f.elements.namedItem("comment").value.trim();
  setError($("generate-key-error"), null);
  let k;
  try {
    k = await busy($("generate-key"), () => api.generateKey(id, comment));
    justMade = k.id;
    $("generate-key-dialog").close();
    toast(`Generated ${k.id}: add its authorized_keys line on the remote`);
  } catch (x) {
    setError($("generate-key-error"), api.errorText(x));
    return;
  }
  await refresh();
  focusCard(k.id);
}

function focusCard(id) {
  const card = document.querySelector(`[data-key="${CSS.escape(id)}"]`);
  if (!card) return;
  card.scrollIntoView({ block: "nearest" });
  card.querySelector(".copy-authorized").focus();
}

/** Replaces a form control by an empty copy: its value and undo history leave the DOM. */
function wipe(el) {
  const fresh = document.createElement(el.tagName);
  for (const a of el.attributes) fresh.setAttribute(a.name, a.value);
  el.value = "";
  el.replaceWith(fresh);
  return fresh;
}

async function onImport(e) {
  e.preventDefault();
  const f = e.currentTarget;
  if (!f.reportValidity()) return;
  const id = f.elements.namedItem("id").value.trim();
  const priv = f.elements.namedItem("privateKey");
  const pass = f.elements.namedItem("passphrase");
  setError($("import-key-error"), null);
  let k;
  try {
    k = await busy($("import-key"), () => api.importKey(id, priv.value, pass.value ? pass.value : null));
  } catch (x) {
    wipe(pass);
    setError($("import-key-error"), api.errorText(x));
    return;
  }
  f.elements.namedItem("id").value = "";
  justMade = k.id;
  $("import-key-dialog").close(); // its close handler wipes the key and passphrase
  toast(`Imported ${k.id} into the keychain`);
  await refresh();
  focusCard(k.id);
}

async function remove(id) {
  if (!(await confirmDialog(`Delete the key “${id}” from the keychain? Remotes using it can no longer authenticate with it.`, "Delete"))) return;
  try {
    await api.deleteKey(id);
    if (justMade === id) justMade = null;
    toast(`Deleted ${id}`);
  } catch (x) {
    toast(api.errorText(x), "error");
  }
  await refresh();
}
