//! The pure core of two-way sync: given the tree both sides last agreed on
//! (the *ancestor*), the local tree and the replica's tree, decide what each
//! side must do so that both end up equal without losing anything either side
//! changed. Nothing here touches a file system or the network: the caller
//! scans both sides, calls [`reconcile`] (and [`check_safety`]), carries the
//! ops out, and records [`next_ancestor`].
//!
//! Built after Mutagen's `pkg/synchronization/core` (`reconcile.go`, mode
//! `two-way-safe`) and `safety.go`, on Berth's flat [`Manifest`]s. Per path,
//! comparing the three states:
//!
//! - Both sides hold the same entry (same kind; a file with the same size,
//!   mtime and exec bit; a link with the same target): agreed, nothing moves,
//!   even when both created it independently or both made the same change.
//! - Only one side changed the path (and, for a directory, everything beneath
//!   it) since the ancestor: the change goes to the other side, whether it is
//!   a creation, a modification, a type change or a deletion.
//! - A deletion therefore propagates only for an entry both sides had agreed
//!   on and the other side left as it was. Modification against deletion:
//!   the modification wins and comes back on the side that deleted it.
//! - A directory deleted on one side while the other side created or changed
//!   something inside it: the entries the other side left unchanged are
//!   deleted there too, the new or changed ones win, and the directories
//!   above them come back on the deleting side. (Mutagen restores the whole
//!   directory; on flat manifests the finer rule is as simple and keeps the
//!   deletion the user asked for wherever it loses nothing.)
//! - One side only deleted (part of) what the other replaced or changed: the
//!   change wins, as it is the only new content.
//! - Both sides changed the path differently (two files, file and link, a
//!   new file where the other side put a directory with new content...): a
//!   [`Conflict`]. The local version wins at the path ([`CONFLICT_WINNER`]),
//!   the remote one is moved aside next to it (see [`Conflict::kept_as`])
//!   and then exists on both sides; nothing is overwritten and both are
//!   reported.
//!
//! [`SyncMode::OneWay`] keeps today's semantics: the replica is a mirror of
//! the local tree, remote changes are overwritten or removed, nothing is
//! written locally ([`super::tree::diff`]).
//!
//! Symlinks are entries with their target text; they are compared, created
//! and moved as links and never followed. Exclusions are applied before:
//! the caller passes manifests filtered by the same rules on both sides (and
//! the ancestor), e.g. with [`without_excluded`]; an excluded path is then
//! absent from every input and nothing is ever done to it on either side.
//!
//! Inputs are trees: every entry's parent is a directory of the same
//! manifest (what `tree::scan` builds and `untrusted::check_manifest`
//! enforces on the remote's). Entries of the ancestor under a missing parent
//! are ignored.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use super::tree::{self, EntryKind, Manifest, Op};

mod merge;
mod safety;

use merge::below;
pub use safety::{check_safety, reconcile_checked, Roots, UnsafeSync};

/// Which version wins a conflict. Local, as Mutagen's alpha in its
/// `two-way-resolved` mode and as one-way sync always did: it is what the
/// user's editor shows, so nothing changes under their hands, and the
/// container's version appears beside it in the same folder. "Newer mtime
/// wins" was rejected: the two machines' clocks differ, mtimes are set by
/// `tar`, `cp -p` or `git checkout` rather than by edits, and directories
/// and links carry none in the manifest. The loser is never lost either way.
pub const CONFLICT_WINNER: Side = Side::Local;

/// Longest file name most file systems accept, in bytes; a conflict name is
/// shortened to fit.
const NAME_MAX: usize = 255;

/// How a mount is synced (`one-way` / `two-way` in settings and flags).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    /// The replica mirrors the local tree: local wins, remote changes are
    /// overwritten or removed, nothing is written locally.
    OneWay,
    /// Changes flow both ways; deletions only of agreed entries; conflicts
    /// keep both versions (Mutagen's `two-way-safe`, plus a winner). The
    /// default: a bind mount on a local daemon is two-way.
    #[default]
    TwoWay,
}

impl std::str::FromStr for SyncMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "one-way" => Ok(SyncMode::OneWay),
            "two-way" => Ok(SyncMode::TwoWay),
            other => Err(format!(
                "unknown sync mode {other:?}; use one-way or two-way"
            )),
        }
    }
}

impl std::fmt::Display for SyncMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SyncMode::OneWay => "one-way",
            SyncMode::TwoWay => "two-way",
        })
    }
}

