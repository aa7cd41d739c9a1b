//! Carries sync operations out on the remote over SFTP: directories first,
//! then many files in flight at once (never one round trip per file), then
//! removals. Files are streamed (never read whole), written under an
//! unguessable temporary name created exclusively and renamed into place, so
//! a process in the container never reads a half-written file; with a
//! remote shell, in the replica's stage and moved in from inside the folder
//! (`placer`), so a folder swapped for a link cannot redirect them. Symlinks are
//! recreated as symlinks, never followed. Every folder on the way to a write
//! or a delete is checked first to be a real directory (`remote_path`): a
//! container cannot redirect Berth through a link it planted.
//!
//! Replacing is atomic where the remote allows: a file or link is renamed
//! over the old one with `posix-rename@openssh.com` (`sftp_ext`), so a reader
//! in the container sees the old version or the new, never a missing, empty
//! or partial file; a server without it gets remove-then-rename (said once
//! in the log). A moved folder is not one rename: the diff has no move, so
//! the new folder fills (each file atomic) before the old one is removed,
//! and for a moment both exist, never neither. Kind changes (a file becoming
//! a folder) remove first: `rename(2)` cannot put one over the other. The
//! first sync (`tarball`, GNU tar unlinks then creates) and `Write::Direct`
//! write in place because no container sees the replica before they end;
//! `Write::InPlace` (single-file binds) must keep the mounted inode, so a
//! reader there can see the file partly rewritten.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use russh_sftp::client::SftpSession;

use super::placer::{Placing, Step};
use super::progress::Progress;
use super::remote_path::{lstat, Found, Guard};
use super::tree::Op;
pub use super::untrusted::{read_manifest, write_manifest};
use super::SyncError;
use crate::ssh::channel_io::ExecReport;
use crate::ssh::SshSession;

/// Files uploaded (and directories made) at once: latency, not bandwidth,
/// dominates per-file transfers over a real network. Each file also
/// pipelines its own writes.
const FILES_IN_FLIGHT: usize = 64;

