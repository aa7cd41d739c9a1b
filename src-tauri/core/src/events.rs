//! The remote daemon's container events, shared by every feature that
//! follows containers (port forwards, bind-mount replicas). One stream per
//! remote, re-opened with capped backoff; after each (re)subscription every
//! sink reconciles with the remote's state before events flow, so nothing
//! that happened while the stream was down is missed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::ssh::SshSession;
use crate::upstream::client::{get_streaming, JsonLines};
use crate::upstream::{Upstream, UpstreamError};

/// Re-subscription after a failed stream: 250 ms, doubling, at most 30 s.
const RETRY: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));

/// One container event, as the daemon reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// `create`, `start`, `die`, `destroy`, …
    pub action: String,
    pub id: String,
    /// The container's labels and name, as the daemon attaches them.
    pub attributes: Map<String, Value>,
}

/// Reads a container event; `None` for other event types or malformed ones.
pub fn parse_event(event: &Value) -> Option<ContainerEvent> {
    if event.get("Type").and_then(Value::as_str) != Some("container") {
        return None;
    }
    let action = event
        .get("Action")
        .or_else(|| event.get("status"))
        .and_then(Value::as_str)?;
    let id = event
        .pointer("/Actor/ID")
        .or_else(|| event.get("id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())?;
    let attributes = event
        .pointer("/Actor/Attributes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Some(ContainerEvent {
        action: action.to_string(),
        id: id.to_string(),
        attributes,
    })
}

/// A feature that follows the remote's containers.
pub trait EventSink: Send + Sync {
    /// Catches up with the remote's state; called after every subscription.
    fn reconcile(&self) -> BoxFuture<'_, Result<(), UpstreamError>>;
    /// Handles one container event.
    fn on_event<'a>(&'a self, event: &'a ContainerEvent) -> BoxFuture<'a, ()>;
}

/// Follows the event stream until `shutdown`.
pub async fn run(
    ssh: Arc<SshSession>,
    upstream: Upstream,
    sinks: Vec<Arc<dyn EventSink>>,
    shutdown: CancellationToken,
) {
    if sinks.is_empty() {
        return;
    }
    let mut backoff = RETRY;
    loop {
        let round = async {
            let path = format!(
                "/events?filters={}",
                percent_encode("{\"type\":[\"container\"]}")
            );
            // subscribe first, then reconcile: nothing that happens in between is lost
            let resp = get_streaming(&upstream, &ssh, &path).await?;
            for sink in &sinks {
                sink.reconcile().await?;
            }
            let mut events = JsonLines::new(resp.into_body());
            while let Some(ev) = events.next().await {
                if let Some(ev) = parse_event(&ev) {
                    for sink in &sinks {
                        sink.on_event(&ev).await;
                    }
                }
            }
            Ok::<(), UpstreamError>(())
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = round => match r {
                Ok(()) => {
                    tracing::info!("the event stream ended; re-opening it");
                    backoff.succeeded();
                }
                Err(e) => {
                    let wait = backoff.failed(Instant::now(), e.to_string());
                    tracing::warn!("event stream: {e}; retrying in {wait:?}");
                }
            },
        }
        // back at once when the session is: forwards and replicas catch up;
        // otherwise never sooner than the first wait, even after a clean end
        let wait = backoff
            .remaining(Instant::now())
            .unwrap_or(backoff.delay(1));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = ssh.reconnected() => backoff.succeeded(),
        }
    }
}

/// Percent-encodes a query value (JSON filters).
pub fn percent_encode(s: &str) -> String {
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
    fn parses_container_events() {
        let full = json!({"Type": "container", "Action": "start", "Actor": {"ID": "abc", "Attributes": {"name": "web", "dev.berth.mounts": "[]"}}});
        let ev = parse_event(&full).unwrap();
        assert_eq!((ev.action.as_str(), ev.id.as_str()), ("start", "abc"));
        assert_eq!(ev.attributes["name"], "web");
        let old = json!({"status": "die", "id": "old", "Type": "container"});
        assert_eq!(parse_event(&old).unwrap().action, "die");
        for other in [
            json!({"Type": "network", "Action": "create", "Actor": {"ID": "n"}}),
            json!({"Type": "container", "Action": "start"}),
            json!({"Type": "container", "Actor": {"ID": "x"}}),
            json!("junk"),
        ] {
            assert_eq!(parse_event(&other), None, "{other}");
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
