//! Keeps replica writes and deletes inside the replica. A container has its
//! replica mounted read-write, so it can replace any folder of it with a
//! symlink to a path of the remote host (`rm -rf /app/sub && ln -s
//! /root/.ssh /app/sub`), and SFTP follows links in path components: the
//! next write or delete under `sub/` would land on the host, as the SSH user.
//!
//! So before anything is written or deleted under a folder of the replica,
//! every folder on the way is checked with SFTP `lstat` (all of a batch at
//! once, and each folder once per apply round) to be a real directory. A
//! folder that is a link or a file now (or is missing) was not left so by
//! Berth: the link is removed (removing a link never touches its target),
//! the folder is rebuilt from the local tree under a temporary name, and
//! renamed into place once complete. What is rebuilt is what the replica's
//! manifest says it held there, but only entries that still match the local
//! tree exactly (a file of the recorded size and nanosecond mtime, a link of
//! the recorded text): nothing the scan would not have sent is read.

use std::collections::{BTreeSet, HashSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use russh_sftp::client::SftpSession;
use russh_sftp::protocol::StatusCode;

use super::placer::Placing;
use super::replica::Write;
use super::tree::{EntryKind, Manifest};
use super::untrusted::{read_manifest, temp_name};
use super::SyncError;

/// Checks issued at once.
const CHECKS_IN_FLIGHT: usize = 64;

/// Rebuilds of one batch before giving up: a container that keeps swapping
/// folders for links must not keep Berth busy forever.
const MAX_ROUNDS: usize = 8;

/// What `lstat` found at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Dir,
    /// A symlink, a file, anything but a directory.
    Other,
    Missing,
}

/// `lstat` of `path`: never follows a link at it.
pub async fn lstat(sftp: &SftpSession, path: &str) -> Result<Found, SyncError> {
    match sftp.symlink_metadata(path.to_string()).await {
        Ok(m) if m.is_dir() => Ok(Found::Dir),
        Ok(_) => Ok(Found::Other),
        Err(russh_sftp::client::error::Error::Status(s))
            if s.status_code == StatusCode::NoSuchFile =>
        {
            Ok(Found::Missing)
        }
        Err(e) => Err(SyncError::remote(path, e)),
    }
}

/// The folders on the way to `rel`, shallowest first (not `rel` itself).
pub fn ancestors(rel: &str) -> impl Iterator<Item = &str> {
    rel.match_indices('/').map(move |(i, _)| &rel[..i])
}

/// Whether `rel` is `dir` or inside it.
fn is_within(rel: &str, dir: &str) -> bool {
    rel == dir || (rel.starts_with(dir) && rel.as_bytes().get(dir.len()) == Some(&b'/'))
}

/// The folder checks of one apply round.
pub struct Guard<'a> {
    sftp: &'a Arc<SftpSession>,
    root: String,
    local_base: &'a Path,
    /// Folders (relative, `""` the replica itself) known to be real
    /// directories in this round.
    verified: HashSet<String>,
    /// Paths an operation of this round writes or removes anyway: a rebuild
    /// leaves them to it.
    handled: HashSet<String>,
    /// The stored manifest, read on the first rebuild.
    stored: Option<Manifest>,
    /// Where the remote can, what changes the replica goes through: from
    /// inside each folder, so a swap after a check redirects nothing.
    placing: Option<&'a Placing<'a>>,
}

impl<'a> Guard<'a> {
    /// A guard for one round over the replica at `root`, whose operations
    /// touch the paths in `handled`.
    pub fn new(
        sftp: &'a Arc<SftpSession>,
        root: &str,
        local_base: &'a Path,
        handled: HashSet<String>,
        placing: Option<&'a Placing<'a>>,
    ) -> Self {
        Self {
            sftp,
            root: root.trim_end_matches('/').to_string(),
            local_base,
            verified: HashSet::new(),
            handled,
            stored: None,
            placing,
        }
    }

    /// The placer of this round, when the remote has one.
    pub fn placing(&self) -> Option<&'a Placing<'a>> {
        self.placing
    }

