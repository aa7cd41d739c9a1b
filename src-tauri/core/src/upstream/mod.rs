//! Which endpoint of the remote Docker daemon requests go to, and how a
//! stream to it is opened over the SSH session.
//!
//! `unix` is a direct-streamlocal channel, `tcp` a direct-tcpip channel (Docker
//! Desktop on Windows exposes tcp://localhost:2375 and Windows OpenSSH cannot
//! forward unix sockets), `dial-stdio` an exec channel running
//! `docker system dial-stdio`. `auto` tries them in that order (see `select`).

mod diagnose;
pub mod docker;
mod error;
mod select;

pub use diagnose::{diagnose, Probe, PROBE_COMMAND};
pub use docker::DockerApi;
pub use error::UpstreamError;
pub use select::{ping, select, Selected};

use crate::ssh::{ChannelIo, SshError, SshSession};

/// The default socket of a Linux daemon.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// Where Docker Desktop exposes the daemon without TLS when asked to.
pub const DESKTOP_TCP: (&str, u16) = ("127.0.0.1", 2375);
/// The command `DOCKER_HOST=ssh://` runs on the remote, kept as the last resort.
pub const DIAL_STDIO: &str = "docker system dial-stdio";

/// What the user asked for with `--remote-docker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamSpec {
    Auto,
    Fixed(Upstream),
}

/// A concrete way to reach the remote daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    Unix(String),
    Tcp { host: String, port: u16 },
    DialStdio,
}

impl std::str::FromStr for UpstreamSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(Self::Auto);
        }
        if s == "dial-stdio" {
            return Ok(Self::Fixed(Upstream::DialStdio));
        }
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "{s:?}: a unix socket needs an absolute path, like unix:///var/run/docker.sock"
                ));
            }
            return Ok(Self::Fixed(Upstream::Unix(path.to_string())));
        }
        if let Some(rest) = s.strip_prefix("tcp://") {
            let rest = rest.trim_end_matches('/');
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| format!("{s:?}: give a port, like tcp://127.0.0.1:2375"))?;
            let port: u16 = port
                .parse()
                .map_err(|_| format!("{s:?}: {port:?} is not a port number"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(format!("{s:?}: give a host, like tcp://127.0.0.1:2375"));
            }
            return Ok(Self::Fixed(Upstream::Tcp {
                host: host.to_string(),
                port,
            }));
        }
        Err(format!(
            "unknown remote Docker endpoint {s:?}; use auto, unix:///PATH, tcp://HOST:PORT or dial-stdio"
        ))
    }
}

impl Upstream {
    /// The endpoint as a URL, for the ready line and status.
    pub fn url(&self) -> String {
        match self {
            Upstream::Unix(p) => format!("unix://{p}"),
            Upstream::Tcp { host, port } if host.contains(':') => format!("tcp://[{host}]:{port}"),
            Upstream::Tcp { host, port } => format!("tcp://{host}:{port}"),
            Upstream::DialStdio => format!("ssh exec `{DIAL_STDIO}`"),
        }
    }

    /// Opens a fresh byte stream to the daemon over the session.
    pub async fn dial(&self, ssh: &SshSession) -> Result<ChannelIo, SshError> {
        match self {
            Upstream::Unix(p) => ssh.open_unix(p).await,
            Upstream::Tcp { host, port } => ssh.open_tcp(host, *port).await,
            Upstream::DialStdio => ssh.open_exec(DIAL_STDIO).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_specs() {
        let ok: Vec<(&str, UpstreamSpec)> = vec![
            ("auto", UpstreamSpec::Auto),
            (
                "unix:///var/run/docker.sock",
                UpstreamSpec::Fixed(Upstream::Unix("/var/run/docker.sock".into())),
            ),
            (
                "tcp://localhost:2375",
                UpstreamSpec::Fixed(Upstream::Tcp {
                    host: "localhost".into(),
                    port: 2375,
                }),
            ),
            (
                "tcp://[::1]:2375",
                UpstreamSpec::Fixed(Upstream::Tcp {
                    host: "::1".into(),
                    port: 2375,
                }),
            ),
            ("dial-stdio", UpstreamSpec::Fixed(Upstream::DialStdio)),
        ];
        for (s, want) in ok {
            assert_eq!(s.parse::<UpstreamSpec>(), Ok(want), "{s}");
        }
        for bad in [
            "",
            "unix://relative.sock",
            "tcp://host",
            "tcp://:2375",
            "tcp://h:99999",
            "http://x:1",
            "npipe:////./pipe/docker",
        ] {
            let err = bad.parse::<UpstreamSpec>().unwrap_err();
            assert!(!err.contains('\n') && !err.is_empty(), "{bad}: {err}");
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            Upstream::Unix("/run/d.sock".into()).url(),
            "unix:///run/d.sock"
        );
        assert_eq!(
            Upstream::Tcp {
                host: "::1".into(),
                port: 2375
            }
            .url(),
            "tcp://[::1]:2375"
        );
        assert_eq!(
            Upstream::Tcp {
                host: "localhost".into(),
                port: 2375
            }
            .url(),
            "tcp://localhost:2375"
        );
    }
}
