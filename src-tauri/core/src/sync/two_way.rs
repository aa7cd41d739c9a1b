//! One round of two-way sync, carried out: scan both sides, reconcile them
//! against the ancestor (`reconcile`, pure), move conflict losers aside, apply
//! the replica's ops over SFTP and the local ops through [`LocalTree`], and
//! say which parts took effect so that the next ancestor records exactly
//! that (`reconcile::next_ancestor`). Nothing is decided here.
//!
//! Both trees are read afresh every round, so a round never acts on a stale
//! picture of either side; the remote one in one `find` over an exec
//! channel (`remote_find`). Every local replacement or removal checks that
//! the path still holds what the scan saw, so an edit made meanwhile is
//! left for the next round; on the replica, the same window (between its
//! scan and the op, milliseconds) is not closed (see the README).

use std::path::Path;
use std::sync::Arc;

use russh_sftp::client::SftpSession;

use super::binds::LocalKind;
use super::fetch::{Fetched, Fetcher};
use super::local_write::LocalTree;
use super::placer::{Placing, Step};
use super::progress::Progress;
use super::reconcile::{self, Conflict, Done, LocalOp, Reconciled, Roots, Side, SyncMode};
use super::remote_path::{lstat, Found};
use super::replica::{self, Write};
use super::tree::{self, EntryKind, Exclusions, Manifest, Op};
use super::{remote_find, remote_scan, tarball, SyncError};
use crate::ssh::SshSession;

/// The two ends of one synced mount.
pub struct Ends<'a> {
    pub ssh: &'a SshSession,
    /// The long-lived remote shell the replica's scans run in.
    pub shell: &'a super::remote_shell::RemoteShell,
    pub sftp: &'a Arc<SftpSession>,
    /// The synced source: a folder, or a single file.
    pub local: &'a Path,
    pub kind: LocalKind,
    /// The replica's folder on the remote.
    pub replica: &'a str,
    pub rules: &'a Exclusions,
    pub progress: &'a Arc<Progress>,
    /// Called once a round has something to do (the status says "syncing").
    pub busy: &'a (dyn Fn() + Send + Sync),
}

impl Ends<'_> {
    /// The local folder the manifest's paths are relative to.
    pub(super) fn base(&self) -> &Path {
        match self.kind {
            LocalKind::Dir => self.local,
            LocalKind::File => self.local.parent().unwrap_or(Path::new("/")),
        }
    }
}

/// What a round did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The ancestor for the next round.
    pub agreed: Manifest,
    /// Conflicts of this round; their losers were kept under `kept_as`.
    pub conflicts: Vec<Conflict>,
    /// Files sent to the replica, and fetched from it.
    pub uploaded: u64,
    pub fetched: u64,
    /// Entries removed from each side.
    pub removed_remote: u64,
    pub removed_local: u64,
    /// Ops left undone because a path changed since the scan.
    pub deferred: u64,
    /// The round looked only at the watcher's paths (`two_way_scoped`).
    pub scoped: bool,
    /// Entries the round's scans read, both sides together.
    pub scanned: u64,
    /// How long the scans took (a whole round's: what the poll follows).
    pub scans: std::time::Duration,
    /// What stopped the round part way (what did take effect is in `agreed`).
    pub failed: Option<SyncError>,
}

impl Outcome {
    /// Whether the replica brought anything back (a reason to look again soon).
    pub fn remote_changed(&self) -> bool {
        self.fetched > 0 || self.removed_local > 0 || !self.conflicts.is_empty()
    }
}

