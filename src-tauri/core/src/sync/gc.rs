//! Removes this machine's replicas that no container uses any more: those
//! whose last container was removed while no agent ran, and the remains of a
//! first sync cut short. Runs after every reconcile with the daemon, when
//! the containers' labels say exactly which replicas are still in use.
//!
//! Only this machine's directory of the mounts root is ever looked at, and
//! [`orphans`] (pure) keeps anything that may still be in use: a replica a
//! label names, a replica whose manifest was written moments ago (a create
//! may be about to use it), and a replica without a manifest that is younger
//! than [`UNFINISHED_AGE`] (a first sync may still be under way). A
//! completed replica that holds anything a container wrote is never
//! removed: its local folder lacks that data.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use super::manager::SyncManager;
use super::remote_scan;
use super::untrusted::read_manifest;
use super::SyncError;
use crate::ssh::sh_quote;

/// A completed replica nobody names is removed once its manifest is older.
pub const UNUSED_AGE: Duration = Duration::from_secs(120);

/// A replica without a manifest (never completed) is removed once older.
pub const UNFINISHED_AGE: Duration = Duration::from_secs(3600);

const MANIFEST_SUFFIX: &str = ".berth-manifest.json";

/// A replica's stage (see `placer`): goes with its replica, never alone.
const STAGE_SUFFIX: &str = ".berth-stage";

/// One entry of the machine's mounts directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
    pub modified: SystemTime,
}

/// The entry names to remove, given the replica names (`<name>-<hash>`)
/// that labels still refer to.
pub fn orphans(entries: &[DirEntry], in_use: &HashSet<String>, now: SystemTime) -> Vec<String> {
    let age = |t: SystemTime| now.duration_since(t).unwrap_or_default();
    let manifest_of = |dir: &str| {
        entries
            .iter()
            .find(|e| !e.is_dir && e.name == format!("{dir}{MANIFEST_SUFFIX}"))
    };
    let visible = entries.iter().filter(|e| !e.name.starts_with('.'));
    let mut out: Vec<String> = visible
        .clone()
        .filter(|e| e.is_dir && !in_use.contains(&e.name) && !e.name.ends_with(STAGE_SUFFIX))
        .filter(|e| match manifest_of(&e.name) {
            Some(m) => age(m.modified) > UNUSED_AGE,
            None => age(e.modified) > UNFINISHED_AGE,
        })
        .map(|e| e.name.clone())
        .collect();
    for e in visible {
        let beside = if e.is_dir {
            e.name.strip_suffix(STAGE_SUFFIX)
        } else {
            e.name
                .strip_suffix(MANIFEST_SUFFIX)
                .or_else(|| e.name.strip_suffix(".berth-manifest.json.tmp"))
        };
        if let Some(dir) = beside {
            let dir_exists = entries.iter().any(|d| d.is_dir && d.name == dir);
            let dir_removed = out.iter().any(|n| n == dir);
            if (!dir_exists && !in_use.contains(dir) && age(e.modified) > UNUSED_AGE) || dir_removed
            {
                out.push(e.name.clone());
            }
        }
    }
    out
}

impl SyncManager {
    /// Removes the orphaned replicas of this machine (see [`orphans`]);
    /// `in_use` holds the replica directory names the labels name.
    pub(super) async fn collect_orphans(&self, in_use: HashSet<String>) {
        if self.opts.keep_replicas {
            return;
        }
        let Ok((sftp, root)) = self.sftp().await else {
            return;
        };
        let Ok(listing) = sftp.read_dir(root.clone()).await else {
            return;
        };
        let entries: Vec<DirEntry> = listing
            .map(|e| {
                let meta = e.metadata();
                DirEntry {
                    name: e.file_name(),
                    is_dir: meta.is_dir(),
                    modified: meta.modified().unwrap_or_else(|_| SystemTime::now()),
                }
            })
            .collect();
        let mut gone = orphans(&entries, &in_use, SystemTime::now());
        // a completed replica holding what a container wrote is kept: its
        // local folder lacks that (see `remote_scan::retire_blockers`)
        let base = root.trim_end_matches('/').to_string();
        let mut kept = Vec::new();
        for name in gone
            .iter()
            .filter(|n| entries.iter().any(|e| e.is_dir && &e.name == *n))
        {
            let dir = format!("{base}/{name}");
            let Some(recorded) = read_manifest(&sftp, &dir).await else {
                continue;
            };
            let held = match remote_scan::scan(&sftp, &dir).await {
                Ok(held) => remote_scan::as_recorded(held, &recorded),
                Err(e) => {
                    tracing::warn!("keeping {dir}: cannot list it ({e})");
                    kept.push(name.clone());
                    continue;
                }
            };
            let blockers = remote_scan::retire_blockers(&held, &recorded);
            if !blockers.is_empty() {
                tracing::warn!(
                    "{}",
                    SyncError::Kept {
                        replica: dir.clone(),
                        count: blockers.len(),
                        sample: blockers.into_iter().take(3).collect::<Vec<_>>().join(", "),
                    }
                );
                kept.push(name.clone());
            }
        }
        gone.retain(|n| {
            !kept.iter().any(|k| {
                n == k
                    || n.strip_prefix(k.as_str())
                        .is_some_and(|r| r.starts_with(".berth-manifest") || r == STAGE_SUFFIX)
            })
        });
        if gone.is_empty() {
            return;
        }
        let args: Vec<String> = gone
            .iter()
            .map(|n| sh_quote(&format!("{}/{n}", root.trim_end_matches('/'))))
            .collect();
        let cmd = format!("rm -rf -- {}", args.join(" "));
        match self.ssh.run(&cmd).await {
            Ok(_) => tracing::info!(
                "removed {} replica entries no container uses: {}",
                gone.len(),
                gone.join(", ")
            ),
            Err(e) => tracing::debug!("cannot remove unused replicas: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, is_dir: bool, secs_ago: u64, now: SystemTime) -> DirEntry {
        DirEntry {
            name: name.into(),
            is_dir,
            modified: now - Duration::from_secs(secs_ago),
        }
    }

    #[test]
    fn removes_only_what_no_label_names_and_is_old_enough() {
        let now = SystemTime::now();
        let (m, s) = (MANIFEST_SUFFIX, STAGE_SUFFIX);
        let entries = vec![
            entry("used-1", true, 9999, now),
            entry(&format!("used-1{m}"), false, 9999, now),
            entry("old-2", true, 9999, now),
            entry(&format!("old-2{m}"), false, 600, now),
            entry("fresh-3", true, 9999, now),
            entry(&format!("fresh-3{m}"), false, 10, now),
            entry("unfinished-4", true, 60, now),
            entry("abandoned-5", true, 7200, now),
            entry(&format!("lonely-6{m}"), false, 600, now),
            entry(&format!("old-2{m}.tmp"), false, 600, now),
            entry(".hidden", true, 9999, now),
            entry(&format!("used-1{s}"), true, 9999, now),
            entry(&format!("old-2{s}"), true, 9999, now),
            entry(&format!("lonely-7{s}"), true, 9999, now),
        ];
        let in_use = HashSet::from(["used-1".to_string()]);
        let mut got = orphans(&entries, &in_use, now);
        got.sort();
        let mut want = vec![
            "abandoned-5".to_string(),
            "old-2".to_string(),
            format!("old-2{m}"),
            format!("old-2{m}.tmp"),
            format!("lonely-6{m}"),
            format!("old-2{s}"),
            format!("lonely-7{s}"),
        ];
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn nothing_to_do_in_an_empty_directory() {
        assert!(orphans(&[], &HashSet::new(), SystemTime::now()).is_empty());
    }
}
