//! HTTP/1 connections to the remote daemon, each on one channel of the SSH
//! session, and the upstream half of one client connection.
//!
//! A client connection keeps one upstream connection for keep-alive. When
//! it has none (its first request, or the daemon closed the kept one) it
//! takes the session's spare (`spare`), which was opened while nobody
//! waited, and only dials itself when there is none: the channel open is the
//! round trip a command would otherwise pay before its first request.

use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::reply::ProxyBody;
use super::ProxyCtx;
use crate::hint::Advice;
use crate::ssh::SshSession;
use crate::upstream::Upstream;

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

/// A fresh channel to the daemon with an HTTP/1 client on it, ready for a
/// request. The connection's own task ends when the channel does.
pub async fn open(
    upstream: &Upstream,
    ssh: &SshSession,
) -> Result<SendRequest<ProxyBody>, UpstreamConnError> {
    Ok(open_watched(upstream, ssh).await?.0)
}

/// Resolves when its connection has ended (the daemon or the session
/// closed it, or every sender was dropped).
pub type ConnEnd = tokio::sync::oneshot::Receiver<()>;

/// [`open`], and a [`ConnEnd`] for the connection.
pub async fn open_watched(
    upstream: &Upstream,
    ssh: &SshSession,
) -> Result<(SendRequest<ProxyBody>, ConnEnd), UpstreamConnError> {
    let io = upstream.dial(ssh).await?;
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .preserve_header_case(true)
        .handshake(TokioIo::new(io))
        .await
        .map_err(UpstreamConnError::Handshake)?;
    let (ended, end) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("upstream connection ended: {e}");
        }
        let _ = ended.send(());
    });
    sender.ready().await.map_err(UpstreamConnError::Closed)?;
    Ok((sender, end))
}

/// How a request to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Connect(#[from] UpstreamConnError),
    #[error("the remote daemon dropped the request: {0}")]
    Dropped(#[source] hyper::Error),
}

/// The upstream half of one client connection.
#[derive(Default)]
pub struct UpstreamConn {
    sender: Option<SendRequest<ProxyBody>>,
}

impl UpstreamConn {
    /// A ready sender: the kept one if the daemon still has it open, else
    /// the spare, else a fresh channel and HTTP/1 handshake.
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
            empty => {
                let sender = match ctx.spare.take().await {
                    Some(s) => s,
                    None => open(&ctx.upstream, &ctx.ssh).await?,
                };
                Ok(empty.insert(sender))
            }
        }
    }

    /// Sends `req` and waits for the answer's head. A request that never
    /// left (the kept connection or the spare closed just before) is sent
    /// once more on a fresh channel; one that did leave is never repeated.
    pub async fn send(
        &mut self,
        req: http::Request<ProxyBody>,
        ctx: &ProxyCtx,
    ) -> Result<http::Response<hyper::body::Incoming>, SendError> {
        let sender = self.ready(ctx).await?;
        let req = match sender.try_send_request(req).await {
            Ok(resp) => return Ok(resp),
            Err(mut e) => {
                self.sender = None;
                match e.take_message() {
                    Some(req) => req,
                    None => return Err(SendError::Dropped(e.into_error())),
                }
            }
        };
        tracing::debug!("the upstream connection closed before the request left; a fresh one");
        let sender = self.sender.insert(open(&ctx.upstream, &ctx.ssh).await?);
        sender.send_request(req).await.map_err(|e| {
            self.sender = None;
            SendError::Dropped(e)
        })
    }

    /// Gives the connection up: it now carries an upgraded byte stream.
    pub fn upgraded(&mut self) {
        self.sender = None;
    }
}
