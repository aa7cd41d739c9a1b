//! The tray app's engine end to end, against the real test bed: a
//! `Controller` with its config, known_hosts and docker CLI config in a temp
//! dir and a keychain key in memory. Covers "Test connection" (unknown host
//! key → trust it → every step ok), connecting two remotes at once (the
//! Linux-like one over the unix socket, the Windows-like one over docker's
//! tcp endpoint), one remote failing without touching the others, the docker
//! context switch with the real CLI (and one made outside Berth, announced), forwards seen through `containers()` and
//! `subscribe()`, and shutdown recording what was connected.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::desktop::config::{Auth, Config, DockerEndpoint, Remote};
use berth_core::desktop::controller::{Controller, ControllerOptions};
use berth_core::desktop::probe::StepKind;
use berth_core::desktop::view::ConnectionState;
use berth_core::desktop::DesktopError;
use berth_core::keys::{self, MemoryStore, SecretStore};

/// A private directory for one test.
fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique(tag));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A memory keychain holding the test bed's key as `bed`.
fn store_with_key(tb: &Testbed) -> Arc<dyn SecretStore> {
    let store = MemoryStore::new();
    let pem = std::fs::read_to_string(tb.get("SSH_KEY")).unwrap();
    keys::import_private_key(&store, "bed", &pem, None).unwrap();
    Arc::new(store)
}

fn controller(dir: &Path, known_hosts: &Path, store: Arc<dyn SecretStore>) -> Arc<Controller> {
    Controller::new(ControllerOptions {
        config_path: dir.join("config.toml"),
        store,
        known_hosts: known_hosts.to_path_buf(),
        docker_config: Some(dir.join("docker")),
    })
    .unwrap()
}

/// The Linux-like remote, authenticating with the keychain key.
fn linux_remote(tb: &Testbed, name: &str) -> Remote {
    let mut r = Remote::new(name, "127.0.0.1", tb.get("SSH_USER"));
    r.port = tb.get("SSH_PORT").parse().unwrap();
    r.auth = Auth::Keychain { key: "bed".into() };
    r.listen = format!("tcp://127.0.0.1:{}", free_port());
    r.forward_ports = false;
    r.sync = false;
    r
}

/// The docker CLI with only DOCKER_CONFIG deciding where it goes (`host`: `-H`).
fn docker_cli(config: &Path, host: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("120").arg("docker");
    if let Some(h) = host {
        cmd.arg("-H").arg(h);
    }
    cmd.args(args)
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

async fn docker(config: &Path, host: Option<&str>, args: &[&str]) -> Output {
    let (config, host) = (config.to_path_buf(), host.map(String::from));
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_cli(&config, host.as_deref(), &args)
    })
    .await
    .unwrap()
}

fn current_context(config: &Path) -> String {
    let out = ok(docker_cli(
        config,
        None,
        &["context", "ls", "--format", "{{.Name}}\t{{.Current}}"],
    ));
    out.lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(_, c)| *c == "true")
        .map(|(n, _)| n.to_string())
        .unwrap_or_default()
}

