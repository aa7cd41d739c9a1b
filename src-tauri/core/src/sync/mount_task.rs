//! The task that owns one mount ([`Mount`]) and runs all its rounds, one
//! after another: first the round that makes the replica (asked for by
//! whoever adopts it; the watcher is on before it scans), then one for
//! each settled burst of local changes, each nudge or poll that found the
//! replica changed (two-way), and each round someone asks for; at the end
//! the last round and the replica's removal. It ends when the mount
//! retires or the manager shuts down.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::manager::SyncManager;
use super::mount::{Ask, Mount};
use super::one_way_scoped::MANIFEST_EVERY;
use super::reconcile::SyncMode;
use super::remote_changes::{self, RemoteTime};
use super::round::RoundReport;
use super::watch::{
    local_watcher, note, poll_interval, FirstLook, ACTIVE_ROUNDS, RETRY_FIRST, RETRY_MAX,
    WHOLE_LOOK_EVERY,
};
use crate::backoff::Backoff;
use crate::sync::binds::LocalKind;

impl SyncManager {
    /// Starts the task owning `mount`. It waits for the first round to be
    /// asked for ([`super::mount::Replica::sync`]), then watches; `first`
    /// says where a two-way folder's first poll starts listing changes.
    pub(super) fn spawn_mount(self: &Arc<Self>, mount: Mount, first: FirstLook) {
        let me = Arc::downgrade(self);
        tokio::spawn(run(me, mount, first));
    }
}

