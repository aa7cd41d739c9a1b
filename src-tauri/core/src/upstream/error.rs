//! Errors of reaching the remote Docker daemon through the session.

use crate::ssh::SshError;

/// Why no Docker daemon could be used on the remote; each names the fix.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    Ssh(#[from] SshError),

    #[error(
        "no Docker daemon answers at {socket} on the remote; start it there \
         (`sudo systemctl start docker`) or point --remote-docker at the right endpoint"
    )]
    DaemonNotRunning { socket: String },

    #[error(
        "permission denied on the remote socket {socket}; add {user} to the docker group on \
         the remote (`sudo usermod -aG docker {user}`), then reconnect"
    )]
    SocketPermissionDenied { socket: String, user: String },

    #[error(
        "docker is not installed on the remote (no {socket}, nothing on tcp://127.0.0.1:2375, \
         no `docker` command); install Docker there"
    )]
    DockerNotInstalled { socket: String },

    #[error(
        "the remote sshd refuses unix-socket forwarding to {socket} (AllowStreamLocalForwarding \
         no, as on Windows OpenSSH); use --remote-docker auto or tcp://127.0.0.1:2375"
    )]
    StreamLocalForbidden { socket: String },

    #[error("the remote Docker endpoint {url} did not answer like a Docker daemon: {reason}")]
    BadAnswer { url: String, reason: String },

    #[error(
        "no way to the remote Docker daemon worked ({tried}); check that Docker runs on the remote"
    )]
    NoUpstream { tried: String },
}
