//! The SSH side: one russh session per remote, host key checks, user
//! authentication, and channels as byte streams that cannot stall each other.

pub mod auth;
pub mod channel_io;
mod dial;
pub mod error;
pub mod handler;
pub mod known_hosts;
pub mod liveness;
pub mod proxy_command;
pub mod reconnect;
pub mod session;

pub use auth::{AuthConfig, Credentials};
pub use channel_io::ChannelIo;
pub use error::SshError;
pub use handler::{HostKeyCheck, HostKeyPolicy};
pub use session::{ConnState, SessionHandle, SshSession, SshTarget};

/// Quotes `s` for the POSIX shell that runs exec commands on the remote.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
