//! The engine for one remote: connect the SSH session, find the daemon
//! (preflight), then serve the local endpoints until shutdown. The headless
//! `berth-agent` and the tray app both drive this.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::events::{self, EventSink};
use crate::hint::Advice;
use crate::listen::{ListenAddr, Listener};
use crate::owned::{Owned, OwnedError, OwnedEvents};
use crate::portfwd::PortForwarding;
use crate::ports::PlanOptions;
use crate::proxy::{self, ProxyCtx};
use crate::ssh::{
    AuthConfig, Credentials, HostKeyCheck, HostKeyPolicy, SshError, SshSession, SshTarget,
};
use crate::state::{AgentStatus, Changes};
use crate::status::{DaemonInfo, Status};
use crate::sync::manager::SyncOptions;
use crate::sync::{SyncEvents, SyncManager};
use crate::upstream::{self, DockerApi, UpstreamError, UpstreamSpec};

/// How long shutdown waits for the listeners to drain before closing SSH.
const STOP_TIMEOUT: Duration = Duration::from_secs(4);

/// Everything needed to reach one remote daemon.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub target: SshTarget,
    pub auth: AuthConfig,
    pub known_hosts: PathBuf,
    pub policy: HostKeyPolicy,
    pub upstream: UpstreamSpec,
    /// Automatic port forwarding and its options; `None` switches it off.
    pub ports: Option<PlanOptions>,
    /// Bind-mount sync and its options; `None` switches it off.
    pub sync: Option<SyncOptions>,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Listen(#[from] crate::listen::ListenError),
    #[error(transparent)]
    Owned(#[from] OwnedError),
}

impl Advice for AgentError {
    fn hint(&self) -> Option<crate::hint::Hint> {
        match self {
            AgentError::Ssh(e) => e.hint(),
            AgentError::Upstream(e) => e.hint(),
            AgentError::Listen(e) => e.hint(),
            AgentError::Owned(e) => e.hint(),
        }
    }
}

/// A connected remote, ready to serve.
pub struct Agent {
    pub status: Arc<Status>,
    ctx: Arc<ProxyCtx>,
    /// Stops what runs beside the listeners (the port watcher and forwards).
    background: CancellationToken,
}

impl Agent {
    /// Connects, picks the upstream and reads the daemon's version.
    pub async fn connect(cfg: AgentConfig) -> Result<Self, AgentError> {
        let credentials = Credentials::load(&cfg.auth)?;
        let check = HostKeyCheck {
            host: cfg.target.host.clone(),
            port: cfg.target.port,
            known_hosts: cfg.known_hosts.clone(),
            policy: cfg.policy,
        };
        let ssh = SshSession::connect(cfg.target.clone(), check, credentials).await?;
        let selected = upstream::select(&cfg.upstream, &ssh).await?;
        let (docker, version) = DockerApi::connect(&selected.upstream, ssh.clone()).await?;
        let daemon = DaemonInfo::from(version);
        let owned = Arc::new(Owned::for_daemon(
            &read_daemon_id(&docker, &cfg.target).await,
        )?);
        let status = Arc::new(Status::new(ssh.clone(), selected.clone(), daemon));
        let background = CancellationToken::new();
        let ports = cfg.ports.map(|opts| {
            PortForwarding::new(
                ssh.clone(),
                docker.clone(),
                opts,
                owned.clone(),
                status.changes.clone(),
                background.clone(),
            )
        });
        let sync = cfg.sync.map(|opts| {
            SyncManager::new(
                ssh.clone(),
                docker.clone(),
                opts,
                owned.clone(),
                status.changes.clone(),
                background.clone(),
            )
        });
        let mut sinks: Vec<Arc<dyn EventSink>> = vec![Arc::new(OwnedEvents {
            owned: owned.clone(),
            docker: docker.clone(),
        })];
        if let Some(pf) = &ports {
            sinks.push(pf.watcher.clone());
        }
        if let Some(sync) = &sync {
            sinks.push(Arc::new(SyncEvents::new(sync.clone())));
        }
        let follow = events::run(ssh.clone(), docker.clone(), sinks, background.clone());
        tokio::spawn(follow);
        tokio::spawn(crate::mem::trim_when_idle(background.clone()));
        tokio::spawn(tell_session_changes(
            ssh.clone(),
            status.changes.clone(),
            background.clone(),
        ));
        let spare = proxy::Spare::start(selected.upstream.clone(), ssh.clone(), background.clone());
        let ping =
            proxy::PingCache::start(selected.upstream.clone(), ssh.clone(), background.clone());
        let ctx = Arc::new(ProxyCtx {
            spare,
            ping,
            ssh,
            upstream: selected.upstream,
            docker,
            status: status.clone(),
            ports,
            sync,
            owned,
        });
        Ok(Self {
            status,
            ctx,
            background,
        })
    }

    /// The one line printed when serving starts.
    pub fn ready_line(&self, listen: &[ListenAddr]) -> String {
        let addrs: Vec<String> = listen.iter().map(|a| a.to_string()).collect();
        let d = &self.status.daemon;
        let target = self.ctx.ssh.target();
        let remote = match target.via() {
            Some(via) => format!("{} (through {via})", target.url()),
            None => target.url(),
        };
        format!(
            "berth-agent: ready on {} -> {} via {} (Docker {}, API {})",
            addrs.join(", "),
            remote,
            self.ctx.upstream.url(),
            d.version,
            d.api_version
        )
    }

    /// What `GET /berth/v1/status` answers: session, upstream, daemon,
    /// counters, plus forwards and mounts when those are on.
    pub fn status(&self) -> AgentStatus {
        self.ctx.status()
    }

    /// Bumped whenever something [`Self::status`] shows changes, the
    /// session's state included (see [`crate::state::Changes`]).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.status.changes.subscribe()
    }

    /// Serves every listener until `shutdown`, then closes the SSH session.
    pub async fn serve(&self, listeners: Vec<Listener>, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        for l in listeners {
            tracker.spawn(proxy::run(l, self.ctx.clone(), shutdown.clone()));
        }
        tracker.close();
        shutdown.cancelled().await;
        self.background.cancel();
        if tokio::time::timeout(STOP_TIMEOUT, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("listeners did not drain in {}s", STOP_TIMEOUT.as_secs());
        }
        self.ctx.ssh.close().await;
    }
}

/// Bumps `changes` at each change of the session's state, until `stop`.
async fn tell_session_changes(ssh: Arc<SshSession>, changes: Changes, stop: CancellationToken) {
    let mut state = ssh.subscribe_state();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            r = state.changed() => {
                if r.is_err() {
                    break;
                }
                changes.bump();
            }
        }
    }
}

/// Binds every address; the error names the one that failed.
pub async fn bind_all(addrs: &[ListenAddr]) -> Result<Vec<Listener>, AgentError> {
    let mut out = Vec::new();
    for a in addrs {
        out.push(Listener::bind(a).await?);
    }
    Ok(out)
}

/// The daemon's own identity (`/info` `ID`), so that this machine's record
/// of what it created follows the daemon whichever host name or port
/// reaches it; the SSH target when the daemon does not say.
async fn read_daemon_id(docker: &DockerApi, target: &SshTarget) -> String {
    match docker.daemon_id().await {
        Ok(Some(id)) => return format!("daemon:{id}"),
        Ok(None) => {}
        Err(e) => tracing::debug!("cannot read the daemon's /info: {e}"),
    }
    format!("target:{}", target.url())
}
