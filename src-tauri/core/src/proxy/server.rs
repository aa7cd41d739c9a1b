//! Accept loop: one task per client connection, tracked so that shutdown is
//! cancel → stop accepting → let connections finish → wait with a timeout.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn::serve_connection;
use super::ProxyCtx;
use crate::listen::Listener;

/// How long open client connections get to finish after shutdown is asked.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Serves `listener` until `shutdown` is cancelled.
pub async fn run(listener: Listener, ctx: Arc<ProxyCtx>, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok(io) => {
                let ctx = ctx.clone();
                let stop = shutdown.child_token();
                tracker.spawn(serve_connection(io, ctx, stop));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning
                tracing::warn!("accept on {} failed: {e}", listener.local_addr());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::info!(
            "{} client connections still open at shutdown; closing them",
            tracker.len()
        );
    }
}
