//! Refusing a round that looks like an accident (a wiped replica, an
//! unmounted disk, a deleted checkout) before anything is applied: the
//! two-way counterpart of `tree::safety_check`, after Mutagen's `safety.go`.

use std::path::PathBuf;

use super::{reconcile, Reconciled, Side, SyncMode};
use crate::sync::tree::{self, Manifest, MASS_DELETE_MAX_PERCENT, MASS_DELETE_MIN_ENTRIES};
use crate::sync::SyncError;

/// Whether each side's root (the local folder, the replica's folder) exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roots {
    pub local: bool,
    pub remote: bool,
}

/// A round refused because one side looks wiped rather than edited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing to sync: {reason}")]
pub struct UnsafeSync {
    /// The side whose state looks like an accident (its deletions are the
    /// ones refused).
    pub side: Side,
    /// What was seen, naming the side, and that nothing was changed.
    pub reason: String,
}

impl From<UnsafeSync> for SyncError {
    /// A [`SyncError::Unsafe`] with an empty `local`, for
    /// [`tree::with_local`] to fill in.
    fn from(err: UnsafeSync) -> Self {
        SyncError::Unsafe {
            local: PathBuf::new(),
            reason: err.reason,
        }
    }
}

/// Refuses a round whose deletions look like an accident rather than an
/// edit, before anything is applied; nothing is changed on either side.
///
/// Two-way: the local root is gone; the replica's root is gone while the
/// ancestor has entries (a wiped or unmounted replica must not wipe the
/// local folder); one side is empty while the ancestor has entries and the
/// round would delete anything on the other side; or the ancestor has more
/// than [`MASS_DELETE_MIN_ENTRIES`] entries and the round would delete more
/// than [`MASS_DELETE_MAX_PERCENT`] % of them from one side. The error names
/// the side whose deletions are refused. After a refusal the caller may, once
/// the user confirms the side is intact, sync again with an empty ancestor:
/// that merges both trees and deletes nothing.
///
/// One-way: [`tree::safety_check`], unchanged (only local deletions travel).
pub fn check_safety(
    mode: SyncMode,
    ancestor: &Manifest,
    local: &Manifest,
    remote: &Manifest,
    roots: Roots,
    plan: &Reconciled,
) -> Result<(), UnsafeSync> {
    if mode == SyncMode::OneWay {
        return tree::safety_check(roots.local, local, remote).map_err(|err| UnsafeSync {
            side: Side::Local,
            reason: match err {
                SyncError::Unsafe { reason, .. } => reason,
                other => other.to_string(),
            },
        });
    }
    let refuse = |side: Side, reason: String| {
        Err(UnsafeSync {
            side,
            reason: format!("{reason}; nothing was changed on either side"),
        })
    };
    if !roots.local {
        return refuse(
            Side::Local,
            "the local folder no longer exists (deleted, or its disk is unmounted)".to_string(),
        );
    }
    if !roots.remote && !ancestor.is_empty() {
        return refuse(
            Side::Remote,
            format!(
                "the replica's folder is gone from the remote while {} entries were synced (wiped, \
                 or another disk mounted); its deletions are not applied to the local folder",
                ancestor.len()
            ),
        );
    }
    for (side, tree) in [(Side::Local, local), (Side::Remote, remote)] {
        let victim = side.other();
        let deleted = plan.deletions(victim);
        let place = |s: Side| match s {
            Side::Local => "the local folder",
            Side::Remote => "the replica",
        };
        if tree.is_empty() && !ancestor.is_empty() && deleted > 0 {
            return refuse(
                side,
                format!(
                    "{} is empty while {} entries were synced, and this would delete {deleted} \
                     entries of {} (an unmounted disk, a deleted checkout, a wiped replica?)",
                    place(side),
                    ancestor.len(),
                    place(victim)
                ),
            );
        }
        if ancestor.len() > MASS_DELETE_MIN_ENTRIES
            && deleted * 100 > ancestor.len() * MASS_DELETE_MAX_PERCENT
        {
            return refuse(
                side,
                format!(
                    "deletions in {} would delete {deleted} of the {} synced entries from {} \
                     (more than {MASS_DELETE_MAX_PERCENT}%)",
                    place(side),
                    ancestor.len(),
                    place(victim)
                ),
            );
        }
    }
    Ok(())
}

/// [`reconcile`], then [`check_safety`] on its result.
pub fn reconcile_checked(
    ancestor: &Manifest,
    local: &Manifest,
    remote: &Manifest,
    mode: SyncMode,
    roots: Roots,
) -> Result<Reconciled, UnsafeSync> {
    let plan = reconcile(ancestor, local, remote, mode);
    check_safety(mode, ancestor, local, remote, roots, &plan)?;
    Ok(plan)
}

#[cfg(test)]
#[path = "safety_tests.rs"]
mod tests;