/// One end of a synced mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// The folder on this machine.
    Local,
    /// The replica on the remote.
    Remote,
}

impl Side {
    /// The other end.
    pub fn other(self) -> Side {
        match self {
            Side::Local => Side::Remote,
            Side::Remote => Side::Local,
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Local => "local",
            Side::Remote => "remote",
        })
    }
}

/// One step of bringing the local tree up to date, relative to its root:
/// [`Op`] seen from this side (what `Op::Put` uploads, `Fetch` downloads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalOp {
    /// Create a directory whose parent exists.
    Mkdir(String),
    /// Download the replica's file at `path` (replacing an existing file
    /// atomically), then set its mtime and mode to these, the replica's.
    Fetch {
        path: String,
        size: u64,
        mtime: i64,
        exec: bool,
    },
    /// Create a symbolic link with the `target` text verbatim; nothing
    /// exists at `path` when this runs.
    Symlink { path: String, target: String },
    /// Remove a file or a symlink (the link itself).
    Remove(String),
    /// Remove a directory, emptied by the ops before it.
    Rmdir(String),
}

impl LocalOp {
    /// The path the op acts on.
    pub fn path(&self) -> &str {
        match self {
            LocalOp::Mkdir(p) | LocalOp::Remove(p) | LocalOp::Rmdir(p) => p,
            LocalOp::Fetch { path, .. } | LocalOp::Symlink { path, .. } => path,
        }
    }
}

/// Both sides changed `path` differently since they last agreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Where both changed it.
    pub path: String,
    /// What was agreed there (`None`: nothing, e.g. both created it).
    pub ancestor: Option<EntryKind>,
    /// What the local side holds there now.
    pub local: Option<EntryKind>,
    /// What the replica holds there now.
    pub remote: Option<EntryKind>,
    /// Whose version stays at `path` ([`CONFLICT_WINNER`]).
    pub winner: Side,
    /// Where the loser's version (with everything beneath it, for a
    /// directory) is kept, on both sides once the round is applied: a
    /// sibling named `stem.berth-conflict-<loser>-<hash>.ext`, where `ext` is
    /// a file's or link's last extension (none for a directory or a dotfile
    /// like `.env`) and `<hash>` 8 hex digits of the loser's content
    /// (metadata), so the name is the same whenever the same conflict is
    /// computed again. `-2`, `-3`... follow the hash when the name is taken
    /// by an entry of either side or of the ancestor; the stem is shortened
    /// when the name would exceed 255 bytes.
    pub kept_as: String,
}

impl Conflict {
    /// The side whose version is moved to [`Conflict::kept_as`]: the caller
    /// renames `path` to `kept_as` there before any op of the round.
    pub fn loser(&self) -> Side {
        self.winner.other()
    }
}

/// What one round of sync must do, as [`reconcile`] decides it.
///
/// To apply it: first, for every conflict, rename `path` to `kept_as` on
/// the [`Conflict::loser`]'s side (without replacing anything); then the
/// ops of each side, in order. The ops are computed against the trees with
/// those renames done, so if one fails, stop the round and record
/// [`next_ancestor`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reconciled {
    /// Ops for the replica, in an order that can be applied one by one:
    /// replacements first (contents before their directory), then `Mkdir`
    /// parents before children, then files and links, then removals,
    /// children before parents. `Op::Put` uploads the local file.
    pub remote_ops: Vec<Op>,
    /// For each of `remote_ops`, what the replica holds at its path just
    /// before it runs (as scanned, after the renames and earlier ops). A
    /// two-way executor replaces or removes only if it still finds that, and
    /// otherwise leaves the op undone: a container may have written since.
    pub remote_expect: Vec<Option<EntryKind>>,
    /// Ops for the local tree, ordered as `remote_ops`.
    pub local_ops: Vec<LocalOp>,
    /// For each of `local_ops`, what the local tree holds at its path just
    /// before it runs; the same check protects an edit made since the scan.
    pub local_expect: Vec<Option<EntryKind>>,
    /// The conflicts of this round, in path order.
    pub conflicts: Vec<Conflict>,
    /// The tree both sides hold once everything above is applied: the next
    /// ancestor after a complete round (see [`next_ancestor`] otherwise).
    pub agreed: Manifest,
}

impl Reconciled {
    /// Whether the round has nothing to do on either side.
    pub fn is_empty(&self) -> bool {
        self.remote_ops.is_empty() && self.local_ops.is_empty() && self.conflicts.is_empty()
    }

