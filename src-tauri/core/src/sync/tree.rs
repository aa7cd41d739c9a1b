//! What a synced tree is, what changed, and whether applying a change is
//! safe. [`scan`] reads a local folder (or single file) into a [`Manifest`];
//! it is the only function here that touches the file system. [`diff`] turns
//! a local and a remote manifest into the ordered [`Op`]s that make the
//! replica equal to the local tree (one-way, local wins), and
//! [`safety_check`] refuses changes that look like an accident rather than an
//! edit (a vanished folder, an unmounted disk, a deleted checkout).
//!
//! Symlinks are never followed out of the synced root: `scan` records a link
//! with its target text, and the executor recreates it as a link with the
//! same text, even when the target is absolute or climbs out with `..`. That
//! is what `docker run -v` shows inside the container; the link is never
//! dereferenced and nothing outside the root is read or written.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use ignore::WalkBuilder;
use serde::{Deserialize, Serialize};

use super::exclude::Matcher;
pub use super::exclude::{Exclusions, BERTHIGNORE};
use super::SyncError;

/// Replicas with more entries than this are protected by the mass-deletion
/// rule of [`safety_check`].
pub const MASS_DELETE_MIN_ENTRIES: usize = 100;

/// Percentage of a protected replica that one sync may delete at most.
pub const MASS_DELETE_MAX_PERCENT: usize = 90;

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A directory; its contents are entries of their own.
    Dir,
    /// A regular file.
    File {
        /// Length in bytes.
        size: u64,
        /// Last modification, in nanoseconds since the Unix epoch: two saves
        /// within one second that keep the size must still differ.
        mtime: i64,
        /// Any execute bit set (always false on hosts without Unix modes).
        exec: bool,
    },
    /// A symbolic link, never followed.
    Symlink {
        /// The link's target text, verbatim.
        target: String,
    },
}

/// A tree: relative path (`/`-separated, no leading `./`, the root itself
/// absent) to entry. Sorted, so parents come before their children.
pub type Manifest = BTreeMap<String, EntryKind>;

/// One step of bringing the replica up to date, relative to its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create a directory whose parent exists.
    Mkdir(String),
    /// Upload a file of `size` bytes (replacing an existing file
    /// atomically), then set its mtime and mode (`exec`) to the local ones.
    Put { path: String, size: u64, exec: bool },
    /// Create a symbolic link with the `target` text verbatim; nothing
    /// exists at `path` when this runs.
    Symlink { path: String, target: String },
    /// Remove a file or a symlink (the link itself).
    Remove(String),
    /// Remove a directory, emptied by the ops before it.
    Rmdir(String),
}

/// Reads the tree at `root` into a manifest, without following symlinks,
/// leaving out what `rules` exclude (see [`Exclusions`]; nothing by default).
/// Hidden files are included; `.ignore` and `.dockerignore` files are not read.
///
/// A file root yields one entry, named after the file; no rules apply to it.
/// A symlinked root is followed (as `docker run -v` does). Sockets, FIFOs and
/// device files are skipped. An invalid pattern in a `.gitignore` is logged
/// and skipped; an invalid pattern in `.berthignore` or `rules.patterns` is
/// refused ([`SyncError::Unsafe`]): the user meant to keep something local.
/// Anything that cannot be read (a directory listing, metadata, a link, an
/// exclusion file, a name that is not UTF-8) is a [`SyncError::Unreadable`]
/// naming it. File contents are not read here.
pub fn scan(root: &Path, rules: &Exclusions) -> Result<Manifest, SyncError> {
    let meta = std::fs::metadata(root).map_err(|e| unreadable(root, &e))?;
    if meta.is_file() {
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| unreadable(root, "the file name is not valid UTF-8"))?;
        let entry = file_entry(root, &meta)?;
        return Ok(Manifest::from([(name.to_string(), entry)]));
    }
    if !meta.is_dir() {
        return Err(unreadable(root, "not a regular file or a directory"));
    }

    let matcher = Arc::new(Mutex::new(Matcher::new(root, rules)?));
    // collected, then built in one go: a bulk-built map has full nodes
    // (half the memory of one grown entry by entry, in walk order)
    let mut entries = Vec::new();
    walk_into(root, root, &matcher, &mut entries)?;
    Ok(entries.into_iter().collect())
}

