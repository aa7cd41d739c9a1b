//! Tauri's build step: embeds `tauri.conf.json`, the capabilities and the
//! icons, and generates the command permissions of the app.
//!
//! The app's commands are declared here so that Tauri puts them under its
//! access control: without an app manifest every registered command is open
//! to the webview whatever `capabilities/default.json` says. With it, the
//! window may call only the `allow-<command>` permissions that capability
//! lists (tests/capabilities.rs holds the capability to exactly what `ui/js`
//! calls, and this list to the commands `src/lib.rs` registers).

/// Every command of `tauri::generate_handler!` in `src/lib.rs`.
const COMMANDS: &[&str] = &[
    "list_remotes",
    "save_remote",
    "remove_remote",
    "import_ssh_config",
    "connect",
    "disconnect",
    "test_connection",
    "trust_host_key",
    "list_keys",
    "generate_key",
    "import_key",
    "delete_key",
    "containers",
    "set_default_context",
    "get_settings",
    "set_start_at_login",
    "activity",
    "open_url",
];

fn main() {
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(error) = tauri_build::try_build(attributes) {
        // as tauri_build::build() reports it: cargo shows a build script's stdout
        println!("{error:#}");
        std::process::exit(1);
    }
}
