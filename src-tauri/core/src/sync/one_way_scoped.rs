//! A one-way round over the paths the file watcher reported: the local
//! tree is read only there (`tree::scan_scope`), compared with the same
//! part of the manifest, and the difference applied to the replica, so an
//! edit costs the same in a tree of 100,000 files as in one of ten. The
//! manifest is spliced in memory; the replica's copy of it (what a
//! restarted agent starts from) is written at most every few seconds.
//!
//! `None` asks for a whole round instead, as in `two_way_scoped`: a folder
//! above the changed paths is not a folder, or the round would delete more
//! than [`MASS_DELETE_MIN_ENTRIES`] entries (the whole-tree safety rules
//! then judge it).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::manager::{Replica, SyncManager};
use super::scope::Paths;
use super::tree::{self, Exclusions, Manifest, Op, MASS_DELETE_MIN_ENTRIES};
use super::{replica, verify, SyncError};

/// How stale the replica's manifest may grow while rounds over changed
/// paths go on: an agent killed meanwhile redoes at most that much.
pub(super) const MANIFEST_EVERY: Duration = Duration::from_secs(5);

/// What a scoped one-way round did.
pub(super) struct Sent {
    /// Files uploaded.
    pub(super) files: u64,
    /// Local entries read.
    pub(super) scanned: u64,
}

impl SyncManager {
    /// One one-way round over `scope` of the folder replica `rep`, whose
    /// manifest (locked by the caller) is `manifest`.
    pub(super) async fn one_way_scoped(
        &self,
        rep: &Replica,
        manifest: &mut Manifest,
        rules: &Exclusions,
        scope: &Paths,
    ) -> Result<Option<Sent>, SyncError> {
        let src = &rep.source;
        let Some((local, used)) = tree::scan_scope_blocking(&src.local, rules, scope).await? else {
            return Ok(None);
        };
        let mut part = used.restrict(manifest);
        if !used.above_are_dirs(&part) && !used.is_empty() {
            return Ok(None);
        }
        // as in a whole round: what an exclusion hides stays in the replica,
        // unclaimed by the manifest
        tree::forget_excluded(&mut part, &local, &src.local, rules)?;
        let ops = tree::diff(&local, &part);
        let deleted = ops
            .iter()
            .filter(|op| matches!(op, Op::Remove(p) | Op::Rmdir(p) if !local.contains_key(p)))
            .count();
        if deleted > MASS_DELETE_MIN_ENTRIES {
            return Ok(None);
        }
        let ops = verify::drop_unchanged(&self.ssh, &src.local, &src.replica, ops, &part).await;
        let mut sent = Sent {
            files: 0,
            scanned: local.len() as u64,
        };
        let mut failed = None;
        let now = if ops.is_empty() {
            local
        } else {
            let (sftp, _) = self.sftp().await?;
            rep.progress.begin(&ops);
            self.set_phase(rep, "syncing");
            let what = format!("syncing {}", src.local.display());
            let (applied, err) = rep
                .progress
                .told(
                    &what,
                    replica::apply(
                        Some((self.ssh.as_ref(), &self.shell)),
                        &sftp,
                        &src.local,
                        &src.replica,
                        &ops,
                        replica::Write::Replace,
                        &rep.progress,
                    ),
                )
                .await;
            sent.files = applied.files;
            failed = err;
            // exactly what took effect, so that the retry redoes the rest
            tree::after_ops(&part, &local, &ops, &applied.done)
        };
        if !used.splice(manifest, now).is_empty() {
            rep.remote_manifest_stale.store(true, Ordering::Relaxed);
        }
        self.write_manifest_when_due(rep, manifest, failed.is_some())
            .await;
        match failed {
            Some(e) => Err(e),
            None => Ok(Some(sent)),
        }
    }

    /// Writes the replica's manifest if rounds over changed paths left it
    /// stale (the watch loop calls this [`MANIFEST_EVERY`] after them).
    pub(super) async fn flush_manifest(&self, rep: &Replica) {
        let manifest = rep.manifest.lock().await;
        self.write_manifest_when_due(rep, &manifest, true).await;
    }

    /// Writes the replica's manifest when rounds over changed paths left it
    /// stale for [`MANIFEST_EVERY`] (or `now`).
    async fn write_manifest_when_due(&self, rep: &Replica, manifest: &Manifest, now: bool) {
        if !rep.remote_manifest_stale.load(Ordering::Relaxed) {
            return;
        }
        let due = rep
            .manifest_written
            .lock()
            .map(|at| now || at.is_none_or(|t| t.elapsed() >= MANIFEST_EVERY))
            .unwrap_or(true);
        if !due {
            return;
        }
        let Ok((sftp, _)) = self.sftp().await else {
            return;
        };
        if replica::write_manifest(&sftp, &rep.source.replica, manifest)
            .await
            .is_ok()
        {
            rep.remote_manifest_stale.store(false, Ordering::Relaxed);
            if let Ok(mut at) = rep.manifest_written.lock() {
                *at = Some(Instant::now());
            }
        }
    }
}
