//! Carries sync operations out on the remote over SFTP: directories first,
//! then many files in flight at once (never one round trip per file), then
//! removals. Files are streamed (never read whole), written under a temporary
//! name and renamed into place, so a process in the container never reads a
//! half-written file. Symlinks are recreated as symlinks, never followed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use russh_sftp::client::SftpSession;
use russh_sftp::protocol::FileAttributes;
use tokio::io::AsyncWriteExt;

use super::tree::{Manifest, Op};
use super::SyncError;
use crate::ssh::SshSession;

/// Files uploaded at once; each also pipelines its own writes.
const FILES_IN_FLIGHT: usize = 16;

/// Opens an SFTP session on the SSH session.
pub async fn connect(ssh: &SshSession) -> Result<Arc<SftpSession>, SyncError> {
    let io = ssh.open_subsystem("sftp").await?;
    let report = io.report();
    let config = russh_sftp::client::Config {
        request_timeout_secs: 60,
        ..Default::default()
    };
    SftpSession::new_with_config(io, config)
        .await
        .map(Arc::new)
        .map_err(|e| SyncError::NoSftp {
            reason: report.summary().unwrap_or_else(|| e.to_string()),
        })
}

/// The default mounts root, `~/.cache/berth/mounts` of the SSH user.
pub async fn default_mounts_root(sftp: &SftpSession) -> Result<String, SyncError> {
    let home = sftp
        .canonicalize(".")
        .await
        .map_err(|e| SyncError::remote("~", e))?;
    Ok(format!(
        "{}/.cache/berth/mounts",
        home.trim_end_matches('/')
    ))
}

/// `mkdir -p` on the remote.
pub async fn mkdir_all(sftp: &SftpSession, path: &str) -> Result<(), SyncError> {
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at.push('/');
        at.push_str(part);
        if sftp.try_exists(at.clone()).await.unwrap_or(false) {
            continue;
        }
        if let Err(e) = sftp.create_dir(at.clone()).await {
            // a concurrent creator is fine
            if !sftp.try_exists(at.clone()).await.unwrap_or(false) {
                return Err(SyncError::remote(&at, e));
            }
        }
    }
    Ok(())
}

/// Where a replica's manifest is kept: beside it, never inside the mount.
fn manifest_path(replica_dir: &str) -> String {
    format!("{}.berth-manifest.json", replica_dir.trim_end_matches('/'))
}

/// The manifest stored with the replica by the last completed sync.
pub async fn read_manifest(sftp: &SftpSession, replica_dir: &str) -> Option<Manifest> {
    let bytes = sftp.read(manifest_path(replica_dir)).await.ok()?;
    serde_json::from_slice(&bytes).ok()
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
    let tmp = format!("{path}.tmp");
    let mut file = sftp
        .create(tmp.clone())
        .await
        .map_err(|e| SyncError::remote(&tmp, e))?;
    file.write_all(&bytes)
        .await
        .map_err(|e| SyncError::remote(&tmp, e))?;
    file.shutdown()
        .await
        .map_err(|e| SyncError::remote(&tmp, e))?;
    let _ = sftp.remove_file(path.clone()).await;
    sftp.rename(tmp, path.clone())
        .await
        .map_err(|e| SyncError::remote(&path, e))
}

/// What one `apply` moved.
#[derive(Debug, Default, Clone, Copy)]
pub struct Applied {
    pub files: u64,
    pub bytes: u64,
    pub removed: u64,
}

/// How a file lands in the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Under a temporary name, then renamed in: readers never see half a file.
    Replace,
    /// Truncated and rewritten in place: a single-file bind mount pins the
    /// inode it was mounted with, so a renamed-in file would never be seen.
    InPlace,
}

