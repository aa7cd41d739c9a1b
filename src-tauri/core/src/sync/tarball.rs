//! The first sync of a folder as one stream: a tar archive built here and
//! unpacked by `tar` on the remote, over one exec channel. A new replica is
//! mostly many small files, and over SFTP each costs requests and round
//! trips; one stream costs neither, so it keeps up with `rsync` on loopback
//! and beats it once the network adds latency.
//!
//! A large archive is split into [`STREAMS`] archives of contiguous runs
//! of the tree, each unpacked by its own `tar` on its own channel: one
//! `tar` creating files is the slowest stage on the remote (inode
//! allocation), and each channel has its own flow-control window, which
//! is what bounds one stream once the network adds latency.
//!
//! Only for a replica no container uses yet (files land at their final
//! names). Directories and files go into the archive; symlinks and removals
//! are left to SFTP, which recreates link text verbatim. When the remote has
//! no usable `tar` (or no POSIX shell, as on Windows), the caller falls back
//! to SFTP for everything.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use russh_sftp::client::SftpSession;

use super::local_file::open_scanned;
use super::progress::Progress;
use super::remote_path::{lstat, Found};
use super::replica::{self, Applied, Write as WriteMode};
use super::tree::Op;
use super::untrusted::read_capped;
use super::SyncError;
use crate::ssh::{sh_quote, SshSession};

/// Size of the pieces handed from the archive builder to the channel.
const CHUNK: usize = 256 * 1024;

/// Longest wait for the channel to take one piece: a remote that stops
/// reading must not hold the sync (and the manifest lock) forever.
const CHUNK_TIME: Duration = Duration::from_secs(60);

/// Longest wait for `tar` to finish once the whole archive is sent.
const FINISH_TIME: Duration = Duration::from_secs(120);

/// Most output `tar -x` may print (it prints none; its stderr is capped
/// by the channel).
const STDOUT_CAP: u64 = 64 * 1024;

/// Pieces in flight between the builder thread and the channel: enough to
/// keep the channel busy while the next file is opened, little memory.
const CHUNKS_IN_FLIGHT: usize = 8;

/// Archives a large first sync is split into, unpacked side by side.
pub const STREAMS: usize = 2;

/// Below this much (bytes, each file counted as [`FILE_COST`] more) one
/// archive is sent: a second channel and `tar` cost more than they save.
const SPLIT_MIN: u64 = 8 << 20;

/// What creating one file costs the remote, in bytes of content it could
/// have written meanwhile: the split balances work, not bytes.
const FILE_COST: u64 = 16 << 10;

/// Whether an op goes into the archive (the rest go over SFTP).
pub fn in_archive(op: &Op) -> bool {
    matches!(op, Op::Mkdir(_) | Op::Put { .. })
}