/// Reads the part of the tree at the folder `root` that `scope` covers, as
/// [`scan`] would have read it: each of `scope.roots` with everything
/// beneath it, and the folders above them. `None` when a folder above a
/// root is not a folder any more: something above the watcher's paths
/// changed, and only a whole scan says what.
///
/// Also returns `scope` without the roots `rules` exclude (they, or a folder
/// above them): those are nobody's business, on either side.
pub fn scan_scope(
    root: &Path,
    rules: &Exclusions,
    scope: &super::scope::Paths,
) -> Result<Option<(Manifest, super::scope::Paths)>, SyncError> {
    let matcher = Arc::new(Mutex::new(Matcher::new(root, rules)?));
    let all = |_: &Path| true;
    let mut entries = Vec::new();
    for above in &scope.above {
        let abs = root.join(above);
        match std::fs::symlink_metadata(&abs) {
            Ok(m) if m.is_dir() => entries.push((above.clone(), EntryKind::Dir)),
            _ => return Ok(None),
        }
    }
    let mut kept = super::scope::Paths {
        roots: Vec::new(),
        above: scope.above.clone(),
    };
    for rel in &scope.roots {
        let abs = root.join(rel);
        let meta = match std::fs::symlink_metadata(&abs) {
            Ok(m) => Some(m),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                None
            }
            Err(e) => return Err(unreadable(&abs, &e)),
        };
        let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
        // the root, or a folder above it, excluded: left alone on both sides
        let mut at = root.to_path_buf();
        let parts: Vec<&str> = rel.split('/').collect();
        let mut excluded = false;
        {
            let mut m = matcher.lock().unwrap_or_else(|p| p.into_inner());
            for (i, part) in parts.iter().enumerate() {
                at.push(part);
                if m.excluded(&at, is_dir || i + 1 < parts.len(), &all)? {
                    excluded = true;
                    break;
                }
            }
        }
        if excluded {
            continue;
        }
        kept.roots.push(rel.clone());
        let Some(meta) = meta else { continue };
        let kind = if meta.file_type().is_symlink() {
            link_entry(&abs)?
        } else if meta.is_dir() {
            EntryKind::Dir
        } else if meta.is_file() {
            file_entry(&abs, &meta)?
        } else {
            continue;
        };
        entries.push((rel.clone(), kind));
        if is_dir {
            walk_into(root, &abs, &matcher, &mut entries)?;
        }
    }
    Ok(Some((entries.into_iter().collect(), kept)))
}

/// [`scan_scope`] on a blocking thread (it reads the disk).
pub async fn scan_scope_blocking(
    root: &Path,
    rules: &Exclusions,
    scope: &super::scope::Paths,
) -> Result<Option<(Manifest, super::scope::Paths)>, SyncError> {
    let (at, rules, scope) = (root.to_path_buf(), rules.clone(), scope.clone());
    tokio::task::spawn_blocking(move || scan_scope(&at, &rules, &scope))
        .await
        .map_err(|e| unreadable(root, e))?
}

