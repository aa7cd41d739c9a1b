// remote-form.js — the add/edit remote dialog (#remote-dialog): name, host,
// port, user, authentication (keychain key, key file, ssh-agent), the remote's
// Docker endpoint (auto, unix socket, tcp for Docker Desktop on Windows), the
// local endpoint, mounts root, ignore patterns, sync mode. Save calls
// save_remote; "Test connection" tests what the form holds without saving.

import * as api from "./api.js";
import { h, openModal, setError, toast, busy } from "./dom.js";
import { store, refreshRemotes } from "./store.js";
import { openTest } from "./test-connection.js";

const dlg = () => document.getElementById("remote-dialog");
const form = () => document.getElementById("remote-form");
const field = (name) => form().elements.namedItem(name);

let original = null; // name of the remote being edited; null when adding

export function init() {
  const f = form();
  f.addEventListener("submit", onSubmit);
  f.addEventListener("change", (e) => {
    if (e.target.name === "auth" || e.target.name === "docker") showSubFields();
  });
  document.getElementById("cancel-remote").addEventListener("click", () => dlg().close());
  document.getElementById("test-connection").addEventListener("click", onTest);
}

/** Opens the dialog: view = RemoteView to edit, or null to add (optionally prefilled from draft). */
export async function openRemoteForm(view, draft = null) {
  original = view ? view.name : null;
  const r = view || draft || {};
  document.getElementById("remote-dialog-title").textContent = view ? `Edit ${view.name}` : "Add remote";
  setError(document.getElementById("remote-form-error"), null);
  form().reset();

  field("name").value = r.name || "";
  field("host").value = r.host || "";
  field("port").value = r.port || 22;
  field("user").value = r.user || "";
  field("jump").value = r.jump || "";
  const auth = r.auth || { kind: "keychain" };
  field("auth").value = auth.kind;
  field("key_path").value = auth.kind === "key-file" ? auth.path : "";
  const docker = r.docker || { kind: "auto" };
  field("docker").value = docker.kind;
  if (docker.kind === "unix") field("docker_path").value = docker.path;
  if (docker.kind === "tcp") field("docker_addr").value = docker.addr;
  field("listen").value = r.listen || nextListen();
  field("mounts_root").value = r.mounts_root || "";
  field("ignores").value = (r.ignores || []).join("\n");
  field("honour_gitignore").checked = r.honour_gitignore === true;
  field("remote_only").value = (r.remote_only || []).join("\n");
  field("forward_ports").checked = r.forward_ports !== false;
  field("sync").checked = r.sync !== false;
  // anything but one-way (a draft without the field) shows the default, two-way
  field("sync_mode").value = r.sync_mode === "one-way" ? "one-way" : "two-way";
  document.getElementById("rf-advanced").open = false;

  await fillKeys(auth.kind === "keychain" ? auth.key : null);
  showSubFields();
  openModal(dlg());
  field(view ? "host" : "name").focus();
}

/** A local TCP endpoint no other remote uses: 23750, 23751, … */
function nextListen() {
  const used = new Set(store.remotes.map((r) => r.listen));
  for (let p = 23750; p < 23850; p++) {
    const l = `tcp://127.0.0.1:${p}`;
    if (!used.has(l)) return l;
  }
  return "tcp://127.0.0.1:23750";
}

async function fillKeys(selected) {
  const select = field("key");
  let keys = [];
  try { keys = await api.listKeys(); } catch (e) { toast(api.errorText(e), "error"); }
  const ids = keys.map((k) => k.id);
  if (selected && !ids.includes(selected)) ids.push(selected); // keep a key that vanished visible
  select.replaceChildren(...ids.map((id) => h("option", { value: id, selected: id === selected },
    keys.some((k) => k.id === id) ? id : `${id} (not in the keychain)`)));
  document.getElementById("rf-no-keys").hidden = keys.length > 0;
}

function showSubFields() {
  const auth = field("auth").value;
  const docker = field("docker").value;
  for (const el of form().querySelectorAll("[data-when-auth]")) el.hidden = el.dataset.whenAuth !== auth;
  for (const el of form().querySelectorAll("[data-when-docker]")) el.hidden = el.dataset.whenDocker !== docker;
  field("key").required = auth === "keychain";
  field("key_path").required = auth === "key-file";
  field("docker_path").required = docker === "unix";
  field("docker_addr").required = docker === "tcp";
}

const lines = (text) => text.split("\n").map((s) => s.trim()).filter(Boolean);

/** The Remote the form describes (API.md shape). */
function readForm() {
  const auth = field("auth").value;
  const docker = field("docker").value;
  return {
    name: field("name").value.trim(),
    host: field("host").value.trim(),
    port: Number(field("port").value) || 22,
    user: field("user").value.trim(),
    jump: field("jump").value.trim() || null,
    auth: auth === "keychain" ? { kind: "keychain", key: field("key").value }
      : auth === "key-file" ? { kind: "key-file", path: field("key_path").value.trim() }
      : { kind: "agent" },
    docker: docker === "unix" ? { kind: "unix", path: field("docker_path").value.trim() }
      : docker === "tcp" ? { kind: "tcp", addr: field("docker_addr").value.trim() }
      : { kind: "auto" },
    listen: field("listen").value.trim(),
    mounts_root: field("mounts_root").value.trim() || null,
    ignores: lines(field("ignores").value),
    honour_gitignore: field("honour_gitignore").checked,
    remote_only: lines(field("remote_only").value),
    forward_ports: field("forward_ports").checked,
    sync: field("sync").checked,
    sync_mode: field("sync_mode").value,
  };
}

/** Native validation, opening the collapsed section when the invalid field is inside it. */
function validate(only) {
  const controls = only ? only.map(field) : [...form().elements];
  const bad = controls.find((c) => c.willValidate && !c.checkValidity());
  if (!bad) return true;
  const det = bad.closest("details");
  if (det) det.open = true;
  bad.reportValidity();
  bad.focus();
  return false;
}

async function onSubmit(e) {
  e.preventDefault();
  if (!validate()) return;
  const remote = readForm();
  const err = document.getElementById("remote-form-error");
  setError(err, null);
  try {
    await busy(document.getElementById("save-remote"), () => api.saveRemote(original, remote));
  } catch (x) {
    setError(err, api.errorText(x));
    err.scrollIntoView({ block: "nearest" });
    return;
  }
  dlg().close();
  toast(original ? `Saved ${remote.name}` : `Added ${remote.name}`);
  await refreshRemotes().catch((x) => toast(api.errorText(x), "error"));
}

function onTest() {
  if (!validate(["host", "port", "user", "jump", "key", "key_path", "docker_path", "docker_addr"])) return;
  openTest(readForm());
}
