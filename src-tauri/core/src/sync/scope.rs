//! Which part of a tree a round has to look at. The file watcher says
//! which paths changed; a round triggered by it rescans only those (each
//! one with everything beneath it) on both sides and reconciles just that
//! part against the matching part of the ancestor, so an edit in a tree of
//! 100,000 files costs what it costs in a tree of ten. Anything the watcher
//! cannot vouch for (it overflowed, the root itself changed, an exclusion
//! file changed, too many paths) widens the scope to the whole tree. Pure.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::tree::{EntryKind, Manifest, BERTHIGNORE};

/// More changed paths than this in one round: rescanning everything is
/// cheaper than listing each of them on the remote.
pub const MAX_SCOPED_PATHS: usize = 2000;

/// Paths the watcher reported since the last round took them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dirty {
    /// Absolute paths, as the watcher gives them.
    pub paths: BTreeSet<PathBuf>,
    /// The watcher lost events (its queue overflowed, it failed): only a
    /// whole rescan knows what changed.
    pub overflow: bool,
}

impl Dirty {
    /// Adds what one watcher batch reported.
    pub fn add(&mut self, paths: impl IntoIterator<Item = PathBuf>) {
        if self.overflow {
            return;
        }
        self.paths.extend(paths);
        if self.paths.len() > MAX_SCOPED_PATHS {
            self.lost();
        }
    }

    /// The watcher cannot say what changed.
    pub fn lost(&mut self) {
        self.overflow = true;
        self.paths.clear();
    }
}

/// What a round rescans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything, on both sides.
    Full,
    /// These paths (relative, `/`-separated), each with everything beneath
    /// it; none lies beneath another.
    Paths(Paths),
}

/// The part of a tree a scoped round looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Paths {
    /// Rescanned with everything beneath them; sorted, none beneath another.
    pub roots: Vec<String>,
    /// The folders above the roots, sorted (parents first). They must be
    /// folders on both sides and in the ancestor, or the round widens to
    /// the whole tree: something above the roots changed too.
    pub above: Vec<String>,
}

/// The scope of a round of the folder `root` after `dirty`. `gitignore`:
/// `.gitignore` files are honoured, so a change to one can change what
/// every other path means.
pub fn scope_of(root: &Path, dirty: &Dirty, gitignore: bool) -> Scope {
    if dirty.overflow {
        return Scope::Full;
    }
    let mut rels = BTreeSet::new();
    for path in &dirty.paths {
        let Ok(rel) = path.strip_prefix(root) else {
            // not ours (the watcher of a file mount sees its folder)
            continue;
        };
        let Some(rel) = rel.to_str() else {
            // the full scan says what is wrong with the name
            return Scope::Full;
        };
        if rel.is_empty() {
            return Scope::Full;
        }
        let parts: Vec<&str> = rel.split('/').collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
        {
            return Scope::Full;
        }
        // a download under way: the rename that ends it is reported too
        if parts
            .iter()
            .any(|p| p.starts_with(super::untrusted::TEMP_PREFIX))
        {
            continue;
        }
        if rel == BERTHIGNORE || (gitignore && parts.last() == Some(&".gitignore")) {
            return Scope::Full;
        }
        rels.insert(rel.to_string());
    }
    // a path beneath another changed path is rescanned with it
    let roots: Vec<String> = rels
        .iter()
        .filter(|p| !parents(p).any(|up| rels.contains(up)))
        .cloned()
        .collect();
    let above: BTreeSet<String> = roots
        .iter()
        .flat_map(|r| parents(r).map(str::to_string))
        .collect();
    Scope::Paths(Paths {
        roots,
        above: above.into_iter().collect(),
    })
}

/// The proper ancestors of a relative path, nearest first.
fn parents(path: &str) -> impl Iterator<Item = &str> {
    let mut at = path;
    std::iter::from_fn(move || {
        let (up, _) = at.rsplit_once('/')?;
        at = up;
        Some(up)
    })
}

