// store.js — what several screens share: the remotes (RemoteView list, kept
// fresh by berth://changed) and the settings. Screens subscribe and re-render.

import * as api from "./api.js";

export const store = { remotes: [], settings: null };
const listeners = new Set();

export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function notify() {
  for (const fn of listeners) fn(store);
}

export function setRemotes(list) {
  store.remotes = Array.isArray(list) ? list : [];
  notify();
}

export async function refreshRemotes() {
  setRemotes(await api.listRemotes());
}

export async function refreshSettings() {
  store.settings = await api.getSettings();
  notify();
}

export function remoteByName(name) {
  return store.remotes.find((r) => r.name === name) || null;
}

/** The Remote part of a RemoteView (what save_remote and test_connection take). */
export function toRemote(v) {
  const { name, host, port, user, auth, docker, listen, mounts_root, ignores, honour_gitignore, remote_only, forward_ports, sync, sync_mode } = v;
  return { name, host, port, user, auth, docker, listen, mounts_root, ignores, honour_gitignore, remote_only, forward_ports, sync, sync_mode };
}
