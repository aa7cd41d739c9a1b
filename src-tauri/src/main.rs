//! Berth's tray app: everything lives in the library (`berth_app::run`).

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    berth_core::mem::tune_allocator();
    if let Err(e) = berth_app::run() {
        eprintln!("berth: {e}");
        std::process::exit(1);
    }
}
