//! Automatic port forwarding against the real test bed: `docker run -p` on
//! the remote answers on this machine for exactly as long as the container
//! runs, and what clients read back shows the local side.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const PAGE: &str = "berth-test-page";

/// Every agent forwards every labelled container of the remote (that is how a
/// restarted agent gets its forwards back), so two agents of this machine on
/// one remote would compete for the same local ports: these tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes the named containers when the test ends, passed or failed, so a
/// failure never leaves a labelled container for the next agent to adopt.
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
        if !self.0.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(self.0.iter().map(String::as_str));
            let _ = docker_at(&testbed().direct_host(), &args);
        }
    }
}

fn page_at(addr: &str) -> String {
    http_get(addr, "/").unwrap_or_else(|e| panic!("GET http://{addr}/: {e}"))
}

fn refused(addr: &str) -> bool {
    TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).is_err()
}

fn httpd(image: &str) -> Vec<String> {
    vec![
        image.into(),
        "httpd".into(),
        "-f".into(),
        "-p".into(),
        "80".into(),
        "-h".into(),
        "/www".into(),
    ]
}

fn run_d(host: &str, name: &str, publish: &[&str], cmd: &[String]) -> String {
    let mut args: Vec<&str> = vec!["run", "-d", "--name", name];
    args.extend_from_slice(publish);
    args.extend(cmd.iter().map(String::as_str));
    ok(docker_at(host, &args)).trim().to_string()
}

#[test]
fn publish_forms_answer_locally_and_show_the_local_side() {
    let _turn = turn();
    let mut cleanup = Cleanup(Vec::new());
    let tb = testbed();
    let a = agent();
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let fixed = cleanup.name("fixed");
    run_d(
        &a.host,
        &fixed,
        &[
            "-p",
            &format!("{p1}:80"),
            "-p",
            &format!("127.0.0.1:{p2}:80"),
            "-p",
            &format!("[::1]:{p3}:80"),
        ],
        &httpd(tb.image()),
    );
    // open as soon as `docker run -d` returned
    assert_eq!(page_at(&format!("127.0.0.1:{p1}")).trim(), PAGE);
    assert_eq!(page_at(&format!("127.0.0.1:{p2}")).trim(), PAGE);
    assert_eq!(page_at(&format!("[::1]:{p3}")).trim(), PAGE);
    // no host IP: both loopbacks answer, as Docker listens on both families
    assert_eq!(page_at(&format!("[::1]:{p1}")).trim(), PAGE);
    assert!(
        refused(&format!("[::1]:{p2}")),
        "an explicit 127.0.0.1 must not listen on ::1"
    );
    // `-p P:80` listens on loopback only, not on other interfaces (no opt-in)
    let port_out = ok(docker_at(&a.host, &["port", &fixed, "80"]));
    for want in [
        format!("0.0.0.0:{p1}"),
        format!("127.0.0.1:{p2}"),
        format!("[::1]:{p3}"),
    ] {
        assert!(
            port_out.contains(&want),
            "docker port lacks {want}: {port_out}"
        );
    }
    let ps = ok(docker_at(
        &a.host,
        &[
            "ps",
            "--filter",
            &format!("name={fixed}"),
            "--format",
            "{{.Ports}}",
        ],
    ));
    assert!(ps.contains(&format!("0.0.0.0:{p1}->80/tcp")), "{ps}");
    let bindings = ok(docker_at(
        &a.host,
        &[
            "inspect",
            &fixed,
            "--format",
            "{{json .HostConfig.PortBindings}}",
        ],
    ));
    assert!(
        bindings.contains(&format!("\"HostIp\":\"\",\"HostPort\":\"{p1}\"")),
        "{bindings}"
    );
    // on the remote, the daemon published on its loopback only, on ports it picked
    let direct = ok(docker_at(&tb.direct_host(), &["port", &fixed, "80"]));
    assert!(
        direct.lines().all(|l| l.starts_with("127.0.0.1:")),
        "remote publishes beyond its loopback: {direct}"
    );
    assert!(!direct.contains(&format!(":{p1}\n")), "{direct}");

    // `-p 80`: a free local port is picked, as Docker would
    let random = cleanup.name("random");
    run_d(&a.host, &random, &["-p", "80"], &httpd(tb.image()));
    let shown = ok(docker_at(&a.host, &["port", &random, "80"]));
    let port: u16 = shown
        .lines()
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(page_at(&format!("127.0.0.1:{port}")).trim(), PAGE);

    // -P publishes what the container exposes
    let all = cleanup.name("all");
    run_d(&a.host, &all, &["--expose", "80", "-P"], &httpd(tb.image()));
    let shown = ok(docker_at(&a.host, &["port", &all, "80"]));
    let port: u16 = shown
        .lines()
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(page_at(&format!("127.0.0.1:{port}")).trim(), PAGE);

    // a range of container ports
    let base = free_port();
    let (r0, r2) = (base, base + 2);
    let range = cleanup.name("range");
    let cmd: Vec<String> = vec![
        tb.image().into(),
        "sh".into(),
        "-c".into(),
        "httpd -p 8001 -h /www; httpd -p 8002 -h /www; httpd -f -p 8003 -h /www".into(),
    ];
    let taken_in_range = (r0..=r2).any(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_err());
    if !taken_in_range {
        run_d(
            &a.host,
            &range,
            &["-p", &format!("{r0}-{r2}:8001-8003")],
            &cmd,
        );
        std::thread::sleep(Duration::from_millis(300));
        for p in r0..=r2 {
            assert_eq!(
                page_at(&format!("127.0.0.1:{p}")).trim(),
                PAGE,
                "port {p} of the range"
            );
        }
        ok(docker_at(&a.host, &["rm", "-f", &range]));
    }

    // the status lists every forward
    let st = status(a.port());
    let forwards = st["forwards"].as_array().unwrap();
    let entry = forwards
        .iter()
        .find(|c| c["name"] == fixed.as_str())
        .unwrap_or_else(|| panic!("{st}"));
    assert_eq!(entry["forwards"].as_array().unwrap().len(), 3, "{entry}");
    assert!(
        entry["forwards"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["state"] == "listening"),
        "{entry}"
    );
    assert!(
        entry["forwards"][0]["total_connections"].as_u64().unwrap() >= 1,
        "{entry}"
    );

    for n in [&fixed, &random, &all] {
        ok(docker_at(&a.host, &["rm", "-f", n]));
    }
    assert!(refused(&format!("127.0.0.1:{p1}")));
}