fn state(ctl: &Controller, name: &str) -> ConnectionState {
    ctl.view(name).unwrap().state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_names_an_address_nothing_answers_at() {
    let tb = testbed();
    let dir = temp_dir("ctl-probe-closed");
    let ctl = controller(&dir, &dir.join("ssh/known_hosts"), store_with_key(tb));
    let mut remote = linux_remote(tb, "closed");
    remote.port = free_port();

    let steps = ctl.test_connection(&remote).await;
    assert_eq!(steps.len(), 1, "{steps:#?}");
    let tcp = &steps[0];
    assert!(!tcp.ok && tcp.step == StepKind::Tcp, "{tcp:?}");
    let at = format!("cannot reach 127.0.0.1:{}", remote.port);
    assert!(tcp.detail.contains(&at), "{tcp:?}");
    // the session's own advice, in the window's words
    let fix = tcp.fix.as_deref().unwrap_or_default();
    assert!(fix.contains("sshd runs there"), "{tcp:?}");
    assert!(
        !fix.contains("--"),
        "a berth-agent flag in the window: {fix}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_trusts_an_unknown_host_then_passes_every_step() {
    let tb = testbed();
    let dir = temp_dir("ctl-probe");
    let known_hosts = dir.join("ssh/known_hosts");
    std::fs::copy(tb.get("KNOWN_HOSTS_EMPTY"), dir.join("empty")).unwrap();
    let ctl = controller(&dir, &known_hosts, store_with_key(tb));
    let mut remote = linux_remote(tb, "probe");
    remote.sync = true; // so the sftp step really checks

    let steps = ctl.test_connection(&remote).await;
    assert_eq!(steps.len(), 2, "{steps:#?}");
    assert!(steps[0].ok && steps[0].step == StepKind::Tcp);
    let hk = &steps[1];
    assert_eq!(hk.step, StepKind::HostKey);
    assert!(!hk.ok && hk.fix.is_some(), "{hk:?}");
    let fp = tb.get("HOST_KEY_FINGERPRINT");
    assert_eq!(hk.fingerprint.as_deref(), Some(fp));

    // a fingerprint the server does not offer is not trusted
    let e = ctl
        .trust_host_key("127.0.0.1", remote.port, "SHA256:not-this-one")
        .await
        .unwrap_err();
    assert!(matches!(e, DesktopError::HostKeyMismatch { .. }), "{e}");
    assert!(!known_hosts.exists());

    ctl.trust_host_key("127.0.0.1", remote.port, fp)
        .await
        .unwrap();
    let text = std::fs::read_to_string(&known_hosts).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", remote.port)));
    // trusting again adds nothing
    ctl.trust_host_key("127.0.0.1", remote.port, fp)
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), text);

    let t = Instant::now();
    let steps = ctl.test_connection(&remote).await;
    eprintln!("test_connection (all steps): {:?}", t.elapsed());
    let kinds: Vec<StepKind> = steps.iter().map(|s| s.step).collect();
    use StepKind::{Docker, Endpoint, HostKey, Sftp, Tcp};
    assert_eq!(
        kinds,
        [Tcp, HostKey, StepKind::Auth, Docker, Endpoint, Sftp],
        "{steps:#?}"
    );
    assert!(steps.iter().all(|s| s.ok && s.fix.is_none()), "{steps:#?}");
    assert!(steps[3].detail.starts_with("Docker "), "{:?}", steps[3]);
    assert_eq!(steps[4].detail, "unix:///var/run/docker.sock");

    // a changed key is refused, with no fingerprint to trust
    let changed = dir.join("known_hosts_changed");
    std::fs::copy(tb.get("KNOWN_HOSTS_CHANGED"), &changed).unwrap();
    let ctl2 = controller(&dir.join("c2"), &changed, store_with_key(tb));
    let steps = ctl2.test_connection(&remote).await;
    let hk = steps.last().unwrap();
    assert!(
        hk.step == HostKey && !hk.ok && hk.fingerprint.is_none(),
        "{hk:?}"
    );
    assert!(hk.detail.contains("CHANGED"), "{hk:?}");
    let e = ctl2
        .trust_host_key("127.0.0.1", remote.port, fp)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            DesktopError::Ssh(berth_core::ssh::SshError::HostKeyChanged { .. })
        ),
        "{e}"
    );

    // a key missing from the keychain fails at auth, saying so
    remote.auth = Auth::Keychain {
        key: "missing".into(),
    };
    let steps = ctl.test_connection(&remote).await;
    let last = steps.last().unwrap();
    assert!(last.step == StepKind::Auth && !last.ok, "{steps:#?}");
    assert!(last.detail.contains("missing"), "{last:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remotes_connect_side_by_side_and_fail_alone() {
    let tb = testbed();
    let dir = temp_dir("ctl-run");
    let docker_config = dir.join("docker");
    let known_hosts = dir.join("known_hosts");
    std::fs::copy(tb.get("KNOWN_HOSTS"), &known_hosts).unwrap();
    let ctl = controller(&dir, &known_hosts, store_with_key(tb));
    let mut rx = ctl.subscribe();

    let mut lin = linux_remote(tb, "lin");
    lin.forward_ports = true; // to see forwards below
    let lin_host = lin.listen.clone();
    let mut win = Remote::new("win", "127.0.0.1", tb.get("SSH_USER"));
    win.port = tb.get("SSH_WIN_PORT").parse().unwrap();
    win.auth = Auth::KeyFile {
        path: tb.get("SSH_KEY").into(),
    };
    win.docker = DockerEndpoint::Tcp {
        addr: tb.get("DOCKER_TCP").into(),
    };
    win.listen = format!("unix://{}", dir.join("win.sock").display());
    win.forward_ports = false;
    win.sync = false;
    let win_host = win.listen.clone();
    let mut dead = linux_remote(tb, "dead");
    dead.port = free_port();
    for r in [&lin, &win, &dead] {
        ctl.save_remote(None, r.clone()).unwrap();
    }
    assert_eq!(
        Config::load_from(&dir.join("config.toml"))
            .unwrap()
            .remotes
            .len(),
        3
    );

    // a user context of their own, to be restored later
    ok(docker_cli(
        &docker_config,
        None,
        &[
            "context",
            "create",
            "mine",
            "--docker",
            "host=unix:///var/run/docker.sock",
        ],
    ));
    ok(docker_cli(
        &docker_config,
        None,
        &["context", "use", "mine"],
    ));

    let t = Instant::now();
    ctl.connect("lin").await.unwrap();
    let connect_time = t.elapsed();
    eprintln!("connect time (connect → connected), loopback: {connect_time:?}");
    let v = ctl.view("lin").unwrap();
    assert_eq!(v.state, ConnectionState::Connected);
    assert_eq!(v.endpoint.as_deref(), Some("unix:///var/run/docker.sock"));
    assert!(v.docker_version.is_some() && v.error.is_none());
    ok(docker(&docker_config, Some(&lin_host), &["ps"]).await);

    ctl.connect("win").await.unwrap();
    let v = ctl.view("win").unwrap();
    assert_eq!(v.state, ConnectionState::Connected);
    assert_eq!(v.endpoint, Some(format!("tcp://{}", tb.get("DOCKER_TCP"))));
    ok(docker(&docker_config, Some(&win_host), &["ps"]).await);

    // a closed port: error with one line, the others untouched
    let e = ctl.connect("dead").await.unwrap_err();
    let v = ctl.view("dead").unwrap();
    assert_eq!(v.state, ConnectionState::Error);
    let msg = v.error.unwrap();
    assert!(!msg.contains('\n') && msg.contains("cannot reach"), "{msg}");
    assert!(e.to_string().contains("cannot reach"), "{e}");
    assert_eq!(state(&ctl, "lin"), ConnectionState::Connected);
    assert_eq!(state(&ctl, "win"), ConnectionState::Connected);
    ok(docker(&docker_config, Some(&lin_host), &["ps"]).await);
    ok(docker(&docker_config, Some(&win_host), &["ps"]).await);

    // the default docker context: berth-lin current for plain docker, then restored
    ctl.set_default_context(Some("lin")).unwrap();
    assert_eq!(current_context(&docker_config), "berth-lin");
    assert!(ctl.view("lin").unwrap().default_context);
    ok(docker(&docker_config, None, &["ps"]).await);
    assert_eq!(ctl.settings().previous_context.as_deref(), Some("mine"));
    ctl.set_default_context(None).unwrap();
    assert_eq!(current_context(&docker_config), "mine");
    assert!(!ctl.view("lin").unwrap().default_context);

    // switched outside Berth (`docker context use` in a terminal): the
    // window hears of it from the docker config's watch, not by polling
    rx.borrow_and_update();
    ok(docker_cli(
        &docker_config,
        None,
        &["context", "use", "berth-lin"],
    ));
    let switched = Instant::now();
    let seen = async {
        loop {
            rx.changed().await.unwrap();
            if ctl.view("lin").unwrap().default_context {
                return switched.elapsed();
            }
        }
    };
    let seen = tokio::time::timeout(Duration::from_secs(2), seen)
        .await
        .expect("an outside `docker context use` was not announced within 2 s");
    eprintln!("outside context switch announced after {seen:?}");
    ok(docker_cli(
        &docker_config,
        None,
        &["context", "use", "mine"],
    ));
    let back = async {
        loop {
            rx.changed().await.unwrap();
            if !ctl.view("lin").unwrap().default_context {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(2), back)
        .await
        .expect("switching back outside Berth was not announced");

    // a published port: forwarded, seen in containers() and announced
    let name = unique("ctl-web");
    let port = free_port();
    rx.borrow_and_update();
    let publish = format!("{port}:80");
    let run = docker(
        &docker_config,
        Some(&lin_host),
        &[
            "run",
            "-d",
            "--name",
            &name,
            "-p",
            &publish,
            tb.image(),
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/",
        ],
    )
    .await;
    let returned = Instant::now();
    let seen = async {
        let mut fired = rx.has_changed().unwrap_or(false);
        loop {
            let fw = ctl.containers("lin").unwrap().forwards;
            let local = format!("localhost:{port}");
            if fired && fw.iter().any(|f| f.name == name && f.local == local) {
                return fw;
            }
            if let Ok(r) = tokio::time::timeout(Duration::from_millis(50), rx.changed()).await {
                fired |= r.is_ok();
            }
        }
    };
    let seen = tokio::time::timeout(Duration::from_millis(500), seen).await;
    let after = returned.elapsed();
    let cleanup = docker(&docker_config, Some(&lin_host), &["rm", "-f", &name]).await;
    ok(run);
    let forwards = seen.unwrap_or_else(|_| {
        panic!(
            "no forward announced within 500 ms: {:?}",
            ctl.containers("lin")
        )
    });
    eprintln!("forward announced {after:?} after `docker run -d` returned");
    let f = forwards.iter().find(|f| f.name == name).unwrap();
    assert_eq!(
        (f.remote.as_str(), f.state),
        ("80/tcp", berth_core::state::ForwardState::Listening)
    );
    ok(cleanup);
    assert!(ctl.containers("win").unwrap().forwards.is_empty());
    assert!(ctl.containers("dead").is_none());

    // disconnecting one leaves the other working
    ctl.disconnect("win").await;
    assert_eq!(state(&ctl, "win"), ConnectionState::Disconnected);
    assert!(!docker(&docker_config, Some(&win_host), &["ps"])
        .await
        .status
        .success());
    ok(docker(&docker_config, Some(&lin_host), &["ps"]).await);

    // shutdown: connected remotes recorded, all stopped, context restored
    ctl.set_default_context(Some("lin")).unwrap();
    ctl.shutdown().await;
    assert_eq!(ctl.settings().connected, ["lin"]);
    let saved = Config::load_from(&dir.join("config.toml")).unwrap();
    assert_eq!(saved.settings.connected, ["lin"]);
    assert!(ctl
        .views()
        .iter()
        .all(|v| v.state != ConnectionState::Connected));
    assert!(!docker(&docker_config, Some(&lin_host), &["ps"])
        .await
        .status
        .success());
    assert_eq!(current_context(&docker_config), "mine");

    // the next start reconnects it (and makes its context current again)
    let ctl = controller(&dir, &known_hosts, store_with_key(tb));
    ctl.restore_connected().await;
    assert_eq!(state(&ctl, "lin"), ConnectionState::Connected);
    assert_eq!(state(&ctl, "win"), ConnectionState::Disconnected);
    assert_eq!(current_context(&docker_config), "berth-lin");
    ctl.remove_remote("lin").await.unwrap();
    assert_eq!(current_context(&docker_config), "mine");
    assert!(ctl.view("lin").is_none());
    ctl.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A remote whose "Jump host" field names two bastions (tests/testbed/jumpnet.sh:
/// the target is reachable through them only) connects through them, as the
/// window's Connect does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_behind_jump_hosts_connects_through_them() {
    let tb = testbed();
    let up = Command::new("bash")
        .arg(repo_root().join("tests/testbed/jumpnet.sh"))
        .arg("up")
        .output()
        .unwrap();
    assert!(up.status.success(), "jumpnet.sh up: {}", stderr(&up));
    let dir = temp_dir("ctl-jump");
    let known_hosts = dir.join("known_hosts");
    std::fs::copy(
        Path::new(tb.get("BERTH_TESTBED_DIR")).join("jump/known_hosts"),
        &known_hosts,
    )
    .unwrap();
    let ctl = controller(&dir, &known_hosts, store_with_key(tb));
    let mut r = linux_remote(tb, "behind");
    (r.host, r.port, r.user) = ("10.231.3.2".into(), 22, "root".into());
    let direct = r.clone();
    r.jump = Some("10.231.1.2, root@10.231.2.2:22".into());
    let host = r.listen.clone();
    ctl.save_remote(None, r).unwrap();
    ctl.connect("behind").await.unwrap();
    assert_eq!(state(&ctl, "behind"), ConnectionState::Connected);
    ok(docker(&dir.join("docker"), Some(&host), &["ps"]).await);
    ctl.disconnect("behind").await;
    // without the jump hosts the same remote is out of reach
    let mut direct = direct;
    direct.name = "direct".into();
    direct.listen = format!("tcp://127.0.0.1:{}", free_port());
    ctl.save_remote(None, direct).unwrap();
    let e = ctl.connect("direct").await.unwrap_err();
    assert!(e.to_string().contains("cannot reach 10.231.3.2:22"), "{e}");
    ctl.shutdown().await;
}
