//! The session dropping under a serving agent: requests fail fast with a
//! clear message while sshd is down, and the next request reconnects.
//! Each test runs its own sshd, so stopping it disturbs no other test; they
//! take turns, since another test's agent would adopt and serve this test's
//! forwarded ports while its session is down. And the daemon restarting
//! behind a serving agent (with another configuration): the next command
//! sees the new daemon, pings answered from Berth's cache included.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::time::{Duration, Instant};

#[test]
fn sshd_gone_while_serving_fails_fast_then_reconnects() {
    let _turn = turn();
    let _tb = testbed();
    let mut sshd = PrivateSshd::start("gone", |l| Some(l.to_string()));
    let a = start_agent(&sshd.agent_args());
    ok(docker_at(&a.host, &["ps"]));
    sshd.kill();
    // (kill also ends that sshd's open sessions, ours included, as a
    // network drop or a remote reboot would)
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let out = docker_at(&a.host, &["ps"]);
    let took = t.elapsed();
    sshd.resume();
    assert!(!out.status.success(), "docker ps succeeded with sshd down");
    let err = stderr(&out);
    assert!(err.contains("berth: cannot reach 127.0.0.1:"), "{err}");
    assert!(took < Duration::from_secs(15), "failing took {took:?}");
    // the next request reconnects by itself
    reconnects_within(&a, Duration::from_secs(20), "no reconnect");
}

/// Polls `f` every 100 ms until it gives `Some`, for at most `limit`.
fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_20s_outage_is_ridden_through_and_everything_comes_back() {
    let _turn = turn();
    let tb = testbed();
    // its own sshd: stopping it disturbs no other test
    let mut sshd = PrivateSshd::start("outage", |l| Some(l.to_string()));
    let a = start_agent(&sshd.agent_args());
    let site = std::env::temp_dir().join(unique("outage-site"));
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "v1\n").unwrap();
    let (p1, p2) = (free_port(), free_port());
    let (web, gone) = (unique("outage-web"), unique("outage-gone"));
    let run = |name: &str, port: u16, extra: &[&str]| {
        let publish = format!("{port}:80");
        let mut args = vec!["run", "-d", "--name", name, "-p", &publish];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[tb.image(), "httpd", "-f", "-p", "80", "-h", "/www"]);
        ok(docker_at(&a.host, &args));
    };
    let bind = format!("{}:/www", site.display());
    run(&web, p1, &["-v", &bind]);
    run(&gone, p2, &[]);
    let addr1 = format!("127.0.0.1:{p1}");
    assert_eq!(http_get(&addr1, "/index.html").unwrap(), "v1\n");

    let down_at = Instant::now();
    sshd.kill();
    // noticed at once (the sessions were reset) and reported with its
    // cause (a dial racing the dying sshd may first see a reset handshake)
    let st = wait_for(
        Duration::from_secs(10),
        "reconnecting: cannot reach",
        || {
            let st = status(a.port());
            let c = &st["connection"];
            let cause = c["last_error"].as_str().unwrap_or_default();
            (c["state"] == "reconnecting" && cause.contains("cannot reach")).then_some(st)
        },
    );
    let c = &st["connection"];
    assert!(c["next_attempt_in_ms"].as_u64().unwrap() <= 10_000, "{st}");
    // API calls fail fast, with the cause and the retry
    let t = Instant::now();
    let out = docker_at(&a.host, &["ps"]);
    assert!(!out.status.success());
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach") && err.contains("reconnecting"),
        "{err}"
    );
    // a forwarded port is accepted and closed at once: no hang
    let t = Instant::now();
    assert!(http_get(&addr1, "/index.html").is_err());
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    // meanwhile: local edits, and a container stops behind Berth's back
    std::fs::write(site.join("index.html"), "v2\n").unwrap();
    std::fs::write(site.join("new.txt"), "made during the outage\n").unwrap();
    ok(docker_at(&tb.direct_host(), &["stop", "-t", "0", &gone]));
    std::thread::sleep(Duration::from_secs(20).saturating_sub(down_at.elapsed()));

    sshd.resume();
    let up_at = Instant::now();
    wait_for(Duration::from_secs(20), "the edit served again", || {
        (http_get(&addr1, "/index.html").ok()? == "v2\n").then_some(())
    });
    let back = up_at.elapsed();
    eprintln!(
        "outage of {:?}: served again {back:?} after sshd came back",
        up_at - down_at
    );
    assert_eq!(
        http_get(&addr1, "/new.txt").unwrap(),
        "made during the outage\n"
    );
    // the container that stopped during the outage lost its forward
    wait_for(
        Duration::from_secs(10),
        "the stopped container's port closed",
        || {
            std::net::TcpStream::connect(("127.0.0.1", p2))
                .is_err()
                .then_some(())
        },
    );
    let st = status(a.port());
    assert_eq!(st["connection"]["state"], "connected", "{st}");
    assert!(st["connection"]["connects"].as_u64().unwrap() >= 2, "{st}");
    ok(docker_at(&a.host, &["rm", "-f", &web, &gone]));
    let _ = std::fs::remove_dir_all(&site);
}

