// mock-tauri.js — a fake window.__TAURI__ for developing ui/ in a plain
// browser: every command of ui/API.md over in-memory data, and the
// berth://changed event. Loaded by js/app.js only when the URL has ?mock AND
// there is no real window.__TAURI__, so it is never active inside the app.
//
// Extra query parameters: docker_host=tcp://… (pretend DOCKER_HOST is set),
// empty (start with no remotes and no keys), slow (longer delays).
// Hosts that trigger cases in test_connection: a host never trusted before
// (e.g. 192.168.1.40) → unknown host key; "changed…" → changed host key;
// "nodocker…" → Docker not reachable; "down…" → TCP unreachable.

if (!window.__TAURI__) {
  const q = new URLSearchParams(location.search);
  const empty = q.has("empty");
  const wait = (ms) => new Promise((r) => setTimeout(r, q.has("slow") ? ms * 4 : ms));
  const now = () => Math.floor(Date.now() / 1000);
  const clone = (v) => JSON.parse(JSON.stringify(v));
  const listeners = new Map();

  const base = {
    jump: null, mounts_root: null, ignores: [], honour_gitignore: false, remote_only: [], forward_ports: true, sync: true, sync_mode: "two-way",
    state: "disconnected", error: null, endpoint: null, docker_version: null, default_context: false,
  };
  const remotes = empty ? [] : [
    { ...base, name: "build-box", host: "build-box.lan", port: 22, user: "dev",
      auth: { kind: "keychain", key: "berth-laptop" }, docker: { kind: "auto" }, listen: "tcp://127.0.0.1:23750",
      ignores: ["node_modules", "target"], state: "connected", endpoint: "unix:///var/run/docker.sock",
      docker_version: "20.10.24 (API 1.41)", default_context: true },
    { ...base, name: "win-desktop", host: "192.168.1.40", port: 22, user: "alice",
      auth: { kind: "agent" }, docker: { kind: "tcp", addr: "127.0.0.1:2375" }, listen: "tcp://127.0.0.1:23751" },
    { ...base, name: "staging", host: "staging.example.com", port: 2222, user: "deploy", jump: "bastion.example.com",
      auth: { kind: "key-file", path: "~/.ssh/id_ed25519" }, docker: { kind: "auto" }, listen: "tcp://127.0.0.1:23752",
      sync_mode: "one-way", state: "error", error: "authentication failed for deploy@staging.example.com:2222 (tried ~/.ssh/id_ed25519): add its public key to ~/.ssh/authorized_keys on the remote" },
  ];
  const trusted = new Set(["build-box.lan:22", "staging.example.com:2222"]);
  const settings = { start_at_login: false, default_context: empty ? null : "build-box", docker_host: q.get("docker_host") || null };
  const fakeB64 = () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(51)))).replace(/=+$/, "");
  const fingerprint = () => "SHA256:" + btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32)))).replace(/=+$/, "");
  const makeKey = (id, comment, algorithm = "ssh-ed25519") => {
    const pub = `${algorithm} AAAAC3NzaC1lZDI1NTE5AAAAI${fakeB64().slice(0, 43)}${comment ? " " + comment : ""}`;
    return { id, algorithm, public_key: pub, comment, fingerprint: fingerprint(), authorized_keys_line: pub };
  };
  const keys = empty ? [] : [makeKey("berth-laptop", "dev@laptop")];
  const logs = [
    "12:00:01 INFO berth: started, config ~/.config/berth/config.toml",
    "12:00:02 INFO build-box: connecting to dev@build-box.lan:22",
    "12:00:02 INFO build-box: host key ok (ED25519 SHA256:q3J1…), authenticated with key berth-laptop",
    "12:00:02 INFO build-box: upstream unix:///var/run/docker.sock (Docker 20.10.24, API 1.41): socket reachable",
    "12:00:02 INFO build-box: serving tcp://127.0.0.1:23750; docker context berth-build-box is current",
    "12:00:03 INFO build-box: forward localhost:8080 -> 80/tcp (web)",
    "12:00:03 WARN build-box: forward localhost:5432 -> 5432/tcp (db) failed: address already in use",
    "12:00:04 INFO build-box: sync /home/dev/app/src: watching, 1284 files",
  ];
  const log = (line) => { const d = new Date(); logs.push(`${d.toTimeString().slice(0, 8)} ${line}`); if (logs.length > 500) logs.shift(); };

  // a fixed time, so the conflict's "… ago" ages like a real one
  const conflictAt = now() - 240;
  let firstSync = { files_done: 0, files_total: 5210, bytes_done: 0, bytes_total: 184_000_000, bytes_per_sec: 0 };
  const containersOf = (name) => {
    if (name !== "build-box") return { forwards: [], mounts: [] };
    if (firstSync.files_done < firstSync.files_total) {
      firstSync.files_done = Math.min(firstSync.files_total, firstSync.files_done + 371);
      firstSync.bytes_done = Math.round(firstSync.bytes_total * firstSync.files_done / firstSync.files_total);
      firstSync.bytes_per_sec = 12_400_000;
    }
    const dataDone = firstSync.files_done >= firstSync.files_total;
    return {
      forwards: [
        { container: "3f9a8c2d1b7e4f60a1b2c3d4", name: "web", local: "localhost:8080", remote: "80/tcp", state: "listening", connections: 2, bytes: 1_284_000 },
        { container: "3f9a8c2d1b7e4f60a1b2c3d4", name: "web", local: "localhost:8443", remote: "443/tcp", state: "listening", connections: 0, bytes: 0 },
        { container: "9b1e77aa02cd43e1f0e9d8c7", name: "db", local: "localhost:5432", remote: "5432/tcp",
          state: "failed", error: "localhost:5432 is in use on this machine: stop the local service or publish another port (-p 5433:5432)", connections: 0, bytes: 0 },
      ],
      mounts: [
        { local: "/home/dev/app/src", remote: "~/.cache/berth/mounts/9f2c41/home/dev/app/src", mode: "two-way", containers: ["3f9a8c2d1b7e4f60a1b2c3d4"],
          state: "watching", error: null, files: 1284, bytes: 14_200_000, fetched_files: 27, last_round: { scope: "changes", scanned: 4 }, last_sync_unix: now() - 12, pending_changes: 3, pending_remote_changes: 2, syncs: 41, uploaded_files: 1290,
          exclusions: [".berthignore", "--sync-ignore node_modules"],
          conflicts: [{ path: "notes.txt", kept_as: "notes.berth-conflict-remote-1a2b3c4d.txt", winner: "local", at_unix: conflictAt }],
          progress: { files_done: 1284, files_total: 1284, bytes_done: 14_200_000, bytes_total: 14_200_000, bytes_per_sec: 9_800_000 } },
        { local: "/home/dev/app/data", remote: "~/.cache/berth/mounts/9f2c41/home/dev/app/data", mode: "one-way", containers: ["9b1e77aa02cd43e1f0e9d8c7"],
          state: dataDone ? "watching" : "initial sync", error: null, files: firstSync.files_done, bytes: firstSync.bytes_done, fetched_files: 0, last_round: dataDone ? { scope: "all", scanned: 5210 } : null,
          last_sync_unix: dataDone ? now() - 2 : 0, pending_changes: 0, pending_remote_changes: 0, syncs: dataDone ? 1 : 0, uploaded_files: firstSync.files_done, exclusions: [], conflicts: [], progress: { ...firstSync } },
        { local: "/home/dev/app/secrets", remote: "~/.cache/berth/mounts/9f2c41/home/dev/app/secrets", mode: "two-way", containers: ["3f9a8c2d1b7e4f60a1b2c3d4"],
          state: "error", error: "cannot read /home/dev/app/secrets/key.pem: permission denied: make it readable by you or add it to .berthignore",
          exclusions: [".gitignore (honoured)"], conflicts: [],
          files: 3, bytes: 2048, fetched_files: 0, last_round: { scope: "all", scanned: 6 }, last_sync_unix: now() - 300, pending_changes: 1, pending_remote_changes: 0, syncs: 1, uploaded_files: 3, progress: { files_done: 3, files_total: 3, bytes_done: 2048, bytes_total: 2048, bytes_per_sec: 41_000 } },
      ],
    };
  };

  const emit = (event, payload) => {
    for (const fn of listeners.get(event) || []) setTimeout(() => fn({ event, id: 0, payload: clone(payload) }), 0);
  };
  const changed = () => emit("berth://changed", remotes);
  const find = (name) => {
    const r = remotes.find((x) => x.name === name);
    if (!r) throw `no remote named "${name}": it may have been removed; reopen the window`;
    return r;
  };
  const REMOTE_KEYS = ["name", "host", "port", "user", "jump", "auth", "docker", "listen", "mounts_root", "ignores", "honour_gitignore", "remote_only", "forward_ports", "sync", "sync_mode"];
  const check = (r) => {
    for (const k of REMOTE_KEYS) if (!(k in r)) throw `remote "${r.name}": field ${k} is missing (UI bug)`;
    for (const k of Object.keys(r)) if (!REMOTE_KEYS.includes(k)) throw `unknown field \`${k}\` in remote (UI bug)`;
    if (!["one-way", "two-way"].includes(r.sync_mode)) throw `remote "${r.name}": sync_mode must be one-way or two-way, not ${JSON.stringify(r.sync_mode)} (UI bug)`;
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(r.name)) throw `remote "${r.name}": name must start with a letter or digit and contain only letters, digits, '_', '.', '-'`;
    if (!/^(tcp:\/\/(127\.0\.0\.1|localhost|\[::1\]):[1-9]\d*|unix:\/\/\/.+)$/.test(r.listen)) throw `remote "${r.name}": listen must be tcp://127.0.0.1:PORT or unix:///PATH (loopback only: the Docker API is root on the remote)`;
  };

  const commands = {
    async list_remotes() { return remotes; },
    async save_remote({ original, remote }) {
      check(remote);
      const clash = remotes.find((r) => r.name === remote.name && r.name !== original);
      if (clash) throw `remote "${remote.name}": name is used by another remote`;
      const listenClash = remotes.find((r) => r.listen === remote.listen && r.name !== original);
      if (listenClash) throw `remote "${remote.name}": listen ${remote.listen} is used by the remote "${listenClash.name}": pick another port`;
      if (original == null) remotes.push({ ...base, ...remote });
      else Object.assign(find(original), remote);
      if (original && settings.default_context === original) settings.default_context = remote.name;
      log(`INFO config: saved remote ${remote.name}`);
      changed();
      return null;
    },
    async remove_remote({ name }) {
      const i = remotes.indexOf(find(name));
      remotes.splice(i, 1);
      if (settings.default_context === name) settings.default_context = null;
      log(`INFO config: removed remote ${name}`);
      changed();
      return null;
    },
    async import_ssh_config() {
      const drafts = [
        { name: "build-box", host: "build-box.lan", port: 22, user: "dev" },
        { name: "gpu-rig", host: "10.0.0.17", port: 22, user: "ml" },
        { name: "pi", host: "raspberrypi.local", port: 2200, user: "pi" },
      ];
      return drafts.map((d, i) => ({ ...d, auth: i === 1 ? { kind: "key-file", path: "~/.ssh/gpu_ed25519" } : { kind: "agent" },
        docker: { kind: "auto" }, listen: `tcp://127.0.0.1:${23760 + i}`, mounts_root: null, ignores: [], honour_gitignore: false, remote_only: [], forward_ports: true, sync: true, sync_mode: "two-way" }));
    },
    async connect({ name }) {
      const r = find(name);
      r.state = "connecting"; r.error = null; changed();
      log(`INFO ${name}: connecting to ${r.user}@${r.host}:${r.port}`);
      setTimeout(() => {
        if (r.state !== "connecting") return;
        if (!trusted.has(`${r.host}:${r.port}`)) {
          r.state = "error";
          r.error = `unknown host key for ${r.host}:${r.port} (${fingerprint()}): use Test to check and trust it`;
        } else {
          r.state = "connected";
          r.endpoint = r.docker.kind === "tcp" ? `tcp://${r.docker.addr}` : "unix:///var/run/docker.sock";
          r.docker_version = r.docker.kind === "tcp" ? "24.0.7 (API 1.43)" : "20.10.24 (API 1.41)";
        }
        log(`INFO ${name}: ${r.state}${r.error ? ": " + r.error : ""}`);
        changed();
      }, q.has("slow") ? 4000 : 1200);
      return null;
    },
    async disconnect({ name }) {
      const r = find(name);
      Object.assign(r, { state: "disconnected", error: null, endpoint: null, docker_version: null });
      if (r.default_context) { r.default_context = false; settings.default_context = null; }
      log(`INFO ${name}: disconnected`);
      changed();
      return null;
    },
    async test_connection({ remote }) {
      check(remote);
      await wait(700);
      const at = `${remote.host}:${remote.port}`;
      const steps = [];
      const ok = (step, detail) => steps.push({ step, ok: true, detail, fix: null, fingerprint: null });
      const fail = (step, detail, fix, fp = null) => { steps.push({ step, ok: false, detail, fix, fingerprint: fp }); return steps; };
      if (remote.host.startsWith("down")) return fail("tcp", `${at}: connection timed out after 5 s`, "check the host name and that sshd runs there, or your VPN");
      ok("tcp", `${at} reachable (12 ms)`);
      if (remote.host.startsWith("changed")) {
        return fail("host_key", `the host key of ${at} has changed: known_hosts line 12 has SHA256:q3J1bXn0…, the server now offers SHA256:Zk8pA2c…`,
          `if the host was reinstalled, run ssh-keygen -R ${remote.host} and test again; otherwise do not connect`);
      }
      if (!trusted.has(at)) return fail("host_key", `unknown host key (ED25519) for ${at}`, "compare the fingerprint with the host's and trust it", "SHA256:4mQvD3o9x1yA0bKc7PzR2nUeWl5tHjGf8sVdLi6qNoE");
      ok("host_key", "ED25519 key matches known_hosts");
      if (remote.auth.kind === "keychain" && !keys.some((k) => k.id === remote.auth.key)) {
        return fail("auth", `key "${remote.auth.key}" is not in the keychain`, "pick another key or generate one on the Keys screen");
      }
      ok("auth", remote.auth.kind === "agent" ? "with a key of the ssh-agent (ED25519 SHA256:q3J1…)" : remote.auth.kind === "keychain" ? `with key ${remote.auth.key}` : `with ${remote.auth.path}`);
      if (remote.host.startsWith("nodocker")) return fail("docker", "docker is not installed on the remote (no /var/run/docker.sock, no tcp://127.0.0.1:2375, docker: command not found)", "install Docker Engine on the remote, or pick its endpoint");
      const tcp = remote.docker.kind === "tcp";
      ok("docker", tcp ? "Docker 24.0.7 (API 1.43)" : "Docker 20.10.24 (API 1.41)");
      ok("endpoint", tcp ? `tcp://${remote.docker.addr}` : remote.docker.kind === "unix" ? `unix://${remote.docker.path}` : "unix:///var/run/docker.sock");
      ok("sftp", "SFTP subsystem available");
      return steps;
    },
    async trust_host_key({ host, port, fingerprint: fp }) {
      if (!fp || !fp.startsWith("SHA256:")) throw "not a SHA256 fingerprint";
      await wait(300);
      trusted.add(`${host}:${port}`);
      log(`INFO known_hosts: added ${host}:${port} ${fp}`);
      return null;
    },
    async list_keys() { return keys; },
    async generate_key({ id, comment }) {
      if (keys.some((k) => k.id === id)) throw `a key named "${id}" is already in the keychain: choose another name or delete it first`;
      await wait(300);
      const k = makeKey(id, comment || "");
      keys.push(k);
      log(`INFO keys: generated ed25519 key ${id}`);
      return k;
    },
    async import_key({ id, privateKey, passphrase }) {
      if (keys.some((k) => k.id === id)) throw `a key named "${id}" is already in the keychain: choose another name or delete it first`;
      if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(privateKey)) throw "this is not an OpenSSH or PEM private key: paste the whole file, including the BEGIN and END lines";
      if (/ENCRYPTED|aes256/.test(privateKey) && !passphrase) throw "the key is encrypted: enter its passphrase";
      if (passphrase === "wrong") throw "wrong passphrase for this key: try again";
      await wait(300);
      const k = makeKey(id, "imported", privateKey.includes("RSA") ? "ssh-rsa" : "ssh-ed25519");
      keys.push(k);
      log(`INFO keys: imported key ${id}`);
      return k;
    },
    async delete_key({ id }) {
      const i = keys.findIndex((k) => k.id === id);
      if (i < 0) throw `no key named "${id}" in the keychain`;
      keys.splice(i, 1);
      return null;
    },
    async containers({ name }) {
      const r = find(name);
      if (r.state !== "connected") throw `${name} is not connected: connect it first`;
      return containersOf(name);
    },
    async set_default_context({ name }) {
      if (name != null && find(name).state !== "connected") throw `${name} is not connected: connect it first`;
      for (const r of remotes) r.default_context = r.name === name;
      settings.default_context = name;
      log(name ? `INFO docker context berth-${name} is now current` : "INFO docker context restored to default");
      changed();
      return null;
    },
    async get_settings() { return settings; },
    async set_start_at_login({ on }) { settings.start_at_login = !!on; return null; },
    async activity() {
      if (Math.random() < 0.3) log(`DEBUG build-box: GET /v1.41/containers/json 200 (${(2 + Math.random() * 4).toFixed(1)} ms)`);
      return { logs, cpu_percent: 0.2 + Math.random() * 1.3, rss_bytes: 38_400_000 + Math.round(Math.random() * 2_000_000) };
    },
    async open_url({ url }) {
      if (!/^http:\/\/(localhost|127\.0\.0\.1|\[::1\]):\d+/.test(url)) throw `refusing to open ${url}: only http://localhost:… URLs`;
      window.__mockOpened = url;
      log(`INFO opened ${url}`);
      return null;
    },
  };

  window.__TAURI__ = {
    __mock: true,
    core: {
      async invoke(cmd, args = {}) {
        const fn = commands[cmd];
        if (!fn) throw `unknown command ${cmd}`;
        await wait(60 + Math.random() * 120);
        try {
          return clone(await fn(args));
        } catch (e) {
          console.warn(`[mock] ${cmd} rejected:`, e);
          throw e;
        }
      },
    },
    event: {
      async listen(event, handler) {
        if (!listeners.has(event)) listeners.set(event, new Set());
        listeners.get(event).add(handler);
        return () => listeners.get(event).delete(handler);
      },
    },
  };
}
