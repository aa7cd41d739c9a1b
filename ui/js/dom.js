// dom.js — small helpers shared by the screens: an element builder (text is
// always set as text, never parsed as HTML), focus-preserving re-render,
// number/time formatting, the toast, clipboard copy and a confirm dialog.

/**
 * h("button", {class: "x", "data-remote": n, onclick: f, disabled: true}, "text", child…)
 * Keys starting with "on" add listeners; class, for, data-… and aria-… become attributes;
 * other keys are set as properties (checked, disabled, hidden, value, …).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false && !(k in el)) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class" || k === "for" || k === "role" || k === "title" || k.startsWith("data-") || k.startsWith("aria-")) el.setAttribute(k, String(v));
    else if (k in el) el[k] = v;
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Shows or hides an error line (a <p class="form-error">); message null hides it. */
export function setError(el, message) {
  el.textContent = message || "";
  el.hidden = !message;
}

/**
 * Replaces the children of `container` with `nodes`, keeping keyboard focus on the
 * element with the same data-focus-key (a refresh must not throw the user's focus away).
 */
export function render(container, nodes) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.getAttribute("data-focus-key") : null;
  container.replaceChildren(...[nodes].flat().filter(Boolean));
  if (key) {
    const again = container.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (again && !again.disabled) again.focus({ preventScroll: true });
  }
}

export function fmtBytes(n) {
  if (n == null) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function fmtCount(n, one, many) {
  return `${Number(n).toLocaleString("en-US")} ${n === 1 ? one : many || one + "s"}`;
}

/** "12 s ago", "3 min ago", … from a unix time in seconds. */
export function fmtAgo(unix) {
  if (!unix) return "never";
  const s = Math.max(0, Math.round(Date.now() / 1000 - unix));
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(unix * 1000).toLocaleString();
}

let toastTimer = null;
/** A short message at the bottom of the window (kind "error" stays longer). */
export function toast(message, kind = "info") {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, kind === "error" ? 8000 : 3000);
}

/** Copies text to the clipboard (with a fallback for webviews without the async API). */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const ta = h("textarea", { class: "offscreen", readOnly: true, value: text });
    document.body.append(ta);
    ta.select();
    const ok = document.execCommand("copy");
    ta.remove();
    if (!ok) { toast("Could not copy: select the text and press Ctrl+C", "error"); return; }
  }
  toast("Copied to the clipboard");
}

/** showModal() that gives focus back to what had it when the dialog closes. */
export function openModal(dlg) {
  if (dlg.open) return;
  const before = document.activeElement;
  dlg.addEventListener("close", () => {
    if (before && before.isConnected && typeof before.focus === "function") before.focus();
  }, { once: true });
  dlg.showModal();
}

/** Asks a yes/no question in #confirm-dialog; resolves to true when confirmed. */
export function confirmDialog(message, okLabel = "Remove") {
  const dlg = document.getElementById("confirm-dialog");
  document.getElementById("confirm-message").textContent = message;
  document.getElementById("confirm-ok").textContent = okLabel;
  dlg.returnValue = "";
  openModal(dlg);
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
  });
}

/**
 * Marks a control busy while `work` runs: clicks on it are ignored (no double
 * submits) but it keeps keyboard focus, which `disabled` would drop to <body>.
 * A second call while busy does nothing (its promise never settles).
 */
export async function busy(control, work) {
  if (control.getAttribute("aria-busy") === "true") return new Promise(() => {});
  control.setAttribute("aria-busy", "true");
  control.setAttribute("aria-disabled", "true");
  try {
    return await work();
  } finally {
    control.removeAttribute("aria-busy");
    control.removeAttribute("aria-disabled");
  }
}

// Clicks (and so checkbox toggles) on a busy control are swallowed.
document.addEventListener("click", (e) => {
  if (e.target instanceof Element && e.target.closest('[aria-busy="true"]')) {
    e.preventDefault();
    e.stopImmediatePropagation();
  }
}, true);
