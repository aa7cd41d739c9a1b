//! The session dropping under a serving agent: requests fail fast with a
//! clear message while sshd is down, and the next request reconnects.
//! Each test runs its own sshd, so stopping it disturbs no other test; they
//! take turns, since another test's agent would adopt and serve this test's
//! forwarded ports while its session is down.

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
    let t = Instant::now();
    loop {
        let out = docker_at(&a.host, &["ps"]);
        if out.status.success() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no reconnect: {}",
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let st = status(a.port());
    assert_eq!(st["connection"]["state"], "connected", "{st}");
    assert!(st["connection"]["connects"].as_u64().unwrap() >= 2, "{st}");
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
