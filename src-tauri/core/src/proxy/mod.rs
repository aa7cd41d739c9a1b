//! The local Docker API endpoint: a faithful HTTP/1.1 proxy whose every
//! client connection rides one channel of the SSH session.
//!
//! `server` accepts clients (mini-redis style `run(listener, shutdown)`),
//! `conn` serves one client connection (`guard` first turns web pages
//! away), `forward` carries one request to the daemon and bridges upgraded
//! connections (attach, exec, BuildKit), `view` shows inspect and list
//! answers with the local side of ports and synced mounts. Two things save
//! each command round trips over the network without changing what a
//! client sees: a `spare` channel opened ahead for the next client
//! connection (`daemon_conn`), and `ping` answered from the daemon's own
//! answer while that is known to hold.

mod conn;
mod daemon_conn;
mod forward;
pub mod guard;
pub mod intercept;
mod ping;
mod reply;
mod server;
mod spare;
mod view;

pub use ping::PingCache;
pub use reply::docker_error;
pub use server::run;
pub use spare::Spare;

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
    /// The channel opened ahead for the next client connection.
    pub spare: Spare,
    /// The daemon's `/_ping` answers while they hold.
    pub ping: PingCache,
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
