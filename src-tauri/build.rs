//! Tauri's build step: embeds `tauri.conf.json`, the capabilities and the
//! icons, and generates the command permissions of the app.

fn main() {
    tauri_build::build()
}
