//! Owns the replicas of one remote: plans the bind mounts of a create,
//! brings each replica up to date before the container is created (a half
//! uploaded replica is never used), and keeps it in sync (`watch`, `round`).
//! Containers sharing a source share one replica and one task.
//!
//! Every round rescans (the local tree; in two-way mode the replica too)
//! and compares with the state of the last completed round, so bursts
//! coalesce, order is always consistent, and a watcher that overflowed
//! simply leads to the next full rescan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use russh_sftp::client::SftpSession;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::ancestor::AncestorStore;
use super::binds::{plan_binds, BindOptions, LocalKind, SyncSource};
use super::progress::Progress;
use super::reconcile::SyncMode;
use super::replica;
use super::tree::{self, Manifest};
use super::watch::FirstLook;
use super::SyncError;
use crate::ssh::channel_io::ExecReport;
use crate::ssh::SshSession;
use crate::upstream::Upstream;

/// The container label listing the local sources a container uses.
pub const MOUNTS_LABEL: &str = "dev.berth.mounts";

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
    /// How it syncs, fixed when it is made.
    pub(super) mode: SyncMode,
    /// One-way: the tree as the replica holds it after the last completed
    /// sync. Two-way: the tree both sides last agreed on (the ancestor).
    /// Held for a whole round, so rounds never overlap.
    pub(super) manifest: tokio::sync::Mutex<Manifest>,
    pub(super) state: Mutex<ReplicaState>,
    /// Asks its task for a round now (a container of it stopped).
    pub(super) nudge: tokio::sync::Notify,
    /// Ends its task (retired, or the manager shut down).
    pub(super) stop: CancellationToken,
    /// Creates prepared with it whose answer has not come back yet.
    pub(super) preparing: AtomicUsize,
    /// Files and bytes of the sync under way, and changes waiting for the next.
    pub(super) progress: Arc<Progress>,
    /// The paths the watcher reported since a round last took them.
    pub(super) dirty: Arc<Mutex<super::scope::Dirty>>,
    /// Two-way: rounds over part of the tree changed the ancestor since the
    /// replica's own manifest was last written (the next whole round does).
    pub(super) remote_manifest_stale: std::sync::atomic::AtomicBool,
    /// When the replica's manifest was last written by a one-way round
    /// over changed paths (they write it at most every few seconds).
    pub(super) manifest_written: Mutex<Option<std::time::Instant>>,
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

/// What the status shows of a replica; written by its rounds.
#[derive(Debug, Clone, Default)]
pub(super) struct ReplicaState {
    pub(super) phase: &'static str,
    pub(super) error: Option<String>,
    pub(super) files: u64,
    pub(super) bytes: u64,
    pub(super) last_sync_unix: u64,
    pub(super) syncs: u64,
    pub(super) uploaded_files: u64,
    /// Files brought back from the replica (two-way).
    pub(super) fetched_files: u64,
    /// The newest conflicts, oldest first.
    pub(super) conflicts: Vec<ConflictSeen>,
    /// What the last round read: `changes` (the watcher's paths) or `all`,
    /// and how many entries (both sides together, in two-way mode).
    pub(super) last_scope: &'static str,
    pub(super) last_scanned: u64,
}

