//! One client connection: HTTP/1.1 with keep-alive and upgrades, served by
//! hyper, each request handed to `forward` over this connection's upstream.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use super::daemon_conn::UpstreamConn;
use super::forward::forward;
use super::guard;
use super::reply::{docker_error, json_ok, ProxyBody};
use super::ProxyCtx;
use crate::listen::ClientIo;

/// Berth's own endpoint beside the Docker API.
pub const STATUS_PATH: &str = "/berth/v1/status";
/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// How long a client may take to send a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Grace for an in-flight request when shutting down.
const GRACE: Duration = Duration::from_secs(2);

pub async fn serve_connection(io: Box<dyn ClientIo>, ctx: Arc<ProxyCtx>, stop: CancellationToken) {
    let counters = &ctx.status.counters;
    counters.client_connections.fetch_add(1, Relaxed);
    // Mirrors the client's connection: one upstream connection, opened lazily
    // and reused for keep-alive, replaced if the daemon closed it.
    let upstream = Arc::new(tokio::sync::Mutex::new(UpstreamConn::default()));
    let service = {
        let ctx = ctx.clone();
        let stop = stop.clone();
        service_fn(move |req: http::Request<Incoming>| {
            let ctx = ctx.clone();
            let upstream = upstream.clone();
            let stop = stop.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(req, ctx, upstream, stop).await) }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .preserve_header_case(true)
        // a client that half-closes after its request still gets the answer
        .half_close(true)
        // request heads over 64 KiB are refused (431); the buffer also
        // bounds each read of a body, which is streamed on in such pieces
        .max_buf_size(MAX_HEAD)
        .timer(hyper_util::rt::TokioTimer::new())
        // a client that never finishes its request head is dropped
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(GRACE, conn.as_mut()).await.unwrap_or(Ok(()))
        }
    };
    if let Err(e) = result {
        tracing::debug!("client connection ended: {e}");
    }
    counters.client_connections.fetch_sub(1, Relaxed);
    crate::mem::note_connection_end();
}

async fn handle(
    req: http::Request<Incoming>,
    ctx: Arc<ProxyCtx>,
    upstream: Arc<tokio::sync::Mutex<UpstreamConn>>,
    stop: CancellationToken,
) -> http::Response<ProxyBody> {
    // first of all: a web page gets nothing, not even the status document
    if let Err(refused) = guard::check(req.version(), req.uri(), req.headers()) {
        // the path is not logged: its query may carry secrets
        tracing::warn!("{} {}", refused.status.as_u16(), refused.reason);
        let mut resp = docker_error(refused.status, refused.message);
        // nothing more is read from such a client (nor its unread body)
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        return resp;
    }
    // hyper's limit is checked between reads; this one is exact
    let head: usize = req.uri().to_string().len()
        + req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if head > MAX_HEAD {
        return docker_error(
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the request head is {head} bytes; Berth accepts at most {MAX_HEAD}"),
        );
    }
    if req.uri().path() == STATUS_PATH {
        return json_ok(&ctx.status());
    }
    let counters = &ctx.status.counters;
    counters.requests.fetch_add(1, Relaxed);
    if let Some(answer) = ctx.ping.answer(&req) {
        counters.pings_cached.fetch_add(1, Relaxed);
        return answer;
    }
    counters.in_flight.fetch_add(1, Relaxed);
    let resp = forward(req, &ctx, &upstream, stop).await;
    counters.in_flight.fetch_sub(1, Relaxed);
    resp
}
