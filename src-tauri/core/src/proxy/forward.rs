//! Carries one request to the daemon over the connection's upstream and the
//! response back, both bodies streamed frame by frame. A `101 Switching
//! Protocols` answer (attach, exec, BuildKit's h2c) turns both sides into raw
//! byte pipes that keep each direction open until its own EOF (half-close).

use std::sync::atomic::Ordering::Relaxed;

use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use super::intercept::{self, Route};
use super::reply::{docker_error, docker_failure, ProxyBody};
use super::view;
use super::ProxyCtx;
use crate::hint::Advice;
use crate::ssh::channel_io::PIPE_BUF;

/// Why no request could be sent to the remote daemon.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamConnError {
    #[error(transparent)]
    Dial(#[from] crate::ssh::SshError),
    #[error("HTTP handshake with the remote daemon failed: {0}")]
    Handshake(#[source] hyper::Error),
    #[error("the remote daemon closed the connection: {0}")]
    Closed(#[source] hyper::Error),
}

impl Advice for UpstreamConnError {
    fn hint(&self) -> Option<crate::hint::Hint> {
        match self {
            UpstreamConnError::Dial(e) => e.hint(),
            UpstreamConnError::Handshake(_) | UpstreamConnError::Closed(_) => None,
        }
    }
}

/// The upstream half of one client connection.
#[derive(Default)]
pub struct UpstreamConn {
    sender: Option<SendRequest<ProxyBody>>,
}

impl UpstreamConn {
    /// A ready sender: the kept one if the daemon still has it open, else a
    /// fresh channel and HTTP/1 handshake.
    async fn ready(
        &mut self,
        ctx: &ProxyCtx,
    ) -> Result<&mut SendRequest<ProxyBody>, UpstreamConnError> {
        if let Some(s) = self.sender.as_mut() {
            if s.ready().await.is_err() {
                self.sender = None;
            }
        }
        match &mut self.sender {
            Some(s) => Ok(s),
            fresh => {
                let io = ctx.upstream.dial(&ctx.ssh).await?;
                let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
                    .preserve_header_case(true)
                    .handshake(TokioIo::new(io))
                    .await
                    .map_err(UpstreamConnError::Handshake)?;
                tokio::spawn(async move {
                    if let Err(e) = conn.with_upgrades().await {
                        tracing::debug!("upstream connection ended: {e}");
                    }
                });
                sender.ready().await.map_err(UpstreamConnError::Closed)?;
                Ok(fresh.insert(sender))
            }
        }
    }
}

fn wants_upgrade(req: &http::Request<Incoming>) -> bool {
    req.headers().contains_key(http::header::UPGRADE)
}

pub async fn forward(
    mut req: http::Request<Incoming>,
    ctx: &ProxyCtx,
    upstream: &tokio::sync::Mutex<UpstreamConn>,
    stop: CancellationToken,
) -> http::Response<ProxyBody> {
    let client_upgrade = wants_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
    let ports = ctx.ports.as_ref();
    let route = match (ports, &ctx.sync) {
        (None, None) => Route::Other,
        _ => intercept::route(req.method(), req.uri().path()),
    };
    // ports picked for a create stay held until its answer is back
    let (req, hold) = match route {
        Route::Create => match intercept::rewrite_create(req, ctx).await {
            Ok((req, reserved)) => (req, Some(reserved)),
            Err(refusal) => return refusal,
        },
        _ => (req.map(|b| b.boxed()), None),
    };
    let mut up = upstream.lock().await;
    let sender = match up.ready(ctx).await {
        Ok(s) => s,
        Err(e) => {
            ctx.status.counters.upstream_errors.fetch_add(1, Relaxed);
            // the path only: queries can carry secrets (build args)
            tracing::warn!("{} {}: {e}", req.method(), req.uri().path());
            return docker_failure(StatusCode::BAD_GATEWAY, &e);
        }
    };
    let mut resp = match sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => {
            up.sender = None;
            ctx.status.counters.upstream_errors.fetch_add(1, Relaxed);
            return docker_error(
                StatusCode::BAD_GATEWAY,
                format!("the remote daemon dropped the request: {e}"),
            );
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        // this upstream connection now belongs to the byte pipe
        up.sender = None;
        if let Some(client) = client_upgrade {
            ctx.status.counters.upgrades.fetch_add(1, Relaxed);
            let daemon = hyper::upgrade::on(&mut resp);
            tokio::spawn(bridge(client, daemon, stop));
        }
    }
    drop(up);
    if let Some(hold) = hold {
        if resp.status().is_success() {
            return intercept::created(resp, hold, &ctx.owned).await;
        }
        hold.refused();
        return resp.map(|b| b.boxed());
    }
    match (route, ports) {
        (Route::Inspect, _) => view::local_view(resp, view::Answer::Inspect, ctx).await,
        (Route::List, _) => view::local_view(resp, view::Answer::List, ctx).await,
        (Route::Started(id) | Route::Settled(id) | Route::Removed(id), Some(pf))
            if resp.status().is_success() =>
        {
            // the listeners follow before the client hears back: a port answers
            // when `docker run -d` returns and is refused when `docker stop` does
            match pf.watcher.refresh(&id).await {
                Ok(failed) if !failed.is_empty() => {
                    tracing::warn!("container {id}: {}", failed.join("; "))
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("cannot update the forwards of {id}: {e}"),
            }
            resp.map(|b| b.boxed())
        }
        _ => resp.map(|b| b.boxed()),
    }
}

/// Pipes bytes both ways between the upgraded client and daemon connections.
async fn bridge(
    client: hyper::upgrade::OnUpgrade,
    daemon: hyper::upgrade::OnUpgrade,
    stop: CancellationToken,
) {
    let (client, daemon) = match tokio::try_join!(client, daemon) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!("upgrade failed: {e}");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut daemon = TokioIo::new(daemon);
    tokio::select! {
        r = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut daemon, PIPE_BUF, PIPE_BUF) => {
            if let Err(e) = r {
                tracing::debug!("upgraded stream ended: {e}");
            }
        }
        _ = stop.cancelled() => {}
    }
}
