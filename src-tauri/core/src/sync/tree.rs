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

/// The file in the root of a synced folder listing what it keeps local.
pub const BERTHIGNORE: &str = ".berthignore";

/// What a scan leaves out. Nothing by default: a replica shows what a local
/// bind mount shows (gitignored files, `.dockerignore`d files and `.git`
/// included; `.dockerignore` is a build-context file and never read here).
///
/// Exclusions are opt-in, from three independent sources, and an entry is
/// excluded when any of them excludes it:
/// - the root's [`BERTHIGNORE`] (gitignore syntax, patterns relative to the
///   root: `node_modules` matches at any depth, `/build` only at the top,
///   `web/dist` that one folder); only the root's file is read, so one file
///   says everything a mount hides;
/// - [`Exclusions::patterns`], read as lines of a second such file;
/// - when [`Exclusions::gitignore`], the `.gitignore` files of the root and
///   every subdirectory, with git's semantics (a deeper file overrides a
///   shallower one; no git repository needed; parent, global and
///   `.git/info/exclude` files are not read).
///
/// A `!` exception re-includes only against its own source, and never
/// inside an excluded directory (that directory is not looked into).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    /// Extra patterns (`--sync-ignore`, the remote's patterns in the app).
    pub patterns: Vec<String>,
    /// Also honour `.gitignore` files.
    pub gitignore: bool,
}

impl Exclusions {
    /// The sources of exclusions in effect for a mount of `root`, for the
    /// status: `".berthignore"` when the root has one, `"--sync-ignore P"` per
    /// pattern, `".gitignore (honoured)"`. Empty for a single-file mount (no
    /// rules apply to it) and when nothing is excluded.
    pub fn sources(&self, root: &Path) -> Vec<String> {
        if !root.is_dir() {
            return Vec::new();
        }
        let mut out = Vec::new();
        if root.join(BERTHIGNORE).is_file() {
            out.push(BERTHIGNORE.to_string());
        }
        out.extend(self.patterns.iter().map(|p| format!("--sync-ignore {p}")));
        if self.gitignore {
            out.push(".gitignore (honoured)".to_string());
        }
        out
    }
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

    // the walk asks one entry at a time and cannot fail: the matcher keeps
    // the first error, and the scan returns it once the walk is over
    let matcher = Arc::new(Mutex::new(Matcher::new(root, rules)?));
    let filter = matcher.clone();
    let mut walk = WalkBuilder::new(root);
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

    // collected, then built in one go: a bulk-built map has full nodes
    // (half the memory of one grown entry by entry, in walk order)
    let mut entries = Vec::new();
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
    let failed = matcher
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .failed
        .take();
    match failed {
        Some(e) => Err(e),
        None => Ok(entries.into_iter().collect()),
    }
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

/// Answers "is this entry excluded" for one root, reading the `.gitignore`
/// of each folder once while the (depth-first) walk is inside it.
struct Matcher {
    root: PathBuf,
    patterns: Gitignore,
    berthignore: Gitignore,
    /// `None`: `.gitignore` files are not honoured. Otherwise the matchers
    /// of the folders from the root down to the one last asked about.
    gitignores: Option<Vec<(PathBuf, Gitignore)>>,
    /// The first error met inside the walk.
    failed: Option<SyncError>,
}

impl Matcher {
    fn new(root: &Path, rules: &Exclusions) -> Result<Self, SyncError> {
        let mut patterns = GitignoreBuilder::new(root);
        for line in &rules.patterns {
            patterns
                .add_line(None, line)
                .map_err(|e| invalid_ignore(root, line, &e))?;
        }
        let patterns = patterns
            .build()
            .map_err(|e| invalid_ignore(root, &rules.patterns.join("\n"), &e))?;
        let berthignore = berthignore(root)?;
        Ok(Self {
            root: root.to_path_buf(),
            patterns,
            berthignore,
            gitignores: rules.gitignore.then(Vec::new),
            failed: None,
        })
    }

