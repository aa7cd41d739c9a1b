//! The other user of the remote daemon: it reads the labels of this
//! machine's containers and forges or copies them onto containers of its
//! own, created straight on the daemon, behind Berth's back. Nothing of this
//! machine may be uploaded, and no local port may open, because of them.

use crate::common::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Every agent of this machine follows this machine's containers, so the
/// tests that sync or forward take turns (as tests/sync.rs does).
fn turn() -> std::sync::MutexGuard<'static, ()> {
    crate::SYNC_TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Containers removed at the end, straight on the daemon.
struct Cleanup(Vec<String>);

impl Cleanup {
    fn name(&mut self, prefix: &str) -> String {
        let n = unique(prefix);
        self.0.push(n.clone());
        n
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = docker_at(&testbed().direct_host(), &["rm", "-f", n]);
        }
    }
}

/// A local folder holding something the attacker wants.
fn secret_dir() -> PathBuf {
    let d = std::env::temp_dir().join(unique("secret-home"));
    std::fs::create_dir_all(d.join(".ssh")).unwrap();
    std::fs::write(d.join(".ssh/id_ed25519"), "PRIVATE KEY MATERIAL\n").unwrap();
    d
}

fn direct(args: &[&str]) -> String {
    ok(docker_at(&testbed().direct_host(), args))
}

fn labels_of(name: &str) -> serde_json::Value {
    let out = direct(&["inspect", "--format", "{{json .Config.Labels}}", name]);
    serde_json::from_str(out.trim()).unwrap()
}

