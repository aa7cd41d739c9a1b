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

/// Gives back what the closed window left resident in this process: the
/// heap it freed (glibc keeps it otherwise), and the clean code and
/// read-only data pages of the WebView's libraries (WebKitGTK,
/// JavaScriptCore, …), which stay resident after the window is gone although
/// nothing runs them while Berth idles in the tray. The kernel would reclaim
/// those under memory pressure anyway; asking now (`MADV_PAGEOUT`) keeps an
/// idle tray app small. They are read back from disk if the window opens
/// again. The web content process itself has exited with the window.
pub fn release_memory() {
    berth_core::mem::release_freed_memory();
    #[cfg(target_os = "linux")]
    page_out_clean_file_pages();
}

/// `MADV_PAGEOUT` over every private, non-writable, file-backed mapping of
/// this process (code and read-only data: never anything that could be
/// dirty). Pages shared with other processes are left alone by the kernel.
#[cfg(target_os = "linux")]
fn page_out_clean_file_pages() {
    const MADV_PAGEOUT: libc::c_int = 21;
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let mut released = 0usize;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let path = f.nth(3).unwrap_or_default();
        // file-backed, private, not writable: code and read-only data only
        if !path.starts_with('/') || perms.as_bytes().get(1) != Some(&b'-') || !perms.ends_with('p')
        {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        else {
            continue;
        };
        // SAFETY: advisory only, on this process's own read-only file
        // mappings; MADV_PAGEOUT never changes their contents.
        let r = unsafe { libc::madvise(start as *mut libc::c_void, end - start, MADV_PAGEOUT) };
        if r == 0 {
            released += end - start;
        }
    }
    tracing::debug!(
        "asked the kernel to page out {} MiB of idle code",
        released >> 20
    );
}
