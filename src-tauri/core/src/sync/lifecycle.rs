//! Which containers use which replica: a container created through Berth
//! with synced mounts is attached to their replicas when the daemon answers
//! the create; when the last one is destroyed the replica's watcher stops
//! and the replica is removed from the remote (unless the policy keeps it).
//! After an agent restart, reconciling re-adopts every replica still in use,
//! syncing whatever changed meanwhile.
//!
//! Which sources a container uses comes from this machine's record of the
//! containers it created (`crate::owned`), never from the `dev.berth.mounts`
//! label alone: anyone who can use the remote daemon can write a label, and
//! a forged one must never make Berth upload a local folder.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::binds::{replica_path, LocalKind, SyncSource};
use super::manager::{SyncManager, User, MOUNTS_LABEL};
use super::mount::{Mount, Replica};
use super::reconcile::SyncMode;
use super::remote_scan;
use super::replica::{self, Write};
use super::tree::{self, Manifest};
use super::SyncError;
use crate::backoff::Backoff;
use crate::events::{ContainerEvent, EventSink};
use crate::upstream::UpstreamError;

/// What the mounts label holds: this machine's id and its local sources.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MountsLabel {
    /// The machine whose paths these are: another laptop using the same
    /// remote must never treat them as its own (its `/home/me/src` is a
    /// different tree, and syncing it would overwrite the replica).
    pub owner: String,
    pub paths: Vec<PathBuf>,
}

