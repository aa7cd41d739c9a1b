//! The tray icon and its menu. What the menu shows is decided by
//! `berth_core::desktop::menu::build` from the controller's state; this
//! module only renders those items with Tauri's menu types, swaps the icon
//! per [`TrayState`], and turns a clicked item's id back into a
//! [`MenuAction`] (`MenuAction::parse`) and carries it out. The menu is
//! rebuilt on every change the bridge reports, unless it came out the same.

use berth_core::desktop::menu::{self, MenuAction, MenuItem, TrayState};
use berth_core::one_line::one_line;
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem as TauriItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_opener::OpenerExt;

use crate::{commands, window, AppState};

/// The tray icon's id.
pub const TRAY_ID: &str = "berth";

/// The icon for a tray state (32 px PNGs from `icons/`, embedded).
pub fn icon(state: TrayState) -> Image<'static> {
    match state {
        TrayState::Disconnected => tauri::include_image!("../icons/tray-disconnected.png"),
        TrayState::Connecting => tauri::include_image!("../icons/tray-connecting.png"),
        TrayState::Connected => tauri::include_image!("../icons/tray-connected.png"),
        TrayState::Error => tauri::include_image!("../icons/tray-error.png"),
    }
}

/// Creates the tray icon with the menu of the current state.
pub fn create(app: &AppHandle) -> tauri::Result<()> {
    let model = current_model(app);
    let rendered = render(app, &model)?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(model.tray))
        .tooltip(&model.tooltip)
        .menu(&rendered)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
        .build(app)?;
    remember(app, model);
    Ok(())
}

/// Rebuilds the menu (and icon, tooltip) if the state changed what it shows.
pub fn refresh(app: &AppHandle) -> tauri::Result<()> {
    let model = current_model(app);
    let state = app.state::<AppState>();
    let previous = state.lock_tray().clone();
    if previous.as_ref() == Some(&model) {
        return Ok(());
    }
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return Ok(());
    };
    let rendered = render(app, &model)?;
    tray.set_menu(Some(rendered))?;
    if previous.as_ref().map(|m| m.tray) != Some(model.tray) {
        tray.set_icon(Some(icon(model.tray)))?;
    }
    tray.set_tooltip(Some(&model.tooltip))?;
    remember(app, model);
    Ok(())
}

fn current_model(app: &AppHandle) -> menu::Menu {
    menu::build(&app.state::<AppState>().controller.menu_input())
}

fn remember(app: &AppHandle, model: menu::Menu) {
    *app.state::<AppState>().lock_tray() = Some(model);
}

/// Forces the next [`refresh`] to rebuild: a clicked check item toggles its
/// own mark, which must be redrawn from the state even if that did not change.
fn forget(app: &AppHandle) {
    *app.state::<AppState>().lock_tray() = None;
}

/// Renders the computed items as a Tauri menu.
fn render<R: Runtime>(app: &AppHandle<R>, model: &menu::Menu) -> tauri::Result<Menu<R>> {
    let rendered = Menu::new(app)?;
    for (i, item) in model.items.iter().enumerate() {
        match item {
            MenuItem::Label(text) => {
                let label = TauriItem::with_id(
                    app,
                    format!("label:{i}"),
                    escape(text),
                    false,
                    None::<&str>,
                )?;
                rendered.append(&label)?;
            }
            MenuItem::Action { id, text, enabled } => {
                let entry =
                    TauriItem::with_id(app, id.as_str(), escape(text), *enabled, None::<&str>)?;
                rendered.append(&entry)?;
            }
            MenuItem::Check {
                id,
                text,
                checked,
                enabled,
            } => {
                let entry = CheckMenuItem::with_id(
                    app,
                    id.as_str(),
                    escape(text),
                    *enabled,
                    *checked,
                    None::<&str>,
                )?;
                rendered.append(&entry)?;
            }
            MenuItem::Separator => rendered.append(&PredefinedMenuItem::separator(app)?)?,
        }
    }
    Ok(rendered)
}

/// Menu text is taken literally: `&` would otherwise mark a mnemonic.
fn escape(text: &str) -> String {
    text.replace('&', "&&")
}

/// Carries out a clicked item.
fn on_menu(app: &AppHandle, id: &str) {
    let action = match MenuAction::parse(id) {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!("tray: {e}");
            return;
        }
    };
    tracing::info!("tray: {}", action.id());
    let app = app.clone();
    match action {
        MenuAction::OpenWindow => window::open_or_log(&app),
        MenuAction::Quit => crate::quit(&app),
        MenuAction::OpenUrl(url) => {
            if let Err(e) = commands::check_local_url(&url)
                .and_then(|()| app.opener().open_url(&url, None::<&str>).map_err(one_line))
            {
                tracing::warn!("cannot open {url}: {e}");
            }
        }
        MenuAction::ToggleRemote(name) => {
            tauri::async_runtime::spawn(async move { toggle(&app, &name).await });
        }
        MenuAction::DefaultContext(name) => {
            let controller = app.state::<AppState>().controller.clone();
            let is_default = controller.settings().default_context.as_deref() == Some(&*name);
            let target = if is_default {
                None
            } else {
                Some(name.as_str())
            };
            if let Err(e) = controller.set_default_context(target) {
                tracing::warn!("tray: default context {name:?}: {e}");
            }
            // the menu shows the check mark the click toggled; put it right
            forget(&app);
            crate::bridge::publish(&app);
        }
        MenuAction::StartAtLogin => {
            let on = !app.state::<AppState>().controller.settings().start_at_login;
            if let Err(e) = commands::apply_start_at_login(&app, on) {
                tracing::warn!("tray: start at login: {e}");
            }
            forget(&app);
            crate::bridge::publish(&app);
        }
    }
}

/// Connects a remote that is not connected (or connecting), else disconnects it.
async fn toggle(app: &AppHandle, name: &str) {
    use berth_core::desktop::view::ConnectionState;
    let controller = app.state::<AppState>().controller.clone();
    let state = controller.view(name).map(|v| v.state);
    match state {
        Some(ConnectionState::Connected | ConnectionState::Connecting) => {
            controller.disconnect(name).await
        }
        Some(_) => {
            if let Err(e) = controller.connect(name).await {
                tracing::warn!("tray: connecting {name:?} failed: {e}");
            }
        }
        None => tracing::warn!("tray: no remote named {name:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ampersands_are_literal() {
        assert_eq!(escape("a & b"), "a && b");
        assert_eq!(escape("web_1 — x"), "web_1 — x");
    }

    #[test]
    fn every_state_has_an_icon() {
        for s in [
            TrayState::Disconnected,
            TrayState::Connecting,
            TrayState::Connected,
            TrayState::Error,
        ] {
            let i = icon(s);
            assert!((22..=32).contains(&i.width()) && i.width() == i.height());
        }
    }
}
