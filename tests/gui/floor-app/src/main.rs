//! An empty Tauri 2 tray app: the framework's memory floor (see Cargo.toml).
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;

fn main() -> Result<(), tauri::Error> {
    tauri::Builder::default()
        .setup(|app| {
            let status = MenuItem::with_id(app, "status", "floor — idle", true, None::<&str>)?;
            let sep = PredefinedMenuItem::separator(app)?;
            let login =
                CheckMenuItem::with_id(app, "login", "Start at login", true, false, None::<&str>)?;
            let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
            let menu = Menu::with_items(app, &[&status, &sep, &login, &quit])?;
            let icon = app
                .default_window_icon()
                .cloned()
                .ok_or("the floor app has no default window icon")?;
            TrayIconBuilder::with_id("floor")
                .icon(icon)
                .menu(&menu)
                .on_menu_event(|app, e| {
                    if e.id.as_ref() == "quit" {
                        app.exit(0)
                    }
                })
                .build(app)?;
            Ok(())
        })
        .build(tauri::generate_context!())?
        .run(|_, e| {
            if let tauri::RunEvent::ExitRequested {
                api, code: None, ..
            } = e
            {
                api.prevent_exit()
            }
        });
    Ok(())
}