/// This machine, as Berth names it on remotes: a short digest of
/// `/etc/machine-id` (else the host name), so the id itself never leaves it.
pub fn machine_id() -> String {
    use sha2::{Digest, Sha256};
    let raw = [
        "/etc/machine-id",
        "/var/lib/dbus/machine-id",
        "/proc/sys/kernel/hostname",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .map(|s| s.trim().to_string())
    .find(|s| !s.is_empty())
    .unwrap_or_else(|| "unknown".into());
    let digest = Sha256::digest(format!("berth-machine:{raw}").as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("m-{hex}")
}

impl SyncManager {
    /// Records that container `id` uses the replicas of `paths`, adopting
    /// replicas this agent does not know yet (it restarted).
    pub(super) async fn attach(self: &Arc<Self>, id: &str, paths: &[PathBuf]) {
        for path in paths {
            {
                let mut all = self.replicas.lock().await;
                if let Some((_, usage)) = all.get_mut(path) {
                    usage.attach(id);
                    self.publish(&all);
                    continue;
                }
            }
            // attached as it becomes known
            if let Err(e) = self.readopt(path, id).await {
                tracing::warn!("cannot re-adopt the replica of {}: {e}", path.display());
            }
        }
    }

    async fn readopt(
        self: &Arc<Self>,
        path: &PathBuf,
        id: &str,
    ) -> Result<Arc<Replica>, SyncError> {
        let kind = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => LocalKind::File,
            Ok(_) => LocalKind::Dir,
            Err(e) => {
                return Err(SyncError::Unreadable {
                    path: path.clone(),
                    reason: e.to_string(),
                })
            }
        };
        let (_, root) = self.sftp().await?;
        let source = SyncSource {
            local: path.clone(),
            kind,
            replica: replica_path(&root, path),
        };
        self.adopt(source, User::Container(id)).await
    }

    /// Container `id` is gone: replicas it was the last user of retire.
    async fn detach(&self, id: &str) {
        let mut retiring = Vec::new();
        {
            let mut all = self.replicas.lock().await;
            all.retain(|_, (rep, usage)| {
                if usage.detach(id) {
                    retiring.push(rep.clone());
                    return false;
                }
                true
            });
            self.publish(&all);
        }
        for rep in retiring {
            self.retire(&rep).await;
        }
    }

    /// Has the replica's task stop watching and, unless kept, remove it
    /// remotely; a create for the same source waits at the gate meanwhile.
    pub(super) async fn retire(&self, rep: &Replica) {
        let gate = self.gate(&rep.source.local);
        let _retiring = gate.lock().await;
        rep.retire().await;
        rep.stop.cancel();
    }

    /// Run by the mount's task: a two-way replica first has a last round,
    /// so what its containers wrote is in the local folder before the
    /// replica goes; then it is removed unless the policy keeps it or it
    /// holds what the local folder lacks.
    pub(super) async fn retire_mount(&self, m: &mut Mount) {
        let rep = m.rep.clone();
        if rep.mode == SyncMode::TwoWay {
            if let Err(e) = self.sync_now(m).await {
                tracing::warn!(
                    "the last sync of {} before removing its replica failed: {e}",
                    rep.source.local.display()
                );
            }
        }
        if self.opts.keep_replicas {
            tracing::info!(
                "keeping the replica of {} (no container uses it)",
                rep.source.local.display()
            );
            return;
        }
        let manifest = &m.manifest;
        let result = async {
            let (sftp, _) = self.sftp().await?;
            // what a container wrote there is not in the local folder:
            // removing it would lose it, so such a replica is kept
            let scanned =
                super::remote_find::scan(&self.ssh, &self.shell, &sftp, &rep.source.replica)
                    .await?;
            let held = remote_scan::as_agreed(scanned, &[manifest]);
            let blockers = remote_scan::retire_blockers(&held, manifest);
            if !blockers.is_empty() {
                return Err(SyncError::Kept {
                    replica: rep.source.replica.clone(),
                    count: blockers.len(),
                    sample: blockers.into_iter().take(3).collect::<Vec<_>>().join(", "),
                });
            }
            let dir = rep.source.replica.trim_end_matches('/');
            // no container uses it any more and it holds only what Berth
            // sent: one command removes it, else one entry at a time
            if !self.remove_whole(dir).await {
                let ops = tree::diff(&Manifest::new(), &held);
                let (_, failed) = replica::apply(
                    Some((self.ssh.as_ref(), &self.shell)),
                    &sftp,
                    &rep.source.local,
                    &rep.source.replica,
                    &ops,
                    Write::Replace,
                    &rep.progress,
                )
                .await;
                if let Some(e) = failed {
                    return Err(e);
                }
                sftp.remove_dir(dir.to_string())
                    .await
                    .map_err(|e| SyncError::remote(dir, e))?;
            }
            let _ = sftp.remove_file(format!("{dir}.berth-manifest.json")).await;
            // empty after every round; what a failure left goes with the orphans
            let _ = sftp.remove_dir(super::placer::stage_of(dir)).await;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                self.ancestors.forget(&rep.source.replica);
                tracing::info!(
                    "removed the replica of {} from the remote",
                    rep.source.local.display()
                )
            }
            Err(e @ SyncError::Kept { .. }) => tracing::warn!("{e}"),
            Err(e) => tracing::warn!(
                "could not remove the replica of {}: {e}",
                rep.source.local.display()
            ),
        }
    }

    /// Removes the retired replica at `dir` with one `rm -rf` through the
    /// remote shell; `false` when that did not remove it (no POSIX shell).
    async fn remove_whole(&self, dir: &str) -> bool {
        let Some(script) = remove_whole_command(dir) else {
            return false;
        };
        let limits = super::remote_shell::Limits {
            cap: 64 * 1024,
            idle: REMOVE_TIME,
            total: REMOVE_TIME,
        };
        match self.shell.run(&self.ssh, &script, limits).await {
            Ok(ran) if ran.status == 0 => true,
            Ok(ran) => {
                tracing::debug!("rm -rf of {dir}: status {}: {}", ran.status, ran.stderr);
                false
            }
            Err(e) => {
                tracing::debug!("rm -rf of {dir}: {e}");
                false
            }
        }
    }

    /// The containers attached to some replica now.
    async fn attached_ids(&self) -> Vec<String> {
        let all = self.replicas.lock().await;
        all.values()
            .flat_map(|(_, usage)| usage.containers().cloned())
            .collect()
    }

    /// Attaches every container (running or not) that carries the label;
    /// replicas whose containers are all gone retire.
    async fn reconcile_containers(self: &Arc<Self>) -> Result<(), UpstreamError> {
        // only what was attached before the listing is judged by it: a
        // create answered meanwhile is attached but not listed, and alive
        let known = self.attached_ids().await;
        let list = self.docker.container_ids(true, Some(MOUNTS_LABEL)).await?;
        let mut alive = Vec::new();
        let mut in_use = std::collections::HashSet::new();
        // the mounts root only for the one orphan sweep: no SFTP session
        // for an agent that never syncs, past its first reconcile
        let root = match self.gc_done.load(Ordering::Acquire) {
            true => None,
            false => self.sftp().await.ok().map(|(_, root)| root),
        };
        for id in &list {
            let paths = match self.owned.get(id) {
                Some(record) => record.mounts,
                None => {
                    tracing::debug!("not syncing for {id}: this machine's Berth did not create it");
                    Vec::new()
                }
            };
            if let Some(root) = &root {
                for p in &paths {
                    let replica = replica_path(root, p);
                    if let Some((_, name)) = replica.rsplit_once('/') {
                        in_use.insert(name.to_string());
                    }
                }
            }
            self.attach(id, &paths).await;
            alive.push(id.to_string());
        }
        for id in known.iter().filter(|id| !alive.contains(id)) {
            self.detach(id).await;
        }
        // once per agent: what no label names was orphaned while no agent ran
        if root.is_some() && !self.gc_done.swap(true, Ordering::AcqRel) {
            // replicas known here stay too (one made for a create under way)
            for (rep, _) in self.replicas.lock().await.values() {
                if let Some((_, name)) = rep.source.replica.rsplit_once('/') {
                    in_use.insert(name.to_string());
                }
            }
            let me = self.clone();
            tokio::spawn(async move { me.collect_orphans(in_use).await });
        }
        Ok(())
    }
}

