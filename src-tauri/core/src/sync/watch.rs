//! What starts a sync round of a replica: settled bursts of local changes
//! (a file watcher), and, for two-way mounts, the remote side: a nudge when
//! one of its containers stops or an exec in it ends ([`SyncManager::nudge`]),
//! else a poll whose interval follows the cost of a scan ([`poll_interval`]).
//! The mount's task (`mount_task`) acts on them, one round at a time.

use std::path::Path;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, NoCache};
use tokio::sync::mpsc;

use super::binds::LocalKind;
use super::manager::SyncManager;
use super::mount::Replica;
use super::reconcile::SyncMode;
use super::remote_changes::RemoteTime;
use super::scope::Dirty;

/// First and longest wait before a failed sync is tried again.
pub(super) const RETRY_FIRST: Duration = Duration::from_millis(200);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(30);

/// How long the watcher waits for a burst of changes to settle.
const DEBOUNCE: Duration = Duration::from_millis(30);

/// Bounds of the remote poll, and how many times the cost of a round it waits.
const POLL_MIN: Duration = Duration::from_millis(1000);
const POLL_MAX: Duration = Duration::from_secs(30);
const POLL_COST_FACTOR: u32 = 10;
/// The poll right after a round that brought changes back: a container
/// that writes keeps writing, so follow it closely for a while.
const POLL_ACTIVE: Duration = Duration::from_millis(250);
/// A poll looks at the whole replica at least this often; in between it
/// lists only what changed (`remote_changes`), which cannot miss a change
/// on a file system that keeps ctimes, and this bounds what one that does
/// not could hide.
pub(super) const WHOLE_LOOK_EVERY: Duration = Duration::from_secs(300);
/// Rounds the poll stays close after a remote change.
pub(super) const ACTIVE_ROUNDS: u32 = 4;

/// When to look at the replica again: `active` rounds after one that
/// brought remote changes, soon; otherwise ten times what the last round
/// took (a large tree is not rescanned back to back), between one second
/// and thirty. Pure.
pub fn poll_interval(last_round: Duration, active: u32) -> Duration {
    if active > 0 {
        return POLL_ACTIVE;
    }
    (last_round * POLL_COST_FACTOR).clamp(POLL_MIN, POLL_MAX)
}

/// Where a two-way folder's first poll starts listing what changed.
#[derive(Debug)]
pub(super) enum FirstLook {
    /// Changes after this moment (taken before the first round).
    Since(RemoteTime),
    /// Changes after the first round: the replica was made for a create,
    /// so nothing but that round wrote to it before.
    AfterFirstSync,
    /// The first poll looks at the whole replica.
    Whole,
}

impl SyncManager {
    /// Nudges every two-way replica container `id` uses: it stopped, or an
    /// exec in it ended, so what it wrote is complete.
    pub(super) async fn nudge(&self, id: &str) {
        let all = self.replicas.lock().await;
        for (rep, usage) in all.values() {
            if usage.uses(id) && rep.mode == SyncMode::TwoWay {
                rep.nudge();
            }
        }
    }
}

/// The local side's changes, as the watcher's thread hands them to the
/// mount's task.
pub(super) type LocalChanges = mpsc::UnboundedReceiver<DebounceEventResult>;

/// A watcher of `rep`'s source (recursive for a folder; a file's folder,
/// as editors replace a file by renaming over it) sending each settled
/// burst of changes; `None` when the system refuses one (said in the log).
pub(super) fn local_watcher(
    rep: &Replica,
) -> Option<(Debouncer<notify::RecommendedWatcher, NoCache>, LocalChanges)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (path, mode) = match rep.source.kind {
        LocalKind::Dir => (rep.source.local.clone(), RecursiveMode::Recursive),
        LocalKind::File => (
            rep.source
                .local
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            RecursiveMode::NonRecursive,
        ),
    };
    let pending = rep.progress.clone();
    let changes = rep.changes.clone();
    let debouncer =
        notify_debouncer_full::new_debouncer_opt::<_, notify::RecommendedWatcher, NoCache>(
            DEBOUNCE,
            None,
            move |res: DebounceEventResult| {
                // our own scans and uploads open files: reads are not changes
                let changed: u64 = match &res {
                    Ok(events) => events
                        .iter()
                        .filter(|e| !matches!(e.kind, notify::EventKind::Access(_)))
                        .map(|e| e.paths.len().max(1) as u64)
                        .sum(),
                    Err(_) => 1,
                };
                if changed > 0 {
                    pending.add_pending(changed);
                    changes.bump();
                    let _ = tx.send(res);
                }
            },
            // every batch leads to a rescan, so renames need no pairing: no file-id cache
            NoCache,
            notify::Config::default(),
        );
    let refused = |e: notify::Error| {
        tracing::warn!(
            "cannot watch {}: {e} (inotify limits?); local changes will sync on the next create",
            path.display()
        );
    };
    let mut d = debouncer.map_err(refused).ok()?;
    d.watch(&path, mode).map_err(refused).ok()?;
    // adding a watch walks the whole tree once: give back what that walk allocated
    crate::mem::release_freed_memory();
    Some((d, rx))
}

/// Adds what one burst from the watcher changed to the paths the next
/// round reads (all of them when the watcher lost track).
pub(super) fn note(dirty: &mut Dirty, res: &DebounceEventResult) {
    match res {
        Ok(events) => {
            for e in events {
                if e.need_rescan() {
                    dirty.lost();
                } else if !matches!(e.kind, notify::EventKind::Access(_)) {
                    dirty.add(e.paths.iter().cloned());
                }
            }
        }
        Err(_) => dirty.lost(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poll_follows_the_cost_of_a_round_and_stays_close_after_changes() {
        let ms = Duration::from_millis;
        let table = [
            (ms(5), 0, ms(1000)),
            (ms(150), 0, ms(1500)),
            (ms(800), 0, ms(8000)),
            (ms(9000), 0, ms(30_000)),
            (ms(9000), 1, ms(250)),
            (ms(5), ACTIVE_ROUNDS, ms(250)),
        ];
        for (took, active, want) in table {
            assert_eq!(poll_interval(took, active), want, "{took:?} {active}");
        }
    }
}