/// Applies the ops of a first sync: the archive, then what it cannot carry
/// over SFTP; everything over SFTP when the remote cannot unpack archives.
pub async fn apply_first(
    ssh: &SshSession,
    shell: &super::remote_shell::RemoteShell,
    sftp: &Arc<SftpSession>,
    local_base: &Path,
    replica_dir: &str,
    ops: &[Op],
    progress: &Arc<Progress>,
) -> (Applied, Option<SyncError>) {
    let sftp_all = |why: String| async move {
        tracing::debug!("first sync of {replica_dir} over SFTP: {why}");
        replica::apply(
            None,
            sftp,
            local_base,
            replica_dir,
            ops,
            WriteMode::Direct,
            progress,
        )
        .await
    };
    if !posix_path(replica_dir) {
        return sftp_all("not a POSIX path".into()).await;
    }
    // a replica that is already there (a lost or refused manifest) may hold
    // links a container planted, which `tar -x` would follow: SFTP checks
    // every folder on the way and replaces files atomically
    if !matches!(lstat(sftp, replica_dir).await, Ok(Found::Missing)) {
        tracing::debug!("first sync of {replica_dir}, which exists, over SFTP");
        return replica::apply(
            Some((ssh, shell)),
            sftp,
            local_base,
            replica_dir,
            ops,
            WriteMode::Replace,
            progress,
        )
        .await;
    }
    match upload(ssh, local_base, replica_dir, ops, progress).await {
        Ok(()) => {}
        Err(TarFailure::Unusable(why)) => {
            progress.begin(ops);
            return sftp_all(why).await;
        }
        Err(TarFailure::Failed(e)) => {
            let none = Applied {
                done: vec![false; ops.len()],
                ..Default::default()
            };
            return (none, Some(e));
        }
    }
    let mut applied = Applied {
        done: ops.iter().map(in_archive).collect(),
        ..Default::default()
    };
    for op in ops {
        if let Op::Put { size, .. } = op {
            applied.files += 1;
            applied.bytes += size;
        }
    }
    let (rest_at, rest): (Vec<usize>, Vec<Op>) = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !in_archive(op))
        .map(|(i, op)| (i, op.clone()))
        .unzip();
    if rest.is_empty() {
        return (applied, None);
    }
    // no files left, so no write mode matters; Replace only checks the directory
    let (more, err) = replica::apply(
        None,
        sftp,
        local_base,
        replica_dir,
        &rest,
        WriteMode::Replace,
        progress,
    )
    .await;
    for (i, done) in rest_at.into_iter().zip(more.done) {
        applied.done[i] = done;
    }
    applied.removed += more.removed;
    (applied, err)
}

/// A remote path a POSIX shell understands (not `/C:/Users/…` of a Windows
/// sshd, whose shell would misread the command).
fn posix_path(p: &str) -> bool {
    let mut parts = p.trim_start_matches('/').split('/');
    let first = parts.next().unwrap_or_default();
    let drive = first.len() == 2 && first.ends_with(':');
    p.starts_with('/') && !drive
}

/// Why the archive did not land. `Unusable` means the remote cannot unpack
/// one at all (no tar, no POSIX shell): try SFTP instead.
#[derive(Debug)]
pub enum TarFailure {
    Unusable(String),
    Failed(SyncError),
}

/// The [`in_archive`] ops of `ops` as at most `streams` archives: runs of
/// files in tree order (so each `tar` mostly fills folders of its own) of
/// about equal work, each with the folders above its files; the first also
/// carries the folders no file is in. One archive when there is little.
/// Within each, a folder comes before what is in it, as in `ops`. Pure.
pub fn split(ops: &[Op], streams: usize) -> Vec<Vec<Op>> {
    let entries: Vec<&Op> = ops.iter().filter(|op| in_archive(op)).collect();
    let weight = |op: &Op| match op {
        Op::Put { size, .. } => size.saturating_add(FILE_COST),
        _ => 0,
    };
    let total: u64 = entries.iter().map(|op| weight(op)).sum();
    let streams = streams.max(1);
    if streams == 1 || total < SPLIT_MIN {
        return vec![entries.into_iter().cloned().collect()];
    }
    let mut files: Vec<Vec<&Op>> = vec![Vec::new(); streams];
    let mut done = 0u64;
    for op in entries.iter().filter(|op| matches!(op, Op::Put { .. })) {
        // the part whose share of the total this file starts in
        let at = (u128::from(done) * streams as u128 / u128::from(total.max(1))) as usize;
        files[at.min(streams - 1)].push(op);
        done += weight(op);
    }
    let mut parts = Vec::new();
    for (i, part) in files.into_iter().enumerate() {
        let mut above = std::collections::BTreeSet::new();
        for op in &part {
            let mut p = replica::op_path(op);
            while let Some((parent, _)) = p.rsplit_once('/') {
                above.insert(parent);
                p = parent;
            }
        }
        let dirs = entries.iter().filter(|op| match op {
            Op::Mkdir(d) => i == 0 || above.contains(d.as_str()),
            _ => false,
        });
        let out: Vec<Op> = dirs.chain(part.iter()).map(|op| (*op).clone()).collect();
        if !out.is_empty() {
            parts.push(out);
        }
    }
    parts
}

