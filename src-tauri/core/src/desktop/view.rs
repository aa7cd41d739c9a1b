//! What the window and the tray are shown, in the shapes of `ui/API.md`:
//! a [`RemoteView`] per remote (its config plus connection state), the
//! [`Containers`] of a connected remote (forwards and mounts, converted from
//! the agent's status document by pure functions tested here), the
//! [`SettingsView`], and the conversion to the tray's [`menu::RemoteView`].
//! Nothing here holds a secret: a keychain key appears as its id only.

use serde::{Deserialize, Serialize};

use crate::state::{AgentStatus, ForwardState, MountView};

use super::config::{Remote, Settings};
use super::menu;

/// A remote's connection, as `ui/API.md` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    Disconnected,
    Connecting,
    Connected,
    Error,
}

/// One remote as the window shows it: the config fields plus its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Forward {
    /// The container's full id.
    pub container: String,
    /// The container's name, e.g. `web`.
    pub name: String,
    /// The local side, e.g. `localhost:8080` (`0.0.0.0:8080` on all interfaces).
    pub local: String,
    /// The container side, e.g. `80/tcp`.
    pub remote: String,
    /// Whether its local listener is open.
    pub state: ForwardState,
    /// Why the listener could not open (state `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Connections open now.
    pub connections: u64,
    /// Bytes carried both ways so far.
    pub bytes: u64,
}

/// A connected remote's forwards and bind-mount syncs (`containers`).
/// Mounts are the status's own [`MountView`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Containers {
    pub forwards: Vec<Forward>,
    pub mounts: Vec<MountView>,
}

/// The app-wide settings the window shows (`get_settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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

/// The window's shapes of an agent's forwards (one row per port, names
/// without the leading `/`, local loopback as `localhost`) and its mounts.
/// An agent without forwarding or sync gives empty lists.
pub fn containers_from_status(status: &AgentStatus) -> Containers {
    let forwards = status
        .forwards
        .iter()
        .flatten()
        .flat_map(|c| {
            let name = c.name.trim_start_matches('/');
            c.forwards.iter().map(move |f| Forward {
                container: c.id.clone(),
                name: name.to_string(),
                local: local_name(&f.local),
                remote: f.container_port.clone(),
                state: f.state,
                error: f.error.clone(),
                connections: f.open_connections,
                bytes: f.bytes_to_container + f.bytes_from_container,
            })
        })
        .collect();
    let mounts = status
        .mounts
        .iter()
        .flatten()
        .map(|m| MountView {
            // the window shows one line: what happened and the fix in its words
            error: m
                .error
                .as_deref()
                .map(|e| super::advice::explain_state(e, m.hint.as_ref())),
            ..m.clone()
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
                        state: match f.state {
                            ForwardState::Failed => menu::ForwardState::Failed(
                                f.error.clone().unwrap_or_else(|| "unknown error".into()),
                            ),
                            ForwardState::Listening => menu::ForwardState::Listening,
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

    /// A status document as an agent serves it, forwards and mounts on.
    fn document() -> serde_json::Value {
        json!({
            "remote": "ssh://dev@box:22", "jumps": [],
            "connection": {"state": "connected", "connected_for_secs": 5, "connects": 1},
            "upstream": {"endpoint": "unix:///var/run/docker.sock", "reason": "answered /_ping"},
            "daemon": {"version": "20.10.24", "api_version": "1.41", "os": "linux"},
            "uptime_secs": 6,
            "requests": {"total": 1, "in_flight": 0, "upgraded": 0, "upstream_errors": 0, "client_connections": 1, "pings_cached": 0},
            "forwards": [{
                "id": "abc123", "name": "/web",
                "forwards": [
                    {"local": "127.0.0.1:8080", "shown_as": "0.0.0.0:8080->80/tcp", "container_port": "80/tcp",
                     "remote_port": 32768, "state": "listening", "error": null, "open_connections": 2,
                     "total_connections": 3, "bytes_to_container": 10, "bytes_from_container": 32},
                    {"local": "0.0.0.0:9090", "shown_as": "0.0.0.0:9090->90/tcp", "container_port": "90/tcp",
                     "remote_port": 32769, "state": "failed", "error": "address in use", "open_connections": 0,
                     "total_connections": 0, "bytes_to_container": 0, "bytes_from_container": 0}
                ]
            }],
            "mounts": [{"local": "/src", "remote": "/r/src", "mode": "two-way", "containers": ["abc123"],
                        "state": "watching", "error": null, "files": 3, "bytes": 30, "syncs": 1,
                        "uploaded_files": 3, "fetched_files": 2, "last_sync_unix": 5,
                        "last_round": {"scope": "changes", "scanned": 4},
                        "pending_changes": 0, "pending_remote_changes": 4,
                        "progress": {"files_done": 3, "files_total": 3, "bytes_done": 30, "bytes_total": 30, "bytes_per_sec": 9},
                        "exclusions": [".berthignore"],
                        "conflicts": [{"path": "notes.txt", "kept_as": "notes.berth-conflict-remote-1a2b3c4d.txt",
                                       "winner": "local", "at_unix": 7}]}]
        })
    }

    #[test]
    fn converts_the_status_document() {
        let status: AgentStatus = serde_json::from_value(document()).unwrap();
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            document(),
            "the typed status reads and writes the document unchanged"
        );
        let c = containers_from_status(&status);
        assert_eq!(c.forwards.len(), 2);
        let f = &c.forwards[0];
        assert_eq!(
            (f.container.as_str(), f.name.as_str(), f.local.as_str()),
            ("abc123", "web", "localhost:8080")
        );
        assert_eq!(
            (f.remote.as_str(), f.state),
            ("80/tcp", ForwardState::Listening)
        );
        assert_eq!((f.connections, f.bytes), (2, 42));
        assert_eq!(
            (c.forwards[1].state, c.forwards[1].error.as_deref()),
            (ForwardState::Failed, Some("address in use"))
        );
        assert_eq!(c.forwards[1].local, "0.0.0.0:9090");
        assert_eq!(
            c.mounts,
            status.mounts.clone().unwrap(),
            "mounts reach the window whole"
        );
        let m = serde_json::to_value(&c.mounts[0]).unwrap();
        assert_eq!(m["state"], "watching");
        assert_eq!(m["pending_remote_changes"], 4);
        // a failed mount: the window's line carries the fix in its words
        let mut failing = status.clone();
        if let Some(m) = failing.mounts.as_mut().and_then(|m| m.first_mut()) {
            m.error = Some("cannot write /r/src/a on the remote: No space left".into());
            m.hint = Some(crate::hint::Hint::FreeRemoteSpace);
        }
        let shown = containers_from_status(&failing).mounts[0].error.clone();
        assert_eq!(
            shown.as_deref(),
            Some(
                "cannot write /r/src/a on the remote: No space left; \
                 the remote disk may be full: free space there"
            )
        );
        // an agent without forwarding or sync
        let bare = AgentStatus {
            forwards: None,
            mounts: None,
            ..status
        };
        assert_eq!(containers_from_status(&bare), Containers::default());
        let j = serde_json::to_value(&bare).unwrap();
        assert!(
            j.get("forwards").is_none() && j.get("mounts").is_none(),
            "switched-off parts are absent, as before: {j}"
        );
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
