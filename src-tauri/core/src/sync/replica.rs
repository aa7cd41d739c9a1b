//! Carries sync operations out on the remote over SFTP: directories first,
//! then many files in flight at once (never one round trip per file), then
//! removals. Files are streamed (never read whole), written under a temporary
//! name and renamed into place, so a process in the container never reads a
//! half-written file. Symlinks are recreated as symlinks, never followed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use russh_sftp::client::SftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags};
use tokio::io::AsyncWriteExt;

use super::progress::Progress;
use super::tree::{Manifest, Op};
use super::SyncError;
use crate::ssh::channel_io::ExecReport;
use crate::ssh::SshSession;

/// Files uploaded (and directories made) at once: latency, not bandwidth,
/// dominates per-file transfers over a real network. Each file also
/// pipelines its own writes.
const FILES_IN_FLIGHT: usize = 64;

/// Opens an SFTP session on the SSH session.
pub async fn connect(ssh: &SshSession) -> Result<(Arc<SftpSession>, ExecReport), SyncError> {
    let io = ssh.open_subsystem("sftp").await.map_err(|e| match e {
        crate::ssh::SshError::ChannelRefused { reason, .. } => SyncError::NoSftp { reason },
        other => other.into(),
    })?;
    let report = io.report();
    let config = russh_sftp::client::Config {
        request_timeout_secs: 60,
        ..Default::default()
    };
    let alive = report.clone();
    SftpSession::new_with_config(io, config)
        .await
        .map(|s| (Arc::new(s), alive))
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
    // one round trip in the common case; the walk only for what is missing
    if sftp.try_exists(path.to_string()).await.unwrap_or(false) {
        return Ok(());
    }
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
    let parsed: Manifest = serde_json::from_slice(&bytes).ok()?;
    // rebuilt in bulk: parsing inserts one by one and leaves nodes half full
    Some(parsed.into_iter().collect())
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
    // SFTP v3 will not rename over an existing file: remove it, then retry
    if sftp.rename(tmp.clone(), path.clone()).await.is_ok() {
        return Ok(());
    }
    let _ = sftp.remove_file(path.clone()).await;
    sftp.rename(tmp, path.clone())
        .await
        .map_err(|e| SyncError::remote(&path, e))
}

/// What one `apply` moved, and which operations took effect.
#[derive(Debug, Default, Clone)]
pub struct Applied {
    pub files: u64,
    pub bytes: u64,
    pub removed: u64,
    /// Per operation: it took effect. After a failure this tells exactly
    /// what the replica now holds (see `tree::after_ops`).
    pub done: Vec<bool>,
}

/// How a file lands in the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Under a temporary name, then renamed in: readers never see half a file.
    Replace,
    /// Truncated and rewritten in place: a single-file bind mount pins the
    /// inode it was mounted with, so a renamed-in file would never be seen.
    InPlace,
    /// Straight to the final name: for a first sync, which no container
    /// sees before it is complete (saves two round trips per file).
    Direct,
}

/// Applies `ops` (from `tree::diff`) to the replica at `replica_dir`, reading
/// files under `local_base`. Stops at the first failure, which it returns
/// beside what did take effect.
pub async fn apply(
    sftp: &Arc<SftpSession>,
    local_base: &Path,
    replica_dir: &str,
    ops: &[Op],
    how: Write,
    progress: &Arc<Progress>,
) -> (Applied, Option<SyncError>) {
    let mut applied = Applied {
        done: vec![false; ops.len()],
        ..Default::default()
    };
    let err = apply_ops(
        sftp,
        local_base,
        replica_dir,
        ops,
        how,
        progress,
        &mut applied,
    )
    .await
    .err();
    (applied, err)
}

async fn apply_ops(
    sftp: &Arc<SftpSession>,
    local_base: &Path,
    replica_dir: &str,
    ops: &[Op],
    how: Write,
    progress: &Arc<Progress>,
    applied: &mut Applied,
) -> Result<(), SyncError> {
    let remote = |rel: &str| format!("{}/{}", replica_dir.trim_end_matches('/'), rel);
    // one round trip in the steady state; the walk up only for a new replica
    if how == Write::Direct
        || !sftp
            .try_exists(replica_dir.to_string())
            .await
            .unwrap_or(false)
    {
        mkdir_all(sftp, replica_dir).await?;
    }
    // ops come ordered: kind-change removals, mkdirs, puts/symlinks, removals
    let mut puts = Vec::new();
    let mut removals = Vec::new();
    let dirs: Vec<String> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Mkdir(rel) => Some(remote(rel)),
            _ => None,
        })
        .collect();
    make_dirs(sftp, dirs).await?;
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Mkdir(_) => applied.done[i] = true,
            Op::Put { path, exec, .. } => {
                puts.push((i, (local_base.join(path), remote(path), *exec, how)))
            }
            Op::Symlink { path, target } => {
                flush_puts(sftp, &mut puts, progress, applied).await?;
                let p = remote(path);
                let _ = sftp.remove_file(p.clone()).await;
                // OpenSSH's sftp-server takes SYMLINK's arguments in the reverse order
                // of the draft; russh-sftp sends (linkpath, targetpath) as the draft says
                sftp.symlink(target.clone(), p.clone())
                    .await
                    .map_err(|e| SyncError::remote(&p, e))?;
                applied.done[i] = true;
            }
            Op::Remove(_) | Op::Rmdir(_) => {
                flush_puts(sftp, &mut puts, progress, applied).await?;
                removals.push(i);
                let next_is_removal = matches!(ops.get(i + 1), Some(Op::Remove(_) | Op::Rmdir(_)));
                if !next_is_removal {
                    remove_all(
                        sftp,
                        replica_dir,
                        ops,
                        std::mem::take(&mut removals),
                        applied,
                    )
                    .await?;
                }
            }
        }
    }
    flush_puts(sftp, &mut puts, progress, applied).await
}

