//! What a synced tree leaves out: the opt-in exclusions of a mount (the
//! root's `.berthignore`, the user's patterns, `.gitignore` files when
//! asked) and the matcher that answers "is this entry excluded" for scans
//! and for the checks that keep an excluded path from being deleted.

use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::tree::unreadable;
use super::SyncError;

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

/// Answers "is this entry excluded" for one root, reading the `.gitignore`
/// of each folder once while the (depth-first) walk is inside it.
pub(super) struct Matcher {
    root: PathBuf,
    patterns: Gitignore,
    berthignore: Gitignore,
    /// `None`: `.gitignore` files are not honoured. Otherwise the matchers
    /// of the folders from the root down to the one last asked about.
    gitignores: Option<Vec<(PathBuf, Gitignore)>>,
    /// The first error met inside the walk.
    pub(super) failed: Option<SyncError>,
}

impl Matcher {
    pub(super) fn new(root: &Path, rules: &Exclusions) -> Result<Self, SyncError> {
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
    pub(super) fn excluded_or_fail(
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
    pub(super) fn excluded(
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

/// The refusal for an invalid [`Exclusions::patterns`] entry: syncing without it
/// could upload what the user meant to keep local.
fn invalid_ignore(root: &Path, pattern: &str, err: &ignore::Error) -> SyncError {
    SyncError::Unsafe {
        local: root.to_path_buf(),
        reason: format!("the ignore pattern {pattern:?} is invalid ({err}); fix or remove it"),
    }
}
