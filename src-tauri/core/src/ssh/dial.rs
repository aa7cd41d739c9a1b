//! Establishing one SSH session, through jump hosts when the target has
//! them (`ProxyJump`, `--jump`), the way `ssh -J` does: a TCP connection (or
//! the first hop's `ProxyCommand`, `proxy_command.rs`) to the first hop, then each next hop's SSH session carried by a
//! `direct-tcpip` channel of the one before, to the target last. Every hop
//! gets its own host key check against known_hosts (under its own name and
//! port) and its own authentication with the user's credentials, and an
//! error says which hop it came from. The jump sessions live as long as the
//! target's: a hop that drops ends the target's session too, so the
//! supervisor re-dials the whole chain.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};

use super::auth::Credentials;
use super::error::SshError;
use super::handler::{ClientHandler, HostKeyCheck};
use super::proxy_command::{ProxyReport, ProxyStream};
use super::session::{client_config, SessionHandle, SshTarget};

/// How long a TCP connect plus SSH handshake may take, per hop.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `target` through its jump hosts and authenticates at each.
pub(super) async fn connect(
    target: &SshTarget,
    check: &HostKeyCheck,
    credentials: &Credentials,
) -> Result<SessionHandle, SshError> {
    let mut jumps: Vec<Handle<ClientHandler>> = Vec::new();
    for hop in &target.jumps {
        let hop_check = HostKeyCheck {
            host: hop.host.clone(),
            port: hop.port,
            ..check.clone()
        };
        let handle = one_hop(hop, &hop_check, credentials, jumps.last(), true)
            .await
            .map_err(|source| SshError::Jump {
                hop: hop.addr(),
                source: Box::new(source),
            })?;
        jumps.push(handle);
    }
    let handle = one_hop(target, check, credentials, jumps.last(), false).await?;
    Ok(SessionHandle::new(handle, jumps))
}

/// One hop: over TCP when `via` is `None`, else over a channel of `via`.
async fn one_hop(
    hop: &SshTarget,
    check: &HostKeyCheck,
    credentials: &Credentials,
    via: Option<&Handle<ClientHandler>>,
    carries_another: bool,
) -> Result<Handle<ClientHandler>, SshError> {
    let addr = hop.addr();
    let refusal = Arc::new(Mutex::new(None));
    let handler = ClientHandler::new(check.clone(), refusal.clone());
    // host key algorithms as known_hosts orders them, read at every dial (as OpenSSH does)
    let mut config = client_config();
    super::handler::offer_known_algorithms(check, &mut config.preferred);
    if carries_another {
        // the one channel a jump host carries is always read at once (by
        // the next hop's session), so its window may refill as data arrives
        config.window_adjust_on_read = false;
    }
    let config = Arc::new(config);
    let mut proxy = None;
    let connecting = async {
        match (via, &hop.proxy_command) {
            (None, Some(command)) => {
                let (stream, report) =
                    ProxyStream::spawn(command).map_err(|source| SshError::ProxyCommandStart {
                        command: command.clone(),
                        source,
                    })?;
                proxy = Some((command.clone(), report));
                Ok(client::connect_stream(config, stream, handler).await)
            }
            (None, None) => {
                let tcp = tcp(&hop.host, hop.port, &addr).await?;
                Ok(client::connect_stream(config, tcp, handler).await)
            }
            (Some(jump), _) => {
                let channel = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    jump.channel_open_direct_tcpip(
                        hop.host.clone(),
                        hop.port as u32,
                        "127.0.0.1",
                        0,
                    ),
                )
                .await
                .map_err(|_| unreachable(&addr, "the jump host did not open a channel in time"))?
                .map_err(|e| {
                    unreachable(&addr, &format!("the jump host could not connect ({e})"))
                })?;
                Ok(client::connect_stream(config, channel.into_stream(), handler).await)
            }
        }
    };
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, connecting).await;
    let mut handle = match connected {
        Ok(Ok(Ok(h))) => h,
        Err(_) => {
            return Err(ended(proxy).await.unwrap_or(SshError::HandshakeTimeout {
                addr,
                secs: CONNECT_TIMEOUT.as_secs(),
            }))
        }
        Ok(Err(e)) => return Err(ended(proxy).await.unwrap_or(e)),
        Ok(Ok(Err(source))) => {
            let refused = refusal.lock().ok().and_then(|mut r| r.take());
            return Err(match refused {
                Some(r) => r,
                None => ended(proxy)
                    .await
                    .unwrap_or(SshError::Handshake { addr, source }),
            });
        }
    };
    credentials
        .authenticate(&mut handle, &hop.user, &hop.host)
        .await?;
    tracing::info!(remote = %hop.url(), "SSH session established");
    Ok(handle)
}

/// Why the handshake could not run: the proxy command had ended.
async fn ended(proxy: Option<(String, ProxyReport)>) -> Option<SshError> {
    let (command, report) = proxy?;
    // a command that failed is usually gone by now; a moment for its last words
    let (status, last_stderr) = report.outcome(Duration::from_secs(1)).await?;
    Some(SshError::ProxyCommandEnded {
        command,
        status,
        last_stderr,
    })
}

async fn tcp(host: &str, port: u16, addr: &str) -> Result<tokio::net::TcpStream, SshError> {
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| unreachable(addr, "connection timed out"))?
    .map_err(|source| SshError::Unreachable {
        addr: addr.to_string(),
        source,
    })?;
    let _ = tcp.set_nodelay(true);
    super::liveness::watch(&tcp);
    Ok(tcp)
}

fn unreachable(addr: &str, why: &str) -> SshError {
    SshError::Unreachable {
        addr: addr.to_string(),
        source: std::io::Error::other(why.to_string()),
    }
}
