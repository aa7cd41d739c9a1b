//! Local endpoints the Docker clients talk to: loopback TCP or a unix socket
//! (mode 0600). Anything reachable from the network is refused, since the
//! Docker API is root on the remote for whoever can reach it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};

/// The default endpoint, as `DOCKER_HOST` spells it.
pub const DEFAULT_LISTEN: &str = "tcp://127.0.0.1:23750";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "tcp://{a}"),
            ListenAddr::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "{s:?}: a unix socket needs an absolute path, like unix:///tmp/berth.sock"
                ));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        let Some(rest) = s.strip_prefix("tcp://") else {
            return Err(format!("{s:?}: use tcp://127.0.0.1:PORT or unix:///PATH"));
        };
        let rest = rest.trim_end_matches('/');
        let addr: SocketAddr = match rest.strip_prefix("localhost:") {
            Some(port) => SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port.parse()
                    .map_err(|_| format!("{s:?}: {port:?} is not a port"))?,
            ),
            None => rest.parse().map_err(|_| {
                format!("{s:?}: give an address and port, like tcp://127.0.0.1:23750")
            })?,
        };
        if !addr.ip().is_loopback() {
            return Err(format!(
                "refusing to listen on {s}: it is not a loopback address, and the Docker API gives root on the remote to anyone who reaches it; use 127.0.0.1 or a unix:// socket"
            ));
        }
        Ok(ListenAddr::Tcp(addr))
    }
}

/// A bound endpoint. A unix socket file is removed when this is dropped.
#[derive(Debug)]
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, PathBuf),
}

/// One accepted client connection.
pub trait ClientIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ClientIo for T {}

impl Listener {
    /// Binds `addr`; a stale socket file (nothing listening) is replaced.
    pub async fn bind(addr: &ListenAddr) -> Result<Self, String> {
        match addr {
            ListenAddr::Tcp(a) => tokio::net::TcpListener::bind(a)
                .await
                .map(Listener::Tcp)
                .map_err(|e| {
                    format!("cannot listen on {addr}: {e}; pick another port with --listen")
                }),
            ListenAddr::Unix(p) => {
                if p.exists() {
                    if std::os::unix::net::UnixStream::connect(p).is_ok() {
                        return Err(format!(
                            "cannot listen on {addr}: another process serves it"
                        ));
                    }
                    std::fs::remove_file(p)
                        .map_err(|e| format!("cannot replace stale socket {}: {e}", p.display()))?;
                }
                let l = tokio::net::UnixListener::bind(p)
                    .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
                set_owner_only(p)
                    .map_err(|e| format!("cannot restrict {} to its owner: {e}", p.display()))?;
                Ok(Listener::Unix(l, p.clone()))
            }
        }
    }

    /// Where it is bound (with the real port for `127.0.0.1:0`).
    pub fn local_addr(&self) -> ListenAddr {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map(ListenAddr::Tcp)
                .unwrap_or(ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0)))),
            Listener::Unix(_, p) => ListenAddr::Unix(p.clone()),
        }
    }

    /// Accepts one client; TCP clients get TCP_NODELAY (delayed ACKs otherwise
    /// add 40 ms to every request).
    pub async fn accept(&self) -> std::io::Result<Box<dyn ClientIo>> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok(Box::new(s))
            }
            Listener::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                Ok(Box::new(s))
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn set_owner_only(p: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let ok = [
            (
                "tcp://127.0.0.1:23750",
                ListenAddr::Tcp("127.0.0.1:23750".parse().unwrap()),
            ),
            (
                "tcp://localhost:1",
                ListenAddr::Tcp("127.0.0.1:1".parse().unwrap()),
            ),
            (
                "tcp://[::1]:23750",
                ListenAddr::Tcp("[::1]:23750".parse().unwrap()),
            ),
            (
                "tcp://127.0.0.2:5",
                ListenAddr::Tcp("127.0.0.2:5".parse().unwrap()),
            ),
            ("unix:///tmp/b.sock", ListenAddr::Unix("/tmp/b.sock".into())),
        ];
        for (s, want) in ok {
            assert_eq!(s.parse::<ListenAddr>(), Ok(want.clone()), "{s}");
            assert_eq!(want.to_string(), s.replace("localhost", "127.0.0.1"));
        }
        for (bad, says) in [
            ("tcp://0.0.0.0:23750", "not a loopback"),
            ("tcp://192.168.1.4:23750", "not a loopback"),
            ("tcp://[::]:1", "not a loopback"),
            ("tcp://127.0.0.1", "address and port"),
            ("unix://rel.sock", "absolute path"),
            ("127.0.0.1:23750", "tcp://127.0.0.1:PORT"),
        ] {
            let e = bad.parse::<ListenAddr>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn unix_socket_is_owner_only_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let p = std::env::temp_dir().join(format!("berth-listen-{}.sock", std::process::id()));
        let l = Listener::bind(&ListenAddr::Unix(p.clone())).await.unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // a second agent on the same socket is refused, not silently stolen
        assert!(Listener::bind(&ListenAddr::Unix(p.clone()))
            .await
            .unwrap_err()
            .contains("another process"));
        drop(l);
        assert!(!p.exists());
    }
}
