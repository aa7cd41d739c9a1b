//! Sends one local file into the replica: opened as the scan saw it (see
//! `local_file`), streamed (never read whole), and written as the mode says:
//! under an unguessable temporary name created exclusively (so never through
//! a link someone left at the name) and renamed over the target, which
//! replaces a link there instead of following it. The rename is atomic
//! (`posix-rename@openssh.com`, see `sftp_ext`) when the remote offers it,
//! so a reader in the container never finds the file missing or partial.

use std::path::Path;

use futures_util::StreamExt;
use russh_sftp::client::SftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::local_file::open_scanned;
use super::remote_path::{lstat, Found};
use super::replica::Write;
use super::untrusted::temp_name;
use super::SyncError;

/// Sends `rel` under `base` to `remote` if it is still the regular file of
/// `size` bytes (and, when given, `mtime`) that the scan saw; `Ok(None)`
/// when it changed and was skipped.
#[allow(clippy::too_many_arguments)]
pub async fn put_matching(
    sftp: &SftpSession,
    base: &Path,
    rel: &str,
    size: u64,
    mtime: Option<i64>,
    remote: &str,
    exec: bool,
    how: Write,
) -> Result<Option<u64>, SyncError> {
    let local = base.join(rel);
    let unreadable = |e: &dyn std::fmt::Display| SyncError::Unreadable {
        path: local.clone(),
        reason: e.to_string(),
    };
    let (b, r) = (base.to_path_buf(), rel.to_string());
    let opened = tokio::task::spawn_blocking(move || open_scanned(&b, &r, size))
        .await
        .map_err(|e| unreadable(&e))?
        .map_err(|e| unreadable(&e))?;
    let file = match opened {
        Some(f) if mtime.is_none_or(|want| modified_nanos(&f) == Some(want)) => f,
        _ => {
            tracing::debug!(
                "{} changed since the scan; the next scan sends it",
                local.display()
            );
            return Ok(None);
        }
    };
    // the replica keeps the local mtime (whole seconds: all SFTP carries),
    // so a later scan of it tells Berth's upload from a container's write
    let secs = modified_nanos(&file)
        .map(|ns| ns.div_euclid(1_000_000_000))
        .and_then(|s| u32::try_from(s).ok());
    let src = tokio::fs::File::from_std(file).take(size);
    put_file(sftp, src, remote, exec, secs, how).await.map(Some)
}

fn modified_nanos(f: &std::fs::File) -> Option<i64> {
    let t = f.metadata().ok()?.modified().ok()?;
    Some(super::tree::mtime_nanos(t))
}

/// Streams `src` to `remote`, as `how` says.
async fn put_file(
    sftp: &SftpSession,
    mut src: impl tokio::io::AsyncRead + Unpin,
    remote: &str,
    exec: bool,
    mtime_secs: Option<u32>,
    how: Write,
) -> Result<u64, SyncError> {
    let (dir, name) = remote.rsplit_once('/').unwrap_or((".", remote));
    let target = match how {
        Write::Replace => format!("{dir}/{}", temp_name(name)),
        Write::InPlace | Write::Direct => remote.to_string(),
    };
    // the mode travels with the open; only an existing file needs a setstat
    let attrs = FileAttributes {
        permissions: Some(if exec { 0o755 } else { 0o644 }),
        ..Default::default()
    };
    let flags = match how {
        // a single-file bind's replica sits in a folder no container sees;
        // a link at the name is removed, never written through
        Write::InPlace => {
            if let Ok(m) = sftp.symlink_metadata(target.clone()).await {
                if m.is_symlink() {
                    let _ = sftp.remove_file(target.clone()).await;
                }
            }
            OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE
        }
        // exclusive: fails on anything at the name, a link included
        Write::Replace | Write::Direct => OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE,
    };
    let mut dst = sftp
        .open_with_flags_and_attributes(target.clone(), flags, attrs.clone())
        .await
        .map_err(|e| SyncError::remote(&target, e))?;
    let copied = tokio::io::copy(&mut src, &mut dst).await;
    let closed = dst.shutdown().await;
    let bytes = match (copied, closed) {
        (Ok(n), Ok(())) => n,
        (Err(e), _) | (_, Err(e)) => {
            if how == Write::Replace {
                let _ = sftp.remove_file(target.clone()).await;
            }
            return Err(SyncError::remote(remote, e));
        }
    };
    // after the data: the writes would move an mtime given at open
    let attrs = FileAttributes {
        atime: mtime_secs,
        mtime: mtime_secs,
        ..attrs
    };
    if let Err(e) = sftp.set_metadata(target.clone(), attrs).await {
        if how == Write::Replace {
            let _ = sftp.remove_file(target.clone()).await;
        }
        return Err(SyncError::remote(&target, e));
    }
    match how {
        Write::Direct | Write::InPlace => {}
        Write::Replace => {
            if let Err(e) = rename_over(sftp, &target, remote).await {
                let _ = sftp.remove_file(target.clone()).await;
                return Err(e);
            }
        }
    }
    Ok(bytes)
}

