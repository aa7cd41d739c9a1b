//! The agent's live state behind `GET /berth/v1/status`: the session, the
//! chosen upstream and why, the daemon's versions, uptime and the proxy's
//! counters. [`Status::agent_status`] reads them into the typed
//! [`AgentStatus`] (`crate::state`); forwards and mounts are added by
//! `ProxyCtx::status`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use crate::ssh::SshSession;
pub use crate::state::DaemonInfo;
use crate::state::{AgentStatus, Changes, Connection, RequestCounts, UpstreamStatus};
use crate::upstream::Selected;

/// Request counters, updated by the proxy.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub in_flight: AtomicU64,
    pub upgrades: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub client_connections: AtomicU64,
    pub pings_cached: AtomicU64,
}

/// Shared, read by the status endpoint and the UI.
pub struct Status {
    pub ssh: Arc<SshSession>,
    pub selected: Selected,
    pub daemon: DaemonInfo,
    pub started: Instant,
    pub counters: Counters,
    /// Bumped by whatever changes what the status shows (session, forwards,
    /// mounts; not the request counters, which change with every request).
    pub changes: Changes,
}

impl Status {
    pub fn new(ssh: Arc<SshSession>, selected: Selected, daemon: DaemonInfo) -> Self {
        Self {
            ssh,
            selected,
            daemon,
            started: Instant::now(),
            counters: Counters::default(),
            changes: Changes::new(),
        }
    }

    /// The agent's own part of the status (no forwards, no mounts).
    pub fn agent_status(&self) -> AgentStatus {
        let c = &self.counters;
        let now = Instant::now();
        AgentStatus {
            remote: self.ssh.target().url(),
            jumps: self
                .ssh
                .target()
                .jumps
                .iter()
                .map(crate::ssh::SshTarget::user_addr)
                .collect(),
            connection: Connection::of(&self.ssh.state(), now),
            upstream: UpstreamStatus {
                endpoint: self.selected.upstream.url(),
                reason: self.selected.reason.clone(),
            },
            daemon: self.daemon.clone(),
            uptime_secs: now.saturating_duration_since(self.started).as_secs(),
            requests: RequestCounts {
                total: c.requests.load(Relaxed),
                in_flight: c.in_flight.load(Relaxed),
                upgraded: c.upgrades.load(Relaxed),
                upstream_errors: c.upstream_errors.load(Relaxed),
                client_connections: c.client_connections.load(Relaxed),
                pings_cached: c.pings_cached.load(Relaxed),
            },
            forwards: None,
            mounts: None,
        }
    }
}
