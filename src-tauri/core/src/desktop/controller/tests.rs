//! The controller without a remote: config edits persisted, renames keeping
//! state, the default docker context switched and restored in a private
//! docker config dir, a remote that cannot connect failing alone with a
//! one-line error, notifications, and keys through the memory keychain.

use super::*;
use crate::keys::MemoryStore;

fn setup(tag: &str) -> (PathBuf, Arc<Controller>) {
    let dir = std::env::temp_dir().join(format!("berth-ctl-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ctl = Controller::new(ControllerOptions {
        config_path: dir.join("config.toml"),
        store: Arc::new(MemoryStore::new()),
        known_hosts: dir.join("known_hosts"),
        docker_config: Some(dir.join("docker")),
    })
    .unwrap();
    (dir, ctl)
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn remote(name: &str, listen_port: u16) -> Remote {
    let mut r = Remote::new(name, "127.0.0.1", "u");
    r.port = closed_port();
    r.listen = format!("tcp://127.0.0.1:{listen_port}");
    r.sync = false;
    r.forward_ports = false;
    r
}

#[test]
fn edits_are_saved_and_renames_keep_the_settings() {
    let (dir, ctl) = setup("edit");
    ctl.save_remote(None, remote("a", 23900)).unwrap();
    ctl.save_remote(None, remote("b", 23901)).unwrap();
    // a second remote on the same endpoint is refused, nothing saved
    let e = ctl.save_remote(None, remote("c", 23900)).unwrap_err();
    assert!(e.to_string().contains("listen"), "{e}");
    ctl.set_start_at_login(true).unwrap();
    ctl.set_default_context(Some("a")).unwrap();
    ctl.save_remote(Some("a"), remote("renamed", 23900))
        .unwrap();
    let saved = Config::load_from(&dir.join("config.toml")).unwrap();
    let names: Vec<&str> = saved.remotes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["renamed", "b"]);
    assert!(saved.settings.start_at_login);
    assert_eq!(saved.settings.default_context.as_deref(), Some("renamed"));
    let view = ctl.settings_view();
    assert!(view.start_at_login);
    assert!(matches!(
        ctl.save_remote(Some("nope"), remote("x", 23902)),
        Err(DesktopError::NoSuchRemote(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn default_context_switches_and_restores() {
    let (dir, ctl) = setup("ctx");
    let contexts = DockerContexts::at(dir.join("docker"));
    ctl.save_remote(None, remote("a", 23910)).unwrap();
    ctl.save_remote(None, remote("b", 23911)).unwrap();
    assert!(matches!(
        ctl.set_default_context(Some("zz")),
        Err(DesktopError::NoSuchRemote(_))
    ));
    ctl.set_default_context(Some("a")).unwrap();
    assert_eq!(contexts.current().unwrap().as_deref(), Some("berth-a"));
    assert!(ctl.view("a").unwrap().default_context);
    assert_eq!(
        contexts.endpoint("berth-a").unwrap().as_deref(),
        Some("tcp://127.0.0.1:23910")
    );
    // switching from one Berth context to another keeps the one to restore
    ctl.set_default_context(Some("b")).unwrap();
    assert_eq!(contexts.current().unwrap().as_deref(), Some("berth-b"));
    assert_eq!(ctl.settings().previous_context, None);
    ctl.set_default_context(None).unwrap();
    assert_eq!(contexts.current().unwrap(), None);
    assert_eq!(ctl.settings().default_context, None);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_failing_remote_reports_one_line_and_notifies() {
    let (dir, ctl) = setup("fail");
    let mut rx = ctl.subscribe();
    ctl.save_remote(None, remote("a", 23920)).unwrap();
    assert!(matches!(
        ctl.connect("zz").await,
        Err(DesktopError::NoSuchRemote(_))
    ));
    rx.borrow_and_update();
    let e = ctl.connect("a").await.unwrap_err();
    assert!(rx.has_changed().unwrap());
    let v = ctl.view("a").unwrap();
    assert_eq!(v.state, ConnectionState::Error);
    let msg = v.error.unwrap();
    assert!(msg.contains("cannot reach") && !msg.contains('\n'), "{msg}");
    assert!(e.to_string().starts_with("remote \"a\": "), "{e}");
    assert!(ctl.containers("a").is_none());
    ctl.disconnect("a").await;
    assert_eq!(ctl.view("a").unwrap().state, ConnectionState::Disconnected);
    let menu = super::menu::build(&ctl.menu_input());
    assert_eq!(menu.tray, super::menu::TrayState::Disconnected);
    ctl.remove_remote("a").await.unwrap();
    assert!(ctl.views().is_empty());
    ctl.shutdown().await;
    assert!(ctl.settings().connected.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_missing_keychain_key_fails_the_connect() {
    let (dir, ctl) = setup("nokey");
    let mut r = remote("a", 23930);
    r.auth = super::super::config::Auth::Keychain { key: "gone".into() };
    ctl.save_remote(None, r).unwrap();
    let e = ctl.connect("a").await.unwrap_err();
    assert!(e.to_string().contains("gone"), "{e}");
    assert_eq!(ctl.view("a").unwrap().state, ConnectionState::Error);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn keys_go_through_the_store() {
    let (dir, ctl) = setup("keys");
    let info = ctl.generate_key("work", "").await.unwrap();
    assert_eq!(info.algorithm, "ssh-ed25519");
    let listed = ctl.list_keys().await.unwrap();
    assert_eq!(listed, [info]);
    assert!(ctl.generate_key("work", "").await.is_err());
    ctl.delete_key("work").await.unwrap();
    assert!(ctl.list_keys().await.unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn disconnect_cancels_a_connect_in_flight_and_shutdown_ends_connecting() {
    let (dir, ctl) = setup("cancel");
    // a listener that accepts but never speaks SSH: connecting hangs
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut r = remote("a", 23940);
    r.port = silent.local_addr().unwrap().port();
    ctl.save_remote(None, r).unwrap();
    let c2 = ctl.clone();
    let attempt = tokio::spawn(async move { c2.connect("a").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ctl.view("a").unwrap().state, ConnectionState::Connecting);
    let t = std::time::Instant::now();
    ctl.disconnect("a").await;
    let r = attempt.await.unwrap();
    assert!(matches!(r, Err(DesktopError::Cancelled(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(ctl.view("a").unwrap().state, ConnectionState::Disconnected);
    ctl.shutdown().await;
    assert!(matches!(
        ctl.connect("a").await,
        Err(DesktopError::Cancelled(_))
    ));
    assert_eq!(ctl.view("a").unwrap().state, ConnectionState::Disconnected);
    drop(silent);
    std::fs::remove_dir_all(&dir).unwrap();
}
