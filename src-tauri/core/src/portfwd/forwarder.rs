//! Local listeners of running containers. Each published port of a running
//! container has one listener on this machine; every accepted connection is
//! one direct-tcpip channel to the port the remote daemon published on the
//! remote's loopback. Listeners open and close as the watcher says; closing
//! waits until the socket is really closed, so a port is refused as soon as
//! `docker stop` returns.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ports::{shown_ip, LocalBinding, PortKey};
use crate::ssh::channel_io::PIPE_BUF;
use crate::ssh::SshSession;
use crate::state::{Changes, ForwardState, ForwardStatus, ForwardedContainer};

/// One local listener and what it carried.
pub struct Forward {
    pub binding: LocalBinding,
    pub remote_port: u16,
    /// `None` while listening; the reason if the listener could not open.
    pub failed: Option<String>,
    pub open_connections: AtomicU64,
    pub total_connections: AtomicU64,
    pub bytes_to_container: AtomicU64,
    pub bytes_from_container: AtomicU64,
}

struct ContainerForwards {
    name: String,
    /// The remote ports these forwards dial; a change means the container restarted.
    remote: Vec<(PortKey, u16)>,
    forwards: Vec<Arc<Forward>>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// One container in [`Forwarder`]'s status view: its id, its name and its
/// forwards.
type ViewEntry = (String, String, Vec<Arc<Forward>>);

/// All forwards of one remote, keyed by full container id.
pub struct Forwarder {
    ssh: Arc<SshSession>,
    containers: tokio::sync::Mutex<HashMap<String, ContainerForwards>>,
    /// Read by status without waiting on the async lock.
    view: Mutex<Vec<ViewEntry>>,
    /// This machine's policy, checked at every bind whatever a record says.
    all_interfaces: bool,
    /// The agent's change signal: bumped when listeners open or close and
    /// when a connection starts or ends.
    changes: Changes,
    shutdown: CancellationToken,
}

/// Whether this machine's policy lets a forward listen on `ip`: loopback
/// only, unless the user chose all interfaces (`--forward-all-interfaces`).
pub fn listen_allowed(ip: IpAddr, all_interfaces: bool) -> bool {
    all_interfaces || ip.is_loopback()
}

impl Forwarder {
    /// Listeners ride `ssh`; `all_interfaces` is the user's policy.
    pub fn new(
        ssh: Arc<SshSession>,
        all_interfaces: bool,
        changes: Changes,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            ssh,
            all_interfaces,
            changes,
            containers: Default::default(),
            view: Default::default(),
            shutdown,
        }
    }

    /// Makes the container's listeners match `bindings` → `remote`; a no-op
    /// when they already do. Returns the bind failures (the container still
    /// gets its other ports).
    pub async fn open(
        &self,
        id: &str,
        name: &str,
        bindings: &[LocalBinding],
        remote: &[(PortKey, u16)],
    ) -> Vec<String> {
        let mut all = self.containers.lock().await;
        if let Some(c) = all.get(id) {
            if c.remote == remote {
                return Vec::new();
            }
        }
        if let Some(old) = all.remove(id) {
            close_all(old).await;
        }
        let stop = self.shutdown.child_token();
        let tasks = TaskTracker::new();
        let mut forwards = Vec::new();
        let mut failures = Vec::new();
        for b in bindings {
            let Some((_, remote_port)) = remote.iter().find(|(k, _)| *k == b.container) else {
                continue;
            };
            let addr = SocketAddr::new(b.listen_ip, b.host_port);
            let mut fwd = Forward {
                binding: b.clone(),
                remote_port: *remote_port,
                failed: None,
                open_connections: AtomicU64::new(0),
                total_connections: AtomicU64::new(0),
                bytes_to_container: AtomicU64::new(0),
                bytes_from_container: AtomicU64::new(0),
            };
            if !listen_allowed(b.listen_ip, self.all_interfaces) {
                let reason = format!(
                    "refusing to listen on {addr}: not a loopback address; start Berth with \
                     --forward-all-interfaces to publish ports on every interface"
                );
                tracing::warn!(container = name, "{reason}");
                failures.push(reason.clone());
                fwd.failed = Some(reason);
                forwards.push(Arc::new(fwd));
                continue;
            }
            match TcpListener::bind(addr).await {
                Ok(listener) => {
                    let fwd = Arc::new(fwd);
                    let mut listeners = vec![listener];
                    // Docker listens on both families for an unspecified host IP, and
                    // many clients try `localhost` as ::1 first: best effort, as Docker
                    if let Some(v6) = ipv6_twin(b) {
                        if let Ok(l) = TcpListener::bind(v6).await {
                            listeners.push(l);
                        }
                    }
                    for l in listeners {
                        let ssh = self.ssh.clone();
                        tasks.spawn(accept_loop(
                            l,
                            fwd.clone(),
                            ssh,
                            stop.clone(),
                            tasks.clone(),
                            self.changes.clone(),
                        ));
                    }
                    forwards.push(fwd);
                }
                Err(e) => {
                    let reason = if e.kind() == std::io::ErrorKind::AddrInUse {
                        format!(
                            "Bind for {}:{} failed: port is already allocated",
                            shown_ip(&b.requested_ip),
                            b.host_port
                        )
                    } else {
                        format!("cannot listen on {addr}: {e}")
                    };
                    tracing::warn!(container = name, "{reason}");
                    failures.push(reason.clone());
                    fwd.failed = Some(reason);
                    forwards.push(Arc::new(fwd));
                }
            }
        }
        tracing::info!(container = name, "forwarding {} port(s)", forwards.len());
        all.insert(
            id.to_string(),
            ContainerForwards {
                name: name.to_string(),
                remote: remote.to_vec(),
                forwards,
                stop,
                tasks,
            },
        );
        self.publish(&all);
        failures
    }

