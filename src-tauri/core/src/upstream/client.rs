//! A small Docker API client over the session, for Berth's own calls
//! (preflight, inspect, the event stream). Each call rides its own channel.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::error::UpstreamError;
use super::Upstream;
use crate::ssh::SshSession;

/// Answers larger than this are refused (inspect and lists are far smaller).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// How long a one-shot call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one GET; returns the response with its body still streaming. What a
/// dial-stdio command printed on stderr is added to failures.
pub async fn get_streaming(
    upstream: &Upstream,
    ssh: &SshSession,
    path: &str,
) -> Result<http::Response<Incoming>, UpstreamError> {
    let io = upstream.dial(ssh).await?;
    let report = io.report();
    let url = upstream.url();
    let bad = |reason: String| UpstreamError::BadAnswer {
        url: url.clone(),
        reason: match report.summary() {
            Some(said) => format!("{reason} (the remote said: {said})"),
            None => reason,
        },
    };
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| bad(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get(path)
        .header("Host", "docker")
        .header("User-Agent", "berth")
        .body(Empty::<Bytes>::new())
        .map_err(|e| bad(e.to_string()))?;
    send.send_request(req).await.map_err(|e| bad(e.to_string()))
}

/// One GET with the whole (bounded) body, within a time limit.
pub async fn get(
    upstream: &Upstream,
    ssh: &SshSession,
    path: &str,
) -> Result<(u16, Bytes), UpstreamError> {
    let bad = |reason: String| UpstreamError::BadAnswer {
        url: upstream.url(),
        reason,
    };
    let call = async {
        let resp = get_streaming(upstream, ssh, path).await?;
        let status = resp.status().as_u16();
        let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| bad(e.to_string()))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| {
            bad(format!(
                "no answer to {path} within {}s",
                CALL_TIMEOUT.as_secs()
            ))
        })?
}

/// One GET whose 200 answer is JSON; `Ok(None)` for 404.
pub async fn get_json(
    upstream: &Upstream,
    ssh: &SshSession,
    path: &str,
) -> Result<Option<serde_json::Value>, UpstreamError> {
    let (status, body) = get(upstream, ssh, path).await?;
    let bad = |reason: String| UpstreamError::BadAnswer {
        url: upstream.url(),
        reason,
    };
    match status {
        200 => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| bad(format!("{path} is not JSON: {e}"))),
        404 => Ok(None),
        other => Err(bad(format!(
            "{path} answered {other}: {}",
            String::from_utf8_lossy(&body).trim()
        ))),
    }
}

/// Reads newline-delimited JSON from a streaming body (the `/events` form).
pub struct JsonLines {
    body: Incoming,
    buf: Vec<u8>,
}

impl JsonLines {
    pub fn new(body: Incoming) -> Self {
        Self {
            body,
            buf: Vec::new(),
        }
    }

    /// The next JSON value; `None` at the end of the stream or on an error.
    pub async fn next(&mut self) -> Option<serde_json::Value> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                match serde_json::from_slice(&line) {
                    Ok(v) => return Some(v),
                    Err(_) if line.iter().all(u8::is_ascii_whitespace) => continue,
                    Err(e) => {
                        tracing::warn!("skipping an unreadable event: {e}");
                        continue;
                    }
                }
            }
            let frame = self.body.frame().await?.ok()?;
            if let Ok(data) = frame.into_data() {
                if self.buf.len() + data.len() > MAX_BODY {
                    return None;
                }
                self.buf.extend_from_slice(&data);
            }
        }
    }
}
