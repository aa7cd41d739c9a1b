//! Carries one request to the daemon over the connection's upstream and the
//! response back, both bodies streamed frame by frame. A `101 Switching
//! Protocols` answer (attach, exec, BuildKit's h2c) turns both sides into raw
//! byte pipes that keep each direction open until its own EOF (half-close).

use std::sync::atomic::Ordering::Relaxed;

use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use super::daemon_conn::{SendError, UpstreamConn};
use super::intercept::{self, Route};
use super::ping;
use super::reply::{docker_error, docker_failure, ProxyBody};
use super::view;
use super::ProxyCtx;
use crate::ssh::channel_io::PIPE_BUF;

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
    // the path only: queries can carry secrets (build args)
    let what = format!("{} {}", req.method(), req.uri().path());
    let ping = ping::cacheable(&req);
    let mut up = upstream.lock().await;
    let mut resp = match up.send(req, ctx).await {
        Ok(r) => r,
        Err(e) => {
            ctx.status.counters.upstream_errors.fetch_add(1, Relaxed);
            tracing::warn!("{what}: {e}");
            return match e {
                SendError::Connect(e) => docker_failure(StatusCode::BAD_GATEWAY, &e),
                SendError::Dropped(_) => docker_error(StatusCode::BAD_GATEWAY, e),
            };
        }
    };
    if ping && resp.status() == StatusCode::OK {
        ctx.ping.saw_answer();
    }
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        // this upstream connection now belongs to the byte pipe
        up.upgraded();
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
