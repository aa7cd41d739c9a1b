//! What the window and the tray are shown, in the shapes of `ui/API.md`:
//! a [`RemoteView`] per remote (its config plus connection state), the
//! [`Containers`] of a connected remote (forwards and mounts, converted from
//! the agent's status document by pure functions tested here), the
//! [`SettingsView`], and the conversion to the tray's [`menu::RemoteView`].
//! Nothing here holds a secret: a keychain key appears as its id only.

use serde::Serialize;
use serde_json::Value;

use super::config::{Remote, Settings};
use super::menu;

/// A remote's connection, as `ui/API.md` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    Disconnected,
    Connecting,
    Connected,
    Error,
}

/// One remote as the window shows it: the config fields plus its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteView {
    /// The remote as configured (serialized flat, like `Remote` in `ui/API.md`).
    #[serde(flatten)]
    pub remote: Remote,
    pub state: ConnectionState,
    /// The last error, one line (state `error`).
    pub error: Option<String>,
    /// The chosen Docker endpoint when connected, e.g. `unix:///var/run/docker.sock`.
    pub endpoint: Option<String>,
    /// The remote daemon's version when connected, e.g. `20.10.24`.
    pub docker_version: Option<String>,
    /// Its context `berth-<name>` is the docker CLI's current context.
    pub default_context: bool,
}

/// One forwarded port of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forward {
    /// The container's full id.
    pub container: String,
    /// The container's name, e.g. `web`.
    pub name: String,
    /// The local side, e.g. `localhost:8080` (`0.0.0.0:8080` on all interfaces).
    pub local: String,
    /// The container side, e.g. `80/tcp`.
    pub remote: String,
    /// `listening` or `failed: <reason>`.
    pub state: String,
    /// Connections open now.
    pub connections: u64,
    /// Bytes carried both ways so far.
    pub bytes: u64,
}

/// A connected remote's forwards and bind-mount syncs. Each mount is the
/// sync's status object cut to the fields the window reads: `local, remote,
/// mode, containers, state, error, files, bytes, fetched_files,
/// last_sync_unix, pending_changes, pending_remote_changes, progress,
/// exclusions, conflicts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Containers {
    pub forwards: Vec<Forward>,
    pub mounts: Vec<Value>,
}

/// The app-wide settings the window shows (`get_settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingsView {
    pub start_at_login: bool,
    /// The remote whose context is made the docker default when it connects.
    pub default_context: Option<String>,
    /// `DOCKER_HOST` when set: it overrides every context, so the UI warns.
    pub docker_host: Option<String>,
}

impl SettingsView {
    /// The view of `settings`, with `docker_host` as found in the environment.
    pub fn new(settings: &Settings, docker_host: Option<String>) -> Self {
        Self {
            start_at_login: settings.start_at_login,
            default_context: settings.default_context.clone(),
            docker_host,
        }
    }
}

/// The fields of a mount the window reads, in the order `ui/API.md` lists them.
/// Picked by name so that the window's contract is this list, not whatever
/// the agent's status happens to carry; a field an older agent lacks is null.
const MOUNT_FIELDS: [&str; 15] = [
    "local",
    "remote",
    "mode",
    "containers",
    "state",
    "error",
    "files",
    "bytes",
    "fetched_files",
    "last_sync_unix",
    "pending_changes",
    "pending_remote_changes",
    "progress",
    "exclusions",
    "conflicts",
];

/// Converts an agent status document (`forwards` per container, `mounts`)
/// into the window's shapes. Missing parts give empty lists.
pub fn containers_from_status(status: &Value) -> Containers {
    let mut forwards = Vec::new();
    for c in status["forwards"].as_array().into_iter().flatten() {
        let id = str_of(&c["id"]);
        let name = str_of(&c["name"]).trim_start_matches('/').to_string();
        for f in c["forwards"].as_array().into_iter().flatten() {
            let state = if f["state"].as_str() == Some("failed") {
                format!("failed: {}", str_of(&f["error"]))
            } else {
                "listening".to_string()
            };
            let n = |k: &str| f[k].as_u64().unwrap_or(0);
            forwards.push(Forward {
                container: id.clone(),
                name: name.clone(),
                local: local_name(&str_of(&f["local"])),
                remote: str_of(&f["container_port"]),
                state,
                connections: n("open_connections"),
                bytes: n("bytes_to_container") + n("bytes_from_container"),
            });
        }
    }
    let mounts = status["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let mut o = serde_json::Map::new();
            for k in MOUNT_FIELDS {
                o.insert(k.to_string(), m.get(k).cloned().unwrap_or(Value::Null));
            }
            Value::Object(o)
        })
        .collect();
    Containers { forwards, mounts }
}

