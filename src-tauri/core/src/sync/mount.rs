//! One synced mount: the handle everyone shares (`Replica`) and the state
//! only its task touches (`Mount`). The task (`mount_task`) runs every
//! round of the mount, one after another: the ones its watcher, polls and
//! nudges start, and the ones others ask for (a create that needs the
//! replica current, the last round before retiring). So the manifest, the
//! watcher's paths and the round's bookkeeping need no lock, and what the
//! status shows is published by that task alone ([`MountStatus`], a
//! `watch` channel: readers see each change, never a half-written one).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::state::Changes;
pub(crate) use crate::state::{ConflictSeen, LastRound, Phase, RoundScope};

use super::binds::SyncSource;
use super::progress::Progress;
use super::reconcile::SyncMode;
use super::round::RoundReport;
use super::scope::Dirty;
use super::tree::Manifest;
use super::SyncError;

/// What the status shows of a mount; published by its task after each
/// change of phase and each round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountStatus {
    pub phase: Phase,
    /// Why the last round failed (with `Phase::Error`).
    pub error: Option<String>,
    /// What to do about `error`.
    pub hint: Option<crate::hint::Hint>,
    /// Files and bytes of the tree as last agreed.
    pub files: u64,
    pub bytes: u64,
    pub last_sync_unix: u64,
    /// Rounds completed.
    pub syncs: u64,
    pub uploaded_files: u64,
    /// Files brought back from the replica (two-way).
    pub fetched_files: u64,
    /// The newest conflicts, oldest first.
    pub conflicts: Vec<ConflictSeen>,
    pub last_round: Option<LastRound>,
    /// Paths a look found changed on the replica that the round under way
    /// brings back (two-way); 0 once it is done. Local changes waiting are
    /// counted in `Progress::pending`.
    pub pending_remote: u64,
}

impl MountStatus {
    /// The round ended with `e`: shown until one succeeds.
    pub(super) fn failed(&mut self, e: &SyncError) {
        self.phase = Phase::Error;
        self.error = Some(crate::hint::what(e));
        self.hint = crate::hint::Advice::hint(e);
    }

    /// The round succeeded: up to date, watching.
    pub(super) fn settled(&mut self) {
        self.phase = Phase::Watching;
        self.error = None;
        self.hint = None;
    }
}

/// What others ask of a mount's task.
pub(super) enum Ask {
    /// A whole round now; its outcome is sent back.
    Sync(oneshot::Sender<Result<RoundReport, SyncError>>),
    /// One of its containers stopped or an exec ended: look at the replica.
    Nudge,
    /// The last round (two-way) and the replica's removal (unless kept);
    /// the task ends after it.
    Retire(oneshot::Sender<()>),
}

/// One synced source, as the manager, the lifecycle and the status share
/// it. Its state is its task's ([`Mount`]); this only asks and reads.
pub(super) struct Replica {
    pub(super) source: SyncSource,
    /// How it syncs, fixed when it is made.
    pub(super) mode: SyncMode,
    /// Files and bytes of the transfer under way, and changes waiting for
    /// the next round (counted by the watcher's thread and the uploads').
    pub(super) progress: Arc<Progress>,
    /// What the status shows, as its task last published it.
    pub(super) status: watch::Receiver<MountStatus>,
    /// The agent's change signal: bumped with each status change and each
    /// local change the watcher reports.
    pub(super) changes: Changes,
    /// Ends its task (retired, or the manager shut down).
    pub(super) stop: CancellationToken,
    asks: mpsc::UnboundedSender<Ask>,
}

