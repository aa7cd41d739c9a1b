//! Berth's tray app: Tauri 2 around the GUI-free engine in `berth-core`.
//!
//! The engine (a [`Controller`]) runs in-process on Tauri's tokio runtime.
//! The window (`ui/`, static files) talks to it through the thin commands in
//! [`commands`]; engine changes reach the window and the tray through one
//! [`bridge`] task. Closing the window destroys it and keeps the tray; Quit
//! (tray menu, SIGINT/SIGTERM) stops every tunnel and watcher, restores the
//! docker context and exits. One instance runs at a time: starting Berth
//! again opens the running instance's window. Started with [`AUTOSTART_ARG`]
//! (at login) or `--hidden`, it comes up in the tray only.

pub mod activity;
pub mod bridge;
pub mod commands;
pub mod tray;
pub mod window;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use berth_core::desktop::controller::{Controller, ControllerOptions};
use berth_core::desktop::menu;
use tauri::{AppHandle, Manager, RunEvent, WindowEvent};

/// The argument the OS autostart entry passes: start in the tray only.
pub const AUTOSTART_ARG: &str = "--autostart";
/// Same effect, for starting by hand.
pub const HIDDEN_ARG: &str = "--hidden";
/// Overrides the known_hosts file (default `~/.ssh/known_hosts`).
pub const KNOWN_HOSTS_ENV: &str = "BERTH_KNOWN_HOSTS";
/// How long Quit waits for the engine to stop before exiting anyway.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the commands, the tray and the bridge share.
pub struct AppState {
    pub controller: Arc<Controller>,
    /// The tray menu last rendered, to skip rebuilding an identical one.
    tray_model: Mutex<Option<menu::Menu>>,
    /// Quit was asked for (the shutdown is running or done).
    quitting: AtomicBool,
    /// The engine has stopped; exiting is allowed now.
    stopped: AtomicBool,
}

impl AppState {
    fn lock_tray(&self) -> MutexGuard<'_, Option<menu::Menu>> {
        self.tray_model.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether the command line asks to start in the tray only.
pub fn starts_hidden<S: AsRef<str>>(args: &[S]) -> bool {
    args.iter()
        .any(|a| a.as_ref() == AUTOSTART_ARG || a.as_ref() == HIDDEN_ARG)
}

/// Runs the app until Quit.
pub fn run() -> Result<(), Box<dyn std::error::Error>> {
    activity::init_tracing();
    let args: Vec<String> = std::env::args().collect();
    let hidden = starts_hidden(&args);
    let app = tauri::Builder::default()
        // first, so a second instance exits before doing anything else
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            tracing::info!("Berth was started again");
            if !starts_hidden(&argv) {
                window::open_or_log(app);
            }
        }))
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec![AUTOSTART_ARG]),
        ))
        .plugin(tauri_plugin_opener::init())
        .invoke_handler(tauri::generate_handler![
            commands::list_remotes,
            commands::save_remote,
            commands::remove_remote,
            commands::import_ssh_config,
            commands::connect,
            commands::disconnect,
            commands::test_connection,
            commands::trust_host_key,
            commands::list_keys,
            commands::generate_key,
            commands::import_key,
            commands::delete_key,
            commands::containers,
            commands::set_default_context,
            commands::get_settings,
            commands::set_start_at_login,
            commands::activity,
            commands::open_url,
        ])
        .on_window_event(|window, event| {
            if let WindowEvent::Destroyed = event {
                tracing::info!(
                    "window {:?} closed and its WebView released",
                    window.label()
                );
                window::release_memory();
                // once more when the teardown has settled: what it touched last
                std::thread::spawn(|| {
                    std::thread::sleep(std::time::Duration::from_secs(3));
                    window::release_memory();
                });
            }
        })
        .setup(move |app| {
            setup(app.handle(), hidden)?;
            Ok(())
        })
        .build(tauri::generate_context!())?;
    app.run(|app, event| {
        if let RunEvent::ExitRequested { api, code, .. } = event {
            let Some(state) = app.try_state::<AppState>() else {
                return; // setup never finished: nothing to stop
            };
            if state.stopped.load(Ordering::SeqCst) {
                return; // Quit has stopped the engine: exit
            }
            // The last window closed (no code): keep running in the tray.
            // An exit asked for elsewhere: stop the engine first.
            api.prevent_exit();
            if code.is_some() {
                quit(app);
            }
        }
    });
    Ok(())
}

fn setup(app: &AppHandle, hidden: bool) -> Result<(), Box<dyn std::error::Error>> {
    let mut opts = ControllerOptions::from_env()?;
    if let Some(p) = std::env::var_os(KNOWN_HOSTS_ENV).filter(|p| !p.is_empty()) {
        opts.known_hosts = PathBuf::from(p);
    }
    tracing::info!(config = %opts.config_path.display(), "Berth starting");
    let controller = Controller::new(opts)?;
    app.manage(AppState {
        controller: controller.clone(),
        tray_model: Mutex::new(None),
        quitting: AtomicBool::new(false),
        stopped: AtomicBool::new(false),
    });
    tray::create(app)?;
    bridge::start(app.clone());
    watch_signals(app.clone());
    tauri::async_runtime::spawn(async move { controller.restore_connected().await });
    if !hidden {
        window::open(app)?;
    }
    Ok(())
}

/// Quits: closes the window, stops every remote (tunnels, watchers,
/// sessions), restores the docker context, then exits. Asking again while
/// that runs does nothing.
pub fn quit(app: &AppHandle) {
    let state = app.state::<AppState>();
    if state.quitting.swap(true, Ordering::SeqCst) {
        return;
    }
    tracing::info!("quitting");
    window::close(app);
    let controller = state.controller.clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, controller.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("the engine did not stop within {SHUTDOWN_TIMEOUT:?}; exiting anyway");
        }
        app.state::<AppState>()
            .stopped
            .store(true, Ordering::SeqCst);
        app.exit(0);
    });
}

/// SIGINT, SIGTERM and SIGHUP quit cleanly, like the tray's Quit.
fn watch_signals(app: AppHandle) {
    #[cfg(unix)]
    tauri::async_runtime::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let kinds = [
            ("SIGINT", SignalKind::interrupt()),
            ("SIGTERM", SignalKind::terminate()),
            ("SIGHUP", SignalKind::hangup()),
        ];
        let mut streams = Vec::new();
        for (name, kind) in kinds {
            match signal(kind) {
                Ok(s) => streams.push((name, s)),
                Err(e) => tracing::warn!("cannot watch {name}: {e}"),
            }
        }
        if streams.is_empty() {
            return;
        }
        let waits = streams.iter_mut().map(|(name, s)| {
            Box::pin(async move {
                s.recv().await;
                *name
            })
        });
        let (name, _, _) = futures_util::future::select_all(waits).await;
        tracing::info!("{name} received");
        quit(&app);
    });
    #[cfg(not(unix))]
    let _ = app;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_start_args() {
        assert!(starts_hidden(&["berth", "--autostart"]));
        assert!(starts_hidden(&["berth", "--hidden"]));
        assert!(!starts_hidden(&["berth"]));
        assert!(!starts_hidden::<&str>(&[]));
    }
}
