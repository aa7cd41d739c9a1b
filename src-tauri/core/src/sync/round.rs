//! One sync round of a replica, in its mode: one-way (rescan the local
//! tree, diff it against the manifest of what the replica holds, apply)
//! or two-way (`two_way::round` against the ancestor kept on this machine).
//! Rounds run on the mount's own task (`mount_task`), which owns the
//! manifest, so rounds of one replica never overlap; each publishes what
//! the status shows (phase, error, counters, conflicts) as it goes.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::binds::LocalKind;
use super::manager::SyncManager;
use super::mount::{ConflictSeen, LastRound, Mount, MountStatus, Phase, RoundScope};
use super::reconcile::SyncMode;
use super::replica;
use super::scope::{scope_of, Dirty, Scope};
use super::tarball;
use super::tree::{self, Manifest};
use super::verify;
use super::SyncError;

/// A sync of a tree this large frees far more than it keeps (two manifests,
/// the operations, the serialized manifest): hand that back to the system.
const TRIM_AFTER_ENTRIES: usize = 10_000;

/// Conflicts the status keeps per replica (the newest).
const CONFLICTS_KEPT: usize = 50;

/// What a completed round saw.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RoundReport {
    /// The replica brought changes back (two-way): look again soon.
    pub(super) remote_changed: bool,
    /// How long the round took, scans included.
    pub(super) took: Duration,
    /// How long its scans took (two-way whole rounds; zero otherwise): the
    /// cost of looking at the replica again, transfers left out.
    pub(super) scans: Duration,
    /// It looked only at the watcher's paths: its cost says nothing of a
    /// whole round's.
    pub(super) scoped: bool,
}