#[test]
fn forwards_follow_stop_start_restart_and_rm() {
    let _turn = turn();
    let mut cleanup = Cleanup(Vec::new());
    let tb = testbed();
    let a = agent();
    let p = free_port();
    let name = cleanup.name("life");
    let addr = format!("127.0.0.1:{p}");
    run_d(
        &a.host,
        &name,
        &["-p", &format!("{p}:80")],
        &httpd(tb.image()),
    );
    assert_eq!(page_at(&addr).trim(), PAGE);
    ok(docker_at(&a.host, &["stop", "-t", "1", &name]));
    assert!(
        refused(&addr),
        "still listening right after docker stop returned"
    );
    ok(docker_at(&a.host, &["start", &name]));
    assert_eq!(page_at(&addr).trim(), PAGE);
    ok(docker_at(&a.host, &["restart", "-t", "1", &name]));
    assert_eq!(page_at(&addr).trim(), PAGE);
    ok(docker_at(&a.host, &["kill", &name]));
    assert!(refused(&addr), "still listening after docker kill");
    ok(docker_at(&a.host, &["start", &name]));
    assert_eq!(page_at(&addr).trim(), PAGE);
    ok(docker_at(&a.host, &["rm", "-f", &name]));
    assert!(refused(&addr), "still listening after rm -f");
}

