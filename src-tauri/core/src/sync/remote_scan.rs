//! What a replica holds now, read back over SFTP: the remote half of a
//! sync that does not take the replica's manifest on trust. A container may
//! have written, changed or removed anything in its read-write mount since
//! the last sync; [`scan`] sees it, and [`retire_blockers`] (pure) names
//! what removing the replica would lose, so a replica holding anything the
//! local folder lacks is kept instead of deleted.
//!
//! The walk never follows a link: SFTP `readdir` reports `lstat`
//! attributes, a link is read as its target text, and only directories the
//! listing itself reports as directories are entered. It is bounded in
//! entries, and listings go out several at a time.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};
use russh_sftp::client::SftpSession;

use super::tree::{EntryKind, Manifest};
use super::untrusted::safe_relative;
use super::SyncError;

/// A replica with more entries than this is not scanned (`TooLarge`).
pub const MAX_ENTRIES: usize = 2_000_000;

/// Listings in flight at once.
const LISTINGS_IN_FLIGHT: usize = 16;

/// Names Berth itself leaves for a moment (uploads under way): never the
/// container's data.
pub(super) const BERTH_TEMP_PREFIX: &str = ".berth-tmp-";

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// One entry as a listing reports it, before links are read.
enum Listed {
    Dir,
    File {
        size: u64,
        mtime: i64,
        exec: bool,
    },
    Link,
    /// Sockets, FIFOs, devices: nothing a sync carries.
    Other,
}

fn classify(attrs: &russh_sftp::protocol::FileAttributes) -> Listed {
    let mode = attrs.permissions.unwrap_or(0);
    match mode & S_IFMT {
        S_IFDIR => Listed::Dir,
        S_IFREG => Listed::File {
            size: attrs.size.unwrap_or(0),
            mtime: i64::from(attrs.mtime.unwrap_or(0)) * 1_000_000_000,
            exec: mode & 0o111 != 0,
        },
        S_IFLNK => Listed::Link,
        _ => Listed::Other,
    }
}

/// Reads the tree under the replica `root` (paths relative to it).
pub async fn scan(sftp: &SftpSession, root: &str) -> Result<Manifest, SyncError> {
    let root = root.trim_end_matches('/').to_string();
    let mut out = BTreeMap::new();
    let mut links = Vec::new();
    let mut pending = vec![String::new()];
    while !pending.is_empty() {
        let batch = std::mem::take(&mut pending);
        let listings: Vec<_> = stream::iter(batch)
            .map(|rel| {
                let path = join(&root, &rel);
                async move { (rel, sftp.read_dir(path.clone()).await, path) }
            })
            .buffer_unordered(LISTINGS_IN_FLIGHT)
            .collect()
            .await;
        for (rel, listing, path) in listings {
            let listing = listing.map_err(|e| SyncError::remote(&path, e))?;
            for entry in listing {
                let name = entry.file_name();
                if name == "." || name == ".." || name.starts_with(BERTH_TEMP_PREFIX) {
                    continue;
                }
                let child = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if !safe_relative(&child) {
                    continue;
                }
                match classify(&entry.metadata()) {
                    Listed::Dir => {
                        out.insert(child.clone(), EntryKind::Dir);
                        pending.push(child);
                    }
                    Listed::File { size, mtime, exec } => {
                        out.insert(child, EntryKind::File { size, mtime, exec });
                    }
                    Listed::Link => links.push(child),
                    Listed::Other => {}
                }
                if out.len() + links.len() > MAX_ENTRIES {
                    return Err(SyncError::remote(
                        &root,
                        format!("the replica holds more than {MAX_ENTRIES} entries"),
                    ));
                }
            }
        }
    }
    let targets: Vec<_> = stream::iter(links)
        .map(|rel| {
            let path = join(&root, &rel);
            async move { (rel, sftp.read_link(path).await) }
        })
        .buffer_unordered(LISTINGS_IN_FLIGHT)
        .collect()
        .await;
    for (rel, target) in targets {
        // a link removed between the listing and the read is simply gone
        if let Ok(target) = target {
            out.insert(rel, EntryKind::Symlink { target });
        }
    }
    Ok(out)
}

fn join(root: &str, rel: &str) -> String {
    if rel.is_empty() {
        root.to_string()
    } else {
        format!("{root}/{rel}")
    }
}

/// The scan in the manifest's terms: a file whose size, exec bit and
/// whole-second mtime are what Berth recorded is the recorded entry (SFTP
/// and tar keep seconds only, the manifest keeps nanoseconds).
pub fn as_recorded(mut scanned: Manifest, recorded: &Manifest) -> Manifest {
    for (path, entry) in scanned.iter_mut() {
        if let (
            EntryKind::File { size, mtime, exec },
            Some(
                rec @ EntryKind::File {
                    size: rs,
                    mtime: rm,
                    exec: rx,
                },
            ),
        ) = (&*entry, recorded.get(path))
        {
            if size == rs && exec == rx && *mtime == rm.div_euclid(1_000_000_000) * 1_000_000_000 {
                *entry = rec.clone();
            }
        }
    }
    scanned
}