    /// [`Matcher::excluded`] for the walk: an error is kept for later and
    /// the entry skipped (the scan fails anyway).
    fn excluded_or_fail(
        &mut self,
        path: &Path,
        is_dir: bool,
        readable: &dyn Fn(&Path) -> bool,
    ) -> bool {
        if self.failed.is_some() {
            return true;
        }
        match self.excluded(path, is_dir, readable) {
            Ok(excluded) => excluded,
            Err(e) => {
                self.failed = Some(e);
                true
            }
        }
    }

    /// Whether `path` (under the root; its parents are not checked) is
    /// excluded. `readable` says whether a folder's `.gitignore` may be read.
    fn excluded(
        &mut self,
        path: &Path,
        is_dir: bool,
        readable: &dyn Fn(&Path) -> bool,
    ) -> Result<bool, SyncError> {
        let hit = |m: &Gitignore| m.matched(path, is_dir).is_ignore();
        if hit(&self.patterns) || hit(&self.berthignore) {
            return Ok(true);
        }
        let Some(stack) = self.gitignores.as_mut() else {
            return Ok(false);
        };
        let Some(dir) = path.parent() else {
            return Ok(false);
        };
        if !dir.starts_with(&self.root) {
            return Ok(false);
        }
        while stack.last().is_some_and(|(d, _)| !dir.starts_with(d)) {
            stack.pop();
        }
        if stack.is_empty() {
            stack.push((self.root.clone(), gitignore(&self.root, readable)?));
        }
        let mut at = stack.last().map(|(d, _)| d.clone()).unwrap_or_default();
        let below: Vec<PathBuf> = dir
            .strip_prefix(&at)
            .map(|rest| {
                rest.components()
                    .map(|c| PathBuf::from(c.as_os_str()))
                    .collect()
            })
            .unwrap_or_default();
        for part in below {
            at.push(part);
            let m = gitignore(&at, readable)?;
            stack.push((at.clone(), m));
        }
        // the deepest file that says something decides, as in git
        for (_, m) in stack.iter().rev() {
            match m.matched(path, is_dir) {
                ignore::Match::Ignore(_) => return Ok(true),
                ignore::Match::Whitelist(_) => return Ok(false),
                ignore::Match::None => {}
            }
        }
        Ok(false)
    }
}

/// The root's `.berthignore` as a matcher (empty when there is none).
fn berthignore(root: &Path) -> Result<Gitignore, SyncError> {
    let file = root.join(BERTHIGNORE);
    let mut builder = GitignoreBuilder::new(root);
    for line in read_rules(&file)?.lines() {
        builder
            .add_line(Some(file.clone()), line)
            .map_err(|e| SyncError::Unsafe {
                local: root.to_path_buf(),
                reason: format!(
                    "the pattern {line:?} in {} is invalid ({e}); fix or remove it",
                    file.display()
                ),
            })?;
    }
    builder
        .build()
        .map_err(|e| unreadable(&file, format!("bad patterns: {e}")))
}

/// The `.gitignore` of folder `dir` as a matcher (empty when there is none,
/// or when `readable` says the folder is not one of the tree's).
fn gitignore(dir: &Path, readable: &dyn Fn(&Path) -> bool) -> Result<Gitignore, SyncError> {
    let mut builder = GitignoreBuilder::new(dir);
    if readable(dir) {
        let file = dir.join(".gitignore");
        for line in read_rules(&file)?.lines() {
            if let Err(err) = builder.add_line(Some(file.clone()), line) {
                tracing::warn!(path = %file.display(), "skipping bad pattern {line:?}: {err}");
            }
        }
    }
    builder
        .build()
        .map_err(|e| unreadable(dir, format!("bad .gitignore patterns: {e}")))
}

/// The text of an exclusion file; empty when there is none (or a folder or
/// anything but a file stands there).
fn read_rules(file: &Path) -> Result<String, SyncError> {
    match std::fs::symlink_metadata(file) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Ok(String::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(String::new()),
        Err(e) => return Err(unreadable(file, &e)),
    }
    let text = std::fs::read_to_string(file).map_err(|e| unreadable(file, &e))?;
    Ok(text.trim_start_matches('\u{feff}').to_string())
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
fn unreadable(path: &Path, reason: impl std::fmt::Display) -> SyncError {
    SyncError::Unreadable {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The refusal for an invalid [`Exclusions::patterns`] entry: syncing without it
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