    /// How many entries the round deletes from `side` for good (removals of
    /// paths that are not in [`Reconciled::agreed`]; a removal that makes
    /// room for another kind of entry at the same path is a replacement).
    pub fn deletions(&self, side: Side) -> usize {
        let gone = |p: &str| !self.agreed.contains_key(p);
        match side {
            Side::Remote => self
                .remote_ops
                .iter()
                .filter(|op| matches!(op, Op::Remove(p) | Op::Rmdir(p) if gone(p)))
                .count(),
            Side::Local => self
                .local_ops
                .iter()
                .filter(|op| matches!(op, LocalOp::Remove(p) | LocalOp::Rmdir(p) if gone(p)))
                .count(),
        }
    }
}

/// Which parts of a [`Reconciled`] took effect, flag by flag (a missing
/// flag counts as not done).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Done {
    /// For each conflict: its loser was renamed to `kept_as`.
    pub kept: Vec<bool>,
    /// For each of `remote_ops`.
    pub remote: Vec<bool>,
    /// For each of `local_ops`.
    pub local: Vec<bool>,
}

impl Done {
    /// Everything of `plan` took effect.
    pub fn all(plan: &Reconciled) -> Done {
        Done {
            kept: vec![true; plan.conflicts.len()],
            remote: vec![true; plan.remote_ops.len()],
            local: vec![true; plan.local_ops.len()],
        }
    }
}

/// Decides one round of sync between `local` and `remote`, given `ancestor`,
/// the tree both last agreed on (empty on a first sync: then nothing is
/// deleted on either side, both trees are merged, and differing entries at
/// the same path are conflicts). The rules are those of the module
/// documentation; in [`SyncMode::OneWay`] the ancestor is not used and the
/// result is [`tree::diff`]`(local, remote)`.
///
/// This does not check safety: see [`check_safety`], or
/// [`reconcile_checked`] for both in one call.
pub fn reconcile(
    ancestor: &Manifest,
    local: &Manifest,
    remote: &Manifest,
    mode: SyncMode,
) -> Reconciled {
    if mode == SyncMode::OneWay {
        let remote_ops = tree::diff(local, remote);
        return Reconciled {
            remote_expect: expectations(remote, local, &remote_ops, op_step),
            remote_ops,
            agreed: local.clone(),
            ..Reconciled::default()
        };
    }
    let (agreed, conflicts) = merge::merge(ancestor, local, remote);

    let remote_now = after_renames(remote, &conflicts, Side::Remote);
    let remote_ops = tree::diff(&agreed, &remote_now);
    let remote_expect = expectations(&remote_now, &agreed, &remote_ops, op_step);

    let local_now = after_renames(local, &conflicts, Side::Local);
    let local_ops: Vec<LocalOp> = tree::diff(&agreed, &local_now)
        .into_iter()
        .map(|op| local_op(op, &agreed))
        .collect();
    let local_expect = expectations(&local_now, &agreed, &local_ops, local_step);

    Reconciled {
        remote_ops,
        remote_expect,
        local_ops,
        local_expect,
        conflicts,
        agreed,
    }
}

/// The ancestor to keep after a round of which only `done` took effect
/// (computed from `before`, the ancestor `plan` was made with): a path
/// counts as agreed, with its [`Reconciled::agreed`] entry, once no op at it
/// on either side and no rename of a conflict around it is left undone;
/// every other path keeps its `before` entry, so the next round sees the
/// same change again and redoes exactly the rest (nothing is lost, nothing
/// sent twice). With everything done this is `plan.agreed`.
///
/// `done` must say what really happened: an op whose effect is unknown (the
/// connection dropped mid-way) counts as not done.
pub fn next_ancestor(before: &Manifest, plan: &Reconciled, done: &Done) -> Manifest {
    into_next_ancestor(before, plan.clone(), done)
}

/// [`next_ancestor`], taking the plan: its `agreed` becomes the result
/// without a copy (a large tree's first sync).
pub fn into_next_ancestor(before: &Manifest, plan: Reconciled, done: &Done) -> Manifest {
    let flag = |flags: &[bool], i: usize| flags.get(i).copied().unwrap_or(false);
    let mut pending: BTreeSet<String> = BTreeSet::new();
    for (i, op) in plan.remote_ops.iter().enumerate() {
        if !flag(&done.remote, i) {
            pending.insert(op_path(op).to_string());
        }
    }
    for (i, op) in plan.local_ops.iter().enumerate() {
        if !flag(&done.local, i) {
            pending.insert(op.path().to_string());
        }
    }
    for (i, c) in plan.conflicts.iter().enumerate() {
        if flag(&done.kept, i) {
            continue;
        }
        for root in [c.path.as_str(), c.kept_as.as_str()] {
            pending.insert(root.to_string());
            for m in [&plan.agreed, before] {
                pending.extend(below(m, root).map(|(p, _)| p.clone()));
            }
        }
    }
    let mut next = plan.agreed;
    for path in pending {
        match before.get(&path) {
            Some(entry) => next.insert(path, entry.clone()),
            None => next.remove(&path),
        };
    }
    next
}