/// Scans both ends and syncs them both ways against `ancestor`. An error
/// before anything was applied (a scan failed, the round looked unsafe) is
/// returned as such; nothing changed then.
pub async fn round(ends: &Ends<'_>, ancestor: &Manifest) -> Result<Outcome, SyncError> {
    let started = std::time::Instant::now();
    let (local, local_exists) = scan_local(ends).await?;
    let local_took = started.elapsed();
    if local_exists && ends.kind == LocalKind::Dir {
        sweep_local_temp_files(ends.local, &local);
    }
    let (mut remote, remote_exists) = match lstat(ends.sftp, ends.replica).await? {
        Found::Missing => (Manifest::new(), false),
        Found::Dir => (
            remote_find::scan(ends.ssh, ends.shell, ends.sftp, ends.replica).await?,
            true,
        ),
        Found::Other => {
            return Err(SyncError::remote(
                ends.replica,
                "the replica is not a directory any more; remove it on the remote so that it \
                 is made again",
            ))
        }
    };
    let remote_took = started.elapsed() - local_took;
    tracing::debug!(
        replica = ends.replica,
        ?local_took,
        ?remote_took,
        "two-way scans"
    );
    // uploads a killed agent left half done, once per session
    if remote_exists {
        super::upload::sweep_temp_files(ends.sftp, ends.replica, Some(&remote)).await;
    }
    // an excluded path is absent from all three: nothing is done to it
    // anywhere (the ancestor copied only when exclusions are in effect: a
    // copy of a large tree is what a round costs most)
    let mut ancestor = std::borrow::Cow::Borrowed(ancestor);
    if ends.kind == LocalKind::Dir && !ends.rules.sources(ends.local).is_empty() {
        tree::forget_excluded(&mut remote, &local, ends.local, ends.rules)?;
        tree::forget_excluded(ancestor.to_mut(), &local, ends.local, ends.rules)?;
    }
    let remote = remote_scan::as_agreed(remote, &[&ancestor, &local]);
    let remote = same_content_agrees(ends, &ancestor, &local, remote).await;
    let roots = Roots {
        local: local_exists,
        remote: remote_exists,
    };
    let plan = reconcile::reconcile_checked(&ancestor, &local, &remote, SyncMode::TwoWay, roots)
        .map_err(|e| tree::with_local(e.into(), ends.local))?;
    let mut out = Outcome {
        conflicts: plan.conflicts.clone(),
        scanned: (local.len() + remote.len()) as u64,
        scans: local_took + remote_took,
        ..Outcome::default()
    };
    if plan.is_empty() {
        out.agreed = plan.agreed;
        return Ok(out);
    }
    out.agreed = carry_out(ends, &ancestor, plan, remote.is_empty(), &mut out).await;
    Ok(out)
}

/// Applies a plan that has something to do (the status says "syncing",
/// progress is told) and returns the next ancestor: `ancestor`, the one
/// `plan` was made with, where something did not take effect.
pub(super) async fn carry_out(
    ends: &Ends<'_>,
    ancestor: &Manifest,
    plan: Reconciled,
    fresh: bool,
    out: &mut Outcome,
) -> Manifest {
    tracing::debug!(
        replica = ends.replica,
        scoped = out.scoped,
        remote_ops = ?plan.remote_ops.iter().take(8).collect::<Vec<_>>(),
        local_ops = ?plan.local_ops.iter().take(8).collect::<Vec<_>>(),
        conflicts = plan.conflicts.len(),
        "two-way round"
    );
    (ends.busy)();
    let what = format!("syncing {}", ends.local.display());
    let done = ends
        .progress
        .told(&what, apply(ends, &plan, fresh, out))
        .await;
    reconcile::into_next_ancestor(ancestor, plan, &done)
}

/// Files both sides hold with the same size but another mtime, where the
/// difference would cost a conflict (both differ from the ancestor: a first
/// sync over a kept replica, a lost ancestor) or an upload of a large file
/// whose mtime alone moved (a `touch`, a `git checkout`): compared by
/// content, and those found equal count as agreed, the replica's mtime set
/// to the local one so that the next scan agrees too.
pub(super) async fn same_content_agrees(
    ends: &Ends<'_>,
    ancestor: &Manifest,
    local: &Manifest,
    mut remote: Manifest,
) -> Manifest {
    let mut asked = Vec::new();
    for (path, l) in local {
        let (
            EntryKind::File {
                size,
                exec,
                mtime: lm,
            },
            Some(
                r @ EntryKind::File {
                    size: rs,
                    exec: rx,
                    mtime: rm,
                },
            ),
        ) = (l, remote.get(path))
        else {
            continue;
        };
        if size != rs || exec != rx || lm == rm {
            continue;
        }
        let a = ancestor.get(path);
        let conflict = a != Some(l) && a != Some(r);
        let touched = a == Some(r) && *size >= super::verify::VERIFY_MIN_SIZE;
        if conflict || touched {
            asked.push((path.clone(), *size));
        }
    }
    if asked.is_empty() {
        return remote;
    }
    let same = super::verify::same_content(ends.ssh, ends.base(), ends.replica, asked).await;
    let touched = set_mtimes(ends, local, same).await;
    for path in touched {
        if let Some(entry) = local.get(&path) {
            remote.insert(path, entry.clone());
        }
    }
    remote
}

