//! The [`Controller`]'s life: reconnecting at start what was connected at
//! the last quit, and quitting (record, disconnect all, restore the docker
//! context, stop the tasks that tell changes).

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
    /// current, and stops the tasks that tell changes.
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
            self.reread_context();
        }
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.tasks.wait()).await;
    }
}
