//! The tray menu, computed from state by one pure function ([`build`]) so
//! that what the user sees is table-tested without a window toolkit. The
//! Tauri app renders the [`MenuItem`]s as they come and hands a clicked
//! item's id back to [`MenuAction::parse`]. Per remote: its state (click
//! connects or disconnects), "Use as default Docker context" (only for a
//! connected remote), and its forwarded ports per container (click opens the
//! page); then "Start at login", "Open Berth…" and "Quit".

use super::DesktopError;

/// One remote's connection, as the tray shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteState {
    Disconnected,
    Connecting,
    Connected,
    /// The last attempt or the session failed; the one-line reason.
    Error(String),
}

/// One forwarded port's local listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardState {
    Listening,
    /// The listener could not open; the reason.
    Failed(String),
}

/// One forwarded port of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardView {
    /// The container's name, e.g. `web`.
    pub container: String,
    /// The local side, e.g. `localhost:8080`.
    pub local: String,
    /// The container side, e.g. `80/tcp`.
    pub remote: String,
    pub state: ForwardState,
}

/// What the menu needs to know about one remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteView {
    pub name: String,
    pub state: RemoteState,
    /// Its `berth-<name>` context is the docker CLI's current one.
    pub is_default_context: bool,
    pub forwards: Vec<ForwardView>,
}

/// The whole state the menu is computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MenuInput {
    pub remotes: Vec<RemoteView>,
    pub start_at_login: bool,
}

/// One entry of the tray menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuItem {
    /// Text that cannot be clicked (headers, notes).
    Label(String),
    /// A clickable entry; `id` round-trips through [`MenuAction::parse`].
    Action {
        id: String,
        text: String,
        enabled: bool,
    },
    /// A checkable entry.
    Check {
        id: String,
        text: String,
        checked: bool,
        enabled: bool,
    },
    Separator,
}

/// The tray icon's state, summarising all remotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayState {
    Disconnected,
    Connecting,
    Connected,
    Error,
}

/// The computed menu, icon state and tooltip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    pub items: Vec<MenuItem>,
    pub tray: TrayState,
    pub tooltip: String,
}

/// What a click on a menu item asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuAction {
    /// Connect the remote if it is not connected, else disconnect it.
    ToggleRemote(String),
    /// Make (or stop making) the remote's context the default one.
    DefaultContext(String),
    /// Open a URL in the browser.
    OpenUrl(String),
    StartAtLogin,
    OpenWindow,
    Quit,
}

/// Longest error text shown in the menu (the window shows all of it).
const MAX_ERROR_CHARS: usize = 80;

impl MenuAction {
    /// The stable id carried by the menu item.
    pub fn id(&self) -> String {
        match self {
            MenuAction::ToggleRemote(n) => format!("remote:{n}:toggle"),
            MenuAction::DefaultContext(n) => format!("remote:{n}:default-context"),
            MenuAction::OpenUrl(u) => format!("open-url:{u}"),
            MenuAction::StartAtLogin => "start-at-login".into(),
            MenuAction::OpenWindow => "open-window".into(),
            MenuAction::Quit => "quit".into(),
        }
    }

    /// The action for a menu item's id.
    pub fn parse(id: &str) -> Result<Self, DesktopError> {
        let unknown = || DesktopError::UnknownAction(id.to_string());
        if let Some(url) = id.strip_prefix("open-url:") {
            return if url.is_empty() {
                Err(unknown())
            } else {
                Ok(MenuAction::OpenUrl(url.to_string()))
            };
        }
        if let Some(rest) = id.strip_prefix("remote:") {
            let (name, what) = rest.rsplit_once(':').ok_or_else(unknown)?;
            if name.is_empty() {
                return Err(unknown());
            }
            return match what {
                "toggle" => Ok(MenuAction::ToggleRemote(name.to_string())),
                "default-context" => Ok(MenuAction::DefaultContext(name.to_string())),
                _ => Err(unknown()),
            };
        }
        match id {
            "start-at-login" => Ok(MenuAction::StartAtLogin),
            "open-window" => Ok(MenuAction::OpenWindow),
            "quit" => Ok(MenuAction::Quit),
            _ => Err(unknown()),
        }
    }
}

