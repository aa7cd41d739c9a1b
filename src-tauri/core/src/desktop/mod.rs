//! The GUI-free side of the tray app: its config file (remotes and non-secret
//! settings), importing hosts from `~/.ssh/config`, switching the docker CLI's
//! current context to a remote and back, and the tray menu computed from
//! state. Nothing here touches a window toolkit, so all of it is testable
//! headless; the Tauri app only renders what these modules decide.
//!
//! Secrets never pass through here: a remote whose key lives in the OS
//! keychain is named by a key id only, and the key material is supplied to
//! the engine by the keychain module (see [`engine`]).

pub mod activity;
pub mod config;
pub mod context;
pub mod controller;
pub mod engine;
pub mod hostkeys;
pub mod menu;
pub mod probe;
mod run;
pub mod schema;
pub mod sshimport;
pub mod view;

use std::io::Write;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the desktop modules. Each message is one
/// line naming the file, remote or field involved and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DesktopError {
    /// No OS config directory and no `BERTH_CONFIG`.
    #[error("no config directory for this user; set BERTH_CONFIG to a file path")]
    NoConfigDir,

    /// No home directory to find `~/.docker` or `~/.ssh` in.
    #[error("no home directory for this user; set HOME (or DOCKER_CONFIG)")]
    NoHome,

    /// A file could not be read, created, written or renamed.
    #[error("cannot {action} {path}: {source}; check its permissions")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    /// Berth's config file is not valid TOML of the expected shape.
    #[error("{path} is not a valid Berth config ({reason}); fix it or move it away")]
    ConfigParse { path: PathBuf, reason: String },

    /// The config could not be encoded (should not happen).
    #[error("cannot encode the config: {0}")]
    ConfigEncode(String),

    /// One field of one remote is unusable.
    #[error("remote {remote:?}: {field} {reason}")]
    InvalidRemote {
        remote: String,
        field: &'static str,
        reason: String,
    },

    /// An edit or removal named a remote the config does not have.
    #[error("no remote named {0:?}; add it first")]
    NoSuchRemote(String),

    /// A remote's key lives in the keychain; the key material must come from there.
    #[error("remote {0:?} uses a keychain key; load it from the keychain first")]
    NeedsKeychain(String),

    /// The docker CLI's `config.json` is not a JSON object; Berth never overwrites it.
    #[error("{path} is not valid docker CLI config ({reason}); Berth left it untouched, fix it and retry")]
    DockerConfigMalformed { path: PathBuf, reason: String },

    /// A context's `meta.json` is not valid JSON; Berth never overwrites it.
    #[error("{path} is not a valid docker context ({reason}); remove it with `docker context rm`")]
    ContextMalformed { path: PathBuf, reason: String },

    /// A context to switch to does not exist.
    #[error("no docker context named {0:?}; create it first (see `docker context ls`)")]
    NoSuchContext(String),

    /// A name docker would refuse as a context name.
    #[error("{0:?} is not a valid docker context name; use letters, digits, '_', '.', '+', '-'")]
    BadContextName(String),

    /// An OpenSSH client config could not be parsed.
    #[error("cannot parse {path}: {reason}; fix the file or import hosts by hand")]
    SshConfig { path: PathBuf, reason: String },

    /// A tray menu id that no menu item carries.
    #[error("unknown menu action {0:?}")]
    UnknownAction(String),

    /// Nothing accepts TCP connections at a remote's SSH address.
    #[error("cannot reach {addr}: {reason}; check the host and port, and that sshd runs there")]
    Unreachable { addr: String, reason: String },

    /// Something answers at the address, but not an SSH server.
    #[error("{addr} does not speak SSH ({reason}); check the port")]
    NotSsh { addr: String, reason: String },

    /// A known_hosts file could not be read or appended to.
    #[error("cannot use known_hosts {path}: {reason}; check the file and its permissions")]
    KnownHosts { path: PathBuf, reason: String },

    /// The server offers another key than the one known_hosts records for
    /// it ([`crate::ssh::SshError::HostKeyChanged`], the engine's own wording).
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),

    /// Trusting a key: the server offers another fingerprint than the one shown.
    #[error(
        "{host_port} now offers host key {offered}, not the {shown} you were shown; \
         nothing was trusted, test the connection again"
    )]
    HostKeyMismatch {
        host_port: String,
        shown: String,
        offered: String,
    },

    /// A keychain operation failed (the message names the fix).
    #[error(transparent)]
    Keys(#[from] crate::keys::KeysError),

    /// Connecting a remote failed; `reason` is one line naming the fix.
    #[error("remote {remote:?}: {reason}")]
    Connect { remote: String, reason: String },

    /// A remote was disconnected while it was connecting.
    #[error("remote {0:?}: connecting was cancelled")]
    Cancelled(String),

    /// An operation needs a connected remote.
    #[error("remote {0:?} is not connected; connect it first")]
    NotConnected(String),
}

impl DesktopError {
    fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes `data` to `path` atomically: a temporary file in the same directory,
/// fsynced, given `mode`, then renamed over `path` (and the directory fsynced),
/// so a crash leaves either the old or the new file, never half of one.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), DesktopError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| DesktopError::io("create", &dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    // unique per process and call, so concurrent writers never share a temp file
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.berth-{}-{seq}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| DesktopError::io("create", &tmp, e))?;
        // (mode() only applies when the file is created; an old temp keeps its own)
        set_mode(&tmp, mode)?;
        f.write_all(data)
            .and_then(|()| f.sync_all())
            .map_err(|e| DesktopError::io("write", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| DesktopError::io("replace", path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), DesktopError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| DesktopError::io("set permissions of", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("berth-desktop-atomic-{}", std::process::id()));
        let p = dir.join("sub/file.txt");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // no temporary file is left behind
        let left: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn messages_are_one_line() {
        let errs = [
            DesktopError::NoConfigDir,
            DesktopError::NoSuchRemote("x".into()),
            DesktopError::InvalidRemote {
                remote: "x".into(),
                field: "port",
                reason: "must be 1-65535".into(),
            },
            DesktopError::UnknownAction("nope".into()),
        ];
        for e in errs {
            let s = e.to_string();
            assert!(!s.contains('\n') && !s.is_empty(), "{s}");
        }
    }
}
