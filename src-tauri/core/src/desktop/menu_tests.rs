use super::*;

fn remote(name: &str, state: RemoteState) -> RemoteView {
    RemoteView {
        name: name.into(),
        state,
        is_default_context: false,
        forwards: Vec::new(),
    }
}

fn fwd(container: &str, local: &str, remote: &str, state: ForwardState) -> ForwardView {
    ForwardView {
        container: container.into(),
        local: local.into(),
        remote: remote.into(),
        state,
    }
}

fn act(id: &str, text: &str, enabled: bool) -> MenuItem {
    MenuItem::Action {
        id: id.into(),
        text: text.into(),
        enabled,
    }
}

fn check(id: &str, text: &str, checked: bool, enabled: bool) -> MenuItem {
    MenuItem::Check {
        id: id.into(),
        text: text.into(),
        checked,
        enabled,
    }
}

fn footer(start_at_login: bool) -> Vec<MenuItem> {
    vec![
        MenuItem::Separator,
        check("start-at-login", "Start at login", start_at_login, true),
        act("open-window", "Open Berth…", true),
        act("quit", "Quit", true),
    ]
}

fn ctx(name: &str, checked: bool, enabled: bool) -> MenuItem {
    check(
        &format!("remote:{name}:default-context"),
        "Use as default Docker context",
        checked,
        enabled,
    )
}

#[test]
fn menus() {
    let mut connected = remote("build", RemoteState::Connected);
    connected.is_default_context = true;
    connected.forwards = vec![
        fwd("web", "localhost:8080", "80/tcp", ForwardState::Listening),
        fwd("api", "127.0.0.1:9000", "9000/tcp", ForwardState::Listening),
        fwd(
            "api",
            "0.0.0.0:9443",
            "443/tcp",
            ForwardState::Failed("address in use\nmore".into()),
        ),
    ];
    // forwards of a remote that is not connected are not shown
    let mut down = remote("win", RemoteState::Disconnected);
    down.forwards = vec![fwd("x", "localhost:1", "1/tcp", ForwardState::Listening)];
    let long = "e".repeat(100);
    let table: Vec<(MenuInput, Vec<MenuItem>, TrayState, &str)> = vec![
        (
            MenuInput::default(),
            vec![MenuItem::Label("No remotes yet — add one in Berth…".into())],
            TrayState::Disconnected,
            "Berth — no remotes",
        ),
        (
            MenuInput {
                remotes: vec![connected, down],
                start_at_login: true,
            },
            vec![
                act(
                    "remote:build:toggle",
                    "build — connected — click to disconnect",
                    true,
                ),
                ctx("build", true, true),
                act(
                    "open-url:http://127.0.0.1:9000",
                    "api — 127.0.0.1:9000 → 9000/tcp",
                    true,
                ),
                act(
                    "open-url:http://localhost:9443",
                    "api — 0.0.0.0:9443 → 443/tcp (failed: address in use)",
                    false,
                ),
                act(
                    "open-url:http://localhost:8080",
                    "web — localhost:8080 → 80/tcp",
                    true,
                ),
                MenuItem::Separator,
                act(
                    "remote:win:toggle",
                    "win — disconnected — click to connect",
                    true,
                ),
                ctx("win", false, false),
            ],
            TrayState::Connected,
            "Berth — 1 of 2 connected",
        ),
        (
            MenuInput {
                remotes: vec![
                    remote("a", RemoteState::Connecting),
                    remote("b", RemoteState::Error(long.clone())),
                ],
                start_at_login: false,
            },
            vec![
                act("remote:a:toggle", "a — connecting… — click to cancel", true),
                ctx("a", false, false),
                MenuItem::Separator,
                act(
                    "remote:b:toggle",
                    &format!("b — error: {}… — click to retry", "e".repeat(79)),
                    true,
                ),
                ctx("b", false, false),
            ],
            TrayState::Error,
            "Berth — 0 of 2 connected",
        ),
    ];
    for (input, body, tray, tooltip) in table {
        let menu = build(&input);
        let start = input.start_at_login;
        let want: Vec<MenuItem> = body.into_iter().chain(footer(start)).collect();
        assert_eq!(menu.items, want, "{input:?}");
        assert_eq!(menu.tray, tray, "{input:?}");
        assert_eq!(menu.tooltip, tooltip);
    }
}

#[test]
fn tray_state_summarises_all_remotes() {
    use RemoteState::*;
    let err = || Error("x".into());
    let table = [
        (vec![], TrayState::Disconnected),
        (vec![Disconnected, Disconnected], TrayState::Disconnected),
        (vec![Disconnected, Connected], TrayState::Connected),
        (vec![Connected, Connecting], TrayState::Connecting),
        (vec![Connected, err(), Connecting], TrayState::Error),
        (vec![err()], TrayState::Error),
    ];
    for (states, want) in table {
        let remotes: Vec<_> = states
            .iter()
            .enumerate()
            .map(|(i, s)| remote(&format!("r{i}"), s.clone()))
            .collect();
        assert_eq!(tray_state(&remotes), want, "{states:?}");
    }
}

#[test]
fn every_item_id_round_trips() {
    let actions = [
        MenuAction::ToggleRemote("build.box_1-a".into()),
        MenuAction::DefaultContext("x".into()),
        MenuAction::OpenUrl("http://localhost:8080".into()),
        MenuAction::OpenUrl("http://[::1]:8080/a:b".into()),
        MenuAction::StartAtLogin,
        MenuAction::OpenWindow,
        MenuAction::Quit,
    ];
    for a in actions {
        assert_eq!(MenuAction::parse(&a.id()).unwrap(), a);
        assert_eq!(a.id().parse::<MenuAction>().unwrap(), a);
    }
    // and every id a built menu carries parses
    let mut r = remote("r", RemoteState::Connected);
    r.forwards = vec![fwd("w", "localhost:1", "1/tcp", ForwardState::Listening)];
    let menu = build(&MenuInput {
        remotes: vec![r],
        start_at_login: false,
    });
    for item in &menu.items {
        if let MenuItem::Action { id, .. } | MenuItem::Check { id, .. } = item {
            assert_eq!(MenuAction::parse(id).unwrap().id(), *id);
        }
    }
    for bad in [
        "",
        "nope",
        "remote:",
        "remote:x",
        "remote::toggle",
        "remote:x:explode",
        "open-url:",
        "Quit",
    ] {
        let e = MenuAction::parse(bad).unwrap_err();
        assert!(matches!(e, DesktopError::UnknownAction(_)), "{bad}");
    }
}

#[test]
fn forward_urls() {
    for (local, url) in [
        ("localhost:8080", "http://localhost:8080"),
        ("127.0.0.1:80", "http://127.0.0.1:80"),
        ("[::1]:80", "http://[::1]:80"),
        ("0.0.0.0:3000", "http://localhost:3000"),
        ("[::]:3000", "http://localhost:3000"),
        (":3000", "http://localhost:3000"),
    ] {
        assert_eq!(forward_url(local), url);
    }
}