#[test]
fn restart_policy_brings_the_forward_back() {
    let _turn = turn();
    let mut cleanup = Cleanup(Vec::new());
    let tb = testbed();
    let a = agent();
    let p = free_port();
    let name = cleanup.name("always");
    let addr = format!("127.0.0.1:{p}");
    let cmd: Vec<String> = vec![
        tb.image().into(),
        "sh".into(),
        "-c".into(),
        "trap 'exit 3' TERM; httpd -f -p 80 -h /www & wait".into(),
    ];
    run_d(
        &a.host,
        &name,
        &["--restart", "always", "-p", &format!("{p}:80")],
        &cmd,
    );
    assert_eq!(page_at(&addr).trim(), PAGE);
    // the container's main process dies; the daemon restarts it; events reopen the forward
    // (the exec ends with the container, so its own exit status says nothing)
    let _ = docker_at(&a.host, &["exec", &name, "kill", "1"]);
    let t = Instant::now();
    loop {
        let count = ok(docker_at(
            &a.host,
            &["inspect", &name, "--format", "{{.RestartCount}}"],
        ));
        if count.trim() != "0" {
            if let Ok(body) = http_get(&addr, "/") {
                assert_eq!(body.trim(), PAGE);
                break;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "forward not back after the restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(docker_at(&a.host, &["rm", "-f", &name]));
}

#[test]
fn a_taken_local_port_fails_the_create_and_leaves_nothing() {
    let _turn = turn();
    let mut cleanup = Cleanup(Vec::new());
    let tb = testbed();
    let a = agent();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = holder.local_addr().unwrap().port();
    let name = cleanup.name("taken");
    let out = docker_at(
        &a.host,
        &[
            "run",
            "-d",
            "--name",
            &name,
            "-p",
            &format!("{p}:80"),
            tb.image(),
            "sleep",
            "60",
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "Bind for 0.0.0.0:{p} failed: port is already allocated"
        )),
        "{err}"
    );
    let out = docker_at(
        &a.host,
        &[
            "create",
            "--name",
            &name,
            "-p",
            &format!("127.0.0.1:{p}:80"),
            tb.image(),
        ],
    );
    assert!(
        stderr(&out).contains(&format!(
            "Bind for 127.0.0.1:{p} failed: port is already allocated"
        )),
        "{}",
        stderr(&out)
    );
    assert_not_created(&name);
    // UDP cannot ride SSH: refused clearly, nothing created
    let out = docker_at(
        &a.host,
        &[
            "run",
            "-d",
            "--name",
            &name,
            "-p",
            "5353:53/udp",
            tb.image(),
            "sleep",
            "60",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot forward 53/udp"),
        "{}",
        stderr(&out)
    );
    assert_not_created(&name);
    drop(holder);
}

#[test]
fn fifty_parallel_connections_and_a_stalled_download() {
    let _turn = turn();
    let mut cleanup = Cleanup(Vec::new());
    let tb = testbed();
    let a = agent();
    let p = free_port();
    let name = cleanup.name("load");
    let addr = format!("127.0.0.1:{p}");
    run_d(
        &a.host,
        &name,
        &["-p", &format!("{p}:80")],
        &httpd(tb.image()),
    );
    ok(docker_at(
        &a.host,
        &[
            "exec",
            &name,
            "sh",
            "-c",
            "dd if=/dev/zero of=/www/big bs=1M count=64 2>/dev/null",
        ],
    ));
    // a client that asks for 64 MiB and never reads
    let mut stalled = TcpStream::connect(&addr).unwrap();
    stalled
        .write_all(b"GET /big HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || http_get(&addr, "/"))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let failed: Vec<_> = results
        .iter()
        .filter(|r| r.as_deref().map(str::trim) != Ok(PAGE))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 50 failed: {:?}",
        failed.len(),
        failed.first()
    );
    // the API is not slowed by the stalled forward either
    let t = Instant::now();
    ok(docker_at(&a.host, &["ps", "-q"]));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "docker ps took {:?}",
        t.elapsed()
    );
    // and the stalled client can still read its whole download
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    stalled
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    loop {
        match stalled.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => panic!("stalled download broke after {total} bytes: {e}"),
        }
    }
    assert!(total > 64 * 1024 * 1024, "got {total} bytes");
    ok(docker_at(&a.host, &["rm", "-f", &name]));
}

#[test]
fn compose_ports_are_forwarded() {
    let _turn = turn();
    let mut cleanup = Cleanup(Vec::new());
    let tb = testbed();
    let a = agent();
    let p = free_port();
    let project = cleanup.name("pfc").replace('-', "");
    let dir = std::env::temp_dir().join(&project);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        format!("version: '3'\nservices:\n  web:\n    image: {}\n    command: httpd -f -p 80 -h /www\n    ports:\n      - \"{p}:80\"\n", tb.image()),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        std::process::Command::new("docker-compose")
            .arg("-p")
            .arg(&project)
            .args(args)
            .current_dir(&dir)
            .env("DOCKER_HOST", &a.host)
            .output()
            .unwrap()
    };
    ok(compose(&["up", "-d"]));
    assert_eq!(page_at(&format!("127.0.0.1:{p}")).trim(), PAGE);
    let ps = ok(compose(&["ps"]));
    assert!(ps.contains(&format!("0.0.0.0:{p}->80/tcp")), "{ps}");
    ok(compose(&["down"]));
    assert!(refused(&format!("127.0.0.1:{p}")));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_restarted_agent_restores_forwards_of_running_containers() {
    let _turn = turn();
    let mut cleanup = Cleanup(Vec::new());
    let tb = testbed();
    let mut a = agent();
    let p = free_port();
    let name = cleanup.name("adopt");
    let addr = format!("127.0.0.1:{p}");
    run_d(
        &a.host,
        &name,
        &["-p", &format!("{p}:80")],
        &httpd(tb.image()),
    );
    assert_eq!(page_at(&addr).trim(), PAGE);
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    assert!(refused(&addr));
    let b = agent();
    let t = Instant::now();
    while http_get(&addr, "/").is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "forward not restored by the new agent"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(page_at(&addr).trim(), PAGE);
    ok(docker_at(&b.host, &["rm", "-f", &name]));
    assert!(refused(&addr));
}
