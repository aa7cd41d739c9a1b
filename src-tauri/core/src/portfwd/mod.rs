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

use crate::owned::Owned;
use crate::ports::PlanOptions;
use crate::ssh::SshSession;
use crate::state::Changes;
use crate::upstream::DockerApi;

/// Port forwarding of one remote: the forwarder, its watcher, the options.
pub struct PortForwarding {
    pub forwarder: Arc<Forwarder>,
    pub watcher: Arc<Watcher>,
    pub options: PlanOptions,
}

impl PortForwarding {
    /// Builds it; its listeners close at `shutdown`. The watcher is an
    /// `EventSink` of the remote's event stream (see `crate::events`); it
    /// forwards only containers `owned` records, with the recorded ports.
    pub fn new(
        ssh: Arc<SshSession>,
        docker: DockerApi,
        options: PlanOptions,
        owned: Arc<Owned>,
        changes: Changes,
        shutdown: CancellationToken,
    ) -> Self {
        let forwarder = Arc::new(Forwarder::new(
            ssh.clone(),
            options.all_interfaces,
            changes,
            shutdown,
        ));
        let watcher = Arc::new(Watcher::new(docker, forwarder.clone(), owned));
        Self {
            forwarder,
            watcher,
            options,
        }
    }
}