/// Runs `job` on every `(op index, item)`, `FILES_IN_FLIGHT` at once, and
/// returns each index with its result.
async fn in_flight<T, R, F, Fut>(
    sftp: &Arc<SftpSession>,
    items: Vec<(usize, T)>,
    job: F,
) -> Vec<(usize, Result<R, SyncError>)>
where
    F: Fn(Arc<SftpSession>, T) -> Fut,
    Fut: std::future::Future<Output = Result<R, SyncError>>,
{
    stream::iter(items)
        .map(|(i, item)| {
            let fut = job(sftp.clone(), item);
            async move { (i, fut.await) }
        })
        .buffer_unordered(FILES_IN_FLIGHT)
        .collect()
        .await
}

/// Marks every operation that took effect as done (counting it with
/// `count`), even when another failed; returns the first failure.
fn settle<R>(
    results: Vec<(usize, Result<R, SyncError>)>,
    applied: &mut Applied,
    count: impl Fn(&mut Applied, R),
) -> Result<(), SyncError> {
    let mut first_err = None;
    for (i, r) in results {
        match r {
            Ok(v) => {
                count(applied, v);
                applied.done[i] = true;
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Groups remote paths by depth, shallowest first.
fn by_depth(
    paths: Vec<(usize, String)>,
) -> std::collections::BTreeMap<usize, Vec<(usize, String)>> {
    let mut levels: std::collections::BTreeMap<usize, Vec<(usize, String)>> = Default::default();
    for (i, p) in paths {
        levels
            .entry(p.matches('/').count())
            .or_default()
            .push((i, p));
    }
    levels
}

/// Removes a run of entries: every file at once, then directories level by
/// level, deepest first, each level at once. Entries already gone are fine.
async fn remove_all(
    sftp: &Arc<SftpSession>,
    replica_dir: &str,
    ops: &[Op],
    run: Vec<usize>,
    applied: &mut Applied,
) -> Result<(), SyncError> {
    let remote = |rel: &str| format!("{}/{}", replica_dir.trim_end_matches('/'), rel);
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    for i in run {
        match &ops[i] {
            Op::Remove(rel) => files.push((i, remote(rel))),
            Op::Rmdir(rel) => dirs.push((i, remote(rel))),
            _ => {}
        }
    }
    let levels = std::iter::once((false, files))
        .chain(by_depth(dirs).into_values().rev().map(|l| (true, l)));
    for (is_dir, level) in levels {
        let results = in_flight(sftp, level, |sftp, p: String| async move {
            let r = if is_dir {
                sftp.remove_dir(p.clone()).await
            } else {
                sftp.remove_file(p.clone()).await
            };
            match r {
                Err(e) if sftp.try_exists(p.clone()).await.unwrap_or(false) => {
                    Err(SyncError::remote(&p, e))
                }
                _ => Ok(()),
            }
        })
        .await;
        settle(results, applied, |a, ()| a.removed += 1)?;
    }
    Ok(())
}

/// Makes directories (parents listed before children), one depth level at
/// a time, each level all at once. Directories already there are fine.
async fn make_dirs(sftp: &Arc<SftpSession>, dirs: Vec<String>) -> Result<(), SyncError> {
    for level in by_depth(dirs.into_iter().enumerate().collect()).into_values() {
        let results = in_flight(sftp, level, |sftp, p: String| async move {
            match sftp.create_dir(p.clone()).await {
                Err(e) if !sftp.try_exists(p.clone()).await.unwrap_or(false) => {
                    Err(SyncError::remote(&p, e))
                }
                _ => Ok(()),
            }
        })
        .await;
        results.into_iter().try_for_each(|(_, r)| r)?;
    }
    Ok(())
}

/// One file to send: local path, remote path, exec bit, how to write it.
type PutJob = (PathBuf, String, bool, Write);

/// Sends the queued files (with their op indices), many at once; every one
/// that lands is marked done, even when another fails.
async fn flush_puts(
    sftp: &Arc<SftpSession>,
    puts: &mut Vec<(usize, PutJob)>,
    progress: &Arc<Progress>,
    applied: &mut Applied,
) -> Result<(), SyncError> {
    if puts.is_empty() {
        return Ok(());
    }
    let results = in_flight(
        sftp,
        std::mem::take(puts),
        |sftp, (local, remote, exec, how)| async move {
            let bytes = put(&sftp, &local, &remote, exec, how).await?;
            progress.file_done(bytes);
            Ok(bytes)
        },
    )
    .await;
    settle(results, applied, |a, bytes| {
        a.bytes += bytes;
        a.files += 1;
    })
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
    let target = match how {
        Write::Replace => format!("{dir}/.berth-tmp-{name}"),
        Write::InPlace | Write::Direct => remote.to_string(),
    };
    // the mode travels with the open; only an existing file needs a setstat
    let attrs = FileAttributes {
        permissions: Some(if exec { 0o755 } else { 0o644 }),
        ..Default::default()
    };
    let flags = OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE;
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
    match how {
        Write::InPlace | Write::Direct => {
            if how == Write::InPlace {
                sftp.set_metadata(target.clone(), attrs)
                    .await
                    .map_err(|e| SyncError::remote(&target, e))?;
            }
        }
        Write::Replace => {
            // SFTP v3 will not rename over an existing file: remove it, then retry
            if sftp
                .rename(target.clone(), remote.to_string())
                .await
                .is_err()
            {
                let _ = sftp.remove_file(remote.to_string()).await;
                sftp.rename(target.clone(), remote.to_string())
                    .await
                    .map_err(|e| SyncError::remote(remote, e))?;
            }
        }
    }
    Ok(bytes)
}