/// `path` and everything beneath it in `tree`.
pub fn subtree<'a>(
    tree: &'a Manifest,
    path: &str,
) -> impl Iterator<Item = (&'a String, &'a EntryKind)> {
    // "a/" .. "a0" holds exactly what lies beneath "a" ('0' follows '/')
    let (from, to) = (format!("{path}/"), format!("{path}0"));
    tree.get_key_value(path)
        .into_iter()
        .chain(tree.range(from..to))
}

impl Paths {
    /// Whether nothing is in scope.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The part of `tree` in scope: the roots with everything beneath them,
    /// and the folders above them that `tree` has.
    pub fn restrict(&self, tree: &Manifest) -> Manifest {
        let above = self
            .above
            .iter()
            .filter_map(|a| tree.get_key_value(a.as_str()));
        let below = self.roots.iter().flat_map(|r| subtree(tree, r));
        above
            .chain(below)
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect()
    }

    /// Whether every folder above the roots is a folder in `tree`.
    pub fn above_are_dirs(&self, tree: &Manifest) -> bool {
        self.above
            .iter()
            .all(|a| tree.get(a.as_str()) == Some(&EntryKind::Dir))
    }

    /// Puts `part` (what a scoped round agreed on, computed from
    /// [`Paths::restrict`]`(tree)`) in place of the scope's part of `tree`.
    /// Entries of `part` outside the scope (a conflict's kept copy beside
    /// its path) are added. Returns the changes made, in path order: the
    /// new entry, or `None` for one removed.
    pub fn splice(&self, tree: &mut Manifest, part: Manifest) -> Vec<(String, Option<EntryKind>)> {
        let old: Vec<String> = self
            .roots
            .iter()
            .flat_map(|r| subtree(tree, r).map(|(p, _)| p.clone()))
            .collect();
        let mut changes = std::collections::BTreeMap::new();
        for path in old {
            if !part.contains_key(&path) {
                tree.remove(&path);
                changes.insert(path, None);
            }
        }
        for (path, entry) in part {
            if tree.get(&path) != Some(&entry) {
                tree.insert(path.clone(), entry.clone());
                changes.insert(path, Some(entry));
            }
        }
        changes.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirty(paths: &[&str]) -> Dirty {
        let mut d = Dirty::default();
        d.add(paths.iter().map(|p| PathBuf::from(format!("/src/{p}"))));
        d
    }

    fn file(size: u64) -> EntryKind {
        EntryKind::File {
            size,
            mtime: 1,
            exec: false,
        }
    }

    fn paths(roots: &[&str], above: &[&str]) -> Scope {
        Scope::Paths(Paths {
            roots: roots.iter().map(|s| s.to_string()).collect(),
            above: above.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn the_scope_is_the_changed_paths_and_widens_when_the_watcher_cannot_vouch() {
        let root = Path::new("/src");
        let table: Vec<(Dirty, bool, Scope)> = vec![
            (dirty(&["a.txt"]), false, paths(&["a.txt"], &[])),
            (
                dirty(&["a/b/c.txt"]),
                false,
                paths(&["a/b/c.txt"], &["a", "a/b"]),
            ),
            // beneath another changed path: rescanned with it
            (
                dirty(&["a/b/c.txt", "a/b", "a-x"]),
                false,
                paths(&["a-x", "a/b"], &["a"]),
            ),
            (
                dirty(&["a/x", "a/y"]),
                false,
                paths(&["a/x", "a/y"], &["a"]),
            ),
            // Berth's own temporary files are not changes
            (
                dirty(&["a/.berth-tmp-1234", "a/f"]),
                false,
                paths(&["a/f"], &["a"]),
            ),
            (dirty(&[]), false, paths(&[], &[])),
            // the root itself, an exclusion file, an overflow: everything
            (dirty(&[""]), false, Scope::Full),
            (dirty(&[".berthignore"]), false, Scope::Full),
            (
                dirty(&["a/.berthignore"]),
                false,
                paths(&["a/.berthignore"], &["a"]),
            ),
            (dirty(&["a/.gitignore"]), true, Scope::Full),
            (
                dirty(&["a/.gitignore"]),
                false,
                paths(&["a/.gitignore"], &["a"]),
            ),
            (
                Dirty {
                    overflow: true,
                    ..Dirty::default()
                },
                false,
                Scope::Full,
            ),
        ];
        for (d, gitignore, want) in table {
            assert_eq!(
                scope_of(root, &d, gitignore),
                want,
                "{d:?} gitignore {gitignore}"
            );
        }
        // paths elsewhere (a file mount's folder) are not the tree's
        let mut d = Dirty::default();
        d.add([PathBuf::from("/elsewhere/x")]);
        assert_eq!(scope_of(root, &d, false), paths(&[], &[]));
        // too many paths: a whole rescan
        let mut d = Dirty::default();
        d.add((0..=MAX_SCOPED_PATHS).map(|i| PathBuf::from(format!("/src/f{i}"))));
        assert!(d.overflow && d.paths.is_empty());
        d.add([PathBuf::from("/src/more")]);
        assert_eq!(scope_of(root, &d, false), Scope::Full);
    }

    #[test]
    fn restrict_takes_the_roots_subtrees_and_the_folders_above() {
        let tree: Manifest = [
            ("a", EntryKind::Dir),
            ("a-b", file(1)),
            ("a/b", EntryKind::Dir),
            ("a/b/c", file(2)),
            ("a/b0", file(3)),
            ("a/bc", file(4)),
            ("z", file(5)),
        ]
        .into_iter()
        .map(|(p, e)| (p.to_string(), e))
        .collect();
        let Scope::Paths(scope) = scope_of(Path::new("/src"), &dirty(&["a/b"]), false) else {
            panic!("scoped");
        };
        let got: Vec<String> = scope.restrict(&tree).into_keys().collect();
        assert_eq!(got, ["a", "a/b", "a/b/c"]);
        assert!(scope.above_are_dirs(&tree));
        let mut flat = tree.clone();
        flat.insert("a".into(), file(9));
        assert!(!scope.above_are_dirs(&flat));
        flat.remove("a");
        assert!(!scope.above_are_dirs(&flat));
    }

    #[test]
    fn splice_replaces_the_scope_only_and_says_what_changed() {
        let mut tree: Manifest = [
            ("a", EntryKind::Dir),
            ("a/b", EntryKind::Dir),
            ("a/b/old", file(1)),
            ("a/b/same", file(2)),
            ("a/bz", file(3)),
            ("z", file(4)),
        ]
        .into_iter()
        .map(|(p, e)| (p.to_string(), e))
        .collect();
        let Scope::Paths(scope) = scope_of(Path::new("/src"), &dirty(&["a/b"]), false) else {
            panic!("scoped");
        };
        let part: Manifest = [
            ("a", EntryKind::Dir),
            ("a/b", EntryKind::Dir),
            ("a/b/new", file(5)),
            ("a/b/same", file(2)),
            // a conflict's kept copy beside the root
            ("a/b.berth-conflict-remote-1", EntryKind::Dir),
        ]
        .into_iter()
        .map(|(p, e)| (p.to_string(), e))
        .collect();
        let changes = scope.splice(&mut tree, part);
        assert_eq!(
            changes,
            vec![
                (
                    "a/b.berth-conflict-remote-1".to_string(),
                    Some(EntryKind::Dir)
                ),
                ("a/b/new".to_string(), Some(file(5))),
                ("a/b/old".to_string(), None),
            ]
        );
        let keys: Vec<&String> = tree.keys().collect();
        assert_eq!(
            keys,
            [
                "a",
                "a/b",
                "a/b.berth-conflict-remote-1",
                "a/b/new",
                "a/b/same",
                "a/bz",
                "z"
            ]
        );
    }
}
