//! What starts a sync round of a replica: settled bursts of local changes
//! (a file watcher), and, for two-way mounts, the remote side: a nudge when
//! one of its containers stops or an exec in it ends ([`SyncManager::nudge`]),
//! else a poll whose interval follows the cost of a scan ([`poll_interval`]).
//! One task per replica runs its rounds one after another; it ends when the
//! replica retires or the manager shuts down.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use tokio::sync::mpsc;

use super::binds::LocalKind;
use super::manager::{Replica, SyncManager};
use super::one_way_scoped::MANIFEST_EVERY;
use super::reconcile::SyncMode;
use super::remote_changes::{self, RemoteTime};
use std::sync::atomic::Ordering;

/// First and longest wait before a failed sync is tried again.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(30);

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
const WHOLE_LOOK_EVERY: Duration = Duration::from_secs(300);
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
    /// Runs a round of every two-way replica container `id` uses, now: it
    /// stopped, or an exec in it ended, so what it wrote is complete.
    pub(super) async fn nudge(&self, id: &str) {
        let all = self.replicas.lock().await;
        for rep in all.values() {
            let uses = rep
                .containers
                .lock()
                .map(|c| c.contains(id))
                .unwrap_or(false);
            if uses && rep.mode == SyncMode::TwoWay {
                rep.nudge.notify_one();
            }
        }
    }

    /// Watches the source; each settled burst of changes, each nudge and
    /// each poll (two-way) triggers one round. `first_round`: the cost of
    /// the round that made the replica (the first poll waits accordingly).
    /// `seen`: when the replica was last looked at whole (two-way), so the
    /// first poll can list what changed since instead of reading it all.
    pub(super) fn start_watching(
        self: &Arc<Self>,
        rep: &Arc<Replica>,
        first_round: Duration,
        seen: FirstLook,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (path, mode) = match rep.source.kind {
            LocalKind::Dir => (rep.source.local.clone(), RecursiveMode::Recursive),
            // editors replace a file by renaming over it: watch its directory
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
        let dirty = rep.dirty.clone();
        let debouncer = notify_debouncer_full::new_debouncer_opt::<
            _,
            notify::RecommendedWatcher,
            notify_debouncer_full::NoCache,
        >(
            DEBOUNCE,
            None,
            move |res: notify_debouncer_full::DebounceEventResult| {
                // our own scans and uploads open files: reads are not changes
                let changed = match &res {
                    Ok(events) => events
                        .iter()
                        .filter(|e| !matches!(e.kind, notify::EventKind::Access(_)))
                        .map(|e| e.paths.len().max(1) as u64)
                        .sum(),
                    Err(_) => 1,
                };
                if changed > 0 {
                    pending.add_pending(changed);
                    if let Ok(mut d) = dirty.lock() {
                        match &res {
                            Ok(events) => {
                                for e in events {
                                    if e.need_rescan() {
                                        d.lost();
                                    } else if !matches!(e.kind, notify::EventKind::Access(_)) {
                                        d.add(e.paths.iter().cloned());
                                    }
                                }
                            }
                            Err(_) => d.lost(),
                        }
                    }
                    let _ = tx.send(res);
                }
            },
            // every batch leads to a rescan, so renames need no pairing: no file-id cache
            notify_debouncer_full::NoCache,
            notify::Config::default(),
        );
        let watching = match debouncer {
            Ok(mut d) => match d.watch(&path, mode) {
                Ok(()) => {
                    // adding a watch walks the whole tree once: give back
                    // what that walk allocated
                    crate::mem::release_freed_memory();
                    Some(d)
                }
                Err(e) => {
                    tracing::warn!(
                        "cannot watch {}: {e} (inotify limits?); local changes will sync on \
                         the next create",
                        path.display()
                    );
                    None
                }
            },
            Err(e) => {
                tracing::warn!(
                    "cannot watch {}: {e}; local changes will sync on the next create",
                    path.display()
                );
                None
            }
        };
        let has_watcher = watching.is_some();
        if let Ok(mut w) = rep.watcher.lock() {
            *w = watching;
        }
        let two_way = rep.mode == SyncMode::TwoWay;
        if !has_watcher && !two_way {
            return;
        }
        let me = Arc::downgrade(self);
        let rep = rep.clone();
        let stop = rep.stop.clone();
        let ssh = self.ssh.clone();
        tokio::spawn(async move {
            let mut warned = false;
            // after a failed sync (a file deleted mid-scan, the remote briefly
            // unreachable, a vanished root) try again without waiting for a change
            let mut retry: Option<Duration> = None;
            // what the last whole round took (the poll's are)
            let mut last_round = first_round;
            let mut active = 0u32;
            // two-way: when the replica was last looked at whole (the
            // remote's clock), so a poll lists only what changed since
            let mut seen_at: Option<RemoteTime> = match seen {
                FirstLook::Since(at) => Some(at),
                FirstLook::Whole => None,
                FirstLook::AfterFirstSync => match me.upgrade() {
                    Some(me) => remote_changes::now(&me.ssh, &me.shell).await,
                    None => return,
                },
            };
            let mut whole_at = tokio::time::Instant::now();
            // what such a poll cost (the poll's interval follows it)
            let mut look_cost: Option<Duration> = None;
            let folder = rep.source.kind == LocalKind::Dir;
            loop {
                let poll = poll_interval(look_cost.unwrap_or(last_round), active);
                let stale = !two_way && rep.remote_manifest_stale.load(Ordering::Relaxed);
                let mut flush = false;
                let mut looked = false;
                let batch = tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(retry.unwrap_or_default()), if retry.is_some() => None,
                    // changes made during an outage go out as soon as it ends
                    _ = ssh.reconnected(), if retry.is_some() => None,
                    _ = rep.nudge.notified(), if two_way => {
                        looked = true;
                        None
                    }
                    _ = tokio::time::sleep(poll), if two_way && retry.is_none() => {
                        looked = true;
                        None
                    }
                    b = rx.recv(), if has_watcher => match b { Some(b) => Some(b), None => break },
                    // one-way rounds over changed paths leave the replica's
                    // manifest stale for a while; the quiet after them ends it
                    _ = tokio::time::sleep(MANIFEST_EVERY), if stale => {
                        flush = true;
                        None
                    }
                };
                if flush {
                    if let Some(me) = me.upgrade() {
                        me.flush_manifest(&rep).await;
                    }
                    continue;
                }
                if let Some(Err(errors)) = &batch {
                    if !warned {
                        tracing::warn!(
                            "watching {} fell behind ({errors:?}); rescanning",
                            rep.source.local.display()
                        );
                        warned = true;
                    }
                }
                // only the watcher's paths changed: a round over them suffices
                let mut local_only = matches!(batch, Some(Ok(_)));
                // coalesce whatever else arrived meanwhile
                while rx.try_recv().is_ok() {}
                let Some(me) = me.upgrade() else { break };
                let mut whole_since = None;
                if looked && retry.is_none() && folder {
                    let due = whole_at.elapsed() >= WHOLE_LOOK_EVERY;
                    if let Some(at) = seen_at.as_ref().filter(|_| !due) {
                        let t = tokio::time::Instant::now();
                        match me.replica_changes(&rep, at).await {
                            Some((now, paths)) => {
                                seen_at = Some(now);
                                look_cost = Some(t.elapsed());
                                if paths.is_empty() {
                                    active = active.saturating_sub(1);
                                    continue;
                                }
                                tracing::debug!(
                                    replica = rep.source.replica,
                                    paths = paths.len(),
                                    "changed on the replica since the last look"
                                );
                                // rescanned on both sides, as the watcher's paths are
                                if let Ok(mut d) = rep.dirty.lock() {
                                    d.add(paths.iter().map(|p| rep.source.local.join(p)));
                                }
                                local_only = true;
                            }
                            None => seen_at = None,
                        }
                    }
                }
                if !local_only && two_way && folder {
                    whole_since = remote_changes::now(&me.ssh, &me.shell).await;
                }
                match me.sync_round(&rep, local_only).await {
                    Ok(report) => {
                        retry = None;
                        if !report.scoped {
                            last_round = report.cost();
                            look_cost = None;
                            if whole_since.is_some() {
                                seen_at = whole_since;
                                whole_at = tokio::time::Instant::now();
                            }
                        }
                        active = match (report.remote_changed, report.scoped) {
                            (true, _) => ACTIVE_ROUNDS,
                            // the close follow counts the replica's rounds
                            (false, true) => active,
                            (false, false) => active.saturating_sub(1),
                        };
                    }
                    Err(e) => {
                        seen_at = None;
                        let next = retry.map_or(RETRY_FIRST, |d| (d * 2).min(RETRY_MAX));
                        tracing::warn!(
                            "sync of {} failed: {e}; retrying in {next:?}",
                            rep.source.local.display()
                        );
                        retry = Some(next);
                    }
                }
            }
        });
    }

    /// What changed in `rep`'s replica since `at`, compared with its
    /// ancestor: the remote's time now and the paths to rescan; `None` when
    /// only a whole round can tell.
    async fn replica_changes(
        &self,
        rep: &Replica,
        at: &RemoteTime,
    ) -> Option<(RemoteTime, std::collections::BTreeSet<String>)> {
        let ancestor = rep.manifest.lock().await;
        remote_changes::since(&self.ssh, &self.shell, &rep.source.replica, at, &ancestor).await
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