/// Gives the replica's files at `paths` the local file's mtime; the paths
/// where that was done. Through the placer, to the nanosecond and never
/// through a link; otherwise over SFTP, to the second.
async fn set_mtimes(
    ends: &Ends<'_>,
    local: &Manifest,
    paths: impl IntoIterator<Item = String>,
) -> Vec<String> {
    let wanted: Vec<(String, i64)> = paths
        .into_iter()
        .filter_map(|p| match local.get(&p) {
            Some(EntryKind::File { mtime, .. }) if *mtime >= 0 => Some((p, *mtime)),
            _ => None,
        })
        .collect();
    if let Some(placing) = Placing::open(Some((ends.ssh, ends.shell)), ends.replica).await {
        let steps: Vec<(String, Step)> = wanted
            .iter()
            .map(|(p, mtime)| (p.clone(), Step::Touch { mtime: *mtime }))
            .collect();
        let Ok(results) = placing.run(&steps).await else {
            return Vec::new();
        };
        return wanted
            .into_iter()
            .zip(results)
            .filter_map(|((p, _), r)| r.is_ok().then_some(p))
            .collect();
    }
    let mut done = Vec::new();
    for (path, mtime) in wanted {
        let secs = u32::try_from(mtime.div_euclid(1_000_000_000)).ok();
        let attrs = russh_sftp::protocol::FileAttributes {
            atime: secs,
            mtime: secs,
            ..Default::default()
        };
        let at = format!("{}/{path}", ends.replica.trim_end_matches('/'));
        if ends.sftp.set_metadata(at, attrs).await.is_ok() {
            done.push(path);
        }
    }
    done
}

/// Local folders swept of Berth's temporary files in this process.
static SWEPT_LOCAL: std::sync::Mutex<Option<std::collections::HashSet<std::path::PathBuf>>> =
    std::sync::Mutex::new(None);

/// Removes the temporary files a killed agent left in the local folder (a
/// download cut short), once per folder and process: they carry Berth's
/// unguessable temporary names, so nothing of the user's is touched.
fn sweep_local_temp_files(base: &Path, tree: &Manifest) {
    let first = SWEPT_LOCAL
        .lock()
        .map(|mut s| {
            s.get_or_insert_with(Default::default)
                .insert(base.to_path_buf())
        })
        .unwrap_or(false);
    if !first {
        return;
    }
    let dirs = std::iter::once(base.to_path_buf()).chain(
        tree.iter()
            .filter(|(_, k)| **k == EntryKind::Dir)
            .map(|(p, _)| base.join(p)),
    );
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let ours = e
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(super::untrusted::TEMP_PREFIX));
            if ours && e.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

async fn scan_local(ends: &Ends<'_>) -> Result<(Manifest, bool), SyncError> {
    let root = ends.local.to_path_buf();
    if std::fs::symlink_metadata(&root).is_err() {
        return Ok((Manifest::new(), false));
    }
    let rules = ends.rules.clone();
    let scanned = tokio::task::spawn_blocking(move || tree::scan(&root, &rules))
        .await
        .map_err(|e| SyncError::Unreadable {
            path: ends.local.to_path_buf(),
            reason: e.to_string(),
        })??;
    Ok((scanned, true))
}

/// Carries `plan` out; says what took effect. Stops at the first failure of
/// a side (recorded in `out.failed`).
async fn apply(ends: &Ends<'_>, plan: &Reconciled, fresh: bool, out: &mut Outcome) -> Done {
    let mut done = Done {
        kept: vec![false; plan.conflicts.len()],
        remote: vec![false; plan.remote_ops.len()],
        local: vec![false; plan.local_ops.len()],
    };
    let local = match LocalTree::open(ends.base()) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            out.failed = Some(SyncError::LocalWrite {
                path: ends.base().to_path_buf(),
                source: e,
            });
            return done;
        }
    };
    for (i, c) in plan.conflicts.iter().enumerate() {
        match keep_loser(ends, &local, c).await {
            Ok(()) => done.kept[i] = true,
            Err(e) => {
                out.failed = Some(e);
                return done;
            }
        }
    }
    let fetches: Vec<Op> = plan
        .local_ops
        .iter()
        .filter_map(|op| match op {
            LocalOp::Fetch {
                path, size, exec, ..
            } => Some(Op::Put {
                path: path.clone(),
                size: *size,
                exec: *exec,
            }),
            _ => None,
        })
        .chain(plan.remote_ops.iter().cloned())
        .collect();
    ends.progress.begin(&fetches);

    let how = match ends.kind {
        LocalKind::Dir => Write::Replace,
        LocalKind::File => Write::InPlace,
    };
    let base = ends.base();
    let (applied, failed) = match ends.kind {
        // a new replica: one archive, as a first one-way sync
        LocalKind::Dir if fresh => {
            tarball::apply_first(
                ends.ssh,
                ends.shell,
                ends.sftp,
                base,
                ends.replica,
                &plan.remote_ops,
                ends.progress,
            )
            .await
        }
        _ => {
            replica::apply(
                Some((ends.ssh, ends.shell)),
                ends.sftp,
                base,
                ends.replica,
                &plan.remote_ops,
                how,
                ends.progress,
            )
            .await
        }
    };
    for (i, op) in plan.remote_ops.iter().enumerate() {
        if applied.done.get(i).copied().unwrap_or(false) {
            done.remote[i] = true;
            match op {
                Op::Put { .. } => out.uploaded += 1,
                Op::Remove(_) | Op::Rmdir(_) => out.removed_remote += 1,
                _ => {}
            }
        }
    }
    if let Some(e) = failed {
        out.failed = Some(e);
        return done;
    }

    let mut fetcher = Fetcher::new(ends.sftp, ends.replica);
    for (i, op) in plan.local_ops.iter().enumerate() {
        let expect = plan.local_expect.get(i).cloned().flatten();
        match local_op(&local, &mut fetcher, op, expect).await {
            Ok(true) => {
                done.local[i] = true;
                match op {
                    LocalOp::Fetch { size, .. } => {
                        out.fetched += 1;
                        ends.progress.file_done(*size);
                    }
                    LocalOp::Remove(_) | LocalOp::Rmdir(_) => out.removed_local += 1,
                    _ => {}
                }
            }
            Ok(false) => out.deferred += 1,
            Err(e) => {
                out.failed = Some(e);
                return done;
            }
        }
    }
    done
}