/// Packets to and from one port on loopback vanish (a laptop lid closed, a
/// dead Wi-Fi): nothing is reset, nothing answers. Removed on drop.
struct Blackhole(u16);

impl Blackhole {
    fn start(port: u16) -> Self {
        for dir in ["--dport", "--sport"] {
            iptables("-I", dir, port);
        }
        Blackhole(port)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        for dir in ["--dport", "--sport"] {
            iptables("-D", dir, self.0);
        }
    }
}

fn iptables(op: &str, dir: &str, port: u16) {
    let st = std::process::Command::new("iptables")
        .args([
            op,
            "INPUT",
            "-i",
            "lo",
            "-p",
            "tcp",
            dir,
            &port.to_string(),
            "-j",
            "DROP",
        ])
        .status()
        .unwrap();
    assert!(st.success(), "iptables {op} {dir} {port}");
}

/// Blackholes `sshd`'s port; returns the hole and how long the agent took
/// to see its session gone (at most 20 s).
fn go_silent(sshd: &PrivateSshd, a: &AgentProc) -> (Blackhole, Duration) {
    let hole = Blackhole::start(sshd.port);
    let t0 = Instant::now();
    let noticed = wait_for(
        Duration::from_secs(20),
        "the silent network noticed",
        || {
            let st = status(a.port());
            (st["connection"]["state"] != "connected").then(|| t0.elapsed())
        },
    );
    (hole, noticed)
}

#[test]
fn a_silent_network_is_noticed_by_the_kernel_within_10s() {
    let _turn = turn();
    let _tb = testbed();
    let sshd = PrivateSshd::start("silent", |l| Some(l.to_string()));
    let a = start_agent(&sshd.agent_args());
    ok(docker_at(&a.host, &["ps"]));
    // idle, then the network goes silent: only the kernel's keepalive
    // probes (liveness.rs) can tell, since the SSH keepalive is a minute off
    std::thread::sleep(Duration::from_secs(3));
    let (hole, noticed) = go_silent(&sshd, &a);
    eprintln!("silent network noticed after {noticed:?}");
    assert!(noticed <= Duration::from_secs(10), "{noticed:?}");
    // the network comes back: a new session takes over
    drop(hole);
    wait_for(
        Duration::from_secs(20),
        "docker ps through a new session",
        || docker_at(&a.host, &["ps"]).status.success().then_some(()),
    );
    assert!(status(a.port())["connection"]["connects"].as_u64() >= Some(2));
}

#[test]
fn a_silent_network_under_a_transfer_is_noticed_within_10s() {
    let _turn = turn();
    let tb = testbed();
    let sshd = PrivateSshd::start("silent-busy", |l| Some(l.to_string()));
    let a = start_agent(&sshd.agent_args());
    ok(docker_at(&a.host, &["ps"]));
    // a container streaming its output when the network goes silent: data
    // stays unacknowledged (TCP_USER_TIMEOUT), and the client hears of it
    let host = a.host.clone();
    let image = tb.image().to_string();
    let ticks = "i=0; while [ $i -lt 300 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done";
    let ps = std::thread::spawn(move || {
        let t = Instant::now();
        let out = docker_at(&host, &["run", "--rm", &image, "sh", "-c", ticks]);
        (out, t.elapsed())
    });
    std::thread::sleep(Duration::from_secs(2));
    let (hole, noticed) = go_silent(&sshd, &a);
    eprintln!("silent network under a request noticed after {noticed:?}");
    assert!(noticed <= Duration::from_secs(10), "{noticed:?}");
    let (out, took) = ps.join().unwrap();
    assert!(!out.status.success(), "the request outlived its session");
    assert!(took < Duration::from_secs(25), "the client waited {took:?}");
    drop(hole);
}