/// The replica's scan in the terms of the trees it is compared with: a
/// file whose size and exec bit are those of the entry at its path in one of
/// `known` (tried in order), and whose mtime is that entry's exactly or its
/// whole second (SFTP sets and reports seconds only), is that entry. A
/// container's write moves the mtime to a time with nanoseconds, so it
/// still reads as a change.
pub fn as_agreed(mut scanned: Manifest, known: &[&Manifest]) -> Manifest {
    for (path, entry) in scanned.iter_mut() {
        let EntryKind::File { size, mtime, exec } = &*entry else {
            continue;
        };
        let found = known.iter().find_map(|m| match m.get(path) {
            Some(
                k @ EntryKind::File {
                    size: ks,
                    mtime: km,
                    exec: kx,
                },
            ) if ks == size
                && kx == exec
                && (km == mtime || *mtime == km.div_euclid(1_000_000_000) * 1_000_000_000) =>
            {
                Some(k.clone())
            }
            _ => None,
        });
        if let Some(k) = found {
            *entry = k;
        }
    }
    scanned
}

/// What removing a replica would lose: the paths the replica holds (in the
/// manifest's terms, see [`as_recorded`]) that differ from what Berth
/// recorded sending there, i.e. written or changed by someone else. Entries
/// someone removed lose nothing. Sorted.
pub fn retire_blockers(replica: &Manifest, recorded: &Manifest) -> Vec<String> {
    replica
        .iter()
        .filter(|(path, entry)| recorded.get(*path) != Some(*entry))
        .map(|(path, _)| path.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, mtime: i64) -> EntryKind {
        EntryKind::File {
            size,
            mtime,
            exec: false,
        }
    }

    fn tree(entries: &[(&str, EntryKind)]) -> Manifest {
        entries
            .iter()
            .map(|(p, e)| (p.to_string(), e.clone()))
            .collect()
    }

    #[test]
    fn a_file_reads_as_the_known_entry_it_matches_to_the_second() {
        let ns = 1_700_000_000_123_456_789;
        let secs = 1_700_000_000_000_000_000;
        let ancestor = tree(&[("a", file(3, ns)), ("b", file(3, ns)), ("c", file(3, 7))]);
        let local = tree(&[("c", file(3, ns)), ("d", file(4, ns))]);
        let scanned = tree(&[
            // uploaded by Berth: SFTP set whole seconds
            ("a", file(3, secs)),
            // a container wrote the same size in that second
            ("b", file(3, secs + 5)),
            // not the ancestor's, but what the local side holds now
            ("c", file(3, secs)),
            // another size
            ("d", file(5, secs)),
            ("e", EntryKind::Dir),
        ]);
        let got = as_agreed(scanned, &[&ancestor, &local]);
        assert_eq!(got["a"], file(3, ns));
        assert_eq!(got["b"], file(3, secs + 5));
        assert_eq!(got["c"], file(3, ns));
        assert_eq!(got["d"], file(5, secs));
        assert_eq!(got["e"], EntryKind::Dir);
    }

    #[test]
    fn whole_seconds_of_a_recorded_file_are_the_recorded_entry() {
        let ns = 1_700_000_000_123_456_789;
        let secs = 1_700_000_000_000_000_000;
        let recorded = tree(&[("a", file(3, ns)), ("b", file(3, ns)), ("c", file(3, ns))]);
        let scanned = tree(&[
            ("a", file(3, secs)),
            ("b", file(4, secs)),
            ("c", file(3, secs + 1_000_000_000)),
            ("d", file(1, secs)),
        ]);
        let got = as_recorded(scanned, &recorded);
        assert_eq!(got["a"], file(3, ns), "unchanged");
        assert_eq!(got["b"], file(4, secs), "resized");
        assert_eq!(got["c"], file(3, secs + 1_000_000_000), "touched later");
        assert_eq!(got["d"], file(1, secs), "new");
    }

    #[test]
    fn only_what_others_wrote_blocks_a_retirement() {
        let link = |t: &str| EntryKind::Symlink { target: t.into() };
        let recorded = tree(&[
            ("data", EntryKind::Dir),
            ("data/a", file(1, 5)),
            ("gone", file(1, 5)),
            ("l", link("a")),
        ]);
        let table: Vec<(&str, Manifest, Vec<&str>)> = vec![
            ("as sent", recorded.clone(), vec![]),
            (
                "removed by the container",
                tree(&[("data", EntryKind::Dir)]),
                vec![],
            ),
            (
                "a new file",
                tree(&[
                    ("data", EntryKind::Dir),
                    ("data/a", file(1, 5)),
                    ("data/new", file(9, 7)),
                ]),
                vec!["data/new"],
            ),
            (
                "a changed file",
                tree(&[("data", EntryKind::Dir), ("data/a", file(2, 6))]),
                vec!["data/a"],
            ),
            ("a relinked link", tree(&[("l", link("b"))]), vec!["l"]),
            (
                "a folder where a file was",
                tree(&[("gone", EntryKind::Dir)]),
                vec!["gone"],
            ),
        ];
        for (name, replica, want) in table {
            assert_eq!(retire_blockers(&replica, &recorded), want, "{name}");
        }
    }

    #[test]
    fn modes_classify_without_following() {
        let attrs = |mode: u32| russh_sftp::protocol::FileAttributes {
            permissions: Some(mode),
            size: Some(7),
            mtime: Some(2),
            ..Default::default()
        };
        assert!(matches!(classify(&attrs(0o040755)), Listed::Dir));
        assert!(matches!(classify(&attrs(0o120777)), Listed::Link));
        assert!(matches!(classify(&attrs(0o010644)), Listed::Other));
        match classify(&attrs(0o100755)) {
            Listed::File { size, mtime, exec } => {
                assert_eq!((size, mtime, exec), (7, 2_000_000_000, true))
            }
            _ => panic!("a regular file"),
        }
    }
}
