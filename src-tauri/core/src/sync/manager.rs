//! Owns the replicas of one remote: plans the bind mounts of a create,
//! brings each replica up to date before the container is created (a half
//! uploaded replica is never used), and keeps it in sync from a file watcher.
//! Containers sharing a source share one replica and one watcher.
//!
//! Every sync is a rescan of the local tree diffed against the manifest of
//! the last completed sync, so bursts coalesce, order is always consistent,
//! and a watcher that overflowed simply leads to the next full rescan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify::RecursiveMode;
use russh_sftp::client::SftpSession;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::binds::{plan_binds, BindOptions, LocalKind, SyncSource};
use super::progress::Progress;
use super::replica::{self, Applied};
use super::tarball;
use super::tree::{self, Manifest};
use super::verify;
use super::SyncError;
use crate::ssh::channel_io::ExecReport;
use crate::ssh::SshSession;
use crate::upstream::Upstream;

/// A sync of a tree this large frees far more than it keeps (two manifests,
/// the operations, the serialized manifest): hand that back to the system.
const TRIM_AFTER_ENTRIES: usize = 10_000;

/// First and longest wait before a failed sync is tried again.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// The container label listing the local sources a container uses.
pub const MOUNTS_LABEL: &str = "dev.berth.mounts";

/// How long the watcher waits for a burst of changes to settle.
const DEBOUNCE: Duration = Duration::from_millis(30);

/// What the user configured for sync.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Remote directory holding the replicas; default `~/.cache/berth/mounts`.
    pub mounts_root: Option<String>,
    /// Remote path prefixes that are never synced (besides the Docker socket).
    pub remote_only: Vec<String>,
    /// Patterns excluded from every synced tree (gitignore syntax); nothing
    /// is excluded by default (see [`tree::Exclusions`]).
    pub ignores: Vec<String>,
    /// Also honour `.gitignore` files (off: gitignored files are synced).
    pub honour_gitignore: bool,
    /// Keep a replica on the remote when its last container is removed.
    pub keep_replicas: bool,
    /// How mounts are synced unless a create says otherwise (two-way).
    pub mode: super::reconcile::SyncMode,
}

/// One synced source and its state, for status and the watcher.
pub(super) struct Replica {
    pub(super) source: SyncSource,
    /// The tree as the replica holds it after the last completed sync.
    pub(super) manifest: tokio::sync::Mutex<Manifest>,
    state: Mutex<ReplicaState>,
    /// Creates prepared with it whose answer has not come back yet.
    pub(super) preparing: AtomicUsize,
    /// Files and bytes of the sync under way, and changes waiting for the next.
    pub(super) progress: Arc<Progress>,
    /// Containers using it (ids), from the create events and the label.
    pub(super) containers: Mutex<std::collections::HashSet<String>>,
    /// Set once a container used it: only then may its last one retire it
    /// (a replica is made before its container exists).
    pub(super) attached_once: std::sync::atomic::AtomicBool,
    /// Keeps the file watcher alive; dropped with the replica.
    pub(super) watcher: Mutex<
        Option<
            notify_debouncer_full::Debouncer<
                notify::RecommendedWatcher,
                notify_debouncer_full::NoCache,
            >,
        >,
    >,
}

#[derive(Debug, Clone, Default)]
struct ReplicaState {
    phase: &'static str,
    error: Option<String>,
    files: u64,
    bytes: u64,
    last_sync_unix: u64,
    syncs: u64,
    uploaded_files: u64,
}

pub struct SyncManager {
    pub(super) ssh: Arc<SshSession>,
    pub(super) upstream: Upstream,
    pub(super) opts: SyncOptions,
    /// This machine, as recorded in the mounts label.
    pub(super) owner: String,
    /// The containers this machine created: only their recorded sources
    /// are ever synced (a label on the remote is never enough).
    pub(super) owned: Arc<crate::owned::Owned>,
    /// The SFTP session and the resolved mounts root, opened on first use.
    sftp: tokio::sync::Mutex<Option<(Arc<SftpSession>, String, ExecReport)>>,
    pub(super) replicas: tokio::sync::Mutex<HashMap<PathBuf, Arc<Replica>>>,
    pub(super) view: Mutex<Vec<Arc<Replica>>>,
    pub(super) shutdown: CancellationToken,
    /// The orphan sweep ran (once per agent, at its first reconcile).
    pub(super) gc_done: std::sync::atomic::AtomicBool,
}