/// A conflict a round resolved by keeping both versions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(super) struct ConflictSeen {
    /// Where both sides changed it; the winner's version is there.
    pub(super) path: String,
    /// Where the other version is, on both sides.
    pub(super) kept_as: String,
    /// `local` or `remote`: whose version stayed at `path`.
    pub(super) winner: String,
    pub(super) at_unix: u64,
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
    /// Two-way ancestors, kept on this machine.
    pub(super) ancestors: AncestorStore,
    /// The remote shell the replica scans run in.
    pub(super) shell: super::remote_shell::RemoteShell,
    /// Per local source: held while its replica is made or retired, so a
    /// create right after the last container went waits for the removal
    /// (and the last round before it) instead of racing it.
    gates: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
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
            ancestors: AncestorStore::beside(&owned),
            shell: Default::default(),
            gates: Default::default(),
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
        let gate = self.gate(&source.local);
        let _made = gate.lock().await;
        // another create made it while this one waited at the gate
        let made = self.replicas.lock().await.get(&source.local).map(|rep| {
            if for_create {
                rep.preparing.fetch_add(1, Ordering::AcqRel);
            }
            rep.clone()
        });
        if let Some(rep) = made {
            let synced = self.sync_now(&rep).await.map(drop);
            if synced.is_err() && for_create {
                rep.preparing.fetch_sub(1, Ordering::AcqRel);
            }
            return synced.map(|()| rep);
        }
        let (sftp, _) = self.sftp().await?;
        let mode = self.opts.mode;
        let known = match mode {
            SyncMode::OneWay => replica::read_manifest(&sftp, &source.replica)
                .await
                .unwrap_or_default(),
            // never the replica's word: it would decide what counts as deleted
            SyncMode::TwoWay => self.ancestors.load(&source.replica),
        };
        let rep = Arc::new(Replica {
            source: source.clone(),
            mode,
            nudge: tokio::sync::Notify::new(),
            stop: self.shutdown.child_token(),
            manifest: tokio::sync::Mutex::new(known),
            state: Mutex::new(ReplicaState {
                phase: "initial sync",
                ..Default::default()
            }),
            preparing: Default::default(),
            progress: Default::default(),
            dirty: Default::default(),
            remote_manifest_stale: Default::default(),
            manifest_written: Default::default(),
            containers: Default::default(),
            attached_once: Default::default(),
            watcher: Mutex::new(None),
        });
        // where the polls' first look at what changed on the replica starts:
        // before this round, or, for a replica made for this create (no
        // container can have written to it yet), after it, taken by the
        // watch task, off the create's path
        let looks = rep.mode == SyncMode::TwoWay && rep.source.kind == LocalKind::Dir;
        let fresh = for_create && rep.manifest.lock().await.is_empty();
        let seen = match (looks, fresh) {
            (false, _) => FirstLook::Whole,
            (true, true) => FirstLook::AfterFirstSync,
            (true, false) => match super::remote_changes::now(&self.ssh, &self.shell).await {
                Some(at) => FirstLook::Since(at),
                None => FirstLook::Whole,
            },
        };
        let first = self.sync_now(&rep).await?;
        self.start_watching(&rep, first.cost(), seen);
        let mut all = self.replicas.lock().await;
        let rep = all.entry(source.local.clone()).or_insert(rep).clone();
        if for_create {
            rep.preparing.fetch_add(1, Ordering::AcqRel);
        }
        self.publish(&all);
        Ok(rep)
    }

    /// The gate of a local source (see `gates`).
    pub(super) fn gate(&self, local: &Path) -> Arc<tokio::sync::Mutex<()>> {
        match self.gates.lock() {
            Ok(mut g) => g.entry(local.to_path_buf()).or_default().clone(),
            // a poisoned map: an ungated replica is still correct in the common case
            Err(_) => Arc::default(),
        }
    }

    pub(super) fn publish(&self, all: &HashMap<PathBuf, Arc<Replica>>) {
        if let Ok(mut v) = self.view.lock() {
            *v = all.values().cloned().collect();
        }
    }

    pub(super) fn set_phase(&self, rep: &Replica, phase: &'static str) {
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

    /// What scans of every replica leave out (nothing unless configured).
    pub(super) fn exclusions(&self) -> tree::Exclusions {
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
                        "mode": r.mode,
                        "fetched_files": st.fetched_files,
                        "conflicts": st.conflicts,
                        "last_round": match st.last_scope {
                            "" => Value::Null,
                            scope => json!({"scope": scope, "scanned": st.last_scanned}),
                        },
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