/// Adds to `entries` everything beneath `start` (a folder of the tree at
/// `root`, or the root), relative to `root`, as [`scan`] describes.
fn walk_into(
    root: &Path,
    start: &Path,
    matcher: &Arc<Mutex<Matcher>>,
    entries: &mut Vec<(String, EntryKind)>,
) -> Result<(), SyncError> {
    // the walk asks one entry at a time and cannot fail: the matcher keeps
    // the first error, and the scan returns it once the walk is over
    let filter = matcher.clone();
    let mut walk = WalkBuilder::new(start);
    walk.standard_filters(false)
        .hidden(false)
        .follow_links(false)
        .filter_entry(move |ent| {
            // Berth's own temporary files (a download under way, or one cut
            // short by a crash) are never part of the tree
            if ent.depth() > 0
                && ent
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(super::untrusted::TEMP_PREFIX))
            {
                return false;
            }
            let is_dir = ent.file_type().is_some_and(|t| t.is_dir());
            let mut m = filter.lock().unwrap_or_else(|p| p.into_inner());
            !m.excluded_or_fail(ent.path(), is_dir, &|_| true)
        });
    for item in walk.build() {
        let ent = item.map_err(|e| walk_error(root, &e))?;
        if ent.depth() == 0 {
            continue;
        }
        let path = ent.path();
        let Some(file_type) = ent.file_type() else {
            continue;
        };
        let kind = if file_type.is_symlink() {
            link_entry(path)?
        } else if file_type.is_dir() {
            EntryKind::Dir
        } else if file_type.is_file() {
            let meta = ent.metadata().map_err(|e| unreadable(path, &e))?;
            file_entry(path, &meta)?
        } else {
            tracing::debug!(path = %path.display(), "skipping a socket, FIFO or device file");
            continue;
        };
        entries.push((relative(root, path)?, kind));
    }
    let failed = matcher
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .failed
        .take();
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A symlink entry, its target verbatim.
fn link_entry(path: &Path) -> Result<EntryKind, SyncError> {
    let target = std::fs::read_link(path).map_err(|e| unreadable(path, &e))?;
    let target = target
        .to_str()
        .ok_or_else(|| unreadable(path, "the link target is not valid UTF-8"))?;
    Ok(EntryKind::Symlink {
        target: target.to_string(),
    })
}

/// Drops from `stored` (the manifest of the replica) every entry that
/// `local` lacks because `rules` exclude it (it, or a folder above it), and
/// every folder above such an entry that `local` lacks too. An excluded path
/// is then neither uploaded nor deleted: whatever the replica holds there (a
/// container's output, a file excluded after it was synced) stays, and the
/// manifest written after the sync no longer claims it. Returns how many
/// entries were dropped. A file root, or a vanished one, drops nothing.
///
/// Exclusion files are read as [`scan`] reads them, only from folders that
/// `local` has as folders (never through a link, never outside the root).
pub fn forget_excluded(
    stored: &mut Manifest,
    local: &Manifest,
    root: &Path,
    rules: &Exclusions,
) -> Result<usize, SyncError> {
    if !root.is_dir() {
        return Ok(0);
    }
    // both sorted the same way: one merge pass finds what local lacks
    let mut missing = Vec::new();
    let mut locals = local.keys().peekable();
    for (path, kind) in stored.iter() {
        while locals.next_if(|l| l.as_str() < path.as_str()).is_some() {}
        if locals.peek().is_some_and(|l| *l == path) {
            continue;
        }
        missing.push((path.clone(), *kind == EntryKind::Dir));
    }
    if missing.is_empty() {
        return Ok(0);
    }
    let mut matcher = Matcher::new(root, rules)?;
    let is_local_dir = |p: &Path| {
        p == root
            || relative(root, p)
                .ok()
                .is_some_and(|rel| local.get(&rel) == Some(&EntryKind::Dir))
    };
    let mut forget: BTreeSet<String> = BTreeSet::new();
    for (path, is_dir) in &missing {
        let parts: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        let mut abs = root.to_path_buf();
        for (i, part) in parts.iter().enumerate() {
            abs.push(part);
            let prefix_is_dir = *is_dir || i + 1 < parts.len();
            if matcher.excluded(&abs, prefix_is_dir, &is_local_dir)? {
                excluded = true;
                break;
            }
        }
        if excluded {
            forget.insert(path.clone());
            // the folders holding it must stay in the replica too
            let mut up = path.as_str();
            while let Some((parent, _)) = up.rsplit_once('/') {
                if !local.contains_key(parent) && stored.contains_key(parent) {
                    forget.insert(parent.to_string());
                }
                up = parent;
            }
        }
    }
    for path in &forget {
        stored.remove(path);
    }
    Ok(forget.len())
}