/// `manifest` without the entries `excluded` names, nor anything beneath an
/// excluded directory (nor entries whose parent is missing). Apply the same
/// rules to the local tree, the replica's and the ancestor before
/// [`reconcile`]: a path excluded on one side only would look deleted there,
/// and its deletion would travel.
pub fn without_excluded(
    manifest: &Manifest,
    mut excluded: impl FnMut(&str, &EntryKind) -> bool,
) -> Manifest {
    let mut out = Manifest::new();
    for (path, entry) in manifest {
        // sorted: a parent was decided before its children
        let parent_kept = match path.rsplit_once('/') {
            Some((parent, _)) => out.get(parent) == Some(&EntryKind::Dir),
            None => true,
        };
        if parent_kept && !excluded(path, entry) {
            out.insert(path.clone(), entry.clone());
        }
    }
    out
}

/// `side`'s tree with the conflict renames of its side done.
fn after_renames<'m>(m: &'m Manifest, conflicts: &[Conflict], side: Side) -> Cow<'m, Manifest> {
    let mut renames = conflicts.iter().filter(|c| c.loser() == side).peekable();
    if renames.peek().is_none() {
        return Cow::Borrowed(m);
    }
    let mut now = m.clone();
    for c in renames {
        let moved: Vec<String> = below(&now, &c.path).map(|(p, _)| p.clone()).collect();
        if let Some(entry) = now.remove(&c.path) {
            now.insert(c.kept_as.clone(), entry);
        }
        for p in moved {
            if let Some(entry) = now.remove(&p) {
                now.insert(format!("{}{}", c.kept_as, &p[c.path.len()..]), entry);
            }
        }
    }
    Cow::Owned(now)
}

/// A replica op seen from the local side; `Put`'s metadata is the agreed
/// (the replica's) entry.
fn local_op(op: Op, agreed: &Manifest) -> LocalOp {
    match op {
        Op::Mkdir(p) => LocalOp::Mkdir(p),
        Op::Put { path, size, exec } => {
            // diff puts only files of `agreed`, so the mtime is always found
            let mtime = match agreed.get(&path) {
                Some(EntryKind::File { mtime, .. }) => *mtime,
                _ => i64::MIN,
            };
            LocalOp::Fetch {
                path,
                size,
                mtime,
                exec,
            }
        }
        Op::Symlink { path, target } => LocalOp::Symlink { path, target },
        Op::Remove(p) => LocalOp::Remove(p),
        Op::Rmdir(p) => LocalOp::Rmdir(p),
    }
}

/// The path an op acts on, and whether it removes it.
fn op_step(op: &Op) -> (&str, bool) {
    match op {
        Op::Mkdir(p) => (p, false),
        Op::Put { path, .. } | Op::Symlink { path, .. } => (path, false),
        Op::Remove(p) | Op::Rmdir(p) => (p, true),
    }
}

fn local_step(op: &LocalOp) -> (&str, bool) {
    (
        op.path(),
        matches!(op, LocalOp::Remove(_) | LocalOp::Rmdir(_)),
    )
}

fn op_path(op: &Op) -> &str {
    op_step(op).0
}

/// For each op, what `start` holds at its path once the ops before it ran
/// (each creation leaving the `target` entry there).
fn expectations<O>(
    start: &Manifest,
    target: &Manifest,
    ops: &[O],
    step: impl Fn(&O) -> (&str, bool),
) -> Vec<Option<EntryKind>> {
    let mut now: BTreeMap<&str, Option<&EntryKind>> = BTreeMap::new();
    ops.iter()
        .map(|op| {
            let (path, removes) = step(op);
            let before = now.get(path).copied().unwrap_or_else(|| start.get(path));
            now.insert(path, if removes { None } else { target.get(path) });
            before.cloned()
        })
        .collect()
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;

#[cfg(test)]
mod random_tests;
