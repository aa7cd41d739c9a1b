//! Automatic port forwarding, decision side: which local ports a container
//! created through Berth gets, how its create body is rewritten so that the
//! remote daemon publishes only on the remote's loopback, and how inspect and
//! list answers are rewritten to show the local side back to clients. Every
//! function here is pure (JSON in, JSON out); listening, dialling and events
//! live elsewhere.

pub mod key;
pub mod plan;
pub mod view;

use crate::hint::{Advice, Hint};
pub use key::{PortKey, PortRange, Proto};
pub use plan::{
    plan_create, read_label, shown_ip, CreatePlan, LocalBinding, PlanOptions, PortsLabel,
    PORTS_LABEL,
};

pub use view::{remote_ports, rewrite_inspect, rewrite_list};

/// Why a container's ports cannot be published locally. Each message is one
/// line, in Docker's style, that names the offending value; the fix is
/// [`Advice::hint`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// A port key, host port or host address the user gave is malformed.
    #[error("invalid port specification: {spec:?} ({reason})")]
    InvalidSpec { spec: String, reason: String },

    /// A field of the create body has the wrong JSON type.
    #[error("invalid container config: {field} {reason}")]
    InvalidBody { field: String, reason: String },

    /// A UDP or SCTP port was published; SSH forwards TCP streams only.
    #[error("berth cannot forward {port} yet: SSH carries TCP only")]
    UdpUnsupported { port: PortKey },

    /// The local port is taken (Docker's own wording; `ip` as Docker shows it).
    #[error("Bind for {ip}:{port} failed: port is already allocated")]
    PortAllocated { ip: String, port: u16 },

    /// Every port of a host range (or of the ephemeral range) is taken.
    #[error("no free host port ({range}) on {ip}")]
    NoFreePort { ip: String, range: String },

    /// The local listener could not bind for another reason than "in use".
    #[error("cannot listen on {addr}: {reason}")]
    BindFailed { addr: String, reason: String },

    /// The ports label could not be encoded (should not happen).
    #[error("cannot encode the {label} label: {reason}")]
    Label { label: &'static str, reason: String },
}

impl Advice for PortError {
    fn hint(&self) -> Option<Hint> {
        match self {
            PortError::UdpUnsupported { .. } => Some(Hint::PublishTcp),
            PortError::NoFreePort { .. } => Some(Hint::FreeOrAnotherPort),
            PortError::BindFailed { .. } => Some(Hint::PublishAnotherPort),
            // Docker's own wording, which scripts match: no fix appended
            PortError::PortAllocated { .. } => None,
            PortError::InvalidSpec { .. }
            | PortError::InvalidBody { .. }
            | PortError::Label { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_actionable_line() {
        let key = |s: &str| s.parse::<PortKey>().expect("key");
        let table = [
            (
                "allocated",
                PortError::PortAllocated { ip: "0.0.0.0".into(), port: 8080 },
                "Bind for 0.0.0.0:8080 failed: port is already allocated",
            ),
            (
                "udp",
                PortError::UdpUnsupported { port: key("5353/udp") },
                "berth cannot forward 5353/udp yet: SSH carries TCP only; publish TCP ports, \
                 or run the client on the remote",
            ),
            (
                "range full",
                PortError::NoFreePort { ip: "127.0.0.1".into(), range: PortRange::Range(8000, 8002).to_string() },
                "no free host port (8000-8002) on 127.0.0.1; free one, or publish another port or range",
            ),
            (
                "bind",
                PortError::BindFailed { addr: "127.0.0.1:80".into(), reason: "permission denied".into() },
                "cannot listen on 127.0.0.1:80: permission denied; publish another host port or address",
            ),
        ];
        for (name, err, want) in table {
            assert_eq!(crate::hint::for_cli(&err), want, "{name}");
            assert!(!want.contains('\n'), "{name}");
        }
    }
}