/// Longest wait for a retired replica's removal in one command.
const REMOVE_TIME: Duration = Duration::from_secs(600);
/// Reconciling the synced mounts again after a failure: 500 ms, doubling, at most 10 s.
const RECONCILE_RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));

/// The command removing the replica at `dir` whole: from inside its folder
/// in the mounts root (which no container sees), the one name, so no link
/// above can redirect it; `rm -rf` removes links, never what they point
/// to. `None` for a path that names no folder of its own.
fn remove_whole_command(dir: &str) -> Option<String> {
    let (parent, name) = dir.trim_end_matches('/').rsplit_once('/')?;
    if name.is_empty() || name == "." || name == ".." || parent.is_empty() {
        return None;
    }
    Some(format!(
        "cd -P -- {} && rm -rf -- {}",
        crate::ssh::sh_quote(parent),
        crate::ssh::sh_quote(name)
    ))
}

/// The manager follows container creation and removal. The work runs on a
/// task of its own, in event order: re-adopting a large replica (a rescan
/// and a catch-up) must not hold up the port forwards sharing the stream.
pub struct SyncEvents {
    tx: mpsc::UnboundedSender<Work>,
    /// This machine's record of what it created.
    owned: Arc<crate::owned::Owned>,
}

enum Work {
    Reconcile,
    Created(String, Vec<PathBuf>),
    /// The container stopped or an exec in it ended: its writes are done.
    Settled(String),
    Destroyed(String),
}

impl SyncEvents {
    /// Starts the worker; it ends with the manager's shutdown.
    pub fn new(manager: Arc<SyncManager>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let stop = manager.shutdown.clone();
        let owned = manager.owned.clone();
        tokio::spawn(async move {
            loop {
                let work = tokio::select! {
                    _ = stop.cancelled() => break,
                    w = rx.recv() => match w { Some(w) => w, None => break },
                };
                match work {
                    Work::Reconcile => {
                        // retried here (the stream does not see it fail), so
                        // detaches and re-adoptions are never lost
                        let mut backoff = RECONCILE_RETRY;
                        while let Err(e) = manager.reconcile_containers().await {
                            let wait = backoff.failed(std::time::Instant::now(), e.to_string());
                            tracing::warn!(
                                "cannot reconcile synced mounts: {e}; retrying in {wait:?}"
                            );
                            tokio::select! {
                                _ = stop.cancelled() => return,
                                _ = tokio::time::sleep(wait) => {}
                            }
                        }
                    }
                    Work::Created(id, paths) => manager.attach(&id, &paths).await,
                    Work::Settled(id) => manager.nudge(&id).await,
                    Work::Destroyed(id) => manager.detach(&id).await,
                }
            }
        });
        Self { tx, owned }
    }
}

impl EventSink for SyncEvents {
    fn reconcile(&self) -> BoxFuture<'_, Result<(), UpstreamError>> {
        let _ = self.tx.send(Work::Reconcile);
        Box::pin(async { Ok(()) })
    }

    fn on_event<'a>(&'a self, event: &'a ContainerEvent) -> BoxFuture<'a, ()> {
        let work = match event.action.as_str() {
            // a create answered through this process is attached already;
            // one answered through another Berth of this machine is found here
            "create" => self
                .owned
                .get(&event.id)
                .filter(|r| !r.mounts.is_empty())
                .map(|r| Work::Created(event.id.clone(), r.mounts)),
            "die" | "stop" | "pause" => Some(Work::Settled(event.id.clone())),
            a if a.starts_with("exec_die") => Some(Work::Settled(event.id.clone())),
            "destroy" => Some(Work::Destroyed(event.id.clone())),
            _ => None,
        };
        if let Some(w) = work {
            let _ = self.tx.send(w);
        }
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_removal_names_one_folder_and_never_follows_a_link_inside() {
        assert_eq!(remove_whole_command("/"), None);
        assert_eq!(remove_whole_command("/top"), None);
        assert_eq!(remove_whole_command("/m/.."), None);
        let base = std::env::temp_dir().join(format!("berth-rmwhole-{}", std::process::id()));
        let outside = base.join("outside");
        let replica = base.join("mounts/it's a replica");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep.txt"), "mine").unwrap();
        std::fs::create_dir_all(replica.join("d")).unwrap();
        std::fs::write(replica.join("d/f"), "sent").unwrap();
        // a container left links to an outside folder and file behind
        std::os::unix::fs::symlink(&outside, replica.join("d/link")).unwrap();
        std::os::unix::fs::symlink(outside.join("keep.txt"), replica.join("file")).unwrap();
        let script = remove_whole_command(replica.to_str().unwrap()).unwrap();
        let st = std::process::Command::new("sh")
            .args(["-c", &script])
            .status()
            .unwrap();
        assert!(st.success());
        assert!(!replica.exists());
        assert!(base.join("mounts").is_dir(), "only the replica went");
        assert_eq!(
            std::fs::read_to_string(outside.join("keep.txt")).unwrap(),
            "mine"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
