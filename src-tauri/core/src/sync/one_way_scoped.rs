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

use std::time::{Duration, Instant};

use super::manager::SyncManager;
use super::mount::{Mount, Phase};
use super::scope::Paths;
use super::tree::{self, Exclusions, Op, MASS_DELETE_MIN_ENTRIES};
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
    /// One one-way round over `scope` of the folder mount `m`.
    pub(super) async fn one_way_scoped(
        &self,
        m: &mut Mount,
        rules: &Exclusions,
        scope: &Paths,
    ) -> Result<Option<Sent>, SyncError> {
        let rep = m.rep.clone();
        let src = &rep.source;
        let Some((local, used)) = tree::scan_scope_blocking(&src.local, rules, scope).await? else {
            return Ok(None);
        };
        let mut part = used.restrict(&m.manifest);
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
            m.set_phase(Phase::Syncing);
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
        if !used.splice(&mut m.manifest, now).is_empty() {
            m.manifest_stale = true;
        }
        self.write_manifest_when_due(m, failed.is_some()).await;
        match failed {
            Some(e) => Err(e),
            None => Ok(Some(sent)),
        }
    }

    /// Writes the replica's manifest if rounds over changed paths left it
    /// stale (the watch loop calls this [`MANIFEST_EVERY`] after them).
    pub(super) async fn flush_manifest(&self, m: &mut Mount) {
        self.write_manifest_when_due(m, true).await;
    }

    /// Writes the replica's manifest when rounds over changed paths left it
    /// stale for [`MANIFEST_EVERY`] (or `now`).
    async fn write_manifest_when_due(&self, m: &mut Mount, now: bool) {
        let due = now
            || m.manifest_written
                .is_none_or(|t| t.elapsed() >= MANIFEST_EVERY);
        if !m.manifest_stale || !due {
            return;
        }
        let Ok((sftp, _)) = self.sftp().await else {
            return;
        };
        if replica::write_manifest(&sftp, &m.rep.source.replica, &m.manifest)
            .await
            .is_ok()
        {
            m.manifest_stale = false;
            m.manifest_written = Some(Instant::now());
        }
    }
}
