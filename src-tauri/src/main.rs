//! Berth's tray app: everything lives in the library (`berth_app::run`).

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // two malloc arenas instead of eight per core: the app's threads are
    // mostly idle, and every arena keeps its own freed pages
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    if let Err(e) = berth_app::run() {
        eprintln!("berth: {e}");
        std::process::exit(1);
    }
}
