//! What the remote sends back is untrusted input: a compromised remote (or
//! anyone who can write beside the replicas) may answer with endless output,
//! never answer at all, or hand back a manifest naming paths outside the
//! replica. Output of remote commands is read up to a cap and within a time
//! limit, and a manifest read back is used only if every entry is a plain
//! relative path; otherwise it is treated as lost (a full re-sync), never as
//! paths to write or delete.

use std::time::Duration;

use russh_sftp::client::SftpSession;
use russh_sftp::protocol::OpenFlags;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::tree::Manifest;
use super::SyncError;

/// Largest manifest read back: about 300,000 entries.
pub const MANIFEST_CAP: u64 = 32 * 1024 * 1024;

/// How long reading a manifest back may take.
const MANIFEST_READ_TIME: Duration = Duration::from_secs(60);

/// Why bounded output could not be collected.
#[derive(Debug, PartialEq, Eq)]
pub enum Bounded {
    /// More than the cap arrived (the rest is not read).
    TooLarge(u64),
    /// The time limit passed first.
    TimedOut(Duration),
    /// Reading failed.
    Failed(String),
}

impl std::fmt::Display for Bounded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bounded::TooLarge(cap) => {
                write!(f, "the remote sent more than the {cap} bytes asked for")
            }
            Bounded::TimedOut(t) => write!(f, "the remote did not finish within {}s", t.as_secs()),
            Bounded::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// Reads `r` to its end, refusing more than `cap` bytes or more than `limit`
/// of time.
pub async fn read_capped<R: AsyncRead + Unpin>(
    r: R,
    cap: u64,
    limit: Duration,
) -> Result<Vec<u8>, Bounded> {
    let mut out = Vec::new();
    // one byte beyond the cap tells "exactly cap" from "more"
    let mut take = r.take(cap.saturating_add(1));
    match tokio::time::timeout(limit, take.read_to_end(&mut out)).await {
        Err(_) => Err(Bounded::TimedOut(limit)),
        Ok(Err(e)) => Err(Bounded::Failed(e.to_string())),
        Ok(Ok(_)) if out.len() as u64 > cap => Err(Bounded::TooLarge(cap)),
        Ok(Ok(_)) => Ok(out),
    }
}

