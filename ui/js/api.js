// api.js — the only module that talks to the app: thin wrappers named after
// the Tauri commands of ui/API.md, and the berth://changed event. Each wrapper
// returns the command's promise; a failure rejects with the app's one-line
// message (a string), which the screens show as is (see errorText).

function tauri() {
  const t = window.__TAURI__;
  if (!t || !t.core) throw new Error("Berth's API is not available: open this window from the Berth app (or add ?mock to the URL while developing)");
  return t;
}

function call(command, args) {
  try {
    return tauri().core.invoke(command, args);
  } catch (e) {
    return Promise.reject(e);
  }
}

/** The one-line message of a rejected command (a string from the app, or an Error). */
export function errorText(e) {
  if (e == null) return "unknown error";
  if (typeof e === "string") return e;
  if (e.message) return e.message;
  try { return JSON.stringify(e); } catch { return String(e); }
}

export const listRemotes = () => call("list_remotes");
export const saveRemote = (original, remote) => call("save_remote", { original, remote });
export const removeRemote = (name) => call("remove_remote", { name });
export const importSshConfig = () => call("import_ssh_config");
export const connect = (name) => call("connect", { name });
export const disconnect = (name) => call("disconnect", { name });
export const testConnection = (remote) => call("test_connection", { remote });
export const trustHostKey = (host, port, fingerprint) => call("trust_host_key", { host, port, fingerprint });

export const listKeys = () => call("list_keys");
export const generateKey = (id, comment) => call("generate_key", { id, comment });
export const importKey = (id, privateKey, passphrase) => call("import_key", { id, privateKey, passphrase });
export const deleteKey = (id) => call("delete_key", { id });

export const containers = (name) => call("containers", { name });
export const setDefaultContext = (name) => call("set_default_context", { name });
export const getSettings = () => call("get_settings");
export const setStartAtLogin = (on) => call("set_start_at_login", { on });
export const activity = () => call("activity");
export const openUrl = (url) => call("open_url", { url });

/** Calls handler(remoteViews) on every berth://changed event; resolves to an unlisten function. */
export function onChanged(handler) {
  return tauri().event.listen("berth://changed", (e) => handler(e.payload));
}