    /// The remote path of `rel` (`""`: the replica itself).
    pub fn remote(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.root.clone()
        } else {
            format!("{}/{rel}", self.root)
        }
    }

    /// The SFTP session the checks use.
    pub fn sftp(&self) -> &'a Arc<SftpSession> {
        self.sftp
    }

    /// Records that Berth just made `rel` a real directory.
    pub fn made_dir(&mut self, rel: &str) {
        self.verified.insert(rel.to_string());
    }

    /// Makes sure every folder on the way to each of `paths` is a real
    /// directory, except those in `pending` (made later in this round),
    /// rebuilding any that a container replaced or removed. An error names
    /// the path that could not be made safe; nothing was written through it.
    pub async fn parents(
        &mut self,
        paths: &[&str],
        pending: &HashSet<&str>,
    ) -> Result<(), SyncError> {
        for _ in 0..MAX_ROUNDS {
            let mut want: BTreeSet<&str> = BTreeSet::new();
            if !self.verified.contains("") {
                want.insert("");
            }
            for p in paths {
                for a in ancestors(p) {
                    if !self.verified.contains(a) && !pending.contains(a) {
                        want.insert(a);
                    }
                }
            }
            if want.is_empty() {
                return Ok(());
            }
            let jobs: Vec<(String, String)> = want
                .into_iter()
                .map(|rel| (rel.to_string(), self.remote(rel)))
                .collect();
            let sftp = self.sftp.clone();
            let found: Vec<(String, Result<Found, SyncError>)> = stream::iter(jobs)
                .map(|(rel, path)| {
                    let sftp = sftp.clone();
                    async move {
                        let f = lstat(&sftp, &path).await;
                        (rel, f)
                    }
                })
                .buffer_unordered(CHECKS_IN_FLIGHT)
                .collect()
                .await;
            let mut bad = Vec::new();
            for (rel, f) in found {
                match f? {
                    Found::Dir => {
                        self.verified.insert(rel);
                    }
                    _ if rel.is_empty() => {
                        return Err(SyncError::remote(
                            &self.root,
                            "the replica is not a directory any more (replaced by a link?); \
                             remove it on the remote so that it is made again",
                        ))
                    }
                    other => bad.push((rel, other)),
                }
            }
            bad.sort_by_key(|(rel, _)| rel.matches('/').count());
            let mut rebuilt: Vec<String> = Vec::new();
            for (rel, found) in bad {
                // inside one rebuilt just now: checked again in the next pass
                if rebuilt.iter().any(|r| is_within(&rel, r)) {
                    continue;
                }
                self.rebuild(&rel, found).await?;
                rebuilt.push(rel);
            }
        }
        let first = paths.first().copied().unwrap_or_default();
        Err(SyncError::remote(
            &self.remote(first),
            "folders of the replica keep being replaced by links (by a container?); nothing \
             was written through them",
        ))
    }

    /// Removes what took the place of folder `rel` (never following it),
    /// then rebuilds the folder from the local tree under a temporary name
    /// and renames it in, so that a rebuild cut short leaves the folder
    /// missing and the next round rebuilds it again. The plain rename is
    /// enough: `rename(2)` cannot put a folder over the link or file that
    /// was there, so nothing atomic is to be had, and the name is free.
    async fn rebuild(&mut self, rel: &str, found: Found) -> Result<(), SyncError> {
        let path = self.remote(rel);
        if found == Found::Other {
            tracing::warn!(
                "{path} is no longer a folder (a container replaced it with a link or file?); \
                 removing that and restoring the folder from {}",
                self.local_base.display()
            );
            self.remove_in_the_way(rel, &path).await?;
        }
        // with a placer, built in the stage (no container sees it) and moved
        // in from inside the parent; else beside it, through the parent's path
        let tmp_path = match self.placing {
            Some(p) => p.staged(),
            None => {
                let (parent, name) = match rel.rsplit_once('/') {
                    Some((p, n)) => (format!("{p}/"), n),
                    None => (String::new(), rel),
                };
                self.remote(&format!("{parent}{}", temp_name(name)))
            }
        };
        self.sftp
            .create_dir(tmp_path.clone())
            .await
            .map_err(|e| SyncError::remote(&tmp_path, e))?;
        let mut made = Vec::new();
        let filled = self.fill(rel, &tmp_path, &mut made).await;
        let renamed = match (filled, self.placing) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(p)) => {
                let from = tmp_path.clone();
                p.one(rel, super::placer::Step::Place { from }).await
            }
            (Ok(()), None) => self
                .sftp
                .rename(tmp_path.clone(), path.clone())
                .await
                .map_err(|e| SyncError::remote(&path, e)),
        };
        if let Err(e) = renamed {
            match self.placing {
                Some(p) => p.discard(&tmp_path).await,
                None => self.clean_up(&tmp_path, rel, &made).await,
            }
            return Err(e);
        }
        self.verified.insert(rel.to_string());
        for (rel, is_dir) in made {
            if is_dir {
                self.verified.insert(rel);
            }
        }
        Ok(())
    }

    /// Removes the link or file at folder `rel` (itself, never its target).
    async fn remove_in_the_way(&self, rel: &str, path: &str) -> Result<(), SyncError> {
        let in_the_way = |e: String| {
            SyncError::remote(
                path,
                format!(
                    "a link or file Berth did not create is in the way and cannot be removed ({e})"
                ),
            )
        };
        if let Some(p) = self.placing {
            return p
                .one(rel, super::placer::Step::Remove)
                .await
                .map_err(|e| in_the_way(e.to_string()));
        }
        if let Err(e) = self.sftp.remove_file(path.to_string()).await {
            if lstat(self.sftp, path).await? != Found::Missing {
                return Err(in_the_way(e.to_string()));
            }
        }
        Ok(())
    }

    /// Copies into the folder at remote path `tmp` what the replica held
    /// under `rel` that still matches the local tree; records each entry made
    /// in `made` (relative to the replica once moved in, with whether it is
    /// a folder).
    async fn fill(
        &mut self,
        rel: &str,
        tmp: &str,
        made: &mut Vec<(String, bool)>,
    ) -> Result<(), SyncError> {
        if self.stored.is_none() {
            let root = self.root.clone();
            self.stored = Some(read_manifest(self.sftp, &root).await.unwrap_or_default());
        }
        let prefix = format!("{rel}/");
        let mut entries: Vec<(String, EntryKind)> = self
            .stored
            .iter()
            .flat_map(|m| m.range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded)))
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| !self.handled.contains(*p))
            .map(|(p, k)| (p.clone(), k.clone()))
            .collect();
        entries.sort_by_key(|(p, _)| p.matches('/').count());
        let to_tmp = |p: &str| format!("{tmp}/{}", &p[prefix.len()..]);
        let mut dirs: HashSet<String> = HashSet::from([rel.to_string()]);
        let mut files = Vec::new();
        for (p, kind) in &entries {
            let parent_made = p.rsplit_once('/').is_some_and(|(d, _)| dirs.contains(d));
            if !parent_made {
                continue;
            }
            let local = self.local_base.join(p);
            match kind {
                EntryKind::Dir => {
                    if std::fs::symlink_metadata(&local).is_ok_and(|m| m.is_dir()) {
                        let at = to_tmp(p);
                        self.sftp
                            .create_dir(at.clone())
                            .await
                            .map_err(|e| SyncError::remote(&at, e))?;
                        dirs.insert(p.clone());
                        made.push((p.clone(), true));
                    }
                }
                EntryKind::Symlink { target } => {
                    let same = std::fs::read_link(&local)
                        .is_ok_and(|t| t.to_str() == Some(target.as_str()));
                    if same {
                        let at = to_tmp(p);
                        self.sftp
                            .symlink(target.clone(), at.clone())
                            .await
                            .map_err(|e| SyncError::remote(&at, e))?;
                        made.push((p.clone(), false));
                    }
                }
                EntryKind::File { size, mtime, exec } => {
                    files.push((p.clone(), *size, *mtime, *exec, to_tmp(p)));
                }
            }
        }
        let base = self.local_base.to_path_buf();
        let results: Vec<Result<Option<String>, SyncError>> = stream::iter(files)
            .map(|(p, size, mtime, exec, at)| {
                let (sftp, base) = (self.sftp.clone(), base.clone());
                async move {
                    let sent = super::upload::put_matching(
                        &sftp,
                        &base,
                        &p,
                        size,
                        Some(mtime),
                        &at,
                        exec,
                        Write::Direct,
                    )
                    .await?;
                    Ok(sent.map(|_| p))
                }
            })
            .buffer_unordered(CHECKS_IN_FLIGHT)
            .collect()
            .await;
        for r in results {
            if let Some(p) = r? {
                made.push((p, false));
            }
        }
        Ok(())
    }

    /// Best effort: removes a half-built temporary folder (never through
    /// links: Berth made every entry of it).
    async fn clean_up(&self, tmp_path: &str, rel: &str, made: &[(String, bool)]) {
        let prefix_len = rel.len() + 1;
        let mut sorted: Vec<&(String, bool)> = made.iter().collect();
        sorted.sort_by_key(|(p, _)| std::cmp::Reverse(p.matches('/').count()));
        for (p, is_dir) in sorted {
            let at = format!("{tmp_path}/{}", p.get(prefix_len..).unwrap_or_default());
            let _ = if *is_dir {
                self.sftp.remove_dir(at).await
            } else {
                self.sftp.remove_file(at).await
            };
        }
        let _ = self.sftp.remove_dir(tmp_path.to_string()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_are_the_folders_on_the_way() {
        let table: [(&str, &[&str]); 4] = [
            ("f", &[]),
            ("a/f", &["a"]),
            ("a/b/c/f", &["a", "a/b", "a/b/c"]),
            ("a b/c", &["a b"]),
        ];
        for (rel, want) in table {
            assert_eq!(ancestors(rel).collect::<Vec<_>>(), want, "{rel}");
        }
    }

    #[test]
    fn within_means_the_folder_or_below_it() {
        let table = [
            ("a", "a", true),
            ("a/b", "a", true),
            ("ab", "a", false),
            ("a b/c", "a", false),
            ("b/a", "a", false),
        ];
        for (rel, dir, want) in table {
            assert_eq!(is_within(rel, dir), want, "{rel} in {dir}");
        }
    }
}