impl Replica {
    /// A handle and the state its task will own.
    pub(super) fn new(
        source: SyncSource,
        mode: SyncMode,
        known: Manifest,
        stop: CancellationToken,
        changes: Changes,
    ) -> (Arc<Self>, Mount) {
        let (tx, status) = watch::channel(MountStatus::default());
        let (asks, asked) = mpsc::unbounded_channel();
        let rep = Arc::new(Self {
            source,
            mode,
            progress: Arc::default(),
            status,
            changes: changes.clone(),
            stop,
            asks,
        });
        let mount = Mount {
            rep: rep.clone(),
            manifest: known,
            dirty: Dirty::default(),
            manifest_stale: false,
            manifest_written: None,
            status: StatusTx { tx, changes },
            asked,
        };
        (rep, mount)
    }

    /// A whole round, run by its task after any under way.
    pub(super) async fn sync(&self) -> Result<RoundReport, SyncError> {
        let (tx, rx) = oneshot::channel();
        if self.asks.send(Ask::Sync(tx)).is_err() {
            return Err(self.stopped());
        }
        rx.await.unwrap_or_else(|_| Err(self.stopped()))
    }

    /// Asks for a look at the replica soon (two-way; nothing otherwise).
    pub(super) fn nudge(&self) {
        let _ = self.asks.send(Ask::Nudge);
    }

    /// Has its task do the last round and remove the replica; returns when
    /// that is done (or the task had already ended).
    pub(super) async fn retire(&self) {
        let (tx, rx) = oneshot::channel();
        if self.asks.send(Ask::Retire(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    fn stopped(&self) -> SyncError {
        SyncError::Stopped {
            local: self.source.local.clone(),
        }
    }
}

/// The state of one mount, owned by its task: no one else reads or
/// writes it.
pub(super) struct Mount {
    pub(super) rep: Arc<Replica>,
    /// One-way: the tree as the replica holds it after the last completed
    /// round. Two-way: the tree both sides last agreed on (the ancestor).
    pub(super) manifest: Manifest,
    /// The paths the watcher reported since a round last took them.
    pub(super) dirty: Dirty,
    /// Rounds over part of the tree changed the manifest since the
    /// replica's own copy of it was last written (the next whole round, or
    /// the quiet after one-way rounds, writes it).
    pub(super) manifest_stale: bool,
    /// When a one-way round over changed paths last wrote that copy (they
    /// write it at most every few seconds).
    pub(super) manifest_written: Option<Instant>,
    /// Where its status is published.
    pub(super) status: StatusTx,
    pub(super) asked: mpsc::UnboundedReceiver<Ask>,
}

impl Mount {
    /// The phase shown; readers are woken only when it changes.
    pub(super) fn set_phase(&self, phase: Phase) {
        set_phase(&self.status, phase);
    }

    /// Shows `e` as the mount's state until a round succeeds.
    pub(super) fn show_error(&self, e: &SyncError) {
        self.status.send_modify(|s| s.failed(e));
    }
}

/// Where a mount's task publishes its status: the `watch` the manager
/// reads, and the agent's [`Changes`], bumped with every change so that
/// whoever shows the status learns of it without polling.
pub(super) struct StatusTx {
    tx: watch::Sender<MountStatus>,
    changes: Changes,
}

impl StatusTx {
    pub(super) fn send_modify(&self, f: impl FnOnce(&mut MountStatus)) {
        self.tx.send_modify(f);
        self.changes.bump();
    }

    /// Publishes (and wakes readers) only if `f` says it changed something.
    pub(super) fn send_if_modified(&self, f: impl FnOnce(&mut MountStatus) -> bool) -> bool {
        let changed = self.tx.send_if_modified(f);
        if changed {
            self.changes.bump();
        }
        changed
    }

    pub(super) fn send_replace(&self, st: MountStatus) {
        self.tx.send_replace(st);
        self.changes.bump();
    }

    pub(super) fn borrow(&self) -> watch::Ref<'_, MountStatus> {
        self.tx.borrow()
    }
}

/// Shows `phase` (for a round holding parts of its [`Mount`] apart);
/// readers are woken only when it changes.
pub(super) fn set_phase(status: &StatusTx, phase: Phase) {
    status.send_if_modified(|s| {
        let changed = s.phase != phase;
        s.phase = phase;
        changed
    });
}
