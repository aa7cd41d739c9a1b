//! The session's spare upstream connection: one channel to the daemon,
//! opened while no client waits, for the next client connection to take.
//!
//! Every `docker` command is a new client connection, and a fresh channel
//! costs a round trip (`CHANNEL_OPEN` → `OPEN_CONFIRMATION`) before its first
//! request can leave. One task owns the spare: it opens nothing until the
//! first client asks, then opens one ahead after each take. A client that
//! asks while the next one is still being opened gets none and dials its own,
//! so a burst of connections (Compose) never queues behind the spare. There
//! is no timer: an idle agent holds one idle channel and does nothing, and a
//! failed open is not retried until a client asks again.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::client::conn::http1::SendRequest;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::daemon_conn;
use super::reply::ProxyBody;
use crate::ssh::SshSession;
use crate::upstream::Upstream;

/// What a spare must tell about itself when it is taken.
pub trait Usable {
    /// Whether a request can be sent on it now (still open, not busy).
    fn usable(&self) -> bool;
}

impl Usable for SendRequest<ProxyBody> {
    fn usable(&self) -> bool {
        self.is_ready()
    }
}

type Ask<T> = oneshot::Sender<Option<T>>;

/// The handle of the session's spare; cheap to share.
pub struct Spare<T = SendRequest<ProxyBody>> {
    asks: mpsc::Sender<Ask<T>>,
}

impl Spare {
    /// The spare of channels to `upstream`, until `stop`.
    pub fn start(upstream: Upstream, ssh: Arc<SshSession>, stop: CancellationToken) -> Self {
        Self::with_opener(
            move || {
                let upstream = upstream.clone();
                let ssh = ssh.clone();
                async move {
                    daemon_conn::open(&upstream, &ssh)
                        .await
                        .map_err(|e| tracing::debug!("no spare upstream connection: {e}"))
                        .ok()
                }
            },
            stop,
        )
    }
}

impl<T: Usable + Send + 'static> Spare<T> {
    /// A spare whose connections come from `open` (`None`: it failed).
    pub fn with_opener<F, Fut>(open: F, stop: CancellationToken) -> Self
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Option<T>> + Send + 'static,
    {
        let (asks, rx) = mpsc::channel(64);
        tokio::spawn(own(open, rx, stop));
        Self { asks }
    }

    /// The spare if one is ready; `None` means: dial your own.
    pub async fn take(&self) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.asks.send(reply).await.ok()?;
        answer.await.ok().flatten()
    }
}

/// The task that owns the spare.
async fn own<T, F, Fut>(open: F, mut asks: mpsc::Receiver<Ask<T>>, stop: CancellationToken)
where
    T: Usable + Send + 'static,
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Option<T>> + Send + 'static,
{
    let mut spare: Option<T> = None;
    let mut opening: Option<Pin<Box<Fut>>> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            opened = async {
                match opening.as_mut() {
                    Some(f) => f.await,
                    None => std::future::pending().await,
                }
            } => {
                opening = None;
                spare = opened;
            }
            ask = asks.recv() => {
                let Some(reply) = ask else { return };
                // a spare the daemon or the session closed meanwhile is dropped
                let _ = reply.send(spare.take().filter(Usable::usable));
                if opening.is_none() {
                    opening = Some(Box::pin(open()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A connection numbered in the order it was opened.
    struct Conn(usize, Arc<AtomicBool>);
    impl Usable for Conn {
        fn usable(&self) -> bool {
            !self.1.load(Ordering::SeqCst)
        }
    }

    struct Bed {
        spare: Spare<Conn>,
        opened: Arc<AtomicUsize>,
        /// Closes every connection opened so far.
        closed: Arc<AtomicBool>,
        gate: Arc<tokio::sync::Semaphore>,
    }

    /// Opens succeed once the gate lets them (one permit per open).
    fn bed(fail: bool) -> Bed {
        let opened = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (o, c, g) = (opened.clone(), closed.clone(), gate.clone());
        let spare = Spare::with_opener(
            move || {
                let (o, c, g) = (o.clone(), c.clone(), g.clone());
                async move {
                    g.acquire().await.ok()?.forget();
                    let n = o.fetch_add(1, Ordering::SeqCst) + 1;
                    (!fail).then_some(Conn(n, c))
                }
            },
            CancellationToken::new(),
        );
        Bed {
            spare,
            opened,
            closed,
            gate,
        }
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn nothing_is_opened_before_the_first_client_then_one_ahead_after_each_take() {
        let b = bed(false);
        settle().await;
        assert_eq!(b.opened.load(Ordering::SeqCst), 0, "idle: no channel");
        assert!(b.spare.take().await.is_none(), "the first client dials");
        b.gate.add_permits(1);
        settle().await;
        assert_eq!(b.spare.take().await.map(|c| c.0), Some(1));
        b.gate.add_permits(1);
        settle().await;
        assert_eq!(b.spare.take().await.map(|c| c.0), Some(2));
        settle().await;
        assert_eq!(
            b.opened.load(Ordering::SeqCst),
            2,
            "the third is not open yet"
        );
    }

    #[tokio::test]
    async fn a_burst_never_waits_for_the_spare_being_opened() {
        let b = bed(false);
        assert!(b.spare.take().await.is_none());
        for _ in 0..5 {
            assert!(b.spare.take().await.is_none(), "answered at once");
        }
        b.gate.add_permits(10);
        settle().await;
        assert_eq!(b.opened.load(Ordering::SeqCst), 1, "one open at a time");
    }

    #[tokio::test]
    async fn a_spare_closed_meanwhile_is_never_handed_out() {
        let b = bed(false);
        assert!(b.spare.take().await.is_none());
        b.gate.add_permits(1);
        settle().await;
        b.closed.store(true, Ordering::SeqCst);
        assert!(b.spare.take().await.is_none());
    }

    #[tokio::test]
    async fn a_failed_open_is_retried_only_when_a_client_asks() {
        let b = bed(true);
        assert!(b.spare.take().await.is_none());
        b.gate.add_permits(10);
        settle().await;
        assert_eq!(b.opened.load(Ordering::SeqCst), 1, "no retry loop");
        assert!(b.spare.take().await.is_none());
        settle().await;
        assert_eq!(b.opened.load(Ordering::SeqCst), 2);
    }
}