/// Renames `from` over `to`, which may exist (a file, or a link, which is
/// replaced itself, never followed). With `posix-rename@openssh.com` this is
/// one `rename(2)`: a reader sees the old file or the new, never neither.
/// Without it (SFTP v3 will not rename over an existing entry) what is at
/// `to` is removed, then the rename retried, and the name is missing for a
/// moment. A folder in the way is an error either way.
pub(super) async fn rename_over(sftp: &SftpSession, from: &str, to: &str) -> Result<(), SyncError> {
    let e = match super::sftp_ext::posix_rename(sftp, from, to).await {
        Some(Ok(())) => return Ok(()),
        Some(Err(e)) => {
            // the server refused it: say why, a folder in the way in particular
            if matches!(e, russh_sftp::client::error::Error::Status(_)) {
                if lstat(sftp, to).await? == Found::Dir {
                    return Err(in_the_way(to, e));
                }
                return Err(SyncError::remote(to, e));
            }
            // the second channel broke: the first may still work
            tracing::debug!("atomic rename of {to} failed ({e}); removing, then renaming");
            match sftp.rename(from.to_string(), to.to_string()).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            }
        }
        None => match sftp.rename(from.to_string(), to.to_string()).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        },
    };
    match lstat(sftp, to).await? {
        Found::Dir => return Err(in_the_way(to, e)),
        Found::Other => {
            let _ = sftp.remove_file(to.to_string()).await;
        }
        Found::Missing => {}
    }
    sftp.rename(from.to_string(), to.to_string())
        .await
        .map_err(|e| SyncError::remote(to, e))
}

fn in_the_way(to: &str, e: impl std::fmt::Display) -> SyncError {
    SyncError::remote(
        to,
        format!("a folder (made in the container?) is where this file goes ({e})"),
    )
}

/// Replicas already swept by this process, per SFTP session.
static SWEPT: std::sync::Mutex<Option<std::collections::HashSet<(usize, String)>>> =
    std::sync::Mutex::new(None);

/// Once per SFTP session and replica: removes the temporary files an agent
/// killed mid-upload left behind (their names are random, so no later
/// upload reuses them). Only entries named like Berth's temporary files and
/// absent from the manifest go; links among them go themselves, never what
/// they point to. Best effort: a failure leaves them for the next session.
pub async fn sweep_temp_files(
    sftp: &std::sync::Arc<SftpSession>,
    replica_dir: &str,
    scanned: Option<&super::tree::Manifest>,
) {
    let key = (
        std::sync::Arc::as_ptr(sftp) as usize,
        replica_dir.to_string(),
    );
    let first = SWEPT
        .lock()
        .map(|mut s| s.get_or_insert_with(Default::default).insert(key))
        .unwrap_or(false);
    if !first {
        return;
    }
    let root = replica_dir.trim_end_matches('/');
    // the folders a scan just saw, else those the manifest records
    let stored = match scanned {
        Some(tree) => tree.clone(),
        None => super::untrusted::read_manifest(sftp, root)
            .await
            .unwrap_or_default(),
    };
    let dirs: Vec<String> = std::iter::once(root.to_string())
        .chain(
            stored
                .iter()
                .filter(|(_, k)| **k == super::tree::EntryKind::Dir)
                .map(|(p, _)| format!("{root}/{p}")),
        )
        .collect();
    let listed: Vec<Vec<String>> = futures_util::stream::iter(dirs)
        .map(|dir| {
            let sftp = sftp.clone();
            async move {
                let Ok(entries) = sftp.read_dir(dir.clone()).await else {
                    return Vec::new();
                };
                entries
                    .filter(|e| e.file_name().starts_with(".berth-tmp-") && !e.file_type().is_dir())
                    .map(|e| format!("{dir}/{}", e.file_name()))
                    .collect()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    for path in listed.into_iter().flatten() {
        let rel = path.get(root.len() + 1..).unwrap_or_default();
        if !stored.contains_key(rel) {
            let _ = sftp.remove_file(path).await;
        }
    }
}