/// The replicas a create body was rewritten to use. Tell it whether the
/// daemon created the container ([`PreparedMounts::answered`]); dropped
/// unanswered, the outcome is unknown and the replicas stay.
pub struct PreparedMounts {
    manager: Arc<SyncManager>,
    paths: Vec<PathBuf>,
    outcome: Option<bool>,
}

impl PreparedMounts {
    /// Records the daemon's answer to the create.
    pub fn answered(mut self, created: bool) {
        self.outcome = Some(created);
    }

    /// The local sources the create uses.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The daemon created container `id`: it uses these replicas from now
    /// on (before the client hears back, so a quick `rm` finds it attached).
    pub async fn created(mut self, id: &str) {
        let paths = std::mem::take(&mut self.paths);
        self.manager.create_answered(paths.clone(), true).await;
        self.manager.attach(id, &paths).await;
    }
}

impl Drop for PreparedMounts {
    fn drop(&mut self) {
        if self.paths.is_empty() {
            return;
        }
        let manager = self.manager.clone();
        let paths = std::mem::take(&mut self.paths);
        let created = self.outcome.unwrap_or(true);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { manager.create_answered(paths, created).await });
        }
    }
}

impl SyncManager {
    pub fn new(
        ssh: Arc<SshSession>,
        upstream: Upstream,
        opts: SyncOptions,
        owned: Arc<crate::owned::Owned>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            ssh,
            upstream,
            opts,
            owner: super::lifecycle::machine_id(),
            owned,
            sftp: Default::default(),
            replicas: Default::default(),
            view: Default::default(),
            shutdown,
            gc_done: Default::default(),
        })
    }

    /// The SFTP session, re-opened if the SSH session was replaced.
    pub(super) async fn sftp(&self) -> Result<(Arc<SftpSession>, String), SyncError> {
        let mut slot = self.sftp.lock().await;
        if let Some((s, root, channel)) = slot.as_ref() {
            // no round trip: the channel says whether it is still open
            if !channel.is_closed() {
                return Ok((s.clone(), root.clone()));
            }
        }
        let (s, channel) = replica::connect(&self.ssh).await?;
        let base = match &self.opts.mounts_root {
            Some(r) => r.clone(),
            None => replica::default_mounts_root(&s).await?,
        };
        // one directory per machine: two laptops with the same path must never
        // share (and overwrite) one replica
        let root = format!("{}/{}", base.trim_end_matches('/'), self.owner);
        replica::mkdir_all(&s, &root).await?;
        *slot = Some((s.clone(), root.clone(), channel));
        Ok((s, root))
    }

    /// Plans the bind mounts of a create body; every local source is synced
    /// before this returns. `Ok(None)`: nothing to sync, the body stays as is.
    pub async fn prepare_create(
        self: &Arc<Self>,
        body: &Value,
    ) -> Result<Option<(Value, PreparedMounts)>, SyncError> {
        // cheap check first: no SFTP session for creates without local binds
        let mut local_kind = |p: &Path| match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => Some(LocalKind::Dir),
            Ok(m) if m.is_file() => Some(LocalKind::File),
            _ => None,
        };
        let probe = BindOptions {
            mounts_root: "/berth-probe".into(),
            remote_only: self.opts.remote_only.clone(),
        };
        if plan_binds(body, &mut local_kind, &probe)?.syncs.is_empty() {
            return Ok(None);
        }
        let (_, root) = self.sftp().await?;
        let opts = BindOptions {
            mounts_root: root,
            remote_only: self.opts.remote_only.clone(),
        };
        let plan = plan_binds(body, &mut local_kind, &opts)?;
        let label = super::lifecycle::MountsLabel {
            owner: self.owner.clone(),
            paths: plan.syncs.iter().map(|s| s.local.clone()).collect(),
        };
        // a preparation that fails sends no create: what it made is not needed
        let mut prepared = PreparedMounts {
            manager: self.clone(),
            paths: Vec::new(),
            outcome: Some(false),
        };
        for source in plan.syncs {
            let path = source.local.clone();
            self.ensure(source).await?;
            prepared.paths.push(path);
        }
        prepared.outcome = None;
        // which sources the container uses, so a restarted agent finds them again
        let mut body = plan.body;
        if let Some(obj) = body.as_object_mut() {
            let labels = obj.entry("Labels").or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            if let Some(l) = labels.as_object_mut() {
                l.insert(MOUNTS_LABEL.into(), json!(label).to_string().into());
            }
        }
        Ok(Some((body, prepared)))
    }

    /// A create using `paths` was answered: a replica made for a rejected
    /// create that nothing else uses is retired (it would linger otherwise).
    async fn create_answered(&self, paths: Vec<PathBuf>, created: bool) {
        let mut retiring = Vec::new();
        {
            let mut all = self.replicas.lock().await;
            for p in &paths {
                let Some(rep) = all.get(p) else { continue };
                let was = rep
                    .preparing
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                    .unwrap_or(0);
                if created {
                    // its container exists now, even if its create event is
                    // still queued: a refused create elsewhere must not retire it
                    rep.attached_once.store(true, Ordering::Release);
                    continue;
                }
                let left = was.saturating_sub(1);
                let unused = rep.containers.lock().map(|c| c.is_empty()).unwrap_or(false);
                if left == 0 && unused && !rep.attached_once.load(Ordering::Acquire) {
                    if let Some(rep) = all.remove(p) {
                        retiring.push(rep);
                    }
                }
            }
            if !retiring.is_empty() {
                self.publish(&all);
            }
        }
        for rep in retiring {
            self.retire(&rep).await;
        }
    }

    /// Brings the source's replica up to date, creating it and its watcher
    /// on first use.
    async fn ensure(self: &Arc<Self>, source: SyncSource) -> Result<(), SyncError> {
        // counted under the lock that finds it, so nothing can retire it
        // between the lookup and this create's answer
        let existing = self.replicas.lock().await.get(&source.local).map(|rep| {
            rep.preparing.fetch_add(1, Ordering::AcqRel);
            rep.clone()
        });
        match existing {
            Some(rep) => {
                let synced = self.sync_now(&rep).await.map(drop);
                if synced.is_err() {
                    rep.preparing.fetch_sub(1, Ordering::AcqRel);
                }
                synced
            }
            // counted as it becomes known, before anyone could retire it
            None => self.adopt(source, true).await.map(drop),
        }
    }

    /// Makes a replica known: reads the manifest the remote kept, syncs the
    /// difference, starts watching.
    pub(super) async fn adopt(
        self: &Arc<Self>,
        source: SyncSource,
        for_create: bool,
    ) -> Result<Arc<Replica>, SyncError> {
        let (sftp, _) = self.sftp().await?;
        let known = replica::read_manifest(&sftp, &source.replica)
            .await
            .unwrap_or_default();
        let rep = Arc::new(Replica {
            source: source.clone(),
            manifest: tokio::sync::Mutex::new(known),
            state: Mutex::new(ReplicaState {
                phase: "initial sync",
                ..Default::default()
            }),
            preparing: Default::default(),
            progress: Default::default(),
            containers: Default::default(),
            attached_once: Default::default(),
            watcher: Mutex::new(None),
        });
        self.sync_now(&rep).await?;
        self.start_watching(&rep);
        let mut all = self.replicas.lock().await;
        let rep = all.entry(source.local.clone()).or_insert(rep).clone();
        if for_create {
            rep.preparing.fetch_add(1, Ordering::AcqRel);
        }
        self.publish(&all);
        Ok(rep)
    }

    pub(super) fn publish(&self, all: &HashMap<PathBuf, Arc<Replica>>) {
        if let Ok(mut v) = self.view.lock() {
            *v = all.values().cloned().collect();
        }
    }

    /// One rescan → diff → apply → record round.
    async fn sync_now(&self, rep: &Replica) -> Result<Applied, SyncError> {
        let mut manifest = rep.manifest.lock().await;
        let src = &rep.source;
        let (root, base) = match src.kind {
            LocalKind::Dir => (src.local.clone(), src.local.clone()),
            LocalKind::File => (
                src.local.clone(),
                src.local
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
            ),
        };
        let rules = self.exclusions();
        // the scan below sees every change reported until now
        rep.progress.take_pending();
        // a vanished root is refused before anything else looks at it
        if !root.exists() {
            let err = tree::safety_check(false, &Manifest::new(), &manifest)
                .map_err(|e| tree::with_local(e, &root));
            if let Err(e) = err {
                self.record_error(rep, &e);
                return Err(e);
            }
        }
        let scan_root = root.clone();
        let scan_rules = rules.clone();
        let local = tokio::task::spawn_blocking(move || tree::scan(&scan_root, &scan_rules))
            .await
            .map_err(|e| SyncError::Unreadable {
                path: root.clone(),
                reason: e.to_string(),
            })?;
        let result = async {
            let local = local?;
            // an excluded path is neither uploaded nor deleted: what the
            // replica holds there stays, unclaimed by its manifest
            tree::forget_excluded(&mut manifest, &local, &root, &rules)?;
            tree::safety_check(root.exists(), &local, &manifest)
                .map_err(|e| tree::with_local(e, &root))?;
            let first = manifest.is_empty();
            let mut ops = tree::diff(&local, &manifest);
            if !first {
                ops = verify::drop_unchanged(&self.ssh, &base, &src.replica, ops, &manifest).await;
            }
            let (sftp, _) = self.sftp().await?;
            rep.progress.begin(&ops);
            if !first && !ops.is_empty() {
                self.set_phase(rep, "syncing");
            }
            let how = match src.kind {
                LocalKind::Dir => replica::Write::Replace,
                LocalKind::File => replica::Write::InPlace,
            };
            let progress = &rep.progress;
            let (applied, failed) = match src.kind {
                // nothing uses a replica before its first sync completes
                LocalKind::Dir if first => {
                    tarball::apply_first(&self.ssh, &sftp, &base, &src.replica, &ops, progress)
                        .await
                }
                _ => replica::apply(&sftp, &base, &src.replica, &ops, how, progress).await,
            };
            if let Some(e) = failed {
                // keep exactly what took effect, so the retry redoes the rest
                let partial = tree::after_ops(&manifest, &local, &ops, &applied.done);
                let _ = replica::write_manifest(&sftp, &src.replica, &partial).await;
                *manifest = partial;
                return Err(e);
            }
            // also when only mtimes moved (verified unchanged): not re-checked next time
            if !ops.is_empty() || local != *manifest {
                replica::write_manifest(&sftp, &src.replica, &local).await?;
            }
            Ok::<_, SyncError>((applied, local))
        }
        .await;
        let mut st = rep.state.lock().map(|s| s.clone()).unwrap_or_default();
        let out = match result {
            Ok((applied, local)) => {
                st.phase = "watching";
                st.error = None;
                st.files = local
                    .values()
                    .filter(|e| matches!(e, tree::EntryKind::File { .. }))
                    .count() as u64;
                st.bytes = local
                    .values()
                    .map(|e| match e {
                        tree::EntryKind::File { size, .. } => *size,
                        _ => 0,
                    })
                    .sum();
                st.syncs += 1;
                st.uploaded_files += applied.files;
                st.last_sync_unix = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let large = local.len() > TRIM_AFTER_ENTRIES;
                *manifest = local;
                if large {
                    crate::mem::release_freed_memory();
                }
                Ok(applied)
            }
            Err(e) => {
                st.phase = "error";
                st.error = Some(e.to_string());
                Err(e)
            }
        };
        if let Ok(mut s) = rep.state.lock() {
            *s = st;
        }
        out
    }

    fn set_phase(&self, rep: &Replica, phase: &'static str) {
        if let Ok(mut st) = rep.state.lock() {
            st.phase = phase;
        }
    }

    pub(super) fn record_error(&self, rep: &Replica, e: &SyncError) {
        if let Ok(mut st) = rep.state.lock() {
            st.phase = "error";
            st.error = Some(e.to_string());
        }
    }

    /// Watches the source; each settled burst of changes triggers one sync.
    fn start_watching(self: &Arc<Self>, rep: &Arc<Replica>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (path, mode) = match rep.source.kind {
            LocalKind::Dir => (rep.source.local.clone(), RecursiveMode::Recursive),
            // editors replace a file by renaming over it: watch its directory
            LocalKind::File => (
                rep.source
                    .local
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
                RecursiveMode::NonRecursive,
            ),
        };
        let pending = rep.progress.clone();
        let debouncer = notify_debouncer_full::new_debouncer_opt::<
            _,
            notify::RecommendedWatcher,
            notify_debouncer_full::NoCache,
        >(
            DEBOUNCE,
            None,
            move |res: notify_debouncer_full::DebounceEventResult| {
                // our own scans and uploads open files: reads are not changes
                let changed = match &res {
                    Ok(events) => events
                        .iter()
                        .filter(|e| !matches!(e.kind, notify::EventKind::Access(_)))
                        .map(|e| e.paths.len().max(1) as u64)
                        .sum(),
                    Err(_) => 1,
                };
                if changed > 0 {
                    pending.add_pending(changed);
                    let _ = tx.send(res);
                }
            },
            // every batch leads to a rescan, so renames need no pairing: no file-id cache
            notify_debouncer_full::NoCache,
            notify::Config::default(),
        );
        let mut debouncer = match debouncer {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(
                    "cannot watch {}: {e}; changes will sync on the next create",
                    path.display()
                );
                return;
            }
        };
        if let Err(e) = debouncer.watch(&path, mode) {
            tracing::warn!(
                "cannot watch {}: {e} (inotify limits?); changes will sync on the next create",
                path.display()
            );
            return;
        }
        if let Ok(mut w) = rep.watcher.lock() {
            *w = Some(debouncer);
        }
        let me = Arc::downgrade(self);
        let rep = rep.clone();
        let stop = self.shutdown.clone();
        let ssh = self.ssh.clone();
        tokio::spawn(async move {
            let mut warned = false;
            // after a failed sync (a file deleted mid-scan, the remote briefly
            // unreachable, a vanished root) try again without waiting for a change
            let mut retry: Option<Duration> = None;
            loop {
                let batch = tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(retry.unwrap_or_default()), if retry.is_some() => None,
                    // changes made during an outage go out as soon as it ends
                    _ = ssh.reconnected(), if retry.is_some() => None,
                    b = rx.recv() => match b { Some(b) => Some(b), None => break },
                };
                if let Some(Err(errors)) = &batch {
                    if !warned {
                        tracing::warn!(
                            "watching {} fell behind ({errors:?}); rescanning",
                            rep.source.local.display()
                        );
                        warned = true;
                    }
                }
                // coalesce whatever else arrived meanwhile
                while rx.try_recv().is_ok() {}
                let Some(me) = me.upgrade() else { break };
                match me.sync_now(&rep).await {
                    Ok(_) => retry = None,
                    Err(e) => {
                        let next = retry.map_or(RETRY_FIRST, |d| (d * 2).min(RETRY_MAX));
                        tracing::warn!(
                            "sync of {} failed: {e}; retrying in {next:?}",
                            rep.source.local.display()
                        );
                        retry = Some(next);
                    }
                }
            }
        });
    }

    /// What scans of every replica leave out (nothing unless configured).
    fn exclusions(&self) -> tree::Exclusions {
        tree::Exclusions {
            patterns: self.opts.ignores.clone(),
            gitignore: self.opts.honour_gitignore,
        }
    }

    /// Per mount: local path, remote path, files, bytes, state, last sync,
    /// the exclusions in effect.
    pub fn snapshot(&self) -> Value {
        let view = self.view.lock().map(|v| v.clone()).unwrap_or_default();
        Value::Array(
            view.iter()
                .map(|r| {
                    let st = r.state.lock().map(|s| s.clone()).unwrap_or_default();
                    let mut containers: Vec<String> = r
                        .containers
                        .lock()
                        .map(|c| c.iter().cloned().collect())
                        .unwrap_or_default();
                    containers.sort();
                    json!({
                        "local": r.source.local.display().to_string(),
                        "remote": r.source.replica,
                        "containers": containers,
                        "state": st.phase,
                        "progress": r.progress.to_json(),
                        "pending_changes": r.progress.pending.load(std::sync::atomic::Ordering::Relaxed),
                        "error": st.error,
                        "files": st.files,
                        "bytes": st.bytes,
                        "syncs": st.syncs,
                        "uploaded_files": st.uploaded_files,
                        "last_sync_unix": st.last_sync_unix,
                        "exclusions": self.exclusions().sources(&r.source.local),
                    })
                })
                .collect(),
        )
    }
}
