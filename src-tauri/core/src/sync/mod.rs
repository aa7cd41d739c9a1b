//! Bind-mount sync: a bind mount whose source is on this machine is uploaded
//! over SFTP (on the existing SSH session) to a replica on the remote, the
//! mount is rewritten to the replica, and local changes keep flowing to it,
//! one way, local wins. `binds` and `tree` decide (pure); `replica` carries
//! the operations out over SFTP; `manager` knows the replicas and who uses
//! them (`usage`); each mount's state is owned by its task (`mount`,
//! `mount_task`).

pub mod ancestor;
pub mod binds;
pub mod exclude;
#[cfg(target_os = "linux")]
pub mod fetch;
pub mod gc;
pub mod lifecycle;
pub mod local_file;
#[cfg(target_os = "linux")]
pub mod local_write;
pub mod manager;
pub mod mount;
mod mount_task;
pub(crate) mod one_way_scoped;
pub mod placer;
pub mod progress;
pub mod reconcile;
pub mod remote_changes;
pub mod remote_find;
pub mod remote_path;
pub mod remote_scan;
pub mod remote_shell;
pub mod replica;
mod round;
pub mod scope;
pub mod sftp_ext;
pub mod tarball;
pub mod tree;
#[cfg(target_os = "linux")]
pub mod two_way;
#[cfg(target_os = "linux")]
pub mod two_way_scoped;
pub mod untrusted;
pub mod upload;
pub mod usage;
pub mod verify;
pub mod view;
mod watch;

use crate::hint::{Advice, Hint};

pub use lifecycle::SyncEvents;
pub use manager::SyncManager;

/// Why a bind mount could not be synced; each message names the file,
/// [`Advice::hint`] the fix.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("invalid bind mount {spec:?}: {reason}")]
    InvalidBind { spec: String, reason: String },

    #[error("cannot read {path}: {reason}")]
    Unreadable {
        path: std::path::PathBuf,
        reason: String,
    },

    #[error("refusing to sync {local}: {reason}; the replica on the remote is left as it was")]
    Unsafe {
        local: std::path::PathBuf,
        reason: String,
    },

    #[error("the remote sshd offers no SFTP subsystem, which bind-mount sync needs ({reason})")]
    NoSftp { reason: String },

    #[error("cannot write {path} on the remote: {reason}")]
    Remote {
        path: String,
        reason: String,
        /// The fix, when the reason suggests one (full disk, permissions).
        hint: Option<Hint>,
    },

    /// A replica was not removed: it holds what the local folder lacks.
    #[error(
        "kept the replica {replica} on the remote: it holds {count} entries the local folder \
         lacks ({sample}), written there by a container"
    )]
    Kept {
        replica: String,
        count: usize,
        sample: String,
    },

    /// Writing a change from the remote into the local folder failed.
    #[error(
        "cannot write {path} on this machine: {source} (the change from the remote waits in \
         the replica until it can be written)"
    )]
    LocalWrite {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The mount's task ended (Berth is shutting down, or it retired)
    /// before the round asked for ran.
    #[error("the sync of {local} stopped before this round ran")]
    Stopped { local: std::path::PathBuf },

    #[error("SSH session unavailable for sync: {0}")]
    Ssh(#[from] crate::ssh::SshError),
}

impl Advice for SyncError {
    fn hint(&self) -> Option<Hint> {
        use SyncError::*;
        match self {
            InvalidBind { .. } | Unsafe { .. } => None,
            Unreadable { .. } => Some(Hint::PermissionsOrIgnore),
            NoSftp { .. } => Some(Hint::EnableSftp),
            Remote { hint, .. } => hint.clone(),
            Kept { .. } => Some(Hint::CopyOutReplica),
            LocalWrite { .. } => Some(Hint::CheckFilePermissions),
            Stopped { .. } => Some(Hint::TryAgain),
            Ssh(e) => e.hint(),
        }
    }
}

impl SyncError {
    /// A remote failure, with the fix its reason suggests.
    pub fn remote(path: &str, reason: impl std::fmt::Display) -> Self {
        let reason = reason.to_string();
        let lower = reason.to_lowercase();
        let hint = if lower.contains("permission") {
            Some(Hint::WritableMountsRoot)
        } else if ["space", "quota", "failure", "wrote only"]
            .iter()
            .any(|m| lower.contains(m))
        {
            // "wrote only N of M bytes": tar's word for a write the disk cut short
            Some(Hint::FreeRemoteSpace)
        } else {
            None
        };
        SyncError::Remote {
            path: path.to_string(),
            reason,
            hint,
        }
    }
}
