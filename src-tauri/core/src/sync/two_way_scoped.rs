//! A two-way round over the part of the tree the file watcher says
//! changed ([`scope::Paths`](crate::sync::scope::Paths)): both sides are read only there (the local
//! folders with `tree::scan_scope`, the replica with one scoped `find`),
//! reconciled against the same part of the ancestor, and applied exactly
//! as a whole round would (`two_way::carry_out`). What the round agreed on is
//! spliced into the ancestor by the caller. Changes the replica had
//! elsewhere wait for its next whole round (a poll or a container event).
//!
//! Whenever the part cannot stand for the whole, the answer is `None` and
//! the caller runs a whole round instead: a folder above the changed paths
//! is not a folder on some side, the local folder or the replica's is gone,
//! the remote has no shell or GNU find, or the round would delete more
//! than [`MASS_DELETE_MIN_ENTRIES`] entries (the whole tree's safety rules
//! then judge it).

use super::reconcile::{self, Side, SyncMode};
use super::scope::Paths;
use super::tree::{self, Manifest, MASS_DELETE_MIN_ENTRIES};
use super::two_way::{carry_out, same_content_agrees, Ends, Outcome};
use super::{remote_find, remote_scan, SyncError};

/// One round over `scope`, against `ancestor` (the whole tree's). On
/// `Some`, the outcome's `agreed` is the next ancestor of the scope's part
/// only, to be spliced with the returned scope (the one the round used:
/// without the roots that exclusions leave out).
pub async fn round(
    ends: &Ends<'_>,
    ancestor: &Manifest,
    scope: &Paths,
) -> Result<Option<(Outcome, Paths)>, SyncError> {
    let started = std::time::Instant::now();
    if !std::fs::symlink_metadata(ends.local).is_ok_and(|m| m.is_dir()) {
        return Ok(None);
    }
    let Some((local, scope)) = tree::scan_scope_blocking(ends.local, ends.rules, scope).await?
    else {
        return Ok(None);
    };
    if scope.is_empty() {
        let out = Outcome {
            scoped: true,
            scanned: local.len() as u64,
            ..Outcome::default()
        };
        return Ok(Some((out, scope)));
    }
    let mut part = scope.restrict(ancestor);
    if !scope.above_are_dirs(&part) {
        return Ok(None);
    }
    let local_took = started.elapsed();
    let Some(mut remote) =
        remote_find::scan_scope(ends.ssh, ends.shell, ends.replica, &scope).await?
    else {
        return Ok(None);
    };
    if !scope.above_are_dirs(&remote) {
        return Ok(None);
    }
    tracing::debug!(
        replica = ends.replica,
        roots = scope.roots.len(),
        ?local_took,
        remote_took = ?(started.elapsed() - local_took),
        "two-way scoped scans"
    );
    // as in a whole round: an excluded path is absent from all three
    tree::forget_excluded(&mut remote, &local, ends.local, ends.rules)?;
    tree::forget_excluded(&mut part, &local, ends.local, ends.rules)?;
    let remote = remote_scan::as_agreed(remote, &[&part, &local]);
    let remote = same_content_agrees(ends, &part, &local, remote).await;
    let plan = reconcile::reconcile(&part, &local, &remote, SyncMode::TwoWay);
    // the emptiness and percentage rules need the whole tree
    if plan.deletions(Side::Local) > MASS_DELETE_MIN_ENTRIES
        || plan.deletions(Side::Remote) > MASS_DELETE_MIN_ENTRIES
    {
        return Ok(None);
    }
    let mut out = Outcome {
        conflicts: plan.conflicts.clone(),
        scoped: true,
        scanned: (local.len() + remote.len()) as u64,
        ..Outcome::default()
    };
    if plan.is_empty() {
        out.agreed = plan.agreed;
        return Ok(Some((out, scope)));
    }
    out.agreed = carry_out(ends, &part, plan, false, &mut out).await;
    Ok(Some((out, scope)))
}
