//! Keeps the forwards in step with the remote containers, driven by the
//! daemon's `/events` stream (never by polling): a container that starts gets
//! its listeners, one that dies or goes away loses them. On every (re)connect
//! of the stream it reconciles: running containers carrying the ports label
//! get their forwards back, forwards of containers that are gone close.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::forwarder::Forwarder;
use crate::ports::{read_label, remote_ports, PORTS_LABEL};
use crate::ssh::SshSession;
use crate::upstream::client::{get_json, get_streaming, JsonLines};
use crate::upstream::{Upstream, UpstreamError};

/// Longest wait between two attempts to re-open the event stream.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct Watcher {
    ssh: Arc<SshSession>,
    upstream: Upstream,
    forwarder: Arc<Forwarder>,
}

/// What an event means for the forwards (pure, table-tested).
#[derive(Debug, PartialEq, Eq)]
pub enum EventAction {
    Refresh(String),
    Close(String),
    Ignore,
}

/// Maps one `/events` message to what the forwards should do.
pub fn classify(event: &Value) -> EventAction {
    let kind = event.get("Type").and_then(Value::as_str).unwrap_or("");
    let action = event
        .get("Action")
        .or_else(|| event.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let id = event
        .get("Actor")
        .and_then(|a| a.get("ID"))
        .or_else(|| event.get("id"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind != "container" || id.is_empty() {
        return EventAction::Ignore;
    }
    match action {
        "start" | "restart" | "unpause" => EventAction::Refresh(id.to_string()),
        // `kill` may be any signal and `stop` follows `die`: only `die` means gone
        "die" | "destroy" => EventAction::Close(id.to_string()),
        _ => EventAction::Ignore,
    }
}

impl Watcher {
    pub fn new(ssh: Arc<SshSession>, upstream: Upstream, forwarder: Arc<Forwarder>) -> Self {
        Self {
            ssh,
            upstream,
            forwarder,
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
        let label = inspect.pointer("/Config/Labels").and_then(read_label);
        match label {
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

    /// Follows the event stream until `shutdown`, re-opening it (and
    /// reconciling) with capped backoff whenever it ends.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(250);
        loop {
            let round = async {
                let filters = "{\"type\":[\"container\"]}";
                let path = format!("/events?filters={}", percent_encode(filters));
                // subscribe first, then reconcile: nothing that happens in between is lost
                let resp = get_streaming(&self.upstream, &self.ssh, &path).await?;
                self.reconcile().await?;
                let mut events = JsonLines::new(resp.into_body());
                while let Some(ev) = events.next().await {
                    match classify(&ev) {
                        EventAction::Refresh(id) => {
                            if let Err(e) = self.refresh(&id).await {
                                tracing::warn!("cannot refresh forwards of {id}: {e}");
                            }
                        }
                        EventAction::Close(id) => self.forwarder.close(&id).await,
                        EventAction::Ignore => {}
                    }
                }
                Ok::<(), UpstreamError>(())
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = round => match r {
                    Ok(()) => {
                        tracing::info!("the event stream ended; re-opening it");
                        backoff = Duration::from_millis(250);
                    }
                    Err(e) => {
                        tracing::warn!("event stream: {e}; retrying in {backoff:?}");
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                },
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
        }
    }
}

/// Percent-encodes a query value (JSON filters).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_events() {
        let ev = |action: &str, kind: &str| json!({"Type": kind, "Action": action, "Actor": {"ID": "abc", "Attributes": {}}});
        let table = [
            (ev("start", "container"), EventAction::Refresh("abc".into())),
            (
                ev("restart", "container"),
                EventAction::Refresh("abc".into()),
            ),
            (ev("die", "container"), EventAction::Close("abc".into())),
            (ev("destroy", "container"), EventAction::Close("abc".into())),
            (ev("kill", "container"), EventAction::Ignore),
            (ev("create", "container"), EventAction::Ignore),
            (ev("exec_start: sh", "container"), EventAction::Ignore),
            (ev("start", "network"), EventAction::Ignore),
            (
                json!({"status": "start", "id": "old", "Type": "container"}),
                EventAction::Refresh("old".into()),
            ),
            (
                json!({"Type": "container", "Action": "start"}),
                EventAction::Ignore,
            ),
        ];
        for (event, want) in table {
            assert_eq!(classify(&event), want, "{event}");
        }
    }

    #[test]
    fn encodes_filters() {
        assert_eq!(
            percent_encode("{\"label\":[\"a.b\"]}"),
            "%7B%22label%22%3A%5B%22a.b%22%5D%7D"
        );
    }
}
