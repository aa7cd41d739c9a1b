//! Choosing the upstream: the fixed one, or `auto`'s unix → tcp → dial-stdio,
//! each accepted only once it answered `/_ping` like a Docker daemon.

use std::sync::Arc;
use std::time::Duration;

use super::diagnose::{diagnose, probe_command, Probe};
use super::error::UpstreamError;
use super::{DockerApi, Upstream, UpstreamSpec, DEFAULT_SOCKET, DESKTOP_TCP};
use crate::ssh::{SshError, SshSession};

/// The chosen upstream and why it was chosen.
#[derive(Debug, Clone)]
pub struct Selected {
    pub upstream: Upstream,
    pub reason: String,
}

/// A candidate that does not answer `/_ping` by then is passed over.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// `/_ping` must answer 200 `OK`, unversioned, as the docker CLI asks it.
pub async fn ping(upstream: &Upstream, ssh: &Arc<SshSession>) -> Result<(), UpstreamError> {
    let client = DockerApi::unversioned(upstream, ssh.clone())?;
    tokio::time::timeout(PING_TIMEOUT, client.ping())
        .await
        .map_err(|_| UpstreamError::CallTimeout {
            url: upstream.url(),
            call: "/_ping",
            secs: PING_TIMEOUT.as_secs(),
        })?
}

/// Resolves `spec` to a working upstream or the most useful error.
pub async fn select(spec: &UpstreamSpec, ssh: &Arc<SshSession>) -> Result<Selected, UpstreamError> {
    match spec {
        UpstreamSpec::Fixed(u) => match ping(u, ssh).await {
            Ok(()) => Ok(Selected {
                upstream: u.clone(),
                reason: "given with --remote-docker".into(),
            }),
            Err(e) => Err(explain(u, e, ssh).await),
        },
        UpstreamSpec::Auto => {
            let candidates = [
                Upstream::Unix(DEFAULT_SOCKET.into()),
                Upstream::Tcp {
                    host: DESKTOP_TCP.0.into(),
                    port: DESKTOP_TCP.1,
                },
                Upstream::DialStdio,
            ];
            let mut tried = Vec::new();
            let mut unix_refused = false;
            for u in candidates {
                match ping(&u, ssh).await {
                    Ok(()) => {
                        let reason = if tried.is_empty() {
                            format!("auto: {} answered", u.url())
                        } else {
                            format!("auto: {} answered after {}", u.url(), tried.join("; "))
                        };
                        tracing::info!("remote Docker endpoint: {reason}");
                        return Ok(Selected {
                            upstream: u,
                            reason,
                        });
                    }
                    Err(UpstreamError::Ssh(e @ SshError::Disconnected { .. })) => {
                        return Err(e.into())
                    }
                    Err(e) => {
                        tracing::info!("auto: {} unusable: {e}", u.url());
                        if let (
                            Upstream::Unix(_),
                            UpstreamError::Ssh(SshError::ChannelRefused { .. }),
                        ) = (&u, &e)
                        {
                            unix_refused = true;
                        }
                        tried.push(format!("{} failed: {}", u.url(), short(&e)));
                    }
                }
            }
            let probe = probe(ssh, DEFAULT_SOCKET).await;
            let user = &ssh.target().user;
            Err(diagnose(
                &probe,
                DEFAULT_SOCKET,
                user,
                unix_refused,
                &tried.join("; "),
            ))
        }
    }
}

/// Asks the remote what is there (see `diagnose`); empty if it cannot say.
async fn probe(ssh: &SshSession, socket: &str) -> Probe {
    Probe::parse(&ssh.run(&probe_command(socket)).await.unwrap_or_default())
}

fn short(e: &UpstreamError) -> String {
    match e {
        UpstreamError::Ssh(SshError::ChannelRefused { reason, .. }) => {
            format!("channel refused ({reason})")
        }
        other => other.to_string(),
    }
}

/// Turns a failure of a fixed upstream into the error a user can act on.
async fn explain(u: &Upstream, e: UpstreamError, ssh: &SshSession) -> UpstreamError {
    let user = &ssh.target().user;
    match (u, &e) {
        (Upstream::Unix(p), UpstreamError::Ssh(SshError::ChannelRefused { .. })) => {
            let tried = format!("{}: {}", u.url(), e);
            diagnose(&probe(ssh, p).await, p, user, true, &tried)
        }
        (
            Upstream::DialStdio,
            UpstreamError::BadAnswer { .. }
            | UpstreamError::NotHttp { .. }
            | UpstreamError::Call { .. }
            | UpstreamError::CallTimeout { .. },
        ) => {
            let probe = probe(ssh, DEFAULT_SOCKET).await;
            match diagnose(&probe, DEFAULT_SOCKET, user, false, &e.to_string()) {
                UpstreamError::NoUpstream { .. } => e,
                better => better,
            }
        }
        _ => e,
    }
}