    /// Closes the container's listeners and connections; returns once the
    /// listening sockets are closed. Unknown ids are fine.
    pub async fn close(&self, id: &str) {
        let mut all = self.containers.lock().await;
        if let Some(c) = all.remove(id) {
            tracing::info!(container = %c.name, "closing forwards");
            close_all(c).await;
            self.publish(&all);
        }
    }

    /// Ids of the containers that have forwards now.
    pub async fn ids(&self) -> Vec<String> {
        self.containers.lock().await.keys().cloned().collect()
    }

    /// The id of a forwarded container named `name` or whose id starts with it.
    pub async fn find(&self, id_or_name: &str) -> Option<String> {
        let all = self.containers.lock().await;
        let name = id_or_name.trim_start_matches('/');
        all.iter()
            .find(|(id, c)| id.starts_with(name) || c.name == name)
            .map(|(id, _)| id.clone())
    }

    fn publish(&self, all: &HashMap<String, ContainerForwards>) {
        if let Ok(mut v) = self.view.lock() {
            *v = all
                .iter()
                .map(|(id, c)| (id.clone(), c.name.clone(), c.forwards.clone()))
                .collect();
            v.sort_by(|a, b| a.1.cmp(&b.1));
        }
        self.changes.bump();
    }

    /// Per container: each forward's local address, remote port, state,
    /// connections and bytes (the `forwards` of the status).
    pub fn status(&self) -> Vec<ForwardedContainer> {
        let view = self.view.lock().map(|v| v.clone()).unwrap_or_default();
        view.iter()
            .map(|(id, name, forwards)| ForwardedContainer {
                id: id.clone(),
                name: name.clone(),
                forwards: forwards.iter().map(|f| f.status()).collect(),
            })
            .collect()
    }
}

impl Forward {
    fn status(&self) -> ForwardStatus {
        let b = &self.binding;
        ForwardStatus {
            local: SocketAddr::new(b.listen_ip, b.host_port).to_string(),
            shown_as: format!(
                "{}:{}->{}",
                shown_ip(&b.requested_ip),
                b.host_port,
                b.container
            ),
            container_port: b.container.to_string(),
            remote_port: self.remote_port,
            state: match self.failed {
                Some(_) => ForwardState::Failed,
                None => ForwardState::Listening,
            },
            error: self.failed.clone(),
            open_connections: self.open_connections.load(Relaxed),
            total_connections: self.total_connections.load(Relaxed),
            bytes_to_container: self.bytes_to_container.load(Relaxed),
            bytes_from_container: self.bytes_from_container.load(Relaxed),
        }
    }
}

/// The IPv6 listener that goes with an IPv4 one when the user gave no host IP.
fn ipv6_twin(b: &LocalBinding) -> Option<SocketAddr> {
    use std::net::{IpAddr, Ipv6Addr};
    let v6 = match (b.requested_ip.as_str(), b.listen_ip) {
        ("", IpAddr::V4(v4)) if v4.is_loopback() => Ipv6Addr::LOCALHOST,
        ("", IpAddr::V4(v4)) if v4.is_unspecified() => Ipv6Addr::UNSPECIFIED,
        _ => return None,
    };
    Some(SocketAddr::new(v6.into(), b.host_port))
}

async fn close_all(c: ContainerForwards) {
    c.stop.cancel();
    c.tasks.close();
    c.tasks.wait().await;
}

async fn accept_loop(
    listener: TcpListener,
    fwd: Arc<Forward>,
    ssh: Arc<SshSession>,
    stop: CancellationToken,
    tasks: TaskTracker,
    changes: Changes,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((sock, _)) => {
                let _ = sock.set_nodelay(true);
                tasks.spawn(carry(
                    sock,
                    fwd.clone(),
                    ssh.clone(),
                    stop.clone(),
                    changes.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client connection: a direct-tcpip channel to the remote port.
async fn carry(
    mut sock: TcpStream,
    fwd: Arc<Forward>,
    ssh: Arc<SshSession>,
    stop: CancellationToken,
    changes: Changes,
) {
    fwd.open_connections.fetch_add(1, Relaxed);
    fwd.total_connections.fetch_add(1, Relaxed);
    changes.bump();
    match ssh.open_tcp("127.0.0.1", fwd.remote_port).await {
        Ok(mut channel) => {
            tokio::select! {
                r = tokio::io::copy_bidirectional_with_sizes(&mut sock, &mut channel, PIPE_BUF, PIPE_BUF) => {
                    if let Ok((up, down)) = r {
                        fwd.bytes_to_container.fetch_add(up, Relaxed);
                        fwd.bytes_from_container.fetch_add(down, Relaxed);
                    }
                }
                _ = stop.cancelled() => {}
            }
        }
        Err(e) => tracing::warn!(
            port = fwd.binding.host_port,
            "cannot reach the container: {e}"
        ),
    }
    fwd.open_connections.fetch_sub(1, Relaxed);
    changes.bump();
    crate::mem::note_connection_end();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_unless_all_interfaces() {
        let table = [
            ("127.0.0.1", false, true),
            ("127.0.0.53", false, true),
            ("::1", false, true),
            ("0.0.0.0", false, false),
            ("::", false, false),
            ("192.168.1.5", false, false),
            ("0.0.0.0", true, true),
            ("::", true, true),
        ];
        for (ip, all, want) in table {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(listen_allowed(ip, all), want, "{ip} all={all}");
        }
    }
}
