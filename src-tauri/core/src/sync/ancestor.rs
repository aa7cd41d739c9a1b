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
//!
//! A round over a few paths of a large tree appends what it changed to a
//! journal beside the snapshot (one JSON line per entry, fsynced) instead
//! of rewriting the whole tree; the journal is folded into a new snapshot
//! once it outgrows half of it. Losing its last lines in a crash only makes
//! the ancestor older, and an older ancestor never deletes anything: the
//! entries both sides hold alike are agreed again, and at worst a change
//! is reported as a conflict with both versions kept.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::tree::{EntryKind, Manifest};
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
        self.named(replica, "json")
    }

    fn journal(&self, replica: &str) -> Option<PathBuf> {
        self.named(replica, "journal")
    }

    fn named(&self, replica: &str, ext: &str) -> Option<PathBuf> {
        let name = replica.trim_end_matches('/').rsplit('/').next()?;
        if name.is_empty() || name.starts_with('.') {
            return None;
        }
        Some(self.dir.as_ref()?.join(format!("{name}.{ext}")))
    }

    /// The ancestor of `replica` (its remote path); empty when none was
    /// kept or it cannot be read (said in the log).
    pub fn load(&self, replica: &str) -> Manifest {
        let Some(file) = self.file(replica) else {
            return Manifest::new();
        };
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            // a first round over part of the tree journals before any snapshot
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => b"{}".to_vec(),
            Err(e) => {
                tracing::warn!(
                    "cannot read {}: {e}; both trees are merged, nothing is deleted",
                    file.display()
                );
                return Manifest::new();
            }
        };
        let journal = self.journal(replica).and_then(|j| std::fs::read(j).ok());
        let parsed: Result<Manifest, Box<dyn std::error::Error>> = serde_json::from_slice(&bytes)
            .map_err(Into::into)
            .map(|mut m: Manifest| {
                if let Some(journal) = &journal {
                    replay(&mut m, journal);
                }
                m
            })
            .and_then(|m: Manifest| check_manifest(&m).map(|()| m).map_err(Into::into));
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
            return written;
        }
        // the snapshot holds everything the journal said
        if let Some(journal) = self.journal(replica) {
            match std::fs::remove_file(journal) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Records `changes` (an entry, or `None` for one removed) made to the
    /// ancestor of `replica`, which is now `whole`: appended to the journal,
    /// or, once that outgrows half the snapshot, as a new snapshot.
    pub fn record(
        &self,
        replica: &str,
        changes: &[(String, Option<EntryKind>)],
        whole: &Manifest,
    ) -> std::io::Result<()> {
        let (Some(file), Some(journal)) = (self.file(replica), self.journal(replica)) else {
            return Ok(());
        };
        let dir = file.parent().unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        // each append starts a line: one a crash cut short stays a line of
        // its own (skipped on replay) instead of spoiling this one
        let mut lines = vec![b'\n'];
        for change in changes {
            serde_json::to_writer(&mut lines, change).map_err(std::io::Error::other)?;
            lines.push(b'\n');
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&journal)?;
        f.write_all(&lines)?;
        f.sync_data()?;
        let journaled = f.metadata()?.len();
        let snapshot = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        if journaled > JOURNAL_MIN.max(snapshot / 2) {
            return self.save(replica, whole);
        }
        Ok(())
    }

    /// Forgets the ancestor of a replica that was removed.
    pub fn forget(&self, replica: &str) {
        for file in [self.file(replica), self.journal(replica)]
            .into_iter()
            .flatten()
        {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// A journal smaller than this is never folded into the snapshot.
const JOURNAL_MIN: u64 = 256 * 1024;

/// Applies the journal's lines to `tree`, in order, skipping any that is
/// not a whole record (a crash cut an append short).
fn replay(tree: &mut Manifest, journal: &[u8]) {
    for line in journal.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<(String, Option<EntryKind>)>(line) {
            Ok((path, Some(entry))) => {
                tree.insert(path, entry);
            }
            Ok((path, None)) => {
                tree.remove(&path);
            }
            Err(e) => {
                tracing::debug!("skipping a partial record of the sync journal ({e})");
            }
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

    #[test]
    fn a_journal_of_changes_replays_onto_the_snapshot_and_is_folded_in_when_large() {
        let dir = std::env::temp_dir().join(format!("berth-anc-j-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = AncestorStore::at(&dir);
        let file = |size| EntryKind::File {
            size,
            mtime: 7,
            exec: false,
        };
        let replica = "/r/m-1/src-ab";
        let mut whole: Manifest = (0..50).map(|i| (format!("f{i:03}"), file(i))).collect();
        store.save(replica, &whole).unwrap();
        // a round over part of the tree: one changed, one removed, one added
        let changes = vec![
            ("f001".to_string(), Some(file(100))),
            ("f002".to_string(), None),
            ("new/x".to_string(), Some(file(3))),
            ("new".to_string(), Some(EntryKind::Dir)),
        ];
        for (p, e) in &changes {
            match e {
                Some(e) => whole.insert(p.clone(), e.clone()),
                None => whole.remove(p),
            };
        }
        store.record(replica, &changes, &whole).unwrap();
        assert!(dir.join("src-ab.journal").exists());
        assert_eq!(store.load(replica), whole);
        // a crash cut the last append short: the whole records still count
        let mut j = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("src-ab.journal"))
            .unwrap();
        j.write_all(br#"["f003",{"fi"#).unwrap();
        assert_eq!(store.load(replica), whole);
        // the next record is a line of its own; one naming a path outside
        // the tree spoils the whole ancestor
        store
            .record(replica, &[("f004".into(), None)], &whole)
            .unwrap();
        whole.remove("f004");
        assert_eq!(store.load(replica), whole);
        drop(j);
        store
            .record(replica, &[("../x".into(), Some(file(1)))], &whole)
            .unwrap();
        assert!(store.load(replica).is_empty());
        // a new snapshot ends the journal
        store.save(replica, &whole).unwrap();
        assert!(!dir.join("src-ab.journal").exists());
        // past half the snapshot (and the floor) the journal is folded in
        let big: Vec<(String, Option<EntryKind>)> = (0..6000)
            .map(|i| (format!("g{i:05}"), Some(file(i))))
            .collect();
        for (p, e) in &big {
            whole.insert(p.clone(), e.clone().unwrap());
        }
        store.record(replica, &big, &whole).unwrap();
        assert!(
            !dir.join("src-ab.journal").exists(),
            "folded into the snapshot"
        );
        assert_eq!(store.load(replica), whole);
        store.forget(replica);
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(names.is_empty(), "left: {names:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