/// A raw `METHOD /_ping` answer on a fresh connection: the status line and
/// the headers as sent (order and case; Date's value blanked), then the body.
fn ping_over(mut s: impl std::io::Read + std::io::Write, method: &str) -> (Vec<String>, String) {
    s.write_all(format!("{method} /_ping HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "answer cut short: {buf:?}");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let mut lines: Vec<String> = head.trim_end().split("\r\n").map(str::to_string).collect();
    let mut length = 0;
    for l in lines.iter_mut() {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("date:") {
            assert!(l.len() > "date: ".len(), "{l}");
            *l = l[..5].to_string();
        }
        if let Some(n) = lower.strip_prefix("content-length:") {
            length = n.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; if method == "HEAD" { 0 } else { length }];
    s.read_exact(&mut body).unwrap();
    (lines, String::from_utf8(body).unwrap())
}

fn ping_berth(a: &AgentProc, method: &str) -> (Vec<String>, String) {
    let s = std::net::TcpStream::connect(("127.0.0.1", a.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    ping_over(s, method)
}

fn ping_daemon(method: &str) -> (Vec<String>, String) {
    let s = std::os::unix::net::UnixStream::connect(testbed().get("DOCKER_SOCK")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    ping_over(s, method)
}

fn pings_cached(a: &AgentProc) -> u64 {
    status(a.port())["requests"]["pings_cached"]
        .as_u64()
        .unwrap()
}

/// Whether `docker checkpoint ls` through `host` takes the daemon for an
/// experimental one: the CLI decides from the ping's `Docker-Experimental`.
fn seen_experimental(host: &str) -> bool {
    let out = docker_at(host, &["checkpoint", "ls", "berth-no-such-container"]);
    !stderr(&out).contains("experimental features enabled")
}

/// Restarts the test bed's dockerd with `flags`.
fn restart_dockerd(flags: &[&str]) {
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("tests/testbed/testbed.sh"))
        .arg("dockerd-restart")
        .args(flags)
        .output()
        .unwrap();
    assert!(out.status.success(), "dockerd-restart: {}", stderr(&out));
}

/// Puts the daemon back as the test bed starts it, even after a failure.
struct PlainDaemonAfter;
impl Drop for PlainDaemonAfter {
    fn drop(&mut self) {
        restart_dockerd(&[]);
    }
}

#[test]
fn a_daemon_restarted_behind_berth_is_seen_by_the_next_command() {
    let _turn = turn();
    let tb = testbed();
    let a = agent();
    // a client's own ping fills the cache; later ones come from it
    ok(docker_at(&a.host, &["version"]));
    let cached = |a: &AgentProc| {
        let before = pings_cached(a);
        wait_for(Duration::from_secs(10), "a ping from the cache", || {
            ping_berth(a, "HEAD");
            (pings_cached(a) > before).then_some(())
        });
    };
    cached(&a);
    let before = pings_cached(&a);
    for method in ["HEAD", "GET"] {
        assert_eq!(
            ping_berth(&a, method),
            ping_daemon(method),
            "{method} /_ping"
        );
    }
    assert_eq!(pings_cached(&a), before + 2, "both answered from the cache");
    assert!(!seen_experimental(&a.host));
    assert!(!seen_experimental(&tb.direct_host()));

    let _restore = PlainDaemonAfter;
    restart_dockerd(&["--experimental"]);
    // the very first command after the restart sees the new daemon
    assert!(seen_experimental(&a.host), "a stale ping after the restart");
    cached(&a);
    for method in ["HEAD", "GET"] {
        let (head, body) = ping_berth(&a, method);
        assert!(
            head.contains(&"Docker-Experimental: true".to_string()),
            "{head:?}"
        );
        assert_eq!((head, body), ping_daemon(method), "{method} /_ping");
    }

    restart_dockerd(&[]);
    assert!(
        !seen_experimental(&a.host),
        "a stale ping after the second restart"
    );
    std::mem::forget(_restore);
    // and Berth still serves everything else
    ok(docker_at(&a.host, &["run", "--rm", tb.image(), "true"]));
}
