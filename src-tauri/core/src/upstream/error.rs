//! Errors of reaching the remote Docker daemon through the session.

use crate::hint::{Advice, Hint};
use crate::ssh::SshError;

/// Why no Docker daemon could be used on the remote; [`Advice::hint`] names the fix.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    Ssh(#[from] SshError),

    #[error("no Docker daemon answers at {socket} on the remote")]
    DaemonNotRunning { socket: String },

    #[error("permission denied on the remote socket {socket} for {user}")]
    SocketPermissionDenied { socket: String, user: String },

    #[error(
        "docker is not installed on the remote (no {socket}, nothing on tcp://127.0.0.1:2375, \
         no `docker` command)"
    )]
    DockerNotInstalled { socket: String },

    #[error(
        "the remote sshd refuses unix-socket forwarding to {socket} (AllowStreamLocalForwarding \
         no, as on Windows OpenSSH)"
    )]
    StreamLocalForbidden { socket: String },

    #[error("the remote Docker endpoint {url} did not answer like a Docker daemon: {reason}")]
    BadAnswer {
        url: String,
        /// What was wrong with the answer (status, body, framing).
        reason: String,
    },

    #[error("the remote Docker endpoint {url} did not answer like a Docker daemon{said}")]
    NotHttp {
        url: String,
        /// What a dial-stdio command last printed on stderr, as
        /// " (the remote said: …)", or empty.
        said: String,
        #[source]
        source: hyper::Error,
    },

    #[error("the remote Docker daemon at {url} failed a {call} call")]
    Call {
        url: String,
        /// Which of Berth's own calls (`/version`, `container inspect`, …).
        call: &'static str,
        #[source]
        source: bollard::errors::Error,
    },

    #[error("the remote Docker daemon at {url} did not answer {call} within {secs}s")]
    CallTimeout {
        url: String,
        call: &'static str,
        secs: u64,
    },

    #[error("no way to the remote Docker daemon worked ({tried})")]
    NoUpstream { tried: String },
}

impl Advice for UpstreamError {
    fn hint(&self) -> Option<Hint> {
        use UpstreamError::*;
        Some(match self {
            Ssh(e) => return e.hint(),
            DaemonNotRunning { .. } => Hint::StartDocker,
            SocketPermissionDenied { user, .. } => Hint::JoinDockerGroup { user: user.clone() },
            DockerNotInstalled { .. } => Hint::InstallDocker,
            StreamLocalForbidden { .. } => Hint::UseTcpDocker,
            BadAnswer { .. }
            | NotHttp { .. }
            | Call { .. }
            | CallTimeout { .. }
            | NoUpstream { .. } => Hint::CheckDockerRuns,
        })
    }
}
