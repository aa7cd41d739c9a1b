//! The session dropping under a serving agent: requests fail fast with a
//! clear message while sshd is down, and the next request reconnects.
//! (Its own test binary: it stops the shared sshd, which other tests use.)

mod common;
use common::*;

use std::time::{Duration, Instant};

#[test]
fn sshd_gone_while_serving_fails_fast_then_reconnects() {
    let _tb = testbed();
    let a = agent();
    ok(docker_at(&a.host, &["ps"]));
    let script = repo_root().join("tests/testbed/testbed.sh");
    let stop = std::process::Command::new("bash")
        .arg(&script)
        .arg("sshd-stop")
        .output()
        .unwrap();
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    // (sshd-stop also ends that sshd's open sessions, ours included, as a
    // network drop or a remote reboot would)
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let out = docker_at(&a.host, &["ps"]);
    let took = t.elapsed();
    let start = std::process::Command::new("bash")
        .arg(&script)
        .arg("sshd-start")
        .output()
        .unwrap();
    assert!(
        start.status.success(),
        "{}",
        String::from_utf8_lossy(&start.stderr)
    );
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
