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
pub mod advice;
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

use crate::hint::{Advice, Hint};
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the desktop modules. Each message is one
/// line naming the file, remote or field involved; [`Advice::hint`] says
/// what to do, and [`advice`] words it for the window.
#[derive(Debug, thiserror::Error)]
pub enum DesktopError {
    /// No OS config directory and no `BERTH_CONFIG`.
    #[error("no config directory for this user")]
    NoConfigDir,

    /// No home directory to find `~/.docker` or `~/.ssh` in.
    #[error("no home directory for this user")]
    NoHome,

    /// A file could not be read, created, written or renamed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Berth's config file is not valid TOML of the expected shape.
    #[error("{path} is not a valid Berth config ({reason})")]
    ConfigParse {
        path: PathBuf,
        /// The parser's message (its one line, without the quoted snippet).
        reason: String,
    },

    /// The config could not be encoded (should not happen).
    #[error("cannot encode the config: {0}")]
    ConfigEncode(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// One field of one remote is unusable.
    #[error("remote {remote:?}: {field} {reason}")]
    InvalidRemote {
        remote: String,
        field: &'static str,
        /// What is wrong with the value, and what a valid one looks like.
        reason: String,
    },

    /// An edit or removal named a remote the config does not have.
    #[error("no remote named {0:?}")]
    NoSuchRemote(String),

    /// A remote's key lives in the keychain; the key material must come from there.
    #[error("remote {0:?} uses a keychain key")]
    NeedsKeychain(String),

    /// The docker CLI's `config.json` is not a JSON object; Berth never overwrites it.
    #[error("{path} is not valid docker CLI config ({reason}); Berth left it untouched")]
    DockerConfigMalformed { path: PathBuf, reason: String },

    /// A context's `meta.json` is not valid JSON; Berth never overwrites it.
    #[error("{path} is not a valid docker context ({reason})")]
    ContextMalformed { path: PathBuf, reason: String },

    /// A context to switch to does not exist.
    #[error("no docker context named {0:?}")]
    NoSuchContext(String),

    /// A name docker would refuse as a context name.
    #[error("{0:?} is not a valid docker context name")]
    BadContextName(String),

    /// An OpenSSH client config could not be parsed.
    #[error("cannot parse {path}: {source}")]
    SshConfig {
        path: PathBuf,
        #[source]
        source: ssh2_config::SshParserError,
    },

    /// A tray menu id that no menu item carries.
    #[error("unknown menu action {0:?}")]
    UnknownAction(String),

    /// Reaching a server, reading its host keys or known_hosts failed
    /// (the engine's own errors).
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),

    /// Trusting a key: the server offers another fingerprint than the one shown.
    #[error(
        "{host_port} now offers host key {offered}, not the {shown} you were shown; \
         nothing was trusted"
    )]
    HostKeyMismatch {
        host_port: String,
        shown: String,
        offered: String,
    },

    /// A keychain operation failed.
    #[error(transparent)]
    Keys(#[from] crate::keys::KeysError),

    /// Connecting a remote failed.
    #[error("remote {remote:?}: {source}")]
    Connect {
        remote: String,
        /// Boxed: the engine's error is large, and this enum is every
        /// desktop call's error.
        #[source]
        source: Box<crate::agent::AgentError>,
    },

    /// A remote was disconnected while it was connecting.
    #[error("remote {0:?}: connecting was cancelled")]
    Cancelled(String),

    /// An operation needs a connected remote.
    #[error("remote {0:?} is not connected")]
    NotConnected(String),
}

impl Advice for DesktopError {
    fn hint(&self) -> Option<Hint> {
        use DesktopError::*;
        Some(match self {
            NoConfigDir => Hint::SetBerthConfig,
            NoHome => Hint::SetHome,
            Io { .. } => Hint::CheckFilePermissions,
            ConfigParse { .. } => Hint::FixOrMoveFile,
            NoSuchRemote(_) => Hint::AddRemoteFirst,
            NeedsKeychain(_) => Hint::LoadFromKeychain,
            DockerConfigMalformed { .. } => Hint::FixFileAndRetry,
            ContextMalformed { .. } => Hint::RemoveContext,
            NoSuchContext(_) => Hint::CreateContextFirst,
            BadContextName(_) => Hint::ValidContextName,
            SshConfig { .. } => Hint::FixSshConfig,
            HostKeyMismatch { .. } => Hint::TestAgain,
            NotConnected(_) => Hint::ConnectFirst,
            Ssh(e) => return e.hint(),
            Keys(e) => return e.hint(),
            Connect { source, .. } => return source.hint(),
            ConfigEncode(_) | InvalidRemote { .. } | UnknownAction(_) | Cancelled(_) => {
                return None
            }
        })
    }
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
            let s = advice::explain(&e);
            assert!(!s.contains('\n') && !s.is_empty(), "{s}");
        }
    }
}
