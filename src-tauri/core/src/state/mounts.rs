//! What the status shows of a synced bind-mount source ([`MountView`]):
//! where it is on both sides, how it syncs, its phase, the last round, the
//! transfer under way, the changes waiting both ways and the conflicts
//! kept. Each mount's task publishes the parts that change with rounds; the
//! sync manager assembles the view (`SyncManager::status`).

use serde::{Deserialize, Serialize};

use crate::sync::reconcile::SyncMode;

/// One synced source as the status and the window show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MountView {
    /// The folder or file on this machine, absolute.
    pub local: String,
    /// Its replica on the remote, which containers mount.
    pub remote: String,
    pub mode: SyncMode,
    /// Files brought back from the replica (two-way).
    pub fetched_files: u64,
    /// The newest conflicts, oldest first.
    pub conflicts: Vec<ConflictSeen>,
    pub last_round: Option<LastRound>,
    /// Ids of the running containers that mount it.
    pub containers: Vec<String>,
    pub state: Phase,
    pub progress: TransferProgress,
    /// Local changes waiting for the next round.
    pub pending_changes: u64,
    /// Changes found on the replica that the round under way brings back.
    pub pending_remote_changes: u64,
    /// Why the last round failed (state `error`).
    pub error: Option<String>,
    /// What to do about `error` (each frontend words it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<crate::hint::Hint>,
    /// Files and bytes of the tree as last agreed.
    pub files: u64,
    pub bytes: u64,
    /// Rounds completed.
    pub syncs: u64,
    pub uploaded_files: u64,
    /// When the last round completed (Unix seconds; 0: none yet).
    pub last_sync_unix: u64,
    /// Where the patterns that leave files out come from (`.berthignore`,
    /// `.gitignore`, the settings).
    pub exclusions: Vec<String>,
}

/// Where a mount is in its life.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum Phase {
    /// Its first round has not completed yet.
    #[default]
    #[serde(rename = "initial sync")]
    InitialSync,
    /// A round is carrying changes out.
    #[serde(rename = "syncing")]
    Syncing,
    /// Up to date; the watcher and polls start the next round.
    #[serde(rename = "watching")]
    Watching,
    /// The last round failed (`MountView::error` says why); it is retried.
    #[serde(rename = "error")]
    Error,
}

/// What a round read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoundScope {
    /// The watcher's (or a look's) paths only.
    Changes,
    /// Both whole trees (one in one-way mode).
    All,
}

/// The last round's scope and how many entries it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LastRound {
    pub scope: RoundScope,
    /// Entries read, both sides together in two-way mode.
    pub scanned: u64,
}

/// A conflict a round resolved by keeping both versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConflictSeen {
    /// Where both sides changed it; the winner's version is there.
    pub path: String,
    /// Where the other version is, on both sides.
    pub kept_as: String,
    /// `local` or `remote`: whose version stayed at `path`.
    pub winner: String,
    pub at_unix: u64,
}

/// The transfer under way (or the last one): files and bytes done of total.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct TransferProgress {
    pub files_done: u64,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// The average since the transfer began; 0 before any byte.
    pub bytes_per_sec: u64,
}
