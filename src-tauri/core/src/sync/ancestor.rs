//! Where two-way sync keeps the tree both sides last agreed on (the
//! *ancestor* of `reconcile`): on this machine, never beside the replica.
//!
//! The ancestor decides what counts as a deletion: an entry it lists that
//! one side lacks is propagated as deleted to the other side. Anyone who
//! can write the replica's folder (a container mounting it) could write a
//! manifest there claiming the user's files had been agreed on and then
//! "deleted" remotely; read from there, that would delete them locally. So
//! the ancestor lives in Berth's data folder, one file per replica, keyed
//! by the remote daemon (as `crate::owned` keys its records) and the
//! replica's name, written atomically (temporary file, fsync, rename) with
//! mode 0600. A missing or unreadable file means "agreed on nothing": the
//! next round merges both trees and deletes nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::tree::Manifest;
use super::untrusted::{check_manifest, temp_name};

/// Ancestors of the replicas of one remote daemon.
#[derive(Debug, Clone)]
pub struct AncestorStore {
    /// `<data dir>/ancestors/<daemon>`; `None`: kept in memory only.
    dir: Option<PathBuf>,
}

impl AncestorStore {
    /// The store beside `owned`'s records (`<data>/owned/<daemon>` →
    /// `<data>/ancestors/<daemon>`).
    pub fn beside(owned: &crate::owned::Owned) -> Self {
        let records = owned.dir();
        let dir = match (records.parent().and_then(Path::parent), records.file_name()) {
            (Some(data), Some(daemon)) => Some(data.join("ancestors").join(daemon)),
            _ => None,
        };
        Self { dir }
    }

    /// A store in `dir` (tests).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
        }
    }

    fn file(&self, replica: &str) -> Option<PathBuf> {
        let name = replica.trim_end_matches('/').rsplit('/').next()?;
        if name.is_empty() || name.starts_with('.') {
            return None;
        }
        Some(self.dir.as_ref()?.join(format!("{name}.json")))
    }

    /// The ancestor of `replica` (its remote path); empty when none was
    /// kept or it cannot be read (said in the log).
    pub fn load(&self, replica: &str) -> Manifest {
        let Some(file) = self.file(replica) else {
            return Manifest::new();
        };
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Manifest::new(),
            Err(e) => {
                tracing::warn!(
                    "cannot read {}: {e}; both trees are merged, nothing is deleted",
                    file.display()
                );
                return Manifest::new();
            }
        };
        let parsed: Result<Manifest, String> = serde_json::from_slice(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|m: Manifest| check_manifest(&m).map(|()| m));
        match parsed {
            // rebuilt in bulk: parsing inserts one by one and leaves nodes half full
            Ok(m) => m.into_iter().collect(),
            Err(why) => {
                tracing::warn!(
                    "ignoring {}: {why}; both trees are merged, nothing is deleted",
                    file.display()
                );
                Manifest::new()
            }
        }
    }

    /// Records `agreed` as the ancestor of `replica`. A failure is returned
    /// (the round still happened; the next one redoes the comparison).
    pub fn save(&self, replica: &str, agreed: &Manifest) -> std::io::Result<()> {
        let Some(file) = self.file(replica) else {
            return Ok(());
        };
        let dir = file.parent().unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        let bytes = serde_json::to_vec(agreed).map_err(std::io::Error::other)?;
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("ancestor");
        let tmp = dir.join(temp_name(name));
        let written = (|| {
            let mut f = open_private(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &file)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// Forgets the ancestor of a replica that was removed.
    pub fn forget(&self, replica: &str) {
        if let Some(file) = self.file(replica) {
            let _ = std::fs::remove_file(file);
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::tree::EntryKind;

    #[test]
    fn an_ancestor_is_kept_per_replica_and_a_bad_one_agrees_on_nothing() {
        let dir = std::env::temp_dir().join(format!("berth-anc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = AncestorStore::at(&dir);
        let m: Manifest = [
            ("a".to_string(), EntryKind::Dir),
            (
                "a/b".to_string(),
                EntryKind::File {
                    size: 1,
                    mtime: 5,
                    exec: false,
                },
            ),
        ]
        .into_iter()
        .collect();
        assert!(store.load("/r/m-1/src-ab").is_empty());
        store.save("/r/m-1/src-ab", &m).unwrap();
        assert_eq!(store.load("/r/m-1/src-ab/"), m);
        assert!(store.load("/r/m-1/other-cd").is_empty());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("src-ab.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // a path escaping the tree is refused as a whole
        std::fs::write(dir.join("src-ab.json"), br#"{"../x":"dir"}"#).unwrap();
        assert!(store.load("/r/m-1/src-ab").is_empty());
        std::fs::write(dir.join("src-ab.json"), b"{not json").unwrap();
        assert!(store.load("/r/m-1/src-ab").is_empty());
        store.forget("/r/m-1/src-ab");
        assert!(!dir.join("src-ab.json").exists());
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(names.is_empty(), "temporary files left: {names:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
