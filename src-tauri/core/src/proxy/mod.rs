//! The local Docker API endpoint: a faithful HTTP/1.1 proxy whose every
//! client connection rides one channel of the SSH session.
//!
//! `server` accepts clients (mini-redis style `run(listener, shutdown)`),
//! `conn` serves one client connection (`guard` first turns web pages
//! away), `forward` carries one request to the daemon and bridges upgraded
//! connections (attach, exec, BuildKit), `view` shows inspect and list
//! answers with the local side of ports and synced mounts.

mod conn;
mod forward;
pub mod guard;
pub mod intercept;
mod reply;
mod server;
mod view;

pub use reply::docker_error;
pub use server::run;

use std::sync::Arc;

use crate::owned::Owned;
use crate::portfwd::PortForwarding;
use crate::ssh::SshSession;
use crate::state::AgentStatus;
use crate::status::Status;
use crate::sync::SyncManager;
use crate::upstream::{DockerApi, Upstream};

/// Everything a client connection needs, shared by all of them.
pub struct ProxyCtx {
    pub ssh: Arc<SshSession>,
    pub upstream: Upstream,
    /// Berth's own typed calls to the same daemon.
    pub docker: DockerApi,
    pub status: Arc<Status>,
    /// Automatic port forwarding; `None` when switched off.
    pub ports: Option<PortForwarding>,
    /// Bind-mount sync; `None` when switched off.
    pub sync: Option<Arc<SyncManager>>,
    /// What this machine created on the remote (`crate::owned`).
    pub owned: Arc<Owned>,
}

impl ProxyCtx {
    /// The `GET /berth/v1/status` document: session, upstream, daemon,
    /// counters, plus `forwards` and `mounts` when those are on.
    pub fn status(&self) -> AgentStatus {
        AgentStatus {
            forwards: self.ports.as_ref().map(|pf| pf.forwarder.status()),
            mounts: self.sync.as_ref().map(|s| s.status()),
            ..self.status.agent_status()
        }
    }
}
