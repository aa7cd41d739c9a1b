//! The one window, created on demand. Closing it destroys it (Tauri's
//! default), which releases the WebView and its web process; the app keeps
//! running in the tray, and "Open Berth…" (or starting Berth again) builds
//! a fresh window from Rust. No window exists at startup when Berth was
//! started hidden (at login).

use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder};

/// The window's label (the capability `default` is granted to it).
pub const MAIN: &str = "main";

/// Shows the window, creating it if it does not exist.
pub fn open(app: &AppHandle) -> tauri::Result<()> {
    if let Some(w) = app.get_webview_window(MAIN) {
        w.unminimize()?;
        w.show()?;
        w.set_focus()?;
        return Ok(());
    }
    tracing::info!("opening the window");
    WebviewWindowBuilder::new(app, MAIN, WebviewUrl::App("index.html".into()))
        .title("Berth")
        .inner_size(960.0, 680.0)
        .min_inner_size(640.0, 420.0)
        .build()?;
    Ok(())
}

/// Opens the window, logging a failure (for callers with nowhere to return it).
pub fn open_or_log(app: &AppHandle) {
    if let Err(e) = open(app) {
        tracing::error!("cannot open the window: {e}");
    }
}

/// Destroys the window if it exists (at quit).
pub fn close(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(MAIN) {
        if let Err(e) = w.destroy() {
            tracing::warn!("cannot close the window: {e}");
        }
    }
}

/// Hands the heap pages the closed WebView's side of this process freed
/// back to the OS (glibc keeps them otherwise), so Berth idles small in the
/// tray. The web content process itself has exited with the window.
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
