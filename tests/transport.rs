//! Transport properties: one stalled reader never stalls the session, the
//! Windows-like remote is reached over tcp, dial-stdio works, and many
//! concurrent clients all get answers.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A docker CLI whose output nobody reads, then stopped outright (SIGSTOP).
fn stalled_reader(host: &str, args: &[&str]) -> std::process::Child {
    let child = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", docker_config_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    Command::new("kill")
        .args(["-STOP", &child.id().to_string()])
        .status()
        .unwrap();
    child
}

#[test]
fn stalled_readers_do_not_stall_other_requests() {
    let tb = testbed();
    let a = agent();
    let name = unique("chatty");
    let chatty = "yes berth-stalled-reader-line-of-text";
    ok(docker_at(
        &a.host,
        &["run", "-d", "--name", &name, tb.image(), "sh", "-c", chatty],
    ));
    std::thread::sleep(Duration::from_millis(500));
    // a `logs -f` follower and an exec whose output streams as fast as `yes` writes
    let mut stalled = [
        stalled_reader(&a.host, &["logs", "-f", &name]),
        stalled_reader(
            &a.host,
            &["exec", &name, "yes", "berth-stalled-exec-output"],
        ),
    ];
    let (rss_before, _) = a.rss_kib();
    for i in 0..5 {
        let t = Instant::now();
        ok(docker_at(&a.host, &["ps", "-q"]));
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "docker ps #{i} took {:?} beside stalled readers",
            t.elapsed()
        );
    }
    // bulk traffic on another channel still flows
    let data = vec![b'z'; 20 * 1024 * 1024];
    let t = Instant::now();
    let out = docker_with(
        &a.host,
        &["exec", "-i", &name, "sh", "-c", "wc -c"],
        Some(&data),
    );
    assert_eq!(ok(out).trim(), "20971520");
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "exec beside stalled readers took {:?}",
        t.elapsed()
    );
    // memory stays bounded while the producers keep trying to write
    std::thread::sleep(Duration::from_secs(5));
    let (rss_after, _) = a.rss_kib();
    eprintln!("agent RSS beside stalled readers: {rss_before} KiB -> {rss_after} KiB");
    assert!(
        rss_after < rss_before + 40 * 1024,
        "agent RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    // a resumed reader gets its stream where it left off
    use std::io::Read;
    for (child, want) in stalled
        .iter_mut()
        .zip(["berth-stalled-reader-line", "berth-stalled-exec-output"])
    {
        Command::new("kill")
            .args(["-CONT", &child.id().to_string()])
            .status()
            .unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let n = child.stdout.as_mut().unwrap().read(&mut buf).unwrap();
        assert!(n > 0 && String::from_utf8_lossy(&buf[..n]).contains(want));
        let _ = child.kill();
        let _ = child.wait();
    }
    ok(docker_at(&a.host, &["rm", "-f", &name]));
}

#[test]
fn windows_like_remote_is_reached_over_tcp() {
    let tb = testbed();
    let mut args = default_args(tb);
    args[1] = format!("ssh://root@127.0.0.1:{}", tb.get("SSH_WIN_PORT"));
    let a = start_agent(&args);
    assert_auto_chose_tcp(&a);
    // half-close survives the tcp path: stdin EOF ends `cat`, output still arrives
    let out = docker_with(
        &a.host,
        &["run", "-i", "--rm", tb.image(), "cat"],
        Some(b"over tcp\n"),
    );
    assert_eq!(ok(out), "over tcp\n");
    // asking for the unix socket there names the sshd setting
    args.extend([
        "--remote-docker".into(),
        "unix:///var/run/docker.sock".into(),
    ]);
    let err = match try_start_agent(&args) {
        Ok(a) => panic!("unix forwarding should be refused: {}", a.ready_line),
        Err((_, err)) => err,
    };
    assert!(err.contains("AllowStreamLocalForwarding"), "{err}");
}

#[test]
fn dial_stdio_upstream_works() {
    let tb = testbed();
    let mut args = default_args(tb);
    args.extend(["--remote-docker".into(), "dial-stdio".into()]);
    let a = start_agent(&args);
    assert!(
        a.ready_line.contains("docker system dial-stdio"),
        "{}",
        a.ready_line
    );
    ok(docker_at(&a.host, &["ps"]));
    let out = docker_with(
        &a.host,
        &["run", "-i", "--rm", tb.image(), "cat"],
        Some(b"via dial-stdio\n"),
    );
    assert_eq!(ok(out), "via dial-stdio\n");
}

#[test]
fn a_hundred_concurrent_clients_all_succeed() {
    let _tb = testbed();
    let a = agent();
    let handles: Vec<_> = (0..100)
        .map(|_| {
            let host = a.host.clone();
            std::thread::spawn(move || docker_at(&host, &["ps", "-q"]))
        })
        .collect();
    let failures: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|o| !o.status.success())
        .map(|o| stderr(&o))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of 100 failed, e.g. {}",
        failures.len(),
        failures[0]
    );
    let st = status(a.port());
    assert!(st["requests"]["total"].as_u64().unwrap() >= 100, "{st}");
    assert_eq!(
        st["connection"]["connects"], 1,
        "one SSH session for all: {st}"
    );
}