/// Creates and starts a container straight on the daemon, with `labels`.
fn attacker_container(name: &str, labels: &[(&str, String)], publish: Option<&str>) {
    let tb = testbed();
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.into()];
    for (k, v) in labels {
        args.push("--label".into());
        args.push(format!("{k}={v}"));
    }
    if let Some(p) = publish {
        args.push("-p".into());
        args.push(p.into());
    }
    args.extend([tb.image().to_string(), "sleep".into(), "600".into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    direct(&refs);
}

/// Whether anything on this machine listens on TCP `port` (any address).
/// Whether the agent process `pid` listens on `port`. The port was only
/// reserved by the test and released, so another process of this machine
/// (a neighbouring test's server, docker-proxy) may hold it: that is not
/// Berth opening it.
fn listening(pid: u32, port: u16) -> bool {
    !listeners(pid, port).is_empty()
}

/// The `ss` lines of the listeners process `pid` has on `port`.
fn listeners(pid: u32, port: u16) -> String {
    let out = std::process::Command::new("ss")
        .args(["-Hltnp", &format!("sport = :{port}")])
        .output()
        .expect("ss");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The remote folders holding replicas of `local` (the test bed's remote
/// is this machine: the mounts root is the SSH user's, root's).
fn replicas_of(local: &Path) -> Vec<PathBuf> {
    let base = local.file_name().unwrap().to_string_lossy().into_owned();
    let root = PathBuf::from("/root/.cache/berth/mounts");
    let mut found = Vec::new();
    for machine in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for e in std::fs::read_dir(machine.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with(&base) {
                found.push(e.path());
            }
        }
    }
    found
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

fn mount_locals(port: u16) -> Vec<String> {
    status(port)["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["local"].as_str().map(String::from))
        .collect()
}

#[test]
fn forged_and_copied_labels_sync_nothing_and_open_nothing() {
    let _turn = turn();
    let tb = testbed();
    let mut cleanup = Cleanup(Vec::new());
    let mut a = agent();

    // the user's own container, through Berth: synced and forwarded
    let mine = Tree::new("mine");
    let real = cleanup.name("real");
    let p_real = free_port();
    ok(docker_at(
        &a.host,
        &[
            "create",
            "--name",
            &real,
            "-v",
            &format!("{}:/app", mine.0.display()),
            "-p",
            &format!("{p_real}:80"),
            tb.image(),
            "sleep",
            "600",
        ],
    ));
    let real_labels = labels_of(&real);
    let mounts_label = real_labels["dev.berth.mounts"]
        .as_str()
        .unwrap()
        .to_string();
    let ports_label = real_labels["dev.berth.ports"].as_str().unwrap().to_string();
    let owner = serde_json::from_str::<serde_json::Value>(&mounts_label).unwrap()["owner"]
        .as_str()
        .unwrap()
        .to_string();

    // 1. a forged mounts label with the real owner id naming the user's home
    let secret = secret_dir();
    let forged_mounts = serde_json::json!({"owner": owner, "paths": [secret]}).to_string();
    // 2. a forged ports label: all interfaces, a port of the attacker's choice
    let p_forged = free_port();
    let forged_ports = serde_json::json!({
        "bindings": [{"container": "80/tcp", "requested_ip": "0.0.0.0",
                      "listen_ip": "0.0.0.0", "host_port": p_forged}],
        "publish_all": false, "port_bindings": {}
    })
    .to_string();
    let forger = cleanup.name("forger");
    attacker_container(
        &forger,
        &[
            ("dev.berth.mounts", forged_mounts),
            ("dev.berth.ports", forged_ports),
        ],
        Some("127.0.0.1::80"),
    );
    // 3. the real container's labels copied verbatim onto a new one, started
    // while the real one is not running
    let copier = cleanup.name("copier");
    attacker_container(
        &copier,
        &[
            ("dev.berth.mounts", mounts_label.clone()),
            ("dev.berth.ports", ports_label.clone()),
        ],
        Some("127.0.0.1::80"),
    );

    let check = |a: &AgentProc, when: &str| {
        // the events were seen: give Berth every chance to act on them
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            replicas_of(&secret).is_empty(),
            "{when}: the forged label made Berth upload {}: {:?}",
            secret.display(),
            replicas_of(&secret)
        );
        assert!(
            !mount_locals(a.port()).contains(&secret.display().to_string()),
            "{when}: status lists the forged mount"
        );
        assert!(
            !listening(a.pid(), p_forged),
            "{when}: the forged ports label opened :{p_forged}"
        );
        assert!(
            !listening(a.pid(), p_real),
            "{when}: the copied ports label opened :{p_real}"
        );
        let forwards = status(a.port())["forwards"].to_string();
        assert!(
            !forwards.contains(&forger) && !forwards.contains(&copier),
            "{when}: {forwards}"
        );
    };
    check(&a, "live");

    // a restarted agent reconciles with everything on the daemon
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let b = agent();
    check(&b, "after a restart");

    // the control: the user's own container still gets its port and replica
    ok(docker_at(&b.host, &["start", &real]));
    assert!(
        listening(b.pid(), p_real),
        "the user's own container lost its forward"
    );
    assert!(
        !replicas_of(&mine.0).is_empty(),
        "the user's own replica is gone"
    );

    // the copy did not keep the replica alive: removing the real container retires it
    ok(docker_at(&b.host, &["rm", "-f", &real]));
    assert!(
        wait_until(Duration::from_secs(10), || replicas_of(&mine.0).is_empty()),
        "a copied label kept the replica of {} on the remote",
        mine.0.display()
    );
    assert!(!listening(b.pid(), p_real));
    let _ = std::fs::remove_dir_all(&secret);
}

#[test]
fn a_recorded_all_interfaces_forward_obeys_the_current_policy() {
    let _turn = turn();
    let tb = testbed();
    let mut cleanup = Cleanup(Vec::new());
    let mut args = default_args(tb);
    args.push("--forward-all-interfaces".into());
    let mut wide = start_agent(&args);
    let name = cleanup.name("wide");
    let p = free_port();
    ok(docker_at(
        &wide.host,
        &[
            "run",
            "-d",
            "--name",
            &name,
            "-p",
            &format!("{p}:80"),
            tb.image(),
            "sleep",
            "600",
        ],
    ));
    let ss = |agent: &AgentProc| listeners(agent.pid(), p);
    assert!(
        ss(&wide).contains("0.0.0.0:"),
        "with the flag: {}",
        ss(&wide)
    );
    wide.child.kill().unwrap();
    wide.child.wait().unwrap();

    // the same container, now served by an agent without the flag
    let narrow = agent();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !ss(&narrow).contains("0.0.0.0:") && !ss(&narrow).contains("*:"),
        "without --forward-all-interfaces Berth listens on every interface: {}",
        ss(&narrow)
    );
    let forwards = status(narrow.port())["forwards"].to_string();
    assert!(
        forwards.contains("--forward-all-interfaces"),
        "the refusal is not reported: {forwards}"
    );
    assert!(!listening(narrow.pid(), p), "{}", ss(&narrow));
}

/// A local tree for one test, removed at the end.
struct Tree(PathBuf);

impl Tree {
    fn new(prefix: &str) -> Self {
        let p = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("file.txt"), "mine\n").unwrap();
        Tree(p)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
