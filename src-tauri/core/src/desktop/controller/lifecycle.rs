//! The [`Controller`]'s life: reconnecting at start what was connected at
//! the last quit, quitting (record, disconnect all, restore the docker
//! context, stop the poller), and change notification. One poller per
//! controller compares everything a notification covers (the views, and
//! each connected remote's forwards and mounts) every 200 ms and bumps the
//! counter [`Controller::subscribe`] hands out when it differs; explicit
//! state changes bump at once. The poller stops at shutdown, or when the
//! controller is dropped (it holds only a weak reference).

use super::*;

impl Controller {
    /// Connects the remotes that were connected when Berth last quit.
    pub async fn restore_connected(&self) {
        let names = self.settings().connected;
        let connects = names.iter().map(|n| self.connect(n));
        for (name, r) in names
            .iter()
            .zip(futures_util::future::join_all(connects).await)
        {
            if let Err(e) = r {
                tracing::warn!("reconnecting {name:?} at start failed: {e}");
            }
        }
    }

    /// Quits: records which remotes are connected (for [`Self::restore_connected`]),
    /// disconnects all, restores the docker context if a Berth one is
    /// current, and stops the poller.
    pub async fn shutdown(&self) {
        let connected: Vec<String> = self
            .views()
            .into_iter()
            .filter(|v| {
                matches!(
                    v.state,
                    ConnectionState::Connected | ConnectionState::Connecting
                )
            })
            .map(|v| v.remote.name)
            .collect();
        if let Err(e) = self.update_settings(|s| s.connected = connected.clone()) {
            tracing::warn!("cannot record the connected remotes: {e}");
        }
        let names: Vec<String> = self.lock().slots.keys().cloned().collect();
        futures_util::future::join_all(names.iter().map(|n| self.disconnect(n))).await;
        if self.current_is_berth() {
            let previous = self.settings().previous_context;
            if let Err(e) = self.contexts.restore(previous.as_deref()) {
                tracing::warn!("cannot restore the docker context: {e}");
            }
        }
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.tasks.wait()).await;
    }

    /// Starts the change poller once (needs a tokio runtime).
    pub(super) fn ensure_poller(&self) {
        if self.poller.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.me.clone();
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            let mut last = String::new();
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let Some(ctl) = me.upgrade() else { break };
                let now = ctl.fingerprint();
                if now != last {
                    if !last.is_empty() {
                        ctl.bump();
                    }
                    last = now;
                }
            }
        });
    }

    /// Everything a change notification covers, as one comparable string.
    fn fingerprint(&self) -> String {
        let views = self.views();
        let containers: Vec<Option<Containers>> = views
            .iter()
            .map(|v| self.containers(&v.remote.name))
            .collect();
        serde_json::to_string(&(views, containers)).unwrap_or_default()
    }
}
