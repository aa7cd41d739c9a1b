//! Knows the replicas of one remote and who uses them: plans the bind
//! mounts of a create, has each replica brought up to date before the
//! container is created (a half uploaded replica is never used), and
//! starts the task that keeps it in sync (`mount_task`). Containers sharing
//! a source share one replica and one task; when a replica retires is
//! `usage`'s rule, judged under the map's lock.
//!
//! Every round rescans (the watcher's paths, or the whole local tree; in
//! two-way mode the replica too) and compares with the state of the last
//! completed round, so bursts coalesce, order is always consistent, and a
//! watcher that overflowed simply leads to the next full rescan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use russh_sftp::client::SftpSession;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::ancestor::AncestorStore;
use super::binds::{plan_binds, BindOptions, LocalKind, SyncSource};
use super::mount::Replica;
use super::reconcile::SyncMode;
use super::replica;
use super::tree;
use super::usage::{Answer, Usage};
use super::watch::FirstLook;
use super::SyncError;
use crate::ssh::channel_io::ExecReport;
use crate::ssh::SshSession;
use crate::state::{Changes, MountView};
use crate::upstream::DockerApi;

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

pub struct SyncManager {
    pub(super) ssh: Arc<SshSession>,
    pub(super) docker: DockerApi,
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
    /// Every replica known here, and who uses it (changed only under this lock).
    pub(super) replicas: tokio::sync::Mutex<HashMap<PathBuf, (Arc<Replica>, Usage)>>,
    /// What the status lists: each replica and the containers using it, as
    /// of the last change of the map.
    pub(super) view: Mutex<Vec<(Arc<Replica>, Vec<String>)>>,
    /// The agent's change signal (see [`crate::state::Changes`]).
    changes: Changes,
    pub(super) shutdown: CancellationToken,
    /// The orphan sweep ran (once per agent, at its first reconcile).
    pub(super) gc_done: std::sync::atomic::AtomicBool,
}

/// Who a replica is adopted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum User<'a> {
    /// A create being prepared with it.
    Create,
    /// A container that uses it (found by a listing or an event).
    Container(&'a str),
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
        self.manager
            .create_answered(paths, Answer::Created(id))
            .await;
    }
}

impl Drop for PreparedMounts {
    fn drop(&mut self) {
        if self.paths.is_empty() {
            return;
        }
        let manager = self.manager.clone();
        let paths = std::mem::take(&mut self.paths);
        let answer = match self.outcome {
            Some(false) => Answer::Refused,
            // created without an id, or never answered: it may exist
            _ => Answer::Unknown,
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { manager.create_answered(paths, answer).await });
        }
    }
}

