//! Transport properties: one stalled reader never stalls the session, the
//! Windows-like remote is reached over tcp, dial-stdio works, and many
//! concurrent clients all get answers.

mod common;
use common::*;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_stalled_logs_reader_does_not_stall_other_requests() {
    let tb = testbed();
    let a = agent();
    let name = unique("chatty");
    ok(docker_at(
        &a.host,
        &[
            "run",
            "-d",
            "--name",
            &name,
            tb.image(),
            "sh",
            "-c",
            "yes berth-stalled-reader-line-of-text",
        ],
    ));
    std::thread::sleep(Duration::from_millis(500));
    // nobody reads this client's stdout, and then it is stopped outright
    let mut stalled = Command::new("docker")
        .args(["logs", "-f", &name])
        .env("DOCKER_HOST", &a.host)
        .env("DOCKER_CONFIG", docker_config_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    Command::new("kill")
        .args(["-STOP", &stalled.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (rss_before, _) = a.rss_kib();
    for i in 0..5 {
        let t = Instant::now();
        ok(docker_at(&a.host, &["ps", "-q"]));
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "docker ps #{i} took {:?} beside a stalled reader",
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
        "exec beside a stalled reader took {:?}",
        t.elapsed()
    );
    // memory stays bounded while the container keeps writing
    std::thread::sleep(Duration::from_secs(3));
    let (rss_after, _) = a.rss_kib();
    assert!(
        rss_after < 80 * 1024,
        "agent RSS grew to {rss_after} KiB (was {rss_before} KiB)"
    );
    // the stalled reader resumes and still gets its stream
    Command::new("kill")
        .args(["-CONT", &stalled.id().to_string()])
        .status()
        .unwrap();
    let mut out = stalled.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    use std::io::Read;
    let n = out.read(&mut buf).unwrap();
    assert!(n > 0 && String::from_utf8_lossy(&buf[..n]).contains("berth-stalled-reader-line"));
    let _ = stalled.kill();
    let _ = stalled.wait();
    ok(docker_at(&a.host, &["rm", "-f", &name]));
}

#[test]
fn windows_like_remote_is_reached_over_tcp() {
    let tb = testbed();
    let mut args = default_args(tb);
    args[1] = format!("ssh://root@127.0.0.1:{}", tb.get("SSH_WIN_PORT"));
    let a = start_agent(&args);
    assert!(
        a.ready_line.contains("via tcp://127.0.0.1:2375"),
        "{}",
        a.ready_line
    );
    let reason = status(a.port())["upstream"]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("unix:///var/run/docker.sock failed"),
        "{reason}"
    );
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
