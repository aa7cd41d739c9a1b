//! Targets that only jump hosts reach, as `ssh -J` reaches them: three
//! network namespaces in a line (tests/testbed/jumpnet.sh), each with its
//! own OpenSSH sshd and host key, none forwarding packets. Berth reaches the
//! last one through `--jump` and through `ProxyJump` in an ssh_config;
//! each hop's host key is checked; the bastions' own logs prove the traffic
//! went through them; a bastion that goes away and comes back brings the
//! chain back by itself; `docker run -p` and `-v` work through the chain.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const BASTION: &str = "10.231.1.2";
const INNER: &str = "10.231.2.2";
const TARGET: &str = "10.231.3.2";

fn jump_dir() -> PathBuf {
    PathBuf::from(testbed().get("BERTH_TESTBED_DIR")).join("jump")
}

fn jumpnet(args: &[&str]) {
    let out = Command::new("bash")
        .arg(repo_root().join("tests/testbed/jumpnet.sh"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "jumpnet.sh {args:?}: {}",
        stderr(&out)
    );
}

/// The namespaces and their sshds, up (idempotent).
fn net() {
    testbed();
    jumpnet(&["up"]);
}

fn args(remote: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--remote".into(),
        remote.into(),
        "--identity".into(),
        testbed().get("SSH_KEY").into(),
        "--known-hosts".into(),
        jump_dir().join("known_hosts").display().to_string(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// How many `direct-tcpip` channels to `to` the sshd of `hop` has opened.
fn carried(hop: &str, to: &str) -> usize {
    let log = std::fs::read_to_string(jump_dir().join(format!("{hop}.log"))).unwrap_or_default();
    log.lines()
        .filter(|l| {
            l.contains("server_request_direct_tcpip") && l.contains(&format!("target {to} port 22"))
        })
        .count()
}

#[test]
fn a_target_only_two_jump_hosts_reach_serves_docker_ports_and_mounts() {
    let _turn = turn();
    net();
    let tb = testbed();
    // no route leads there from here
    let direct = try_start_agent(&args(&format!("ssh://root@{TARGET}"), &[]));
    let err = direct
        .err()
        .expect("the target was reached without a jump")
        .1;
    assert!(err.contains(&format!("cannot reach {TARGET}:22")), "{err}");

    // OpenSSH, on the same chain: no further without -J, there with it
    let openssh = |jump: Option<&str>| {
        let mut c = Command::new("ssh");
        c.arg("-F").arg(jump_dir().join("ssh_config"));
        if let Some(j) = jump {
            c.args(["-J", j]);
        }
        c.args([TARGET, "true"]).output().unwrap().status.success()
    };
    assert!(!openssh(None));
    assert!(openssh(Some(&format!("{BASTION},root@{INNER}:22"))));

    let (via_bastion, via_inner) = (carried("j1", INNER), carried("j2", TARGET));
    let a = start_agent(&args(
        &format!("ssh://root@{TARGET}"),
        &["-J", &format!("{BASTION},root@{INNER}:22")],
    ));
    assert!(
        a.ready_line.contains(&format!(
            "ssh://root@{TARGET}:22 (through root@{BASTION}:22, root@{INNER}:22)"
        )),
        "{}",
        a.ready_line
    );
    assert!(
        carried("j1", INNER) > via_bastion,
        "the bastion carried no hop"
    );
    assert!(
        carried("j2", TARGET) > via_inner,
        "the inner bastion carried no hop"
    );
    let st = status(a.port());
    assert_eq!(
        st["jumps"],
        serde_json::json!([format!("root@{BASTION}:22"), format!("root@{INNER}:22")]),
        "{st}"
    );

    // a published port answers here; a bind mount shows the local folder
    let dir = std::env::temp_dir().join(unique("berth-jump-src"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "through two bastions\n").unwrap();
    let name = unique("jump-web");
    let port = free_port();
    ok(docker_at(
        &a.host,
        &[
            "run",
            "-d",
            "--name",
            &name,
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "-v",
            &format!("{}:/www:ro", dir.display()),
            tb.image(),
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ],
    ));
    let page = http_get(&format!("127.0.0.1:{port}"), "/index.html");
    let _ = docker_at(&a.host, &["rm", "-f", &name]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(page.unwrap(), "through two bastions\n");
}

#[test]
fn proxy_jump_in_the_ssh_config_is_followed_hop_by_hop() {
    let _turn = turn();
    net();
    let cfg = std::env::temp_dir().join(unique("berth-jump-config"));
    std::fs::write(
        &cfg,
        format!(
            "Host build-box\n  HostName {TARGET}\n  User root\n  ProxyJump inner\n\n\
             Host inner\n  HostName {INNER}\n  User root\n  ProxyJump root@{BASTION}\n"
        ),
    )
    .unwrap();
    let before = carried("j2", TARGET);
    let a = start_agent(&args(
        "build-box",
        &["--ssh-config", &cfg.display().to_string()],
    ));
    assert!(
        carried("j2", TARGET) > before,
        "not through the inner bastion"
    );
    assert_eq!(
        ok(docker_at(
            &a.host,
            &["ps", "-q", "--filter", "name=^nothing$"]
        )),
        ""
    );
    // `--jump none` dials the target itself, as `ssh -J none` does: no route
    let err = try_start_agent(&args(
        "build-box",
        &["--ssh-config", &cfg.display().to_string(), "--jump", "none"],
    ))
    .err()
    .expect("reached without the jumps")
    .1;
    assert!(err.contains(&format!("cannot reach {TARGET}:22")), "{err}");
    let _ = std::fs::remove_file(&cfg);
}

#[test]
fn a_changed_host_key_on_the_middle_hop_is_refused_naming_that_hop() {
    let _turn = turn();
    net();
    // known_hosts where the inner bastion's line holds another key
    let known = std::fs::read_to_string(jump_dir().join("known_hosts")).unwrap();
    let other = std::fs::read_to_string(format!("{}.pub", testbed().get("SSH_KEY"))).unwrap();
    let forged: String = known
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{INNER} ")) {
                let key: Vec<&str> = other.split_whitespace().take(2).collect();
                format!("{INNER} {}\n", key.join(" "))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let path = std::env::temp_dir().join(unique("berth-jump-known"));
    std::fs::write(&path, forged).unwrap();
    let mut a = args(
        &format!("ssh://root@{TARGET}"),
        &["-J", &format!("{BASTION},{INNER}")],
    );
    let k = a.iter().position(|x| x == "--known-hosts").unwrap();
    a[k + 1] = path.display().to_string();
    let before = carried("j2", TARGET);
    let (code, err) = try_start_agent(&a)
        .err()
        .expect("a changed key was accepted");
    assert_ne!(code, 0);
    let line = err
        .lines()
        .find(|l| l.contains("HOST KEY CHANGED"))
        .unwrap_or(&err);
    assert!(
        line.contains(&format!(
            "jump host {INNER}:22: HOST KEY CHANGED for {INNER}"
        )),
        "{err}"
    );
    assert_eq!(
        carried("j2", TARGET),
        before,
        "went on past the refused hop"
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_bastion_that_goes_away_and_comes_back_brings_the_chain_back() {
    let _turn = turn();
    net();
    let a = start_agent(&args(
        &format!("ssh://root@{TARGET}"),
        &["-J", &format!("{BASTION},{INNER}")],
    ));
    ok(docker_at(&a.host, &["ps"]));
    jumpnet(&["stop", "j1"]);
    let t = Instant::now();
    let out = docker_at(&a.host, &["ps"]);
    let took = t.elapsed();
    jumpnet(&["start", "j1"]);
    assert!(
        !out.status.success(),
        "docker ps succeeded with the bastion down"
    );
    assert!(stderr(&out).contains("berth: "), "{}", stderr(&out));
    assert!(took < Duration::from_secs(15), "failing took {took:?}");
    reconnects_within(&a, Duration::from_secs(30), "the chain did not come back");
}

/// Whether a process whose command line holds `mark` runs.
fn running(mark: &str) -> bool {
    Command::new("pgrep")
        .args(["-f", mark])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn proxy_command_with_openssh_carries_the_session_and_ends_with_it() {
    let _turn = turn();
    net();
    let mark = format!("ConnectTimeout={}", 10000 + std::process::id() % 50000);
    let cfg = std::env::temp_dir().join(unique("berth-proxycmd-config"));
    std::fs::write(
        &cfg,
        format!(
            "Host inner-box\n  HostName {INNER}\n  User root\n  ProxyCommand ssh -F {} -o {mark} -W %h:%p {BASTION}\n\n\
             Host refused-box\n  HostName {INNER}\n  ProxyCommand sh -c 'echo \"bastion says no to %h\" >&2; exit 7'\n",
            jump_dir().join("ssh_config").display()
        ),
    )
    .unwrap();
    let before = carried("j1", INNER);
    let mut a = start_agent(&args(
        "inner-box",
        &["--ssh-config", &cfg.display().to_string()],
    ));
    assert!(
        carried("j1", INNER) > before,
        "not through OpenSSH's -W on the bastion"
    );
    assert!(running(&mark), "no ProxyCommand process");
    ok(docker_at(
        &a.host,
        &["run", "--rm", testbed().image(), "true"],
    ));
    // the agent's graceful stop ends the command it started
    unsafe { libc::kill(a.child.id() as i32, libc::SIGTERM) };
    wait_exit(&mut a.child, Duration::from_secs(10)).expect("the agent did not stop");
    let t = Instant::now();
    while running(&mark) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the ProxyCommand outlived its session"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let (code, err) = try_start_agent(&args(
        "refused-box",
        &["--ssh-config", &cfg.display().to_string()],
    ))
    .err()
    .expect("a failing ProxyCommand connected");
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!(
            "exited with 7: bastion says no to {INNER}; run the ProxyCommand by hand"
        )),
        "{err}"
    );
    let _ = std::fs::remove_file(&cfg);
}