impl SyncManager {
    pub fn new(
        ssh: Arc<SshSession>,
        docker: DockerApi,
        opts: SyncOptions,
        owned: Arc<crate::owned::Owned>,
        changes: Changes,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            ssh,
            docker,
            opts,
            owner: super::lifecycle::machine_id(),
            ancestors: AncestorStore::beside(&owned),
            shell: Default::default(),
            gates: Default::default(),
            owned,
            sftp: Default::default(),
            replicas: Default::default(),
            view: Default::default(),
            changes,
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

    /// This machine's folder of replicas on the remote (the SFTP session is
    /// opened if it is not yet).
    pub async fn mounts_root(&self) -> Result<String, SyncError> {
        self.sftp().await.map(|(_, root)| root)
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

    /// A create using `paths` was answered: a replica made for a refused
    /// create that nothing else uses is retired (it would linger otherwise).
    async fn create_answered(&self, paths: Vec<PathBuf>, answer: Answer<'_>) {
        let mut retiring = Vec::new();
        {
            let mut all = self.replicas.lock().await;
            for p in &paths {
                let Some((_, usage)) = all.get_mut(p) else {
                    continue;
                };
                if usage.answered(answer) {
                    if let Some((rep, _)) = all.remove(p) {
                        retiring.push(rep);
                    }
                }
            }
            self.publish(&all);
        }
        for rep in retiring {
            self.retire(&rep).await;
        }
    }

    /// Brings the source's replica up to date, creating it and its watcher
    /// on first use. Counts a create prepared with it, so nothing can
    /// retire it until that create is answered.
    async fn ensure(self: &Arc<Self>, source: SyncSource) -> Result<(), SyncError> {
        // counted under the lock that finds it, so nothing can retire it
        // between the lookup and this create's answer
        match self.prepare_with(&source.local).await {
            Some(rep) => self.synced_for_create(&source.local, &rep).await,
            // counted as it becomes known, before anyone could retire it
            None => self.adopt(source, User::Create).await.map(drop),
        }
    }

    /// The known replica of `local`, counted as used by a create being
    /// prepared.
    async fn prepare_with(&self, local: &Path) -> Option<Arc<Replica>> {
        let mut all = self.replicas.lock().await;
        let (rep, usage) = all.get_mut(local)?;
        usage.prepare();
        Some(rep.clone())
    }

    /// A whole round of `rep` for a create; a failure ends that create's
    /// claim on it.
    async fn synced_for_create(&self, local: &Path, rep: &Replica) -> Result<(), SyncError> {
        let synced = rep.sync().await.map(drop);
        if synced.is_err() {
            if let Some((_, usage)) = self.replicas.lock().await.get_mut(local) {
                usage.prepare_failed();
            }
        }
        synced
    }

    /// Makes a replica known: reads the manifest the remote kept, syncs the
    /// difference, starts watching. `user` is counted as using it in the
    /// same step that makes it known, so nothing retires it in between.
    pub(super) async fn adopt(
        self: &Arc<Self>,
        source: SyncSource,
        user: User<'_>,
    ) -> Result<Arc<Replica>, SyncError> {
        let for_create = user == User::Create;
        let gate = self.gate(&source.local);
        let _made = gate.lock().await;
        // another create made it while this one waited at the gate
        let made = match user {
            User::Create => self.prepare_with(&source.local).await,
            User::Container(id) => {
                let mut all = self.replicas.lock().await;
                all.get_mut(&source.local).map(|(rep, usage)| {
                    usage.attach(id);
                    rep.clone()
                })
            }
        };
        if let Some(rep) = made {
            match for_create {
                true => self.synced_for_create(&source.local, &rep).await?,
                false => rep.sync().await.map(drop)?,
            }
            return Ok(rep);
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
        // where the polls' first look at what changed on the replica starts:
        // before this round, or, for a replica made for this create (no
        // container can have written to it yet), after it, taken by its
        // task, off the create's path
        let looks = mode == SyncMode::TwoWay && source.kind == LocalKind::Dir;
        let fresh = for_create && known.is_empty();
        let first = match (looks, fresh) {
            (false, _) => FirstLook::Whole,
            (true, true) => FirstLook::AfterFirstSync,
            (true, false) => match super::remote_changes::now(&self.ssh, &self.shell).await {
                Some(at) => FirstLook::Since(at),
                None => FirstLook::Whole,
            },
        };
        let stop = self.shutdown.child_token();
        let (rep, mount) = Replica::new(source.clone(), mode, known, stop, self.changes.clone());
        self.spawn_mount(mount, first);
        if let Err(e) = rep.sync().await {
            rep.stop.cancel();
            return Err(e);
        }
        let mut all = self.replicas.lock().await;
        let (rep, usage) = all
            .entry(source.local.clone())
            .or_insert_with(|| (rep, Usage::default()));
        match user {
            User::Create => usage.prepare(),
            User::Container(id) => usage.attach(id),
        }
        let rep = rep.clone();
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

    pub(super) fn publish(&self, all: &HashMap<PathBuf, (Arc<Replica>, Usage)>) {
        let listed = all
            .values()
            .map(|(rep, usage)| (rep.clone(), usage.containers().cloned().collect()))
            .collect();
        if let Ok(mut v) = self.view.lock() {
            *v = listed;
        }
        self.changes.bump();
    }

    /// What scans of every replica leave out (nothing unless configured).
    pub(super) fn exclusions(&self) -> tree::Exclusions {
        tree::Exclusions {
            patterns: self.opts.ignores.clone(),
            gitignore: self.opts.honour_gitignore,
        }
    }

    /// Every synced source: where, how, for whom, its phase, last round,
    /// transfer and what waits (the `mounts` of the status).
    pub fn status(&self) -> Vec<MountView> {
        let view = self.view.lock().map(|v| v.clone()).unwrap_or_default();
        view.iter()
            .map(|(r, containers)| {
                let st = r.status.borrow().clone();
                MountView {
                    local: r.source.local.display().to_string(),
                    remote: r.source.replica.clone(),
                    mode: r.mode,
                    fetched_files: st.fetched_files,
                    conflicts: st.conflicts,
                    last_round: st.last_round,
                    containers: containers.clone(),
                    state: st.phase,
                    progress: r.progress.view(),
                    pending_changes: r
                        .progress
                        .pending
                        .load(std::sync::atomic::Ordering::Relaxed),
                    pending_remote_changes: st.pending_remote,
                    error: st.error,
                    hint: st.hint,
                    files: st.files,
                    bytes: st.bytes,
                    syncs: st.syncs,
                    uploaded_files: st.uploaded_files,
                    last_sync_unix: st.last_sync_unix,
                    exclusions: self.exclusions().sources(&r.source.local),
                }
            })
            .collect()
    }
}