/// `127.0.0.1:8080` / `[::1]:8080` → `localhost:8080`; others as they are.
pub fn local_name(addr: &str) -> String {
    for p in ["127.0.0.1:", "[::1]:"] {
        if let Some(port) = addr.strip_prefix(p) {
            return format!("localhost:{port}");
        }
    }
    addr.to_string()
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

impl RemoteView {
    /// What the tray menu needs of this remote, with its forwards.
    pub fn to_menu(&self, containers: Option<&Containers>) -> menu::RemoteView {
        let state = match self.state {
            ConnectionState::Disconnected => menu::RemoteState::Disconnected,
            ConnectionState::Connecting => menu::RemoteState::Connecting,
            ConnectionState::Connected => menu::RemoteState::Connected,
            ConnectionState::Error => {
                menu::RemoteState::Error(self.error.clone().unwrap_or_default())
            }
        };
        let forwards = containers
            .map(|c| {
                c.forwards
                    .iter()
                    .map(|f| menu::ForwardView {
                        container: f.name.clone(),
                        local: f.local.clone(),
                        remote: f.remote.clone(),
                        state: match f.state.strip_prefix("failed: ") {
                            Some(e) => menu::ForwardState::Failed(e.to_string()),
                            None => menu::ForwardState::Listening,
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        menu::RemoteView {
            name: self.remote.name.clone(),
            state,
            is_default_context: self.default_context,
            forwards,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_the_status_document() {
        let status = json!({
            "forwards": [{
                "id": "abc123", "name": "/web",
                "forwards": [
                    {"local": "127.0.0.1:8080", "container_port": "80/tcp", "state": "listening",
                     "error": null, "open_connections": 2, "bytes_to_container": 10, "bytes_from_container": 32},
                    {"local": "0.0.0.0:9090", "container_port": "90/udp", "state": "failed",
                     "error": "address in use", "open_connections": 0}
                ]
            }],
            "mounts": [{"local": "/src", "remote": "/r/src", "mode": "two-way", "containers": ["abc123"],
                        "state": "watching", "error": null, "files": 3, "bytes": 30, "syncs": 1,
                        "uploaded_files": 3, "fetched_files": 2, "last_sync_unix": 5,
                        "pending_changes": 0, "pending_remote_changes": 4, "progress": {"files_done": 3},
                        "exclusions": [".berthignore"],
                        "conflicts": [{"path": "notes.txt", "kept_as": "notes.berth-conflict-remote-1a2b3c4d.txt",
                                       "winner": "local", "at_unix": 7}]},
                       {"local": "/old", "remote": "/r/old", "state": "watching"}]
        });
        let c = containers_from_status(&status);
        assert_eq!(c.forwards.len(), 2);
        let f = &c.forwards[0];
        assert_eq!(
            (f.container.as_str(), f.name.as_str(), f.local.as_str()),
            ("abc123", "web", "localhost:8080")
        );
        assert_eq!(
            (f.remote.as_str(), f.state.as_str()),
            ("80/tcp", "listening")
        );
        assert_eq!((f.connections, f.bytes), (2, 42));
        assert_eq!(c.forwards[1].state, "failed: address in use");
        assert_eq!(c.forwards[1].local, "0.0.0.0:9090");
        let m = &c.mounts[0];
        assert_eq!(m["state"], "watching");
        assert_eq!(m["progress"]["files_done"], 3);
        assert_eq!(
            m["pending_remote_changes"], 4,
            "both directions' pending changes"
        );
        assert_eq!(m["exclusions"], json!([".berthignore"]));
        assert_eq!(
            (m["mode"].as_str(), m["fetched_files"].as_u64()),
            (Some("two-way"), Some(2))
        );
        assert_eq!(
            m["conflicts"],
            json!([{"path": "notes.txt", "kept_as": "notes.berth-conflict-remote-1a2b3c4d.txt",
                    "winner": "local", "at_unix": 7}]),
            "conflicts reach the window whole"
        );
        assert!(m.get("syncs").is_none(), "only the documented fields");
        assert!(
            m.get("uploaded_files").is_none(),
            "only the documented fields"
        );
        let keys: Vec<&str> = m
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            keys.len(),
            MOUNT_FIELDS.len(),
            "every documented field, no other: {keys:?}"
        );
        // an older agent's mount: the new fields are there, as null
        let old = &c.mounts[1];
        for k in [
            "mode",
            "fetched_files",
            "conflicts",
            "pending_remote_changes",
        ] {
            assert_eq!(old.get(k), Some(&Value::Null), "{k}");
        }
        // an agent without forwarding or sync
        assert_eq!(containers_from_status(&json!({})), Containers::default());
    }

    #[test]
    fn serializes_like_the_api_document() {
        let v = RemoteView {
            remote: Remote::new("box", "h", "u"),
            state: ConnectionState::Error,
            error: Some("cannot reach h:22".into()),
            endpoint: None,
            docker_version: None,
            default_context: false,
        };
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j["name"], "box");
        assert_eq!(j["auth"]["kind"], "agent");
        assert_eq!(j["state"], "error");
        assert_eq!(j["forward_ports"], true);
        assert_eq!(j["sync_mode"], "two-way");
        let m = v.to_menu(None);
        assert_eq!(
            m.state,
            menu::RemoteState::Error("cannot reach h:22".into())
        );
        assert_eq!(local_name("[::1]:80"), "localhost:80");
    }
}