/// Applies `ops` (from `tree::diff`) to the replica at `replica_dir`, reading
/// files under `local_base`.
pub async fn apply(
    sftp: &Arc<SftpSession>,
    local_base: &Path,
    replica_dir: &str,
    ops: &[Op],
    how: Write,
) -> Result<Applied, SyncError> {
    let remote = |rel: &str| format!("{}/{}", replica_dir.trim_end_matches('/'), rel);
    let mut applied = Applied::default();
    mkdir_all(sftp, replica_dir).await?;
    // ops come ordered: kind-change removals, mkdirs, puts/symlinks, removals
    let mut puts = Vec::new();
    for op in ops {
        match op {
            Op::Mkdir(rel) => {
                let p = remote(rel);
                if !sftp.try_exists(p.clone()).await.unwrap_or(false) {
                    sftp.create_dir(p.clone())
                        .await
                        .map_err(|e| SyncError::remote(&p, e))?;
                }
            }
            Op::Put { path, exec, .. } => {
                puts.push((local_base.join(path), remote(path), *exec, how))
            }
            Op::Symlink { path, target } => {
                flush_puts(sftp, &mut puts, &mut applied).await?;
                let p = remote(path);
                let _ = sftp.remove_file(p.clone()).await;
                // OpenSSH's sftp-server takes SYMLINK's arguments in the reverse order
                // of the draft; russh-sftp sends (linkpath, targetpath) as the draft says
                sftp.symlink(target.clone(), p.clone())
                    .await
                    .map_err(|e| SyncError::remote(&p, e))?;
            }
            Op::Remove(rel) => {
                flush_puts(sftp, &mut puts, &mut applied).await?;
                let p = remote(rel);
                if let Err(e) = sftp.remove_file(p.clone()).await {
                    if sftp.try_exists(p.clone()).await.unwrap_or(false) {
                        return Err(SyncError::remote(&p, e));
                    }
                }
                applied.removed += 1;
            }
            Op::Rmdir(rel) => {
                flush_puts(sftp, &mut puts, &mut applied).await?;
                let p = remote(rel);
                if let Err(e) = sftp.remove_dir(p.clone()).await {
                    if sftp.try_exists(p.clone()).await.unwrap_or(false) {
                        return Err(SyncError::remote(&p, e));
                    }
                }
                applied.removed += 1;
            }
        }
    }
    flush_puts(sftp, &mut puts, &mut applied).await?;
    Ok(applied)
}

/// One file to send: local path, remote path, exec bit, how to write it.
type PutJob = (PathBuf, String, bool, Write);

async fn flush_puts(
    sftp: &Arc<SftpSession>,
    puts: &mut Vec<PutJob>,
    applied: &mut Applied,
) -> Result<(), SyncError> {
    if puts.is_empty() {
        return Ok(());
    }
    let batch = std::mem::take(puts);
    let results: Vec<Result<u64, SyncError>> = stream::iter(batch)
        .map(|(local, remote, exec, how)| {
            let sftp = sftp.clone();
            async move { put(&sftp, &local, &remote, exec, how).await }
        })
        .buffer_unordered(FILES_IN_FLIGHT)
        .collect()
        .await;
    for r in results {
        applied.bytes += r?;
        applied.files += 1;
    }
    Ok(())
}

/// Streams one file to a temporary name beside its place, then renames it in.
async fn put(
    sftp: &SftpSession,
    local: &Path,
    remote: &str,
    exec: bool,
    how: Write,
) -> Result<u64, SyncError> {
    let unreadable = |e: std::io::Error| SyncError::Unreadable {
        path: local.to_path_buf(),
        reason: e.to_string(),
    };
    let mut src = tokio::fs::File::open(local).await.map_err(unreadable)?;
    let (dir, name) = remote.rsplit_once('/').unwrap_or((".", remote));
    let tmp = match how {
        Write::Replace => format!("{dir}/.berth-tmp-{name}"),
        Write::InPlace => remote.to_string(),
    };
    let mut dst = sftp
        .create(tmp.clone())
        .await
        .map_err(|e| SyncError::remote(&tmp, e))?;
    let copied = tokio::io::copy(&mut src, &mut dst).await;
    let closed = dst.shutdown().await;
    let bytes = match (copied, closed) {
        (Ok(n), Ok(())) => n,
        (Err(e), _) | (_, Err(e)) => {
            let _ = sftp.remove_file(tmp.clone()).await;
            return Err(SyncError::remote(remote, e));
        }
    };
    let attrs = FileAttributes {
        permissions: Some(if exec { 0o755 } else { 0o644 }),
        ..Default::default()
    };
    sftp.set_metadata(tmp.clone(), attrs)
        .await
        .map_err(|e| SyncError::remote(&tmp, e))?;
    if how == Write::Replace {
        let _ = sftp.remove_file(remote.to_string()).await;
        sftp.rename(tmp.clone(), remote.to_string())
            .await
            .map_err(|e| SyncError::remote(remote, e))?;
    }
    Ok(bytes)
}