/// The ops that make `remote` equal to `local`, in an order that can be
/// applied one by one: first the removal of every entry whose kind changed
/// (or symlink whose target changed), a directory after its contents; then
/// `Mkdir`, parents before children; then `Put` (new, or size, mtime or exec
/// differ) and `Symlink`; last the removal of vanished entries, deepest
/// first. Equal trees give no ops.
pub fn diff(local: &Manifest, remote: &Manifest) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut removed: BTreeSet<&str> = BTreeSet::new();
    for (path, old) in remote {
        let Some(new) = local.get(path) else {
            continue;
        };
        if !must_replace(old, new) {
            continue;
        }
        if *old == EntryKind::Dir {
            let prefix = format!("{path}/");
            let inside: Vec<_> = remote
                .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                .take_while(|(p, _)| p.starts_with(&prefix))
                .collect();
            for (child, kind) in inside.into_iter().rev() {
                removed.insert(child);
                ops.push(removal(child, kind));
            }
        }
        removed.insert(path);
        ops.push(removal(path, old));
    }
    for (path, new) in local {
        if *new == EntryKind::Dir && remote.get(path) != Some(&EntryKind::Dir) {
            ops.push(Op::Mkdir(path.clone()));
        }
    }
    for (path, new) in local {
        let old = remote.get(path);
        match new {
            EntryKind::File { size, exec, .. } if old != Some(new) => ops.push(Op::Put {
                path: path.clone(),
                size: *size,
                exec: *exec,
            }),
            EntryKind::Symlink { target } if old != Some(new) => ops.push(Op::Symlink {
                path: path.clone(),
                target: target.clone(),
            }),
            _ => {}
        }
    }
    for (path, old) in remote.iter().rev() {
        if !local.contains_key(path) && !removed.contains(path.as_str()) {
            ops.push(removal(path, old));
        }
    }
    ops
}

/// Refuses ([`SyncError::Unsafe`]) a sync that looks like an accident: the
/// local root no longer exists; the local tree is empty while the replica is
/// not (an unmounted disk or a deleted checkout must never wipe the
/// replica); or the replica has more than [`MASS_DELETE_MIN_ENTRIES`]
/// entries and more than [`MASS_DELETE_MAX_PERCENT`] % of them would be
/// deleted (entries absent from `local`; kind changes are replacements and
/// do not count).
///
/// The manifests do not know where the tree lives, so the error's `local` is
/// an empty path: the caller fills it in (see [`with_local`]).
pub fn safety_check(
    local_root_exists: bool,
    local: &Manifest,
    remote: &Manifest,
) -> Result<(), SyncError> {
    let unsafe_ = |reason: String| SyncError::Unsafe {
        local: PathBuf::new(),
        reason,
    };
    if !local_root_exists {
        return Err(unsafe_("it no longer exists locally".to_string()));
    }
    if local.is_empty() && !remote.is_empty() {
        return Err(unsafe_(format!(
            "it is empty locally but its replica has {} entries (an unmounted disk or a deleted checkout?)",
            remote.len()
        )));
    }
    let deleted = remote.keys().filter(|p| !local.contains_key(*p)).count();
    if remote.len() > MASS_DELETE_MIN_ENTRIES
        && deleted * 100 > remote.len() * MASS_DELETE_MAX_PERCENT
    {
        return Err(unsafe_(format!(
            "this would delete {deleted} of the {} entries of its replica (more than {MASS_DELETE_MAX_PERCENT}%)",
            remote.len()
        )));
    }
    Ok(())
}

/// Names `root` in an [`SyncError::Unsafe`] whose `local` is still empty (as
/// [`safety_check`] returns it); any other error is returned as is.
pub fn with_local(err: SyncError, root: &Path) -> SyncError {
    match err {
        SyncError::Unsafe { local, reason } if local.as_os_str().is_empty() => SyncError::Unsafe {
            local: root.to_path_buf(),
            reason,
        },
        other => other,
    }
}

