//! The tray app's config file: TOML at `<OS config dir>/berth/config.toml`
//! (`BERTH_CONFIG` overrides the path, for tests and the headless agent). It
//! holds the remotes and the non-secret settings only; a key kept in the OS
//! keychain appears here as its id, never as key material. A missing file
//! loads as the defaults; saving is atomic and owner-only (0600); loading and
//! saving both validate, and every error names the remote and the field.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{write_atomic, DesktopError};
use crate::listen::{ListenAddr, DEFAULT_LISTEN};
use crate::sync::reconcile::SyncMode;
use crate::upstream::UpstreamSpec;

/// The environment variable that overrides the config file's path.
pub const CONFIG_ENV: &str = "BERTH_CONFIG";
/// Prefix of the docker contexts Berth creates: `berth-<remote name>`.
pub const CONTEXT_PREFIX: &str = "berth-";
/// Where Docker Desktop on Windows serves the API without TLS, as seen from the remote.
pub const DEFAULT_DOCKER_TCP: &str = "127.0.0.1:2375";

/// The whole config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// App-wide settings (`[settings]`).
    pub settings: Settings,
    /// The remotes, in the order the UI shows them (`[[remote]]`).
    #[serde(rename = "remote")]
    pub remotes: Vec<Remote>,
}

/// App-wide, non-secret settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Start Berth when the user logs in.
    pub start_at_login: bool,
    /// The remote whose `berth-<name>` context is made current when it connects.
    pub default_context: Option<String>,
    /// The docker context that was current before Berth switched, to restore.
    pub previous_context: Option<String>,
    /// Remotes connected when Berth last quit; reconnected at the next start.
    pub connected: Vec<String>,
}

/// One remote Docker host reached over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Remote {
    /// Unique; also names the docker context `berth-<name>`.
    pub name: String,
    /// Host name or address of the SSH server.
    pub host: String,
    /// SSH port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// SSH user.
    pub user: String,
    /// Jump hosts as `ssh -J` takes them (`[user@]host[:port]`,
    /// comma-separated, first hop first); unset: dialed directly. Each hop is
    /// looked up in `~/.ssh/config` as `ssh` would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump: Option<String>,
    /// How to authenticate.
    #[serde(default)]
    pub auth: Auth,
    /// Where the daemon listens on the remote.
    #[serde(default)]
    pub docker: DockerEndpoint,
    /// The local endpoint: `tcp://127.0.0.1:PORT` or `unix:///PATH`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Remote directory for bind-mount replicas (engine default when unset).
    #[serde(default)]
    pub mounts_root: Option<String>,
    /// Patterns (gitignore syntax) excluded from synced trees, besides each
    /// tree's `.berthignore`; nothing is excluded by default.
    #[serde(default)]
    pub ignores: Vec<String>,
    /// Also honour `.gitignore` files in synced trees (off by default:
    /// gitignored files such as `.env` are synced, as a local mount shows them).
    #[serde(default)]
    pub honour_gitignore: bool,
    /// How bind mounts are synced: `two-way` by default (what containers
    /// write comes back, as with a local bind mount), or `one-way` (the
    /// replica mirrors this machine; containers' writes are overwritten).
    /// A file written before the setting existed loads as two-way.
    #[serde(default)]
    pub sync_mode: SyncMode,
    /// Remote path prefixes whose bind mounts are never synced.
    #[serde(default)]
    pub remote_only: Vec<String>,
    /// Forward published container ports to this machine.
    #[serde(default = "yes")]
    pub forward_ports: bool,
    /// Sync local bind-mount sources to the remote.
    #[serde(default = "yes")]
    pub sync: bool,
}

/// How a remote authenticates. None of the variants holds a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Auth {
    /// A key stored in the OS keychain under this id (the keychain holds the secret).
    Keychain { key: String },
    /// A private key file on disk.
    KeyFile { path: String },
    /// The running ssh-agent, then the default `~/.ssh/id_*` keys.
    #[default]
    Agent,
}

/// Where the daemon listens, as seen from the remote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DockerEndpoint {
    /// Try the unix socket, then tcp 127.0.0.1:2375, then `docker system dial-stdio`.
    #[default]
    Auto,
    /// A unix socket, e.g. `/var/run/docker.sock`.
    Unix { path: String },
    /// A TCP address, e.g. Docker Desktop on Windows at `127.0.0.1:2375`.
    Tcp {
        #[serde(default = "default_docker_tcp")]
        addr: String,
    },
}

fn default_port() -> u16 {
    22
}
fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}
fn default_docker_tcp() -> String {
    DEFAULT_DOCKER_TCP.to_string()
}
fn yes() -> bool {
    true
}

/// The config file's path: `$BERTH_CONFIG`, else `<config dir>/berth/config.toml`.
pub fn config_path() -> Result<PathBuf, DesktopError> {
    if let Some(p) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    dirs::config_dir()
        .map(|d| d.join("berth").join("config.toml"))
        .ok_or(DesktopError::NoConfigDir)
}

