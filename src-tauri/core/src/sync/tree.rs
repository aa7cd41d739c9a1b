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
use std::time::UNIX_EPOCH;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::WalkBuilder;
use serde::{Deserialize, Serialize};

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

/// Reads the tree at `root` into a manifest, without following symlinks.
///
/// A directory root honours `.gitignore` files in the root and every
/// subdirectory (git semantics, no git repository needed; parent, global and
/// `.git/info/exclude` files are not read), the root's `.dockerignore` with
/// Docker's semantics (every pattern is relative to the root, so `*.log`
/// matches only at the top and `**/*.log` everywhere; a `!` exception cannot
/// re-include something inside an excluded directory), and `extra_ignores`
/// as lines of a `.gitignore` in the root. An entry is skipped when any of
/// them excludes it. `.git` (directory or file, at any depth) is skipped when
/// `ignore_git_dir`. Hidden files are included; `.ignore` files are not read.
///
/// A file root yields one entry, named after the file; no ignore rules
/// apply to it. A symlinked root is followed (as `docker run -v` does).
/// Sockets, FIFOs and device files are skipped. An invalid pattern in an
/// ignore file is logged and skipped; an invalid `extra_ignores` pattern is
/// refused ([`SyncError::Unsafe`]). Anything that cannot be read (a directory
/// listing, metadata, a link, a name that is not UTF-8) is a
/// [`SyncError::Unreadable`] naming it. File contents are not read here.
pub fn scan(
    root: &Path,
    extra_ignores: &[String],
    ignore_git_dir: bool,
) -> Result<Manifest, SyncError> {
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

    let mut extra = GitignoreBuilder::new(root);
    for line in extra_ignores {
        extra
            .add_line(None, line)
            .map_err(|e| invalid_ignore(root, line, &e))?;
    }
    let extra = extra
        .build()
        .map_err(|e| invalid_ignore(root, &extra_ignores.join("\n"), &e))?;
    let docker = dockerignore(root)?;

    let mut walk = WalkBuilder::new(root);
    walk.standard_filters(false)
        .hidden(false)
        .git_ignore(true)
        .require_git(false)
        .follow_links(false)
        .filter_entry(move |ent| {
            let is_dir = ent.file_type().is_some_and(|t| t.is_dir());
            let git = ignore_git_dir && ent.file_name() == ".git";
            let ignored = |m: &Gitignore| m.matched(ent.path(), is_dir).is_ignore();
            !git && !ignored(&extra) && !ignored(&docker)
        });

    // collected, then built in one go: a bulk-built map has full nodes
    // (half the memory of one grown entry by entry, in walk order)
    let mut entries = Vec::new();
    for item in walk.build() {
        let ent = item.map_err(|e| walk_error(root, &e))?;
        if ent.depth() == 0 {
            continue;
        }
        if let Some(err) = ent.error() {
            tracing::warn!(path = %ent.path().display(), "skipping bad ignore rules: {err}");
        }
        let path = ent.path();
        let Some(file_type) = ent.file_type() else {
            continue;
        };
        let kind = if file_type.is_symlink() {
            let target = std::fs::read_link(path).map_err(|e| unreadable(path, &e))?;
            let target = target
                .to_str()
                .ok_or_else(|| unreadable(path, "the link target is not valid UTF-8"))?;
            EntryKind::Symlink {
                target: target.to_string(),
            }
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
    Ok(entries.into_iter().collect())
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

/// The root's `.dockerignore` as a matcher (empty when there is none).
fn dockerignore(root: &Path) -> Result<Gitignore, SyncError> {
    let file = root.join(".dockerignore");
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(unreadable(&file, &e)),
    };
    let mut builder = GitignoreBuilder::new(root);
    for line in dockerignore_lines(&text) {
        if let Err(err) = builder.add_line(Some(file.clone()), &line) {
            tracing::warn!(path = %file.display(), "skipping bad pattern {line:?}: {err}");
        }
    }
    builder
        .build()
        .map_err(|e| unreadable(&file, format!("bad patterns: {e}")))
}

/// Translates `.dockerignore` text into root-anchored gitignore lines, the
/// way Docker reads it: `#` comments and blank lines dropped, surrounding
/// space trimmed, `!` kept, each pattern cleaned like Go's `filepath.Clean`
/// (no `./`, doubled or trailing `/`; `..` resolved) and anchored at the
/// root. A pattern naming the root itself is dropped.
fn dockerignore_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for raw in text.trim_start_matches('\u{feff}').lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (bang, pattern) = match line.strip_prefix('!') {
            Some(rest) => ("!", rest.trim()),
            None => ("", line),
        };
        let mut parts: Vec<&str> = Vec::new();
        for part in pattern.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                _ => parts.push(part),
            }
        }
        if !parts.is_empty() {
            lines.push(format!("{bang}/{}", parts.join("/")));
        }
    }
    lines
}

/// An [`SyncError::Unreadable`] for `path`.
fn unreadable(path: &Path, reason: impl std::fmt::Display) -> SyncError {
    SyncError::Unreadable {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The refusal for an invalid `extra_ignores` pattern: syncing without it
/// could upload what the user meant to keep local.
fn invalid_ignore(root: &Path, pattern: &str, err: &ignore::Error) -> SyncError {
    SyncError::Unsafe {
        local: root.to_path_buf(),
        reason: format!("the ignore pattern {pattern:?} is invalid ({err}); fix or remove it"),
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
