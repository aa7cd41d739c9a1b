//! The Tauri commands of `ui/API.md`, each a thin call onto the engine
//! (`berth_core::desktop::controller::Controller`, or `berth_core::keys` for
//! the keychain). Failures reach the window as one-line strings that name
//! the cause and the fix; arguments arrive camelCase from JS and land in the
//! snake_case parameters below.

use berth_core::desktop::config::Remote;
use berth_core::desktop::probe::Step;
use berth_core::desktop::view::{Containers, RemoteView, SettingsView};
use berth_core::keys::PublicKeyInfo;
use tauri::{AppHandle, State};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_opener::OpenerExt as _;

use crate::AppState;
use berth_core::desktop::activity::Activity;

/// A command's result: errors are one line of text.
pub type Res<T> = Result<T, String>;

pub use berth_core::one_line::one_line;

/// An engine error for the window: what happened, then the fix in the
/// window's words.
fn shown(e: berth_core::desktop::DesktopError) -> String {
    berth_core::desktop::advice::explain(&e)
}

#[tauri::command]
pub fn list_remotes(state: State<'_, AppState>) -> Vec<RemoteView> {
    state.controller.views()
}

#[tauri::command]
pub fn save_remote(
    state: State<'_, AppState>,
    original: Option<String>,
    remote: Remote,
) -> Res<()> {
    state
        .controller
        .save_remote(original.as_deref(), remote)
        .map_err(shown)
}

#[tauri::command]
pub async fn remove_remote(state: State<'_, AppState>, name: String) -> Res<()> {
    state.controller.remove_remote(&name).await.map_err(shown)
}

#[tauri::command]
pub fn import_ssh_config(state: State<'_, AppState>) -> Res<Vec<Remote>> {
    state.controller.import_ssh_config().map_err(shown)
}

#[tauri::command]
pub async fn connect(state: State<'_, AppState>, name: String) -> Res<()> {
    state.controller.connect(&name).await.map_err(shown)
}

#[tauri::command]
pub async fn disconnect(state: State<'_, AppState>, name: String) -> Res<()> {
    state.controller.disconnect(&name).await;
    Ok(())
}

#[tauri::command]
pub async fn test_connection(state: State<'_, AppState>, remote: Remote) -> Res<Vec<Step>> {
    Ok(state.controller.test_connection(&remote).await)
}

#[tauri::command]
pub async fn trust_host_key(
    state: State<'_, AppState>,
    host: String,
    port: u16,
    fingerprint: String,
) -> Res<()> {
    state
        .controller
        .trust_host_key(&host, port, &fingerprint)
        .await
        .map_err(shown)
}

#[tauri::command]
pub async fn list_keys(state: State<'_, AppState>) -> Res<Vec<PublicKeyInfo>> {
    state.controller.list_keys().await.map_err(shown)
}

#[tauri::command]
pub async fn generate_key(
    state: State<'_, AppState>,
    id: String,
    comment: Option<String>,
) -> Res<PublicKeyInfo> {
    let comment = comment.unwrap_or_default();
    state
        .controller
        .generate_key(&id, &comment)
        .await
        .map_err(shown)
}

#[tauri::command]
pub async fn import_key(
    state: State<'_, AppState>,
    id: String,
    private_key: String,
    passphrase: Option<String>,
) -> Res<PublicKeyInfo> {
    // the key text and passphrase are wiped from memory once imported
    let pem = zeroize::Zeroizing::new(private_key);
    let pass = passphrase.map(zeroize::Zeroizing::new);
    state
        .controller
        .import_key(&id, &pem, pass.as_ref().map(|p| p.as_str()))
        .await
        .map_err(shown)
}

#[tauri::command]
pub async fn delete_key(state: State<'_, AppState>, id: String) -> Res<()> {
    state.controller.delete_key(&id).await.map_err(shown)
}

#[tauri::command]
pub fn containers(state: State<'_, AppState>, name: String) -> Res<Containers> {
    if state.controller.view(&name).is_none() {
        return Err(format!("no remote named {name:?}; add it first"));
    }
    // not connected (any more): nothing forwarded or synced
    Ok(state.controller.containers(&name).unwrap_or_default())
}

#[tauri::command]
pub fn set_default_context(state: State<'_, AppState>, name: Option<String>) -> Res<()> {
    state
        .controller
        .set_default_context(name.as_deref())
        .map_err(shown)
}

#[tauri::command]
pub fn get_settings(state: State<'_, AppState>) -> SettingsView {
    state.controller.settings_view()
}

#[tauri::command]
pub fn set_start_at_login(app: AppHandle, on: bool) -> Res<()> {
    apply_start_at_login(&app, on)?;
    crate::bridge::publish(&app);
    Ok(())
}

/// Registers (or removes) the OS autostart entry, then records the setting.
pub fn apply_start_at_login(app: &AppHandle, on: bool) -> Res<()> {
    let launcher = app.autolaunch();
    let done = if on {
        launcher.enable()
    } else {
        launcher.disable()
    };
    // disabling what was never enabled is fine
    if let Err(e) = done {
        if on || launcher.is_enabled().unwrap_or(true) {
            return Err(format!(
                "cannot {} starting at login: {}; check that your autostart folder is writable",
                if on { "turn on" } else { "turn off" },
                one_line(e)
            ));
        }
    }
    use tauri::Manager as _;
    app.state::<AppState>()
        .controller
        .set_start_at_login(on)
        .map_err(shown)
}

#[tauri::command]
pub fn activity(state: State<'_, AppState>) -> Activity {
    state.controller.activity()
}

#[tauri::command]
pub fn open_url(app: AppHandle, url: String) -> Res<()> {
    check_local_url(&url)?;
    app.opener().open_url(&url, None::<&str>).map_err(|e| {
        format!(
            "cannot open {url}: {}; open it in your browser by hand",
            one_line(e)
        )
    })
}

/// Only pages served on this machine are opened: `http(s)://localhost…`,
/// `127.0.0.1` or `[::1]`, with a port or path or neither.
pub fn check_local_url(url: &str) -> Res<()> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let ok = rest.is_some_and(|rest| {
        let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..host_end];
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if !h.ends_with(':') && port.parse::<u16>().is_ok() => h,
            _ => authority,
        };
        matches!(host, "localhost" | "127.0.0.1" | "[::1]")
            && !url.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{url:?} is not a page on this machine; only http://localhost:PORT links are opened"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_pages_open() {
        for ok in [
            "http://localhost:8080",
            "http://localhost:8080/path?q=1",
            "https://127.0.0.1:8443/",
            "http://[::1]:3000",
            "http://localhost",
        ] {
            assert!(check_local_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "file:///etc/passwd",
            "http://evil.example:80",
            "http://localhost.evil.example:80",
            "http://localhost@evil.example",
            "javascript:alert(1)",
            "http://localhost:8080 --arg",
            "http://localhost:99999",
            "",
        ] {
            assert!(check_local_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_are_one_line() {
        assert_eq!(one_line("a\n  b\tc"), "a b c");
        assert_eq!(one_line(""), "unknown error");
    }
}
