//! Local endpoints the Docker clients talk to: loopback TCP or a unix socket
//! (mode 0600, bound where nobody else can reach it first). Anything reachable from the network is refused, since the
//! Docker API is root on the remote for whoever can reach it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::hint::{Advice, Hint};

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

/// Why a local endpoint cannot be used. A malformed one says the valid
/// form in its message: the form is what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("{given:?}: a unix socket needs an absolute path, like unix:///tmp/berth.sock")]
    RelativeSocket { given: String },
    #[error("{given:?}: use tcp://127.0.0.1:PORT or unix:///PATH")]
    UnknownScheme { given: String },
    #[error("{given:?}: {port:?} is not a port")]
    BadPort { given: String, port: String },
    #[error("{given:?}: give an address and port, like tcp://127.0.0.1:23750")]
    BadAddress { given: String },
    #[error(
        "refusing to listen on {given}: it is not a loopback address, and the Docker API gives \
         root on the remote to anyone who reaches it; use 127.0.0.1 or a unix:// socket"
    )]
    NotLoopback { given: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: ListenAddr,
        #[source]
        source: std::io::Error,
    },
}

impl Advice for ListenError {
    fn hint(&self) -> Option<Hint> {
        matches!(self, ListenError::Bind { .. }).then_some(Hint::PickAnotherEndpoint)
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = ListenError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let given = || s.to_string();
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(ListenError::RelativeSocket { given: given() });
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        let Some(rest) = s.strip_prefix("tcp://") else {
            return Err(ListenError::UnknownScheme { given: given() });
        };
        let rest = rest.trim_end_matches('/');
        let addr: SocketAddr = match rest.strip_prefix("localhost:") {
            Some(port) => SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port.parse().map_err(|_| ListenError::BadPort {
                    given: given(),
                    port: port.to_string(),
                })?,
            ),
            None => rest
                .parse()
                .map_err(|_| ListenError::BadAddress { given: given() })?,
        };
        if !addr.ip().is_loopback() {
            return Err(ListenError::NotLoopback { given: given() });
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
    /// Binds `addr`. A unix socket is never reachable by others, not even
    /// while it is created (see `bind_unix`); a stale socket file (nothing
    /// listening) is replaced, a symlink at its path is refused.
    pub async fn bind(addr: &ListenAddr) -> Result<Self, ListenError> {
        let failed = |source| ListenError::Bind {
            addr: addr.clone(),
            source,
        };
        match addr {
            ListenAddr::Tcp(a) => tokio::net::TcpListener::bind(a)
                .await
                .map(Listener::Tcp)
                .map_err(failed),
            ListenAddr::Unix(p) => {
                let l = bind_unix(p)
                    .and_then(|l| {
                        l.set_nonblocking(true)?;
                        tokio::net::UnixListener::from_std(l)
                    })
                    .map_err(failed)?;
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

/// Binds a unix socket at `p` so that nobody else can reach it first: it is
/// bound inside a fresh 0700 directory beside `p`, made 0600 there, and only
/// then renamed onto `p` (atomically, never following what is at `p`). A
/// missing parent directory is created 0700. At `p`, a symlink or a file
/// that is not a socket is refused, a live socket is refused, and a stale
/// socket is replaced.
fn bind_unix(p: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
    let refuse = |why: &str| Error::new(ErrorKind::AlreadyExists, why.to_string());
    let parent = p
        .parent()
        .filter(|_| p.file_name().is_some())
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "the path names no file"))?;
    if !parent.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
        Ok(m) if m.file_type().is_symlink() => {
            return Err(refuse(&format!(
                "{} is a symbolic link, which Berth never follows (it could redirect the socket); remove it or choose another path",
                p.display()
            )))
        }
        Ok(m) if !m.file_type().is_socket() => {
            return Err(refuse(&format!(
                "{} exists and is not a socket; remove it or choose another path",
                p.display()
            )))
        }
        // a live socket is another agent's (or another program's)
        Ok(_) if std::os::unix::net::UnixStream::connect(p).is_ok() => {
            return Err(refuse("another process serves it"))
        }
        // a stale socket: the rename below replaces it
        Ok(_) => {}
    }
    let staging = private_dir(parent)?;
    let tmp = staging.join("s");
    let bound = std::os::unix::net::UnixListener::bind(&tmp).and_then(|l| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, p)?;
        Ok(l)
    });
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir(&staging);
    bound
}

/// A new directory in `parent` that only this user can enter (created with
/// mode 0700, so even a loose umask cannot open it), under a name nobody
/// can predict.
fn private_dir(parent: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let mut last = None;
    for _ in 0..8 {
        let dir = parent.join(format!(".berth-{:08x}", rand::random::<u32>()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free name")))
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
            assert_eq!(s.parse::<ListenAddr>().unwrap(), want.clone(), "{s}");
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
            let e = bad.parse::<ListenAddr>().unwrap_err().to_string();
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
            .to_string()
            .contains("another process"));
        drop(l);
        assert!(!p.exists());
    }

    #[tokio::test]
    async fn unix_socket_never_follows_or_clobbers_what_is_there() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("berth-listen-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // a missing directory is created owner-only
        let p = dir.join("run/agent.sock");
        let l = Listener::bind(&ListenAddr::Unix(p.clone())).await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("run")), 0o700);
        assert_eq!(mode(&p), 0o600);
        drop(l);
        // a stale socket is replaced
        let stale = std::os::unix::net::UnixListener::bind(&p).unwrap();
        drop(stale);
        let l = Listener::bind(&ListenAddr::Unix(p.clone())).await.unwrap();
        assert!(std::os::unix::net::UnixStream::connect(&p).is_ok());
        drop(l);
        // a planted symlink is refused, its target untouched
        let target = dir.join("precious");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, &p).unwrap();
        let e = Listener::bind(&ListenAddr::Unix(p.clone()))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("symbolic link") && e.contains(&*p.to_string_lossy()),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(std::fs::symlink_metadata(&p)
            .unwrap()
            .file_type()
            .is_symlink());
        // so is a regular file, which is not deleted
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, "data").unwrap();
        let e = Listener::bind(&ListenAddr::Unix(p.clone()))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "data");
        // no staging directory is left behind
        let left: Vec<_> = std::fs::read_dir(dir.join("run")).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
