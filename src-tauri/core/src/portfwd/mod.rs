//! Automatic port forwarding, runtime side: the local listeners
//! (`forwarder`), the event-driven watcher that opens and closes them, and
//! the local port picker used when a create is planned. The decisions
//! themselves (rewrites, label, views) are the pure `crate::ports`.

mod forwarder;
mod pick;
mod watcher;

pub use forwarder::Forwarder;
pub use pick::Reservations;
pub use watcher::{classify, EventAction, Watcher};

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::ports::PlanOptions;
use crate::ssh::SshSession;
use crate::upstream::Upstream;

/// Port forwarding of one remote: the forwarder, its watcher, the options.
pub struct PortForwarding {
    pub forwarder: Arc<Forwarder>,
    pub watcher: Arc<Watcher>,
    pub options: PlanOptions,
}

impl PortForwarding {
    /// Builds it and starts the watcher, which runs until `shutdown`.
    pub fn start(
        ssh: Arc<SshSession>,
        upstream: Upstream,
        options: PlanOptions,
        shutdown: CancellationToken,
    ) -> Self {
        let forwarder = Arc::new(Forwarder::new(ssh.clone(), shutdown.clone()));
        let watcher = Arc::new(Watcher::new(ssh, upstream, forwarder.clone()));
        tokio::spawn(watcher.clone().run(shutdown));
        Self {
            forwarder,
            watcher,
            options,
        }
    }
}
