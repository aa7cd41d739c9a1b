//! Brings files of a replica back into the local folder (two-way sync).
//!
//! The replica is mounted read-write into containers, so what is read there
//! is untrusted in two ways: its content (written by whoever runs in the
//! container) and its shape (a folder can become a symlink to a path of the
//! remote host between the scan and the read). Content is only ever written
//! beneath the local root through [`LocalTree`], never through a link and
//! never over anything but what the round expected. Shape is checked before
//! the read: every folder on the way is `lstat`ed to be a real directory (once
//! per round), the file itself must not be a link, and the opened handle's
//! size and mtime must be those the scan saw. What still gets through is a
//! swap within that moment to a host file of the very same size and mtime
//! second; the README's threat model says so.

use std::collections::HashSet;
use std::sync::Arc;

use russh_sftp::client::SftpSession;

use super::local_write::LocalTree;
use super::remote_path::{ancestors, lstat, Found};
use super::tree::EntryKind;
use super::SyncError;

/// What became of one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// The file is in the local folder, with the replica's mtime and mode.
    Done,
    /// One side changed since the scan (or the path is no longer a plain
    /// file under real folders): left as it is for the next round.
    Changed,
}

/// Fetches of one round from the replica at `root`.
pub struct Fetcher<'a> {
    sftp: &'a Arc<SftpSession>,
    root: String,
    /// Folders (relative) found to be real directories in this round.
    verified: HashSet<String>,
}

impl<'a> Fetcher<'a> {
    /// Fetches from the replica folder `root`.
    pub fn new(sftp: &'a Arc<SftpSession>, root: &str) -> Self {
        Self {
            sftp,
            root: root.trim_end_matches('/').to_string(),
            verified: HashSet::new(),
        }
    }

    fn remote(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root)
    }

    /// Whether every folder on the way to `rel` is still a real directory.
    async fn parents_are_dirs(&mut self, rel: &str) -> Result<bool, SyncError> {
        for dir in ancestors(rel) {
            if self.verified.contains(dir) {
                continue;
            }
            match lstat(self.sftp, &self.remote(dir)).await? {
                Found::Dir => {
                    self.verified.insert(dir.to_string());
                }
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Downloads the replica's file `rel` (the scan saw `size` bytes and
    /// `mtime` nanoseconds) into `local`, replacing only what `local_expect`
    /// says is there now (`None`: nothing), with that mtime and `exec`.
    pub async fn fetch(
        &mut self,
        local: &Arc<LocalTree>,
        rel: &str,
        size: u64,
        mtime: i64,
        exec: bool,
        local_expect: Option<EntryKind>,
    ) -> Result<Fetched, SyncError> {
        if !self.parents_are_dirs(rel).await? {
            return Ok(Fetched::Changed);
        }
        let path = self.remote(rel);
        let seen = match self.sftp.symlink_metadata(path.clone()).await {
            Ok(m) => m,
            Err(_) => return Ok(Fetched::Changed),
        };
        let secs = mtime.div_euclid(1_000_000_000);
        let same = |m: &russh_sftp::protocol::FileAttributes| {
            m.file_type().is_file() && m.size == Some(size) && m.mtime.map(i64::from) == Some(secs)
        };
        if !same(&seen) {
            return Ok(Fetched::Changed);
        }
        let file = match self.sftp.open(path.clone()).await {
            Ok(f) => f,
            Err(e) => return Err(SyncError::remote(&path, e)),
        };
        // a link swapped in after the lstat leads to a file of its own
        match file.metadata().await {
            Ok(m) if same(&m) => {}
            Ok(_) => return Ok(Fetched::Changed),
            Err(e) => return Err(SyncError::remote(&path, e)),
        }
        let tree = local.clone();
        let rel_owned = rel.to_string();
        let mut reader = tokio_util::io::SyncIoBridge::new(file);
        let written = tokio::task::spawn_blocking(move || {
            tree.put(
                &rel_owned,
                &mut reader,
                size,
                mtime,
                exec,
                local_expect.as_ref(),
            )
        })
        .await
        .map_err(|e| SyncError::remote(&path, e))?;
        match written {
            Ok(()) => Ok(Fetched::Done),
            Err(e) if super::local_write::is_unexpected(&e) => Ok(Fetched::Changed),
            // the replica's file shrank while it was read
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(Fetched::Changed),
            Err(e) => Err(SyncError::LocalWrite {
                path: local.root_path().join(rel),
                source: e,
            }),
        }
    }
}