impl std::str::FromStr for MenuAction {
    type Err = DesktopError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The icon state: any error wins, then connecting, then connected.
pub fn tray_state(remotes: &[RemoteView]) -> TrayState {
    let any = |f: fn(&RemoteState) -> bool| remotes.iter().any(|r| f(&r.state));
    if any(|s| matches!(s, RemoteState::Error(_))) {
        TrayState::Error
    } else if any(|s| *s == RemoteState::Connecting) {
        TrayState::Connecting
    } else if any(|s| *s == RemoteState::Connected) {
        TrayState::Connected
    } else {
        TrayState::Disconnected
    }
}

/// The URL a forward opens: its local side, with "all interfaces" as localhost.
pub fn forward_url(local: &str) -> String {
    let local = ["0.0.0.0:", "[::]:", ":"]
        .iter()
        .find_map(|p| {
            local
                .strip_prefix(p)
                .map(|port| format!("localhost:{port}"))
        })
        .unwrap_or_else(|| local.to_string());
    format!("http://{local}")
}

/// The menu for `input`.
pub fn build(input: &MenuInput) -> Menu {
    let mut items = Vec::new();
    if input.remotes.is_empty() {
        items.push(MenuItem::Label("No remotes yet — add one in Berth…".into()));
    }
    for (i, r) in input.remotes.iter().enumerate() {
        if i > 0 {
            items.push(MenuItem::Separator);
        }
        remote_items(r, &mut items);
    }
    items.push(MenuItem::Separator);
    items.push(MenuItem::Check {
        id: MenuAction::StartAtLogin.id(),
        text: "Start at login".into(),
        checked: input.start_at_login,
        enabled: true,
    });
    items.push(action(MenuAction::OpenWindow, "Open Berth…", true));
    items.push(action(MenuAction::Quit, "Quit", true));
    let connected = input
        .remotes
        .iter()
        .filter(|r| r.state == RemoteState::Connected)
        .count();
    let tooltip = match input.remotes.len() {
        0 => "Berth — no remotes".to_string(),
        n => format!("Berth — {connected} of {n} connected"),
    };
    Menu {
        items,
        tray: tray_state(&input.remotes),
        tooltip,
    }
}

fn remote_items(r: &RemoteView, items: &mut Vec<MenuItem>) {
    let state = match &r.state {
        RemoteState::Disconnected => "disconnected — click to connect".to_string(),
        RemoteState::Connecting => "connecting… — click to cancel".to_string(),
        RemoteState::Connected => "connected — click to disconnect".to_string(),
        RemoteState::Error(e) => format!("error: {} — click to retry", short(e)),
    };
    let toggle = MenuAction::ToggleRemote(r.name.clone());
    items.push(action(toggle, &format!("{} — {state}", r.name), true));
    let connected = r.state == RemoteState::Connected;
    items.push(MenuItem::Check {
        id: MenuAction::DefaultContext(r.name.clone()).id(),
        text: "Use as default Docker context".into(),
        checked: r.is_default_context,
        enabled: connected,
    });
    if !connected {
        return;
    }
    let mut forwards: Vec<&ForwardView> = r.forwards.iter().collect();
    let port = |f: &ForwardView| {
        let p = f
            .local
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok());
        p.unwrap_or(0)
    };
    forwards
        .sort_by(|a, b| (&a.container, port(a), &a.local).cmp(&(&b.container, port(b), &b.local)));
    for f in forwards {
        let text = format!("{} — {} → {}", f.container, f.local, f.remote);
        let open = MenuAction::OpenUrl(forward_url(&f.local));
        items.push(match &f.state {
            ForwardState::Listening => action(open, &text, true),
            ForwardState::Failed(e) => {
                action(open, &format!("{text} (failed: {})", short(e)), false)
            }
        });
    }
}

fn action(a: MenuAction, text: &str, enabled: bool) -> MenuItem {
    MenuItem::Action {
        id: a.id(),
        text: text.to_string(),
        enabled,
    }
}

/// The first line of `s`, at most [`MAX_ERROR_CHARS`] characters.
fn short(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default().trim();
    if line.chars().count() <= MAX_ERROR_CHARS {
        return line.to_string();
    }
    let cut: String = line.chars().take(MAX_ERROR_CHARS - 1).collect();
    format!("{cut}…")
}

#[cfg(test)]
#[path = "menu_tests.rs"]
mod tests;
