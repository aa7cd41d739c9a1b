//! Keeps the forwards in step with the remote containers, driven by the
//! daemon's events (never by polling; see `crate::events`): a container that
//! starts gets its listeners, one that dies or goes away loses them. On every
//! (re)subscription it reconciles: running containers carrying the ports
//! label get their forwards back, forwards of containers that are gone close.
//!
//! The label only finds candidates: what a container is forwarded comes
//! from this machine's record of the containers it created
//! (`crate::owned`), so a label forged or copied on the remote opens nothing.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::forwarder::Forwarder;
use crate::events::{ContainerEvent, EventSink};
use crate::owned::Owned;
use crate::ports::{remote_ports, PORTS_LABEL};
use crate::upstream::docker::ContainerInspectResponse;
use crate::upstream::{DockerApi, UpstreamError};

/// Opens and closes the forwards of the containers this machine created.
pub struct Watcher {
    docker: DockerApi,
    forwarder: Arc<Forwarder>,
    /// The containers this machine created, with their planned ports.
    owned: Arc<Owned>,
}

/// What an event means for the forwards (pure, table-tested).
#[derive(Debug, PartialEq, Eq)]
pub enum EventAction {
    Refresh(String),
    Close(String),
    Ignore,
}

/// Maps one container event to what the forwards should do.
pub fn classify(action: &str, id: &str) -> EventAction {
    match action {
        "start" | "restart" | "unpause" => EventAction::Refresh(id.to_string()),
        // `kill` may be any signal and `stop` follows `die`: only `die` means gone
        "die" | "destroy" => EventAction::Close(id.to_string()),
        _ => EventAction::Ignore,
    }
}

impl Watcher {
    /// A watcher that asks `docker` and opens forwards with `forwarder`.
    pub fn new(docker: DockerApi, forwarder: Arc<Forwarder>, owned: Arc<Owned>) -> Self {
        Self {
            docker,
            forwarder,
            owned,
        }
    }

    /// Inspects the container and opens or closes its forwards to match.
    /// Returns the local bind failures, if any.
    pub async fn refresh(&self, id_or_name: &str) -> Result<Vec<String>, UpstreamError> {
        let Some(inspect) = self.docker.inspect_container(id_or_name).await? else {
            if let Some(id) = self.forwarder.find(id_or_name).await {
                self.forwarder.close(&id).await;
            }
            return Ok(Vec::new());
        };
        Ok(self.apply(&inspect).await)
    }

    async fn apply(&self, inspect: &ContainerInspectResponse) -> Vec<String> {
        let id = inspect.id.as_deref().unwrap_or_default();
        let running = inspect
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false);
        let recorded = self.owned.get(id).and_then(|r| r.ports);
        let labelled = inspect
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .is_some_and(|l| l.contains_key(PORTS_LABEL));
        if recorded.is_none() && labelled {
            tracing::debug!(
                "not forwarding {id}: its ports label was not written by this machine's Berth"
            );
        }
        match recorded {
            // a paused container keeps its ports, as with Docker
            Some(label) if running && !id.is_empty() => {
                let name = inspect
                    .name
                    .as_deref()
                    .unwrap_or(id)
                    .trim_start_matches('/');
                let published = inspect
                    .network_settings
                    .as_ref()
                    .and_then(|n| n.ports.as_ref());
                let remote = published.map(remote_ports).unwrap_or_default();
                self.forwarder
                    .open(id, name, &label.bindings, &remote)
                    .await
            }
            _ => {
                self.forwarder.close(id).await;
                Vec::new()
            }
        }
    }

    /// Running containers with the label get forwards; other forwards close.
    async fn reconcile(&self) -> Result<(), UpstreamError> {
        let running = self.docker.container_ids(false, Some(PORTS_LABEL)).await?;
        for id in &running {
            self.refresh(id).await?;
        }
        for id in self.forwarder.ids().await {
            if !running.contains(&id) {
                self.forwarder.close(&id).await;
            }
        }
        Ok(())
    }
}

impl EventSink for Watcher {
    fn reconcile(&self) -> BoxFuture<'_, Result<(), UpstreamError>> {
        Box::pin(Watcher::reconcile(self))
    }

    fn on_event<'a>(&'a self, event: &'a ContainerEvent) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match classify(&event.action, &event.id) {
                EventAction::Refresh(id) => {
                    if let Err(e) = self.refresh(&id).await {
                        tracing::warn!("cannot refresh forwards of {id}: {e}");
                    }
                }
                EventAction::Close(id) => self.forwarder.close(&id).await,
                EventAction::Ignore => {}
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_events() {
        let table = [
            ("start", EventAction::Refresh("abc".into())),
            ("restart", EventAction::Refresh("abc".into())),
            ("unpause", EventAction::Refresh("abc".into())),
            ("die", EventAction::Close("abc".into())),
            ("destroy", EventAction::Close("abc".into())),
            ("kill", EventAction::Ignore),
            ("stop", EventAction::Ignore),
            ("create", EventAction::Ignore),
            ("exec_start: sh", EventAction::Ignore),
        ];
        for (action, want) in table {
            assert_eq!(classify(action, "abc"), want, "{action}");
        }
    }
}
