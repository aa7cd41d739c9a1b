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
use serde_json::Value;

use super::forwarder::Forwarder;
use crate::events::{percent_encode, ContainerEvent, EventSink};
use crate::owned::Owned;
use crate::ports::{remote_ports, PORTS_LABEL};
use crate::ssh::SshSession;
use crate::upstream::client::get_json;
use crate::upstream::{Upstream, UpstreamError};

pub struct Watcher {
    ssh: Arc<SshSession>,
    upstream: Upstream,
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
    pub fn new(
        ssh: Arc<SshSession>,
        upstream: Upstream,
        forwarder: Arc<Forwarder>,
        owned: Arc<Owned>,
    ) -> Self {
        Self {
            ssh,
            upstream,
            forwarder,
            owned,
        }
    }

    /// Inspects the container and opens or closes its forwards to match.
    /// Returns the local bind failures, if any.
    pub async fn refresh(&self, id_or_name: &str) -> Result<Vec<String>, UpstreamError> {
        let path = format!("/containers/{id_or_name}/json");
        let Some(inspect) = get_json(&self.upstream, &self.ssh, &path).await? else {
            if let Some(id) = self.forwarder.find(id_or_name).await {
                self.forwarder.close(&id).await;
            }
            return Ok(Vec::new());
        };
        Ok(self.apply(&inspect).await)
    }

    async fn apply(&self, inspect: &Value) -> Vec<String> {
        let id = inspect
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let running = inspect
            .pointer("/State/Running")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let recorded = self.owned.get(id).and_then(|r| r.ports);
        if recorded.is_none()
            && inspect
                .pointer(&format!("/Config/Labels/{PORTS_LABEL}"))
                .is_some()
        {
            tracing::debug!(
                "not forwarding {id}: its ports label was not written by this machine's Berth"
            );
        }
        match recorded {
            // a paused container keeps its ports, as with Docker
            Some(label) if running && !id.is_empty() => {
                let name = inspect
                    .get("Name")
                    .and_then(Value::as_str)
                    .unwrap_or(id)
                    .trim_start_matches('/');
                let remote = remote_ports(inspect);
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
        let filters = format!("{{\"label\":[\"{PORTS_LABEL}\"]}}");
        let path = format!("/containers/json?filters={}", percent_encode(&filters));
        let list = get_json(&self.upstream, &self.ssh, &path)
            .await?
            .unwrap_or(Value::Null);
        let running: Vec<String> = list
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.get("Id").and_then(Value::as_str).map(String::from))
                    .collect()
            })
            .unwrap_or_default();
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
