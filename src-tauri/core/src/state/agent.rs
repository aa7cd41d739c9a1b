//! The agent's own part of the status: which remote, how its SSH session
//! is, which Docker endpoint it chose and why, the daemon's versions, and
//! the proxy's request counters. [`AgentStatus`] is the whole document of
//! `GET /berth/v1/status`; forwards and mounts are there when those are on.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{ForwardedContainer, MountView};
use crate::hint::Hint;
use crate::ssh::ConnState;

/// Everything `GET /berth/v1/status` answers, and what the window and the
/// tray are built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentStatus {
    /// The SSH target, e.g. `ssh://dev@build-box:22`.
    pub remote: String,
    /// The jump hosts the session goes through, first to last, each
    /// `user@host:port`; empty when the target is dialed directly.
    #[serde(default)]
    pub jumps: Vec<String>,
    pub connection: Connection,
    pub upstream: UpstreamStatus,
    pub daemon: DaemonInfo,
    pub uptime_secs: u64,
    pub requests: RequestCounts,
    /// Per container with published ports; absent when forwarding is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwards: Option<Vec<ForwardedContainer>>,
    /// Per synced bind-mount source; absent when sync is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<MountView>>,
}

impl AgentStatus {
    /// A mount's round is moving files now (its progress changes by itself).
    pub fn transfer_under_way(&self) -> bool {
        self.mounts
            .iter()
            .flatten()
            .any(|m| matches!(m.state, super::Phase::InitialSync | super::Phase::Syncing))
    }
}

/// The SSH session's state, tagged by `state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Connection {
    /// The first dial is under way.
    Connecting,
    Connected {
        connected_for_secs: u64,
        /// Sessions made so far; above 1 after a reconnect.
        connects: u64,
    },
    /// Down for good (closed, or the first dial failed).
    Disconnected {
        last_error: String,
        /// What to do about it (each frontend words it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hint: Option<Hint>,
    },
    /// Down; the next dial is `next_attempt_in_ms` away.
    Reconnecting {
        attempt: u32,
        /// What the last dial said.
        last_error: String,
        /// What to do about it (each frontend words it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hint: Option<Hint>,
        next_attempt_in_ms: u64,
    },
}

impl Connection {
    /// The session's state as of `now`.
    pub fn of(state: &ConnState, now: Instant) -> Self {
        match state {
            ConnState::Connecting => Self::Connecting,
            ConnState::Connected { since, connects } => Self::Connected {
                connected_for_secs: now.saturating_duration_since(*since).as_secs(),
                connects: *connects,
            },
            ConnState::Disconnected { last_error, hint } => Self::Disconnected {
                last_error: last_error.clone(),
                hint: hint.clone(),
            },
            ConnState::Reconnecting {
                attempt,
                last_error,
                hint,
                next_at,
            } => Self::Reconnecting {
                attempt: *attempt,
                last_error: last_error.clone(),
                hint: hint.clone(),
                next_attempt_in_ms: u64::try_from(
                    next_at.saturating_duration_since(now).as_millis(),
                )
                .unwrap_or(u64::MAX),
            },
        }
    }
}

/// The Docker endpoint on the remote that requests go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UpstreamStatus {
    /// E.g. `unix:///var/run/docker.sock` or `tcp://127.0.0.1:2375`.
    pub endpoint: String,
    /// Why this one: given by the user, or what the probe found.
    pub reason: String,
}

/// The remote daemon as preflight saw it (`/version`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DaemonInfo {
    pub version: String,
    pub api_version: String,
    pub os: String,
}

/// The proxy's counters since the agent started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RequestCounts {
    pub total: u64,
    pub in_flight: u64,
    /// Connections upgraded to a raw stream (attach, exec, BuildKit).
    pub upgraded: u64,
    pub upstream_errors: u64,
    pub client_connections: u64,
    /// `/_ping`s answered from the daemon's own last answer (`proxy::ping`);
    /// counted in `total` too.
    pub pings_cached: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_session_state_reads_as_the_status_spells_it() {
        let now = Instant::now();
        let cases = [
            (ConnState::Connecting, r#"{"state":"connecting"}"#),
            (
                ConnState::Connected {
                    since: now - Duration::from_secs(61),
                    connects: 2,
                },
                r#"{"state":"connected","connected_for_secs":61,"connects":2}"#,
            ),
            (
                ConnState::Disconnected {
                    last_error: "refused".into(),
                    hint: None,
                },
                r#"{"state":"disconnected","last_error":"refused"}"#,
            ),
            (
                ConnState::Reconnecting {
                    attempt: 3,
                    last_error: "reset".into(),
                    hint: Some(Hint::CheckSshAddress),
                    next_at: now + Duration::from_millis(1500),
                },
                r#"{"state":"reconnecting","attempt":3,"last_error":"reset","hint":{"kind":"check_ssh_address"},"next_attempt_in_ms":1500}"#,
            ),
            (
                ConnState::Reconnecting {
                    attempt: 1,
                    last_error: "x".into(),
                    hint: None,
                    next_at: now - Duration::from_secs(1),
                },
                r#"{"state":"reconnecting","attempt":1,"last_error":"x","next_attempt_in_ms":0}"#,
            ),
        ];
        for (state, want) in cases {
            let c = Connection::of(&state, now);
            assert_eq!(serde_json::to_string(&c).unwrap(), want, "{state:?}");
            let back: Connection = serde_json::from_str(want).unwrap();
            assert_eq!(back, c, "reads back: {want}");
        }
    }
}