async fn run(me: Weak<SyncManager>, mut m: Mount, first: FirstLook) {
    let stop = m.rep.stop.clone();
    // watching before the first round scans: a change made while it runs
    // is the next round's, never lost between the two
    let (watcher, mut local) = match local_watcher(&m.rep) {
        Some((w, rx)) => (Some(w), Some(rx)),
        None => (None, None),
    };
    // the round that makes the replica; nothing else happens before it
    let first_round = loop {
        let ask = tokio::select! {
            _ = stop.cancelled() => return,
            a = m.asked.recv() => match a { Some(a) => a, None => return },
        };
        let Some(mgr) = me.upgrade() else { return };
        match ask {
            Ask::Sync(reply) => {
                let done = mgr.sync_now(&mut m).await;
                let cost = done.as_ref().ok().map(RoundReport::cost);
                let _ = reply.send(done);
                if let Some(cost) = cost {
                    break cost;
                }
            }
            Ask::Nudge => {}
            Ask::Retire(done) => {
                mgr.retire_mount(&mut m).await;
                let _ = done.send(());
                return;
            }
        }
    };
    let Some(mgr) = me.upgrade() else { return };
    let ssh = mgr.ssh.clone();
    let two_way = m.rep.mode == SyncMode::TwoWay;
    let folder = m.rep.source.kind == LocalKind::Dir;
    // two-way: when the replica was last looked at whole (the remote's
    // clock), so a poll lists only what changed since
    let mut seen_at: Option<RemoteTime> = match first {
        FirstLook::Since(at) => Some(at),
        FirstLook::Whole => None,
        FirstLook::AfterFirstSync => remote_changes::now(&mgr.ssh, &mgr.shell).await,
    };
    drop(mgr);
    let mut warned = false;
    // after a failed round (a file deleted mid-scan, the remote briefly
    // unreachable, a vanished root) try again without waiting for a change
    let mut retry = Backoff::new(RETRY_FIRST, RETRY_MAX);
    // what the last whole round took (the poll's interval follows it)
    let mut last_round = first_round;
    let mut active = 0u32;
    let mut whole_at = tokio::time::Instant::now();
    // what a look at what changed cost
    let mut look_cost: Option<Duration> = None;
    loop {
        let poll = poll_interval(look_cost.unwrap_or(last_round), active);
        let stale = !two_way && m.manifest_stale;
        let mut flush = false;
        let mut looked = false;
        let mut asked = None;
        let batch = tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(retry.remaining(Instant::now()).unwrap_or_default()),
                if retry.is_failing() => None,
            // changes made during an outage go out as soon as it ends
            _ = ssh.reconnected(), if retry.is_failing() => None,
            a = m.asked.recv() => match a {
                None => break,
                Some(Ask::Nudge) if !two_way => continue,
                Some(Ask::Nudge) => {
                    looked = true;
                    None
                }
                Some(a) => {
                    asked = Some(a);
                    None
                }
            },
            _ = tokio::time::sleep(poll), if two_way && !retry.is_failing() => {
                looked = true;
                None
            }
            b = recv(&mut local), if local.is_some() => match b {
                Some(b) => Some(b),
                None => break,
            },
            // one-way rounds over changed paths leave the replica's
            // manifest stale for a while; the quiet after them ends it
            _ = tokio::time::sleep(MANIFEST_EVERY), if stale => {
                flush = true;
                None
            }
        };
        let Some(mgr) = me.upgrade() else { break };
        match asked {
            Some(Ask::Sync(reply)) => {
                let done = mgr.sync_now(&mut m).await;
                match &done {
                    // the retry it had stands, or one starts
                    Err(e) if !retry.is_failing() => {
                        retry.failed(Instant::now(), e.to_string());
                    }
                    Err(_) => {}
                    Ok(_) => retry.succeeded(),
                }
                let _ = reply.send(done);
                continue;
            }
            Some(Ask::Retire(done)) => {
                // no round starts from a local change once it goes
                drop(watcher);
                mgr.retire_mount(&mut m).await;
                let _ = done.send(());
                return;
            }
            Some(Ask::Nudge) | None => {}
        }
        if flush {
            mgr.flush_manifest(&mut m).await;
            continue;
        }
        if let Some(Err(errors)) = &batch {
            if !warned {
                tracing::warn!(
                    "watching {} fell behind ({errors:?}); rescanning",
                    m.rep.source.local.display()
                );
                warned = true;
            }
        }
        if let Some(b) = &batch {
            note(&mut m.dirty, b);
        }
        // only the watcher's paths changed: a round over them suffices
        let mut local_only = matches!(batch, Some(Ok(_)));
        // coalesce whatever else arrived meanwhile
        if let Some(rx) = local.as_mut() {
            while let Ok(b) = rx.try_recv() {
                note(&mut m.dirty, &b);
            }
        }
        let mut whole_since = None;
        if looked && !retry.is_failing() && folder {
            let due = whole_at.elapsed() >= WHOLE_LOOK_EVERY;
            if let Some(at) = seen_at.as_ref().filter(|_| !due) {
                let t = tokio::time::Instant::now();
                let rep = &m.rep;
                let found = remote_changes::since(
                    &mgr.ssh,
                    &mgr.shell,
                    &rep.source.replica,
                    at,
                    &m.manifest,
                )
                .await;
                match found {
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
                        let local_root = rep.source.local.clone();
                        m.dirty.add(paths.iter().map(|p| local_root.join(p)));
                        m.status
                            .send_modify(|s| s.pending_remote = paths.len() as u64);
                        local_only = true;
                    }
                    None => seen_at = None,
                }
            }
        }
        if !local_only && two_way && folder {
            whole_since = remote_changes::now(&mgr.ssh, &mgr.shell).await;
        }
        let done = mgr.sync_round(&mut m, local_only).await;
        // what the look found is carried (or to be retried from a whole look)
        m.status
            .send_if_modified(|s| std::mem::take(&mut s.pending_remote) > 0);
        match done {
            Ok(report) => {
                retry.succeeded();
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
                let next = retry.failed(Instant::now(), e.to_string());
                tracing::warn!(
                    "sync of {} failed: {e}; retrying in {next:?}",
                    m.rep.source.local.display()
                );
            }
        }
    }
}

/// The next burst from the watcher (`local` is `Some` whenever this runs).
async fn recv(
    local: &mut Option<super::watch::LocalChanges>,
) -> Option<notify_debouncer_full::DebounceEventResult> {
    match local {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
