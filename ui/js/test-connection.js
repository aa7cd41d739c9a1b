// test-connection.js — the connection test dialog (#test-dialog): runs
// test_connection and shows each step (TCP, host key, authentication, Docker,
// endpoint, SFTP) green, failed with its one-line cause and fix, or not
// checked. An unknown host key shows its SHA256 fingerprint and offers
// trust_host_key, then tests again; a changed host key is refused. Trust is
// never the focused or default button.

import * as api from "./api.js";
import { h, openModal, setError, busy } from "./dom.js";

const STEPS = [
  ["tcp", "TCP reachable"],
  ["host_key", "Host key"],
  ["auth", "Authentication"],
  ["docker", "Docker reachable"],
  ["endpoint", "Docker endpoint"],
  ["sftp", "SFTP available"],
];

let current = null; // the Remote under test
let pendingFingerprint = null;
let runId = 0;

const $ = (id) => document.getElementById(id);

export function init() {
  $("close-test").addEventListener("click", () => $("test-dialog").close());
  $("rerun-test").addEventListener("click", () => run());
  $("trust-host-key").addEventListener("click", (e) => busy(e.currentTarget, trust));
  $("test-dialog").addEventListener("close", () => { runId++; });
}

/** Opens the dialog and tests `remote` (an API.md Remote, saved or not). */
export function openTest(remote) {
  current = remote;
  $("test-target").textContent = `${remote.user}@${remote.host}:${remote.port || 22}` + (remote.name ? ` (${remote.name})` : "");
  const dlg = $("test-dialog");
  openModal(dlg);
  run();
}

function endpointKind(detail) {
  const d = String(detail || "");
  if (d.startsWith("unix://")) return "the remote's Docker socket";
  if (d.startsWith("tcp://")) return "TCP fallback (Docker Desktop on Windows)";
  if (d.includes("dial-stdio")) return "docker system dial-stdio over an exec channel";
  return null;
}

function showSteps(result) {
  const byStep = new Map((result || []).map((s) => [s.step, s]));
  const failedAt = (result || []).findIndex((s) => !s.ok);
  const list = $("test-steps");
  list.replaceChildren(...STEPS.map(([id, label], i) => {
    const s = byStep.get(id);
    let state = "pending";
    if (result) state = s ? (s.ok ? "ok" : "fail") : "skipped";
    const mark = { pending: "…", ok: "✓", fail: "✕", skipped: "–" }[state];
    const text = { pending: "checking…", skipped: failedAt >= 0 && i > failedAt ? "not checked" : "not reported" }[state];
    const kind = s && s.ok && id === "endpoint" ? endpointKind(s.detail) : null;
    return h("li", { class: "step", "data-testid": `step-${id}`, "data-state": state },
      h("span", { class: "mark", "aria-hidden": "true" }, mark),
      h("div", {},
        h("span", { class: "step-label" }, label),
        h("span", { class: "visually-hidden" }, ` ${state === "ok" ? "passed" : state === "fail" ? "failed" : text}`),
        s && s.detail ? h("span", { class: "step-detail" }, " — ", s.detail, kind ? ` (${kind})` : "") : null,
        text && !s ? h("span", { class: "step-detail muted" }, " — ", text) : null,
        s && !s.ok && s.fix ? h("div", { class: "step-fix" }, "Fix: ", s.fix) : null,
        s && !s.ok && id === "host_key" && !s.fingerprint
          ? h("div", { class: "step-fix" }, "Berth never accepts a changed host key from here: someone may be intercepting the connection.")
          : null));
  }));
}

async function run() {
  const my = ++runId;
  pendingFingerprint = null;
  $("host-key-prompt").hidden = true;
  $("trust-host-key").hidden = true;
  setError($("test-error"), null);
  showSteps(null);
  $("rerun-test").setAttribute("aria-busy", "true");
  let steps;
  try {
    steps = await api.testConnection(current);
  } catch (e) {
    if (my !== runId) return;
    showSteps([]);
    setError($("test-error"), api.errorText(e));
    $("rerun-test").removeAttribute("aria-busy");
    return;
  }
  if (my !== runId) return;
  $("rerun-test").removeAttribute("aria-busy");
  showSteps(steps);
  const hk = steps.find((s) => s.step === "host_key" && !s.ok && s.fingerprint);
  if (hk) {
    pendingFingerprint = hk.fingerprint;
    $("host-key-fingerprint").textContent = hk.fingerprint;
    $("host-key-prompt").hidden = false;
    $("trust-host-key").hidden = false;
    // Focus goes to the fingerprint (to be compared), never to Trust: Enter,
    // e.g. one pressed while the test was running, must not trust a key
    // nobody has looked at. Trust stays reachable with Tab or a click.
    $("host-key-fingerprint").focus();
  } else {
    $("rerun-test").focus();
  }
}

async function trust() {
  if (!pendingFingerprint) return;
  try {
    await api.trustHostKey(current.host, current.port || 22, pendingFingerprint);
  } catch (e) {
    setError($("test-error"), api.errorText(e));
    return;
  }
  await run();
}
