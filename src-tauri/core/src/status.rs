//! What `GET /berth/v1/status` reports: the remote, the SSH session's state,
//! the chosen upstream and why, the daemon's versions, uptime and counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use crate::ssh::{ConnState, SshSession};
use crate::upstream::Selected;

/// Request counters, updated by the proxy.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub in_flight: AtomicU64,
    pub upgrades: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub client_connections: AtomicU64,
}

/// The remote daemon as preflight saw it.
#[derive(Debug, Clone, Default)]
pub struct DaemonInfo {
    pub version: String,
    pub api_version: String,
    pub os: String,
}

/// Shared, read by the status endpoint and the UI.
pub struct Status {
    pub ssh: Arc<SshSession>,
    pub selected: Selected,
    pub daemon: DaemonInfo,
    pub started: Instant,
    pub counters: Counters,
}

impl Status {
    pub fn new(ssh: Arc<SshSession>, selected: Selected, daemon: DaemonInfo) -> Self {
        Self {
            ssh,
            selected,
            daemon,
            started: Instant::now(),
            counters: Counters::default(),
        }
    }

    /// The JSON document of `GET /berth/v1/status`.
    pub fn snapshot(&self) -> serde_json::Value {
        let c = &self.counters;
        let connection = match self.ssh.state() {
            ConnState::Connected { since, connects } => json!({
                "state": "connected",
                "connected_for_secs": since.elapsed().as_secs(),
                "connects": connects,
            }),
            ConnState::Reconnecting {
                attempt,
                last_error,
                next_at,
            } => json!({
                "state": "reconnecting",
                "attempt": attempt,
                "last_error": last_error,
                "next_attempt_in_ms": next_at
                    .saturating_duration_since(Instant::now())
                    .as_millis() as u64,
            }),
            other => serde_json::to_value(other).unwrap_or_default(),
        };
        json!({
            "remote": self.ssh.target().url(),
            "connection": connection,
            "upstream": {
                "endpoint": self.selected.upstream.url(),
                "reason": self.selected.reason,
            },
            "daemon": {
                "version": self.daemon.version,
                "api_version": self.daemon.api_version,
                "os": self.daemon.os,
            },
            "uptime_secs": self.started.elapsed().as_secs(),
            "requests": {
                "total": c.requests.load(Relaxed),
                "in_flight": c.in_flight.load(Relaxed),
                "upgraded": c.upgrades.load(Relaxed),
                "upstream_errors": c.upstream_errors.load(Relaxed),
                "client_connections": c.client_connections.load(Relaxed),
            },
        })
    }
}