/// Whether an entry must be removed before the local one can take its place.
fn must_replace(old: &EntryKind, new: &EntryKind) -> bool {
    match (old, new) {
        (EntryKind::Dir, EntryKind::Dir) | (EntryKind::File { .. }, EntryKind::File { .. }) => {
            false
        }
        (EntryKind::Symlink { target: a }, EntryKind::Symlink { target: b }) => a != b,
        _ => true,
    }
}

/// The op removing an entry of the given kind.
fn removal(path: &str, kind: &EntryKind) -> Op {
    match kind {
        EntryKind::Dir => Op::Rmdir(path.to_string()),
        _ => Op::Remove(path.to_string()),
    }
}

/// What a replica holds after only the `done` operations of `ops` (made by
/// `diff(local, before)`) took effect: the manifest to keep after a sync
/// that stopped halfway, so the next diff redoes exactly the rest and
/// nothing uploaded meanwhile is forgotten.
pub fn after_ops(before: &Manifest, local: &Manifest, ops: &[Op], done: &[bool]) -> Manifest {
    let mut now = before.clone();
    for (op, _) in ops.iter().zip(done).filter(|(_, d)| **d) {
        match op {
            Op::Mkdir(p) => {
                now.insert(p.clone(), EntryKind::Dir);
            }
            Op::Put { path, .. } => match local.get(path) {
                Some(entry) => {
                    now.insert(path.clone(), entry.clone());
                }
                // sent, but its metadata is unknown: make sure it is sent again
                None => {
                    now.insert(
                        path.clone(),
                        EntryKind::File {
                            size: u64::MAX,
                            mtime: i64::MIN,
                            exec: false,
                        },
                    );
                }
            },
            Op::Symlink { path, target } => {
                now.insert(
                    path.clone(),
                    EntryKind::Symlink {
                        target: target.clone(),
                    },
                );
            }
            Op::Remove(p) | Op::Rmdir(p) => {
                now.remove(p);
            }
        }
    }
    now
}

/// A file entry from its metadata.
fn file_entry(path: &Path, meta: &std::fs::Metadata) -> Result<EntryKind, SyncError> {
    let modified = meta.modified().map_err(|e| unreadable(path, &e))?;
    let mtime = mtime_nanos(modified);
    Ok(EntryKind::File {
        size: meta.len(),
        mtime,
        exec: is_exec(meta),
    })
}

/// A modification time as the manifest records it: nanoseconds since the
/// Unix epoch (negative before it).
pub fn mtime_nanos(modified: std::time::SystemTime) -> i64 {
    match modified.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |s| -s),
    }
}

#[cfg(unix)]
fn is_exec(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_exec(_meta: &std::fs::Metadata) -> bool {
    false
}

/// `path` relative to `root`, `/`-separated.
fn relative(root: &Path, path: &Path) -> Result<String, SyncError> {
    let rel = path
        .strip_prefix(root)
        .map_err(|_| unreadable(path, "it is outside the synced folder"))?;
    let mut parts = Vec::new();
    for part in rel.components() {
        match part {
            Component::Normal(name) => parts.push(
                name.to_str()
                    .ok_or_else(|| unreadable(path, "the name is not valid UTF-8"))?,
            ),
            _ => return Err(unreadable(path, "unexpected path component")),
        }
    }
    Ok(parts.join("/"))
}

/// An [`SyncError::Unreadable`] for `path`.
pub(super) fn unreadable(path: &Path, reason: impl std::fmt::Display) -> SyncError {
    SyncError::Unreadable {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// An error of the walk, naming the path it is about (or the root).
fn walk_error(root: &Path, err: &ignore::Error) -> SyncError {
    fn path_of(err: &ignore::Error) -> Option<&Path> {
        match err {
            ignore::Error::WithPath { path, .. } => Some(path),
            ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
                path_of(err)
            }
            ignore::Error::Partial(errs) => errs.iter().find_map(path_of),
            _ => None,
        }
    }
    let reason = match err.io_error() {
        Some(io) => io.to_string(),
        None => err.to_string(),
    };
    unreadable(path_of(err).unwrap_or(root), reason)
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
