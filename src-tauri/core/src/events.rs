//! The remote daemon's container events, shared by every feature that
//! follows containers (port forwards, bind-mount replicas). One stream per
//! remote, re-opened with capped backoff; after each (re)subscription every
//! sink reconciles with the remote's state before events flow, so nothing
//! that happened while the stream was down is missed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::upstream::docker::{EventMessage, EventMessageTypeEnum};
use crate::upstream::{DockerApi, UpstreamError};

/// Re-subscription after a failed stream: 250 ms, doubling, at most 30 s.
const RETRY: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));

/// One container event, as the daemon reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// `create`, `start`, `die`, `destroy`, …
    pub action: String,
    pub id: String,
    /// The container's labels and name, as the daemon attaches them.
    pub attributes: HashMap<String, String>,
}

/// Reads a container event; `None` for other event types or ones without
/// an action or an actor's id.
pub fn parse_event(event: EventMessage) -> Option<ContainerEvent> {
    if event.typ != Some(EventMessageTypeEnum::CONTAINER) {
        return None;
    }
    let action = event.action.filter(|a| !a.is_empty())?;
    let actor = event.actor?;
    let id = actor.id.filter(|id| !id.is_empty())?;
    Some(ContainerEvent {
        action,
        id,
        attributes: actor.attributes.unwrap_or_default(),
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
    ssh: Arc<crate::ssh::SshSession>,
    docker: DockerApi,
    sinks: Vec<Arc<dyn EventSink>>,
    shutdown: CancellationToken,
) {
    if sinks.is_empty() {
        return;
    }
    let mut backoff = RETRY;
    loop {
        let round = async {
            // subscribe first, then reconcile: nothing that happens in
            // between is lost (the stream's head means the daemon listens)
            let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
            let mut heads = docker.event_heads();
            heads.borrow_and_update();
            let stream = docker.container_events();
            let pump = async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(ev) = stream.next().await {
                    if tx.send(ev).await.is_err() {
                        break;
                    }
                }
            };
            let follow = async {
                tokio::select! {
                    _ = heads.changed() => {}
                    first = rx.recv() => if let Some(Err(e)) = first {
                        return Err(e);
                    },
                }
                for sink in &sinks {
                    sink.reconcile().await?;
                }
                while let Some(ev) = rx.recv().await {
                    if let Some(ev) = parse_event(ev?) {
                        for sink in &sinks {
                            sink.on_event(&ev).await;
                        }
                    }
                }
                Ok::<(), UpstreamError>(())
            };
            let mut pump = std::pin::pin!(pump);
            let mut follow = std::pin::pin!(follow);
            // the pump ending (the stream closed) leaves what it sent to read
            tokio::select! {
                r = &mut follow => r,
                _ = &mut pump => follow.await,
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: serde_json::Value) -> EventMessage {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn parses_container_events() {
        let full = event(
            json!({"Type": "container", "Action": "start", "Actor": {"ID": "abc", "Attributes": {"name": "web", "dev.berth.mounts": "[]"}}}),
        );
        let ev = parse_event(full).unwrap();
        assert_eq!((ev.action.as_str(), ev.id.as_str()), ("start", "abc"));
        assert_eq!(ev.attributes["name"], "web");
        let bare = event(json!({"Type": "container", "Action": "die", "Actor": {"ID": "x"}}));
        assert!(parse_event(bare).unwrap().attributes.is_empty());
        for other in [
            json!({"Type": "network", "Action": "create", "Actor": {"ID": "n"}}),
            json!({"Type": "container", "Action": "start"}),
            json!({"Type": "container", "Action": "start", "Actor": {"ID": ""}}),
            json!({"Type": "container", "Actor": {"ID": "x"}}),
            json!({"Action": "start", "Actor": {"ID": "x"}}),
        ] {
            assert_eq!(parse_event(event(other.clone())), None, "{other}");
        }
    }
}
