//! What the status shows of port forwarding: per container, each local
//! listener, where it leads and what it carried. Built by
//! `portfwd::Forwarder::status` from its listeners.

use serde::{Deserialize, Serialize};

/// One container's forwarded ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ForwardedContainer {
    /// The container's full id.
    pub id: String,
    /// Its name as the daemon gives it, e.g. `/web`.
    pub name: String,
    pub forwards: Vec<ForwardStatus>,
}

/// Whether a forward's local listener is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForwardState {
    Listening,
    /// The listener could not open; [`ForwardStatus::error`] says why.
    Failed,
}

/// One local listener of a container's published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ForwardStatus {
    /// The address listened on, e.g. `127.0.0.1:8080`.
    pub local: String,
    /// As `docker port` shows it, e.g. `0.0.0.0:8080->80/tcp`.
    pub shown_as: String,
    /// The container's side, e.g. `80/tcp`.
    pub container_port: String,
    /// The port the daemon published on the remote's loopback.
    pub remote_port: u16,
    pub state: ForwardState,
    /// Why the listener could not open (state `failed`).
    pub error: Option<String>,
    pub open_connections: u64,
    pub total_connections: u64,
    pub bytes_to_container: u64,
    pub bytes_from_container: u64,
}
