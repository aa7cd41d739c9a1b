//! The one bridge from the engine to the screen: a task that waits on the
//! controller's change counter and, on every bump, emits
//! [`CHANGED`] with the remotes' views to the window and rebuilds the tray
//! (which skips the rebuild when the menu came out the same).

use tauri::{AppHandle, Emitter, Manager};

use crate::{tray, AppState};

/// The event the window listens to; payload: `[RemoteView]` (see `ui/API.md`).
pub const CHANGED: &str = "berth://changed";

/// Starts the bridge task on Tauri's async runtime.
pub fn start(app: AppHandle) {
    tauri::async_runtime::spawn(async move {
        let controller = app.state::<AppState>().controller.clone();
        // subscribed from within the runtime, so the controller's poller starts
        let mut changes = controller.subscribe();
        loop {
            publish(&app);
            if changes.changed().await.is_err() {
                tracing::debug!("the controller is gone; the bridge stops");
                break;
            }
        }
    });
}

/// Sends the current state to the window and the tray.
pub fn publish(app: &AppHandle) {
    let views = app.state::<AppState>().controller.views();
    if let Err(e) = app.emit(CHANGED, &views) {
        tracing::warn!("cannot notify the window: {e}");
    }
    if let Err(e) = tray::refresh(app) {
        tracing::warn!("cannot update the tray: {e}");
    }
}