impl RoundReport {
    /// What looking again costs: the scans when known, else the round.
    pub(super) fn cost(&self) -> Duration {
        if self.scans.is_zero() {
            self.took
        } else {
            self.scans
        }
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Takes the watcher's paths for the round about to scan.
fn take_dirty(m: &mut Mount) -> Dirty {
    std::mem::take(&mut m.dirty)
}

fn warn_unrecorded(local: &Path, e: &std::io::Error) {
    tracing::warn!(
        "cannot record the sync state of {} on this machine: {e}",
        local.display()
    );
}

/// Counts a completed round in what the status shows: `tree` is what
/// both sides hold after it, `scope` and `scanned` what it read.
fn completed(
    st: &mut MountStatus,
    tree: &Manifest,
    scope: RoundScope,
    scanned: u64,
    uploaded: u64,
) {
    count(st, tree);
    st.last_round = Some(LastRound { scope, scanned });
    st.syncs += 1;
    st.uploaded_files += uploaded;
    st.last_sync_unix = now_unix();
}

fn count(st: &mut MountStatus, tree: &Manifest) {
    st.files = tree
        .values()
        .filter(|e| matches!(e, tree::EntryKind::File { .. }))
        .count() as u64;
    st.bytes = tree
        .values()
        .map(|e| match e {
            tree::EntryKind::File { size, .. } => *size,
            _ => 0,
        })
        .sum();
}

impl SyncManager {
    /// One whole round of `rep` in its mode.
    pub(super) async fn sync_now(&self, m: &mut Mount) -> Result<RoundReport, SyncError> {
        self.sync_round(m, false).await
    }

    /// One round of `rep` in its mode; `local_only`: nothing but the file
    /// watcher's paths are known to have changed, so a two-way round may
    /// look at just those (see `scope`).
    pub(super) async fn sync_round(
        &self,
        m: &mut Mount,
        local_only: bool,
    ) -> Result<RoundReport, SyncError> {
        let started = Instant::now();
        let result = match m.rep.mode {
            #[cfg(target_os = "linux")]
            SyncMode::TwoWay => self.two_way(m, local_only).await,
            // elsewhere two-way mounts sync one way (no local writer yet)
            _ => self.one_way(m, local_only).await.map(|scoped| RoundReport {
                scoped,
                ..RoundReport::default()
            }),
        };
        result.map(|r| RoundReport {
            took: started.elapsed(),
            ..r
        })
    }

    /// Rescan (all of it, or the watcher's paths) → diff → apply → record.
    /// Says whether the round looked at the watcher's paths only.
    async fn one_way(&self, m: &mut Mount, local_only: bool) -> Result<bool, SyncError> {
        let dirty = take_dirty(m);
        let rep = m.rep.clone();
        let src = &rep.source;
        let (root, base) = match src.kind {
            LocalKind::Dir => (src.local.clone(), src.local.clone()),
            LocalKind::File => (
                src.local.clone(),
                src.local
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
            ),
        };
        let rules = self.exclusions();
        // the scan below sees every change reported until now
        rep.progress.take_pending();
        // a vanished root is refused before anything else looks at it
        if !root.exists() {
            let err = tree::safety_check(false, &Manifest::new(), &m.manifest)
                .map_err(|e| tree::with_local(e, &root));
            if let Err(e) = err {
                m.show_error(&e);
                return Err(e);
            }
        }
        let scope = match (local_only, m.manifest.is_empty(), src.kind) {
            (true, false, LocalKind::Dir) => scope_of(&root, &dirty, rules.gitignore),
            _ => Scope::Full,
        };
        if let Scope::Paths(paths) = &scope {
            match self.one_way_scoped(m, &rules, paths).await {
                Ok(Some(sent)) => {
                    let manifest = &m.manifest;
                    m.status.send_modify(|st| {
                        st.settled();
                        let scope = RoundScope::Changes;
                        completed(st, manifest, scope, sent.scanned, sent.files);
                    });
                    return Ok(true);
                }
                Ok(None) => {}
                Err(e) => {
                    m.show_error(&e);
                    return Err(e);
                }
            }
        }
        let scan_root = root.clone();
        let scan_rules = rules.clone();
        let local = tokio::task::spawn_blocking(move || tree::scan(&scan_root, &scan_rules))
            .await
            .map_err(|e| SyncError::Unreadable {
                path: root.clone(),
                reason: e.to_string(),
            })?;
        let manifest = &mut m.manifest;
        let status = &m.status;
        let stale = &mut m.manifest_stale;
        let result = async {
            let local = local?;
            // an excluded path is neither uploaded nor deleted: what the
            // replica holds there stays, unclaimed by its manifest
            tree::forget_excluded(manifest, &local, &root, &rules)?;
            tree::safety_check(root.exists(), &local, manifest)
                .map_err(|e| tree::with_local(e, &root))?;
            let first = manifest.is_empty();
            let mut ops = tree::diff(&local, manifest);
            if !first {
                ops = verify::drop_unchanged(&self.ssh, &base, &src.replica, ops, manifest).await;
            }
            let (sftp, _) = self.sftp().await?;
            rep.progress.begin(&ops);
            if !first && !ops.is_empty() {
                super::mount::set_phase(status, Phase::Syncing);
            }
            let how = match src.kind {
                LocalKind::Dir => replica::Write::Replace,
                LocalKind::File => replica::Write::InPlace,
            };
            let progress = &rep.progress;
            let what = format!("syncing {}", src.local.display());
            let (applied, failed) = progress
                .told(&what, async {
                    match src.kind {
                        // nothing uses a replica before its first sync completes
                        LocalKind::Dir if first => {
                            tarball::apply_first(
                                &self.ssh,
                                &self.shell,
                                &sftp,
                                &base,
                                &src.replica,
                                &ops,
                                progress,
                            )
                            .await
                        }
                        _ => {
                            let shell = Some((self.ssh.as_ref(), &self.shell));
                            replica::apply(shell, &sftp, &base, &src.replica, &ops, how, progress)
                                .await
                        }
                    }
                })
                .await;
            if let Some(e) = failed {
                // keep exactly what took effect, so the retry redoes the rest
                let partial = tree::after_ops(manifest, &local, &ops, &applied.done);
                let _ = replica::write_manifest(&sftp, &src.replica, &partial).await;
                *manifest = partial;
                return Err(e);
            }
            // also when only mtimes moved (verified unchanged): not re-checked next time
            if !ops.is_empty() || local != *manifest || *stale {
                replica::write_manifest(&sftp, &src.replica, &local).await?;
                *stale = false;
            }
            Ok::<_, SyncError>((applied, local))
        }
        .await;
        let out = match result {
            Ok((applied, local)) => {
                m.status.send_modify(|st| {
                    st.settled();
                    let scanned = local.len() as u64;
                    completed(st, &local, RoundScope::All, scanned, applied.files);
                });
                let large = local.len() > TRIM_AFTER_ENTRIES;
                m.manifest = local;
                if large {
                    crate::mem::release_freed_memory();
                }
                Ok(())
            }
            Err(e) => {
                m.show_error(&e);
                Err(e)
            }
        };
        out.map(|()| false)
    }

    /// Scan both sides (all of them, or the watcher's paths) → reconcile
    /// against the ancestor → apply both ways → record the new ancestor
    /// here (and, after a whole round, what the replica holds beside it).
    #[cfg(target_os = "linux")]
    async fn two_way(&self, m: &mut Mount, local_only: bool) -> Result<RoundReport, SyncError> {
        m.rep.progress.take_pending();
        // taken before the scans: what changes during them is the next round's
        let dirty = take_dirty(m);
        let rep = m.rep.clone();
        let src = &rep.source;
        let ancestor = &mut m.manifest;
        let status = &m.status;
        let stale = &mut m.manifest_stale;
        let result = async {
            let (sftp, _) = self.sftp().await?;
            let first = ancestor.is_empty();
            let busy = || {
                if !first {
                    super::mount::set_phase(status, Phase::Syncing);
                }
            };
            let rules = self.exclusions();
            let ends = super::two_way::Ends {
                ssh: &self.ssh,
                shell: &self.shell,
                sftp: &sftp,
                local: &src.local,
                kind: src.kind,
                replica: &src.replica,
                rules: &rules,
                progress: &rep.progress,
                busy: &busy,
            };
            let scope = match (local_only, first, src.kind) {
                (true, false, LocalKind::Dir) => scope_of(&src.local, &dirty, rules.gitignore),
                _ => Scope::Full,
            };
            if let Scope::Paths(paths) = &scope {
                if let Some((mut out, used)) =
                    super::two_way_scoped::round(&ends, ancestor, paths).await?
                {
                    let part = std::mem::take(&mut out.agreed);
                    let changes = used.splice(ancestor, part);
                    if !changes.is_empty() {
                        if let Err(e) = self.ancestors.record(&src.replica, &changes, ancestor) {
                            warn_unrecorded(&src.local, &e);
                        }
                        *stale = true;
                    }
                    return Ok::<_, SyncError>(out);
                }
            }
            let mut out = super::two_way::round(&ends, ancestor).await?;
            let changed = out.agreed != *ancestor;
            // the journal keeps what rounds over changed paths agreed
            if changed {
                if let Err(e) = self.ancestors.save(&src.replica, &out.agreed) {
                    // the round happened; the next one compares again from the old one
                    warn_unrecorded(&src.local, &e);
                }
            }
            if changed || *stale {
                // for the replica's own checks (folder repair, the orphan
                // sweep, a switch to one-way): what it holds now
                if replica::write_manifest(&sftp, &src.replica, &out.agreed)
                    .await
                    .is_ok()
                {
                    *stale = false;
                }
            }
            // an unchanged ancestor stays where it lies in memory: a poll that
            // found nothing leaves the agent as it was
            let agreed = std::mem::take(&mut out.agreed);
            if changed {
                *ancestor = agreed;
            }
            Ok(out)
        }
        .await;
        // one change of what the status shows for the whole round
        let mut st = m.status.borrow().clone();
        let ancestor = &m.manifest;
        let report = match result {
            Ok(out) => {
                for c in &out.conflicts {
                    tracing::warn!(
                        "conflict in {}: {} changed on both sides; this machine's version \
                         stays, the remote's is kept as {}",
                        src.local.display(),
                        c.path,
                        c.kept_as
                    );
                    st.conflicts.push(ConflictSeen {
                        path: c.path.clone(),
                        kept_as: c.kept_as.clone(),
                        winner: c.winner.to_string(),
                        at_unix: now_unix(),
                    });
                }
                let over = st.conflicts.len().saturating_sub(CONFLICTS_KEPT);
                st.conflicts.drain(..over);
                st.fetched_files += out.fetched;
                let scope = match out.scoped {
                    true => RoundScope::Changes,
                    false => RoundScope::All,
                };
                completed(&mut st, ancestor, scope, out.scanned, out.uploaded);
                let large = !out.scoped && ancestor.len() > TRIM_AFTER_ENTRIES;
                let remote_changed = out.remote_changed();
                let scoped = out.scoped;
                let scans = out.scans;
                if large {
                    crate::mem::release_freed_memory();
                }
                match out.failed {
                    Some(e) => {
                        st.failed(&e);
                        Err(e)
                    }
                    None => {
                        st.settled();
                        Ok(RoundReport {
                            remote_changed,
                            scoped,
                            scans,
                            ..RoundReport::default()
                        })
                    }
                }
            }
            Err(e) => {
                st.failed(&e);
                Err(e)
            }
        };
        m.status.send_replace(st);
        report
    }
}