impl Config {
    /// Loads the config from [`config_path`].
    pub fn load() -> Result<Self, DesktopError> {
        Self::load_from(&config_path()?)
    }

    /// Loads and validates `path`; a missing file gives the defaults.
    pub fn load_from(path: &Path) -> Result<Self, DesktopError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(DesktopError::io("read", path, e)),
        };
        let cfg: Self = toml::from_str(&text).map_err(|e| {
            unknown_sync_mode(&text).unwrap_or_else(|| DesktopError::ConfigParse {
                path: path.to_path_buf(),
                reason: e.message().replace('\n', " "),
            })
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Validates, then saves to [`config_path`].
    pub fn save(&self) -> Result<(), DesktopError> {
        self.save_to(&config_path()?)
    }

    /// Validates, then writes `path` atomically with mode 0600.
    pub fn save_to(&self, path: &Path) -> Result<(), DesktopError> {
        self.validate()?;
        let text =
            toml::to_string_pretty(self).map_err(|e| DesktopError::ConfigEncode(e.into()))?;
        write_atomic(path, text.as_bytes(), 0o600)
    }

    /// Every remote valid, names and local endpoints unique, settings naming existing remotes.
    pub fn validate(&self) -> Result<(), DesktopError> {
        let mut endpoints: Vec<(ListenAddr, &str)> = Vec::new();
        for (i, r) in self.remotes.iter().enumerate() {
            r.validate()?;
            if self.remotes[..i].iter().any(|o| o.name == r.name) {
                return Err(invalid(&r.name, "name", "is used by another remote"));
            }
            let addr = r.listen_addr()?;
            if let Some((_, other)) = endpoints.iter().find(|(a, _)| *a == addr) {
                return Err(invalid(
                    &r.name,
                    "listen",
                    &format!("{addr} is already used by remote {other:?}"),
                ));
            }
            endpoints.push((addr, &r.name));
        }
        let s = &self.settings;
        let named = s.default_context.iter().map(|n| (n, "default_context"));
        let connected = s.connected.iter().map(|n| (n, "connected"));
        for (name, field) in named.chain(connected) {
            if self.remote(name).is_none() {
                return Err(invalid(
                    name,
                    field,
                    "in [settings] names no configured remote",
                ));
            }
        }
        Ok(())
    }

    /// The remote called `name`.
    pub fn remote(&self, name: &str) -> Option<&Remote> {
        self.remotes.iter().find(|r| r.name == name)
    }

    /// Adds `remote`; the config is unchanged if the result would be invalid.
    pub fn add_remote(&mut self, remote: Remote) -> Result<(), DesktopError> {
        let mut next = self.clone();
        next.remotes.push(remote);
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// Replaces the remote called `name` (possibly renaming it; settings follow).
    pub fn update_remote(&mut self, name: &str, remote: Remote) -> Result<(), DesktopError> {
        let mut next = self.clone();
        let slot = next
            .remotes
            .iter_mut()
            .find(|r| r.name == name)
            .ok_or_else(|| DesktopError::NoSuchRemote(name.to_string()))?;
        let new_name = remote.name.clone();
        *slot = remote;
        let s = &mut next.settings;
        for n in s.default_context.iter_mut().chain(s.connected.iter_mut()) {
            if n == name {
                n.clone_from(&new_name);
            }
        }
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// Removes the remote called `name` and every setting naming it.
    pub fn remove_remote(&mut self, name: &str) -> Result<Remote, DesktopError> {
        let i = self
            .remotes
            .iter()
            .position(|r| r.name == name)
            .ok_or_else(|| DesktopError::NoSuchRemote(name.to_string()))?;
        let s = &mut self.settings;
        if s.default_context.as_deref() == Some(name) {
            s.default_context = None;
        }
        s.connected.retain(|n| n != name);
        Ok(self.remotes.remove(i))
    }

    /// A free local endpoint for a new remote: the first of 127.0.0.1:23750, 23751, …
    pub fn suggest_listen(&self) -> String {
        let taken: Vec<ListenAddr> = self
            .remotes
            .iter()
            .filter_map(|r| r.listen_addr().ok())
            .collect();
        (23750u16..=u16::MAX)
            .map(|p| format!("tcp://127.0.0.1:{p}"))
            .find(|s| s.parse::<ListenAddr>().is_ok_and(|a| !taken.contains(&a)))
            .unwrap_or_else(default_listen)
    }
}

impl Remote {
    /// A remote with the defaults: port 22, ssh-agent, `auto` daemon, 127.0.0.1:23750.
    pub fn new(name: &str, host: &str, user: &str) -> Self {
        Self {
            name: name.into(),
            host: host.into(),
            port: 22,
            user: user.into(),
            jump: None,
            auth: Auth::Agent,
            docker: DockerEndpoint::Auto,
            listen: default_listen(),
            mounts_root: None,
            ignores: Vec::new(),
            honour_gitignore: false,
            sync_mode: SyncMode::default(),
            remote_only: Vec::new(),
            forward_ports: true,
            sync: true,
        }
    }

    /// The docker context this remote gets: `berth-<name>`.
    pub fn context_name(&self) -> String {
        format!("{CONTEXT_PREFIX}{}", self.name)
    }

    /// The local endpoint, parsed (loopback TCP or a unix socket only).
    pub fn listen_addr(&self) -> Result<ListenAddr, DesktopError> {
        let addr: ListenAddr = self
            .listen
            .parse()
            .map_err(|e: crate::listen::ListenError| {
                invalid(&self.name, "listen", &e.to_string())
            })?;
        if matches!(&addr, ListenAddr::Tcp(a) if a.port() == 0) {
            return Err(invalid(&self.name, "listen", "needs a fixed port, not 0"));
        }
        Ok(addr)
    }

    /// The jump hosts, parsed (none when unset or `none`).
    pub fn jump_specs(&self) -> Result<Vec<crate::remote::RemoteSpec>, DesktopError> {
        match self.jump.as_deref().map(str::trim) {
            None | Some("") => Ok(Vec::new()),
            Some(j) => crate::remote::parse_jumps(j).map_err(|e| {
                let why = match &e {
                    crate::remote::RemoteError::Invalid { given, why } => format!("{given}: {why}"),
                    other => other.to_string(),
                };
                invalid(
                    &self.name,
                    "jump",
                    &format!("{why} (give [user@]host[:port], comma-separated)"),
                )
            }),
        }
    }

    /// The remote daemon endpoint as the engine spells it.
    pub fn upstream(&self) -> Result<UpstreamSpec, DesktopError> {
        let spec = match &self.docker {
            DockerEndpoint::Auto => return Ok(UpstreamSpec::Auto),
            DockerEndpoint::Unix { path } => format!("unix://{path}"),
            DockerEndpoint::Tcp { addr } => format!("tcp://{addr}"),
        };
        spec.parse()
            .map_err(|e: String| invalid(&self.name, "docker", &e))
    }

    /// Checks every field on its own; one error names the first bad field.
    pub fn validate(&self) -> Result<(), DesktopError> {
        let mut chars = self.name.chars();
        let name_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        let blank = |s: &str| s.trim().is_empty();
        let checks = [
            (
                !name_ok,
                "name",
                "must start with a letter or digit and contain only letters, digits, '_', '.', '-'",
            ),
            (self.name.len() > 64, "name", "is longer than 64 characters"),
            (
                blank(&self.host) || self.host.contains(|c: char| c.is_whitespace() || c == '/'),
                "host",
                "must be a host name or address without spaces or '/'",
            ),
            (self.port == 0, "port", "must be 1-65535"),
            (
                blank(&self.user) || self.user.contains(char::is_whitespace),
                "user",
                "must be a user name without spaces",
            ),
            (
                matches!(&self.auth, Auth::Keychain { key } if blank(key)),
                "auth.key",
                "is empty; pick a key from the keychain",
            ),
            (
                matches!(&self.auth, Auth::KeyFile { path } if blank(path)),
                "auth.path",
                "is empty; give a private key file",
            ),
            (
                self.mounts_root.as_deref().is_some_and(blank),
                "mounts_root",
                "is empty; leave it unset for the default",
            ),
        ];
        if let Some((_, field, reason)) = checks.iter().find(|c| c.0) {
            return Err(invalid(&self.name, field, reason));
        }
        self.jump_specs()?;
        self.upstream()?;
        self.listen_addr().map(|_| ())
    }
}

impl DockerEndpoint {
    /// Docker Desktop on Windows: tcp 127.0.0.1:2375 as seen from the remote.
    pub fn desktop_tcp() -> Self {
        DockerEndpoint::Tcp {
            addr: default_docker_tcp(),
        }
    }
}

/// The first remote whose `sync_mode` is not a mode Berth knows, as the
/// error naming that remote and the field. Only called once parsing failed:
/// serde's message for an unknown value names neither, and a hand-edited
/// file is where such a value comes from. A remote without a string name is
/// left to serde's message, which points at the missing name.
fn unknown_sync_mode(text: &str) -> Option<DesktopError> {
    let doc: toml::Table = toml::from_str(text).ok()?;
    let remotes = doc.get("remote")?.as_array()?;
    remotes
        .iter()
        .filter_map(toml::Value::as_table)
        .find_map(|r| {
            let mode = r.get("sync_mode")?;
            if mode.as_str().is_some_and(|m| m.parse::<SyncMode>().is_ok()) {
                return None;
            }
            let name = r.get("name")?.as_str()?;
            let reason = format!(
                "must be {} or {}, not {mode}",
                SyncMode::OneWay,
                SyncMode::TwoWay
            );
            Some(invalid(name, "sync_mode", &reason))
        })
}

pub(super) fn invalid(remote: &str, field: &'static str, reason: &str) -> DesktopError {
    DesktopError::InvalidRemote {
        remote: remote.to_string(),
        field,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