/// Opens an SFTP session on the SSH session, and beside it (at the same
/// time, so no extra wait) the raw session that replaces files atomically
/// when the server offers `posix-rename@openssh.com` (see `sftp_ext`).
pub async fn connect(ssh: &SshSession) -> Result<(Arc<SftpSession>, ExecReport), SyncError> {
    let config = russh_sftp::client::Config {
        request_timeout_secs: 60,
        ..Default::default()
    };
    let main = async {
        let io = ssh.open_subsystem("sftp").await.map_err(|e| match e {
            crate::ssh::SshError::ChannelRefused { reason, .. } => SyncError::NoSftp { reason },
            other => other.into(),
        })?;
        let report = io.report();
        let alive = report.clone();
        SftpSession::new_with_config(io, config.clone())
            .await
            .map(|s| (Arc::new(s), alive))
            .map_err(|e| SyncError::NoSftp {
                reason: report.summary().unwrap_or_else(|| e.to_string()),
            })
    };
    let (main, raw) = tokio::join!(main, super::sftp_ext::open(ssh, config.clone()));
    let (sftp, alive) = main?;
    if let Some(raw) = raw {
        super::sftp_ext::attach(&sftp, raw);
    }
    Ok((sftp, alive))
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

/// The long-lived remote shell, when the caller has one: files and links
/// are then moved into place from inside their folder (`placer`).
pub type Shell<'a> = Option<(&'a SshSession, &'a super::remote_shell::RemoteShell)>;

/// Applies `ops` (from `tree::diff`) to the replica at `replica_dir`, reading
/// files under `local_base`. Stops at the first failure, which it returns
/// beside what did take effect.
pub async fn apply(
    shell: Shell<'_>,
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
        shell,
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

/// The kinds of operation run together, in the order `tree::diff` gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Mkdir,
    Write,
    Removal,
}

fn class(op: &Op) -> Class {
    match op {
        Op::Mkdir(_) => Class::Mkdir,
        Op::Put { .. } | Op::Symlink { .. } => Class::Write,
        Op::Remove(_) | Op::Rmdir(_) => Class::Removal,
    }
}

/// The path an operation is about, relative to the replica.
pub fn op_path(op: &Op) -> &str {
    match op {
        Op::Mkdir(p) | Op::Remove(p) | Op::Rmdir(p) => p,
        Op::Put { path, .. } | Op::Symlink { path, .. } => path,
    }
}

#[allow(clippy::too_many_arguments)]
async fn apply_ops(
    shell: Shell<'_>,
    sftp: &Arc<SftpSession>,
    local_base: &Path,
    replica_dir: &str,
    ops: &[Op],
    how: Write,
    progress: &Arc<Progress>,
    applied: &mut Applied,
) -> Result<(), SyncError> {
    // one round trip in the steady state; the walk up only for a new replica
    if how == Write::Direct
        || !sftp
            .try_exists(replica_dir.to_string())
            .await
            .unwrap_or(false)
    {
        mkdir_all(sftp, replica_dir).await?;
    }
    super::upload::sweep_temp_files(sftp, replica_dir, None).await;
    // only where containers may look: a first sync and single-file binds
    // write where none does
    let placing = match how {
        Write::Replace => Placing::open(shell, replica_dir).await,
        Write::InPlace | Write::Direct => None,
    };
    let handled: HashSet<String> = ops.iter().map(|op| op_path(op).to_string()).collect();
    let mut guard = Guard::new(sftp, replica_dir, local_base, handled, placing.as_ref());
    // ops come ordered: kind-change removals, mkdirs, puts/symlinks, removals;
    // each run of one kind goes at once, in that order
    let mut at = 0;
    while at < ops.len() {
        let kind = class(&ops[at]);
        let end = at + ops[at..].iter().take_while(|op| class(op) == kind).count();
        let run: Vec<usize> = (at..end).collect();
        match kind {
            Class::Mkdir => make_dirs(&mut guard, ops, run, applied).await?,
            Class::Write => {
                write_all(&mut guard, local_base, ops, run, how, progress, applied).await?
            }
            Class::Removal => remove_all(&mut guard, ops, run, applied).await?,
        }
        at = end;
    }
    Ok(())
}

/// Runs `job` on every `(op index, item)`, `FILES_IN_FLIGHT` at once, and
/// returns each index with its result.
pub(super) async fn in_flight<T, R, F, Fut>(
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

/// Groups `(op index, relative path)` by depth, shallowest first.
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

/// Makes the directories of a run of `Mkdir`s (parents listed before
/// children), one depth level at a time, each level all at once.
async fn make_dirs(
    guard: &mut Guard<'_>,
    ops: &[Op],
    run: Vec<usize>,
    applied: &mut Applied,
) -> Result<(), SyncError> {
    let rels: Vec<&str> = run.iter().map(|&i| op_path(&ops[i])).collect();
    let pending: HashSet<&str> = rels.iter().copied().collect();
    guard.parents(&rels, &pending).await?;
    let items: Vec<(usize, String)> = run
        .iter()
        .map(|&i| (i, op_path(&ops[i]).to_string()))
        .collect();
    if let Some(placing) = guard.placing() {
        let steps: Vec<(usize, String, Step)> = by_depth(items)
            .into_values()
            .flatten()
            .map(|(i, rel)| (i, rel, Step::Mkdir))
            .collect();
        let results = placed(placing, &steps).await?;
        for ((_, rel, _), (_, r)) in steps.iter().zip(&results) {
            if r.is_ok() {
                guard.made_dir(rel);
            }
        }
        return settle(results, applied, |_, ()| {});
    }
    let sftp = guard.sftp().clone();
    for level in by_depth(items).into_values() {
        let jobs = level
            .iter()
            .map(|(i, rel)| (*i, guard.remote(rel)))
            .collect();
        let results = in_flight(&sftp, jobs, |sftp, p: String| async move {
            make_dir(&sftp, &p).await
        })
        .await;
        for (i, rel) in &level {
            if results.iter().any(|(j, r)| j == i && r.is_ok()) {
                guard.made_dir(rel);
            }
        }
        settle(results, applied, |_, ()| {})?;
    }
    Ok(())
}

/// Runs `steps` (op index, relative path, step) in one go through the
/// placer; each op index with its outcome, in the order given.
async fn placed(
    placing: &Placing<'_>,
    steps: &[(usize, String, Step)],
) -> Result<Vec<(usize, Result<(), SyncError>)>, SyncError> {
    let list: Vec<(String, Step)> = steps
        .iter()
        .map(|(_, rel, step)| (rel.clone(), step.clone()))
        .collect();
    let results = placing.run(&list).await?;
    Ok(steps
        .iter()
        .zip(results)
        .map(|((i, rel, _), r)| {
            (
                *i,
                r.map_err(|why| SyncError::remote(&placing.path(rel), why)),
            )
        })
        .collect())
}

/// Makes one directory. One already there is fine; a link or file where it
/// goes (a container's, since the replica had no folder there) is removed
/// first, never followed.
async fn make_dir(sftp: &SftpSession, path: &str) -> Result<(), SyncError> {
    let Err(e) = sftp.create_dir(path.to_string()).await else {
        return Ok(());
    };
    match lstat(sftp, path).await? {
        Found::Dir => Ok(()),
        Found::Missing => Err(SyncError::remote(path, e)),
        Found::Other => {
            tracing::warn!("{path}: removing a link or file in the way of a folder");
            sftp.remove_file(path.to_string())
                .await
                .map_err(|e| SyncError::remote(path, e))?;
            sftp.create_dir(path.to_string())
                .await
                .map_err(|e| SyncError::remote(path, e))
        }
    }
}

/// Removes a run of entries: every file and link at once, then directories
/// level by level, deepest first, each level at once. Entries already gone
/// are fine. A link never has its target removed.
async fn remove_all(
    guard: &mut Guard<'_>,
    ops: &[Op],
    run: Vec<usize>,
    applied: &mut Applied,
) -> Result<(), SyncError> {
    let rels: Vec<&str> = run.iter().map(|&i| op_path(&ops[i])).collect();
    guard.parents(&rels, &HashSet::new()).await?;
    // relative paths for the placer, remote ones for SFTP
    let at = |rel: &str| match guard.placing() {
        Some(_) => rel.to_string(),
        None => guard.remote(rel),
    };
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    for i in run {
        match &ops[i] {
            Op::Remove(rel) => files.push((i, at(rel))),
            Op::Rmdir(rel) => dirs.push((i, at(rel))),
            _ => {}
        }
    }
    if let Some(placing) = guard.placing() {
        let remove = |(i, rel): (usize, String)| (i, rel, Step::Remove);
        let rmdir = |(i, rel): (usize, String)| (i, rel, Step::Rmdir);
        let steps: Vec<(usize, String, Step)> = files
            .into_iter()
            .map(remove)
            .chain(by_depth(dirs).into_values().rev().flatten().map(rmdir))
            .collect();
        let results = placed(placing, &steps).await?;
        return settle(results, applied, |a, ()| a.removed += 1);
    }
    let sftp = guard.sftp().clone();
    let levels = std::iter::once((false, files))
        .chain(by_depth(dirs).into_values().rev().map(|l| (true, l)));
    for (is_dir, level) in levels {
        let results = in_flight(&sftp, level, |sftp, p: String| async move {
            let r = if is_dir {
                sftp.remove_dir(p.clone()).await
            } else {
                sftp.remove_file(p.clone()).await
            };
            let Err(e) = r else { return Ok(()) };
            match lstat(&sftp, &p).await? {
                Found::Missing => Ok(()),
                // a link a container put in place of the folder: the link goes
                Found::Other if is_dir => sftp
                    .remove_file(p.clone())
                    .await
                    .map_err(|e| SyncError::remote(&p, e)),
                _ => Err(SyncError::remote(&p, e)),
            }
        })
        .await;
        settle(results, applied, |a, ()| a.removed += 1)?;
    }
    Ok(())
}

/// One file to send: its path under the local base, scanned size, remote
/// path, exec bit.
pub(super) type PutJob = (String, u64, String, bool);

/// Sends a run of files and links, many at once; every one that lands is
/// marked done, even when another fails. A file that changed since the scan
/// is skipped (its change event brings the next scan).
#[allow(clippy::too_many_arguments)]
async fn write_all(
    guard: &mut Guard<'_>,
    local_base: &Path,
    ops: &[Op],
    run: Vec<usize>,
    how: Write,
    progress: &Arc<Progress>,
    applied: &mut Applied,
) -> Result<(), SyncError> {
    let rels: Vec<&str> = run.iter().map(|&i| op_path(&ops[i])).collect();
    guard.parents(&rels, &HashSet::new()).await?;
    let (mut puts, mut links) = (Vec::new(), Vec::new());
    for i in run {
        match &ops[i] {
            Op::Put { path, size, exec } => {
                puts.push((i, (path.clone(), *size, guard.remote(path), *exec)))
            }
            Op::Symlink { path, target } => links.push((i, (guard.remote(path), target.clone()))),
            _ => {}
        }
    }
    let sftp = guard.sftp().clone();
    let base = local_base.to_path_buf();
    if let Some(placer) = guard.placing() {
        return super::placer::write_placed(
            &sftp, placer, &base, ops, puts, links, progress, applied,
        )
        .await;
    }
    let results = in_flight(&sftp, puts, |sftp, (rel, size, remote, exec): PutJob| {
        let base = base.clone();
        async move {
            let sent =
                super::upload::put_matching(&sftp, &base, &rel, size, None, &remote, exec, how)
                    .await?;
            if let Some(bytes) = sent {
                progress.file_done(bytes);
            }
            Ok(sent)
        }
    })
    .await;
    // skipped files are not done: a sync cut short sends them again
    let results = results
        .into_iter()
        .filter(|(_, r)| !matches!(r, Ok(None)))
        .collect();
    let puts_settled = settle(results, applied, |a, bytes: Option<u64>| {
        a.bytes += bytes.unwrap_or(0);
        a.files += 1;
    });
    puts_settled?;
    let results = in_flight(
        &sftp,
        links,
        |sftp, (p, target): (String, String)| async move { put_link(&sftp, &p, target).await },
    )
    .await;
    settle(results, applied, |_, ()| {})
}

/// Makes `path` a symlink to `target`, replacing what is there (a link or a
/// file goes itself, never what it points to). Made under a temporary name
/// and renamed over the old entry when the remote replaces atomically, so a
/// reader never finds the name missing; otherwise removed, then made.
async fn put_link(sftp: &SftpSession, path: &str, target: String) -> Result<(), SyncError> {
    // OpenSSH's sftp-server takes SYMLINK's arguments in the reverse order
    // of the draft; russh-sftp sends (linkpath, targetpath) as the draft says
    if !super::sftp_ext::atomic_renames(sftp) {
        let _ = sftp.remove_file(path.to_string()).await;
        return sftp
            .symlink(target, path.to_string())
            .await
            .map_err(|e| SyncError::remote(path, e));
    }
    let (dir, name) = path.rsplit_once('/').unwrap_or((".", path));
    // random: symlink(2) fails on anything already at the name, a planted link included
    let tmp = format!("{dir}/{}", super::untrusted::temp_name(name));
    sftp.symlink(target, tmp.clone())
        .await
        .map_err(|e| SyncError::remote(&tmp, e))?;
    let renamed = super::upload::rename_over(sftp, &tmp, path).await;
    if renamed.is_err() {
        let _ = sftp.remove_file(tmp).await;
    }
    renamed
}