/// Sends every [`in_archive`] op of `ops` to `replica_dir` as [`split`]
/// archives side by side, reading files under `local_base`. All of them
/// took effect when this returns `Ok`; none may be assumed to have on an
/// error.
pub async fn upload(
    ssh: &SshSession,
    local_base: &Path,
    replica_dir: &str,
    ops: &[Op],
    progress: &Arc<Progress>,
) -> Result<(), TarFailure> {
    let parts = split(ops, STREAMS);
    tracing::debug!(
        replica = replica_dir,
        archives = parts.len(),
        "first sync as archives side by side"
    );
    let sent = futures_util::future::join_all(
        parts
            .into_iter()
            .map(|part| upload_one(ssh, local_base, replica_dir, part, progress)),
    )
    .await;
    // a remote that cannot unpack says so on every stream: SFTP then redoes all
    let mut failed = None;
    for r in sent {
        match r {
            Ok(()) => {}
            Err(e @ TarFailure::Unusable(_)) => return Err(e),
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    failed.map_or(Ok(()), Err)
}

/// One archive of `entries` (all [`in_archive`]) into `replica_dir`.
async fn upload_one(
    ssh: &SshSession,
    local_base: &Path,
    replica_dir: &str,
    entries: Vec<Op>,
    progress: &Arc<Progress>,
) -> Result<(), TarFailure> {
    let command = unpack_command(replica_dir);
    let mut io = ssh
        .open_exec(&command)
        .await
        .map_err(|e| TarFailure::Failed(e.into()))?;
    let report = io.report();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    let base = local_base.to_path_buf();
    let prog = progress.clone();
    let builder = tokio::task::spawn_blocking(move || build(&base, &entries, tx, &prog));
    let mut sent = Ok(());
    while let Some(chunk) = rx.recv().await {
        let wrote = tokio::time::timeout(CHUNK_TIME, io.write_all(&chunk)).await;
        match wrote {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                sent = Err(e);
                break;
            }
            Err(_) => {
                sent = Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the remote took no data for {}s", CHUNK_TIME.as_secs()),
                ));
                break;
            }
        }
    }
    // an early stop above drops the receiver, which ends the builder too
    drop(rx);
    let built = builder.await.map_err(|e| {
        TarFailure::Failed(SyncError::Unreadable {
            path: local_base.to_path_buf(),
            reason: e.to_string(),
        })
    })?;
    let _ = io.shutdown().await;
    let finished = tokio::time::timeout(FINISH_TIME, async {
        // stdout is drained (and dropped) so that tar is never blocked on it
        let out = read_capped(&mut io, STDOUT_CAP, FINISH_TIME).await;
        (out, report.exit_status().await)
    })
    .await;
    let status = match finished {
        Ok((Ok(_), status)) => status,
        Ok((Err(e), _)) => {
            let err = SyncError::remote(replica_dir, format!("tar on the remote: {e}"));
            return Err(TarFailure::Failed(err));
        }
        Err(_) => {
            let err = SyncError::remote(
                replica_dir,
                format!(
                    "tar on the remote did not finish within {}s of the archive's end",
                    FINISH_TIME.as_secs()
                ),
            );
            return Err(TarFailure::Failed(err));
        }
    };
    // a local read error names the file, which is more useful than tar's view
    built.map_err(TarFailure::Failed)?;
    match (status, sent) {
        (Some(0), Ok(())) => Ok(()),
        // 127: no tar (or no sh); a Windows shell answers 1 with `mkdir -p`
        (Some(127), _) | (None, _) if report.summary().is_none() => Err(TarFailure::Unusable(
            "the remote command did not run".into(),
        )),
        (Some(127), _) => Err(TarFailure::Unusable(report.summary().unwrap_or_default())),
        (_, sent) => {
            let reason = report
                .summary()
                .or_else(|| sent.err().map(|e| e.to_string()))
                .unwrap_or_else(|| "tar failed".into());
            if looks_unusable(&reason) {
                return Err(TarFailure::Unusable(reason));
            }
            // name the file tar could not write, as SFTP would have
            let err = match first_file_error(&report.stderr()) {
                Some((rel, why)) => SyncError::remote(&format!("{replica_dir}/{rel}"), why),
                None => SyncError::remote(replica_dir, reason),
            };
            Err(TarFailure::Failed(err))
        }
    }
}