/// Moves a conflict's loser to its `kept_as` name on its side, never
/// replacing anything there.
async fn keep_loser(ends: &Ends<'_>, local: &LocalTree, c: &Conflict) -> Result<(), SyncError> {
    match c.loser() {
        Side::Local => local
            .move_aside(&c.path, &c.kept_as)
            .map_err(|e| SyncError::LocalWrite {
                path: ends.base().join(&c.path),
                source: e,
            }),
        Side::Remote => {
            if let Some(placing) = Placing::open(Some((ends.ssh, ends.shell)), ends.replica).await {
                let to = c
                    .kept_as
                    .rsplit('/')
                    .next()
                    .unwrap_or(&c.kept_as)
                    .to_string();
                return placing.one(&c.path, Step::MoveAside { to }).await;
            }
            let from = format!("{}/{}", ends.replica.trim_end_matches('/'), c.path);
            let to = format!("{}/{}", ends.replica.trim_end_matches('/'), c.kept_as);
            // the folders on the way must be the replica's own, not links out of it
            for dir in super::remote_path::ancestors(&c.path) {
                let at = format!("{}/{dir}", ends.replica.trim_end_matches('/'));
                if lstat(ends.sftp, &at).await? != Found::Dir {
                    return Err(SyncError::remote(
                        &at,
                        "a folder of the replica changed during the sync; trying again",
                    ));
                }
            }
            // SFTP's rename never replaces an existing entry
            ends.sftp
                .rename(from.clone(), to)
                .await
                .map_err(|e| SyncError::remote(&from, e))
        }
    }
}

/// Runs one local op; `Ok(false)` when the path changed since the scan.
async fn local_op(
    local: &Arc<LocalTree>,
    fetcher: &mut Fetcher<'_>,
    op: &LocalOp,
    expect: Option<EntryKind>,
) -> Result<bool, SyncError> {
    let failed = |rel: &str, e: std::io::Error| -> Result<bool, SyncError> {
        if super::local_write::is_unexpected(&e) {
            return Ok(false);
        }
        Err(SyncError::LocalWrite {
            path: local.root_path().join(rel),
            source: e,
        })
    };
    let result = match op {
        LocalOp::Mkdir(p) => match local.mkdir(p) {
            // a file or link was put there since the scan
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            other => other.map_err(|e| (p, e)),
        },
        LocalOp::Fetch {
            path,
            size,
            mtime,
            exec,
        } => {
            let got = fetcher
                .fetch(local, path, *size, *mtime, *exec, expect)
                .await?;
            return Ok(got == Fetched::Done);
        }
        LocalOp::Symlink { path, target } => match local.symlink(path, target) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            other => other.map_err(|e| (path, e)),
        },
        LocalOp::Remove(p) => match expect {
            Some(seen) => local.remove(p, &seen).map_err(|e| (p, e)),
            None => Ok(()),
        },
        LocalOp::Rmdir(p) => match local.rmdir(p) {
            // something was put in it since the scan: it stays
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => return Ok(false),
            other => other.map_err(|e| (p, e)),
        },
    };
    match result {
        Ok(()) => Ok(true),
        Err((rel, e)) => failed(rel, e),
    }
}