/// Whether `rel` is a plain relative path that stays inside the directory
/// it is joined to: no empty, `.` or `..` component (so not absolute), no
/// NUL, no backslash (a separator for a Windows sshd).
pub fn safe_relative(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.contains(['\0', '\\'])
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Refuses a manifest with any entry that is not [`safe_relative`], or
/// whose parent is not listed as a directory; names the first offender.
pub fn check_manifest(manifest: &Manifest) -> Result<(), BadManifest> {
    for path in manifest.keys() {
        if !safe_relative(path) {
            return Err(BadManifest::NotRelative(path.clone()));
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            if manifest.get(parent) != Some(&super::tree::EntryKind::Dir) {
                return Err(BadManifest::NoParent {
                    path: path.clone(),
                    parent: parent.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Why a manifest read back is not trusted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadManifest {
    #[error("entry {0:?} is not a plain relative path")]
    NotRelative(String),
    #[error("entry {path:?} has no directory {parent:?}")]
    NoParent { path: String, parent: String },
}

/// Where a replica's manifest is kept: beside it, never inside the mount.
pub fn manifest_path(replica_dir: &str) -> String {
    format!("{}.berth-manifest.json", replica_dir.trim_end_matches('/'))
}

/// The manifest stored with the replica by the last completed sync; `None`
/// when there is none or it cannot be trusted (too large, too slow, not
/// parseable, an entry outside the replica), which means a full re-sync.
pub async fn read_manifest(sftp: &SftpSession, replica_dir: &str) -> Option<Manifest> {
    let path = manifest_path(replica_dir);
    let file = sftp.open(path.clone()).await.ok()?;
    let bytes = match read_capped(file, MANIFEST_CAP, MANIFEST_READ_TIME).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("ignoring the manifest {path} ({e}); the replica is synced in full");
            return None;
        }
    };
    let parsed: Manifest = serde_json::from_slice(&bytes).ok()?;
    if let Err(why) = check_manifest(&parsed) {
        tracing::warn!("ignoring the manifest {path}: {why}; the replica is synced in full");
        return None;
    }
    // rebuilt in bulk: parsing inserts one by one and leaves nodes half full
    Some(parsed.into_iter().collect())
}

/// How every temporary name of Berth's starts; scans on either side skip it.
pub const TEMP_PREFIX: &str = ".berth-tmp-";

/// A name nobody can guess, for a temporary file beside `name`.
pub fn temp_name(name: &str) -> String {
    format!("{TEMP_PREFIX}{name}-{:016x}", rand::random::<u64>())
}

/// Records what the replica now holds (written last: a sync cut short
/// leaves the previous manifest, so the next sync redoes the difference).
pub async fn write_manifest(
    sftp: &SftpSession,
    replica_dir: &str,
    manifest: &Manifest,
) -> Result<(), SyncError> {
    let path = manifest_path(replica_dir);
    let bytes = serde_json::to_vec(manifest).map_err(|e| SyncError::remote(&path, e))?;
    let (dir, name) = path.rsplit_once('/').unwrap_or((".", &path));
    let tmp = format!("{dir}/{}", temp_name(name));
    // created exclusively: never through a link someone left at the name
    let flags = OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE;
    let mut file = sftp
        .open_with_flags(tmp.clone(), flags)
        .await
        .map_err(|e| SyncError::remote(&tmp, e))?;
    let written = async {
        file.write_all(&bytes).await?;
        file.shutdown().await
    }
    .await;
    if let Err(e) = written {
        let _ = sftp.remove_file(tmp.clone()).await;
        return Err(SyncError::remote(&tmp, e));
    }
    // SFTP v3 will not rename over an existing file: remove it, then retry
    if sftp.rename(tmp.clone(), path.clone()).await.is_ok() {
        return Ok(());
    }
    let _ = sftp.remove_file(path.clone()).await;
    let renamed = sftp.rename(tmp.clone(), path.clone()).await;
    if renamed.is_err() {
        let _ = sftp.remove_file(tmp).await;
    }
    renamed.map_err(|e| SyncError::remote(&path, e))
}

#[cfg(test)]
mod tests {
    use super::super::tree::EntryKind;
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_safe() {
        let table = [
            ("a", true),
            ("a/b/c.txt", true),
            ("dir with spaces/naïve", true),
            ("..a/b..", true),
            (".hidden/.x", true),
            ("", false),
            ("/etc/passwd", false),
            ("a//b", false),
            ("a/", false),
            ("./a", false),
            ("a/./b", false),
            ("..", false),
            ("../../outside/x", false),
            ("a/../../b", false),
            ("a/..", false),
            ("a\0b", false),
            ("a\\..\\b", false),
            ("C:\\x", false),
        ];
        for (path, want) in table {
            assert_eq!(safe_relative(path), want, "{path:?}");
        }
    }

    fn file() -> EntryKind {
        EntryKind::File {
            size: 1,
            mtime: 1,
            exec: false,
        }
    }

    #[test]
    fn manifests_with_escaping_or_orphan_entries_are_refused() {
        let ok = Manifest::from([
            ("d".to_string(), EntryKind::Dir),
            ("d/f".to_string(), file()),
            ("top".to_string(), file()),
        ]);
        assert_eq!(check_manifest(&ok), Ok(()));
        assert_eq!(check_manifest(&Manifest::new()), Ok(()));
        let bad: &[&[(&str, EntryKind)]] = &[
            &[("../../outside/x", file())],
            &[("/abs", file())],
            &[("", file())],
            &[("d", EntryKind::Dir), ("d/../x", file())],
            &[("d", EntryKind::Dir), ("d/./x", file())],
            &[("back\\slash", file())],
            &[("nul\0", file())],
            // the parent must be a directory Berth recorded, not a link
            &[
                ("l", EntryKind::Symlink { target: "/".into() }),
                ("l/x", file()),
            ],
            &[("missing/x", file())],
        ];
        for entries in bad {
            let m: Manifest = entries
                .iter()
                .map(|(p, k)| (p.to_string(), k.clone()))
                .collect();
            assert!(check_manifest(&m).is_err(), "{m:?}");
        }
    }

    #[tokio::test]
    async fn reads_are_capped() {
        let data = vec![7u8; 100];
        let got = read_capped(&data[..], 100, Duration::from_secs(1)).await;
        assert_eq!(got, Ok(data.clone()));
        let got = read_capped(&data[..], 99, Duration::from_secs(1)).await;
        assert_eq!(got, Err(Bounded::TooLarge(99)));
    }

    #[tokio::test]
    async fn reads_are_timed() {
        let (_keep, silent) = tokio::io::duplex(64);
        let got = read_capped(silent, 10, Duration::from_millis(50)).await;
        assert_eq!(got, Err(Bounded::TimedOut(Duration::from_millis(50))));
    }

    #[test]
    fn temp_names_are_unpredictable() {
        let (a, b) = (temp_name("f"), temp_name("f"));
        assert_ne!(a, b);
        assert!(a.starts_with(".berth-tmp-f-") && a.len() == ".berth-tmp-f-".len() + 16);
    }
}