/// The remote side: make the replica directory and unpack into it with the
/// archive's modes, owned by the SSH user (as SFTP would leave it).
fn unpack_command(replica_dir: &str) -> String {
    let dir = sh_quote(replica_dir);
    format!("mkdir -p -- {dir} && exec tar --no-same-owner -xpf - -C {dir}")
}

/// Messages of a remote that cannot unpack an archive this way at all.
fn looks_unusable(reason: &str) -> bool {
    let r = reason.to_lowercase();
    [
        "not found",
        "not recognized",
        "unrecognized option",
        "invalid option",
        "usage",
    ]
    .iter()
    .any(|m| r.contains(m))
}

/// The first `tar: FILE: REASON` line of tar's stderr, as (FILE, REASON).
fn first_file_error(stderr: &str) -> Option<(&str, &str)> {
    stderr.lines().find_map(|line| {
        let rest = line.strip_prefix("tar: ")?;
        let (file, why) = rest.split_once(": ")?;
        (!file.is_empty()).then_some((file, why))
    })
}

/// Writes the archive into `tx`, counting each file in `progress` as it is
/// sent. Runs on a blocking thread.
fn build(
    base: &Path,
    ops: &[Op],
    tx: mpsc::Sender<Vec<u8>>,
    progress: &Progress,
) -> Result<(), SyncError> {
    let sink = ChunkWriter {
        tx,
        buf: Vec::with_capacity(CHUNK),
    };
    let mut tar = tar::Builder::new(sink);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for op in ops {
        let sent = match op {
            Op::Mkdir(rel) => {
                let mut h = header(tar::EntryType::Directory, 0o755, 0, now);
                tar.append_data(&mut h, rel, io::empty())
            }
            Op::Put {
                path: rel,
                exec,
                size,
            } => {
                let local = base.join(rel);
                let unreadable = |e: io::Error| unreadable(&local, e);
                // changed since the scan: skipped, its change event brings the next scan
                let Some(file) = open_scanned(base, rel, *size).map_err(unreadable)? else {
                    tracing::debug!("{} changed since the scan; not sent", local.display());
                    continue;
                };
                let meta = file.metadata().map_err(unreadable)?;
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(now, |d| d.as_secs());
                let len = *size;
                let mode = if *exec { 0o755 } else { 0o644 };
                let mut h = header(tar::EntryType::Regular, mode, len, mtime);
                // a file cut short while it is read keeps the size promised in
                // its header; its change event brings the real content next
                let body = Exactly::new(file, len);
                let r = tar.append_data(&mut h, rel, body);
                if r.is_ok() {
                    progress.file_done(len);
                }
                r
            }
            _ => continue,
        };
        // the receiver is gone when the channel failed; that error is reported there
        sent.map_err(|e| unreadable(&base.join(replica::op_path(op)), e))?;
    }
    let mut sink = tar
        .into_inner()
        .map_err(|e| unreadable(base, format!("cannot finish the archive: {e}")))?;
    sink.flush().map_err(|e| unreadable(base, e))
}

fn unreadable(path: &Path, reason: impl std::fmt::Display) -> SyncError {
    SyncError::Unreadable {
        path: PathBuf::from(path),
        reason: reason.to_string(),
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h
}

/// Reads exactly `len` bytes: the file's, then zeros if it shrank meanwhile.
struct Exactly {
    inner: io::Chain<io::Take<File>, io::Repeat>,
    left: u64,
}

impl Exactly {
    fn new(file: File, len: u64) -> Self {
        Self {
            inner: file.take(len).chain(io::repeat(0)),
            left: len,
        }
    }
}

impl Read for Exactly {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Collects the archive into [`CHUNK`]-sized pieces for the channel.
struct ChunkWriter {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload channel closed"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
#[path = "tarball_tests.rs"]
mod tests;
