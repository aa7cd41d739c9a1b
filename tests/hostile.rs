//! Bad input from both sides: oversized and cut-short HTTP, clients that
//! never finish a request, invalid create bodies, hostile mount sources, and
//! a remote daemon that answers garbage. None of it may crash the agent,
//! hang a client, or go without a clear answer.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Sends `request` and reads the answer until the agent closes (or 20 s).
fn send(port: u16, request: &[u8]) -> (String, Duration) {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    (String::from_utf8_lossy(&buf).into_owned(), t0.elapsed())
}

fn still_serving(a: &AgentProc) {
    ok(docker_at(&a.host, &["version"]));
}

#[test]
fn oversized_headers_get_431_and_the_agent_stays_up() {
    let _tb = testbed();
    let a = agent();
    for size in [80 * 1024, 4 * 1024 * 1024] {
        let big = "x".repeat(size);
        let req = format!(
            "GET /_ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Big: {big}\r\n\r\n"
        );
        let (resp, took) = send(a.port(), req.as_bytes());
        assert!(
            resp.starts_with("HTTP/1.1 431"),
            "{size} bytes of header: {}",
            &resp[..resp.len().min(200)]
        );
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
    still_serving(&a);
}

#[test]
fn a_body_cut_short_ends_that_request_only() {
    let tb = testbed();
    let a = agent();
    let name = unique("cutshort");
    let body = format!(r#"{{"Image":"{}","Cmd":["true"]}}"#, tb.image());
    // promises 4 KiB, sends the JSON, then goes away
    let req = format!(
        "POST /containers/create?name={name} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{body}"
    );
    let mut s = TcpStream::connect(("127.0.0.1", a.port())).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    drop(s);
    std::thread::sleep(Duration::from_millis(500));
    still_serving(&a);
    assert_not_created(&name);
}

#[test]
fn a_client_that_never_finishes_its_request_is_dropped() {
    let _tb = testbed();
    let a = agent();
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", a.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    s.write_all(b"GET /containers/json HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(20),
        "closed after {took:?}"
    );
    still_serving(&a);
}

#[test]
fn invalid_create_bodies_get_a_docker_style_answer() {
    let _tb = testbed();
    let a = agent();
    for body in ["{not json", "[1,2,3]", "{\"Image\": 5}", ""] {
        let req = format!(
            "POST /containers/create HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (resp, _) = send(a.port(), req.as_bytes());
        let status_line = resp.lines().next().unwrap_or_default().to_string();
        assert!(
            status_line.contains(" 400 ") || status_line.contains(" 500 "),
            "{body:?}: {resp}"
        );
        let json = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(json.trim())
            .unwrap_or_else(|e| panic!("{body:?}: not JSON ({e}): {resp}"));
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
    still_serving(&a);
}

#[test]
fn hostile_mount_sources_pass_or_fail_clearly() {
    let tb = testbed();
    let a = agent();
    let dir = std::env::temp_dir().join(unique("hostile"));
    std::fs::create_dir_all(dir.join("real")).unwrap();
    std::fs::write(dir.join("real/f.txt"), "f\n").unwrap();
    // a loop, a FIFO and a socket as sources; a `..` path to a real folder
    std::os::unix::fs::symlink(dir.join("loop"), dir.join("loop")).unwrap();
    let fifo = dir.join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let _sock = std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap();
    let dotdot = format!("{}/real/../real", dir.display());
    let run = |src: &str| {
        let name = unique("hostile");
        let out = docker_at(
            &a.host,
            &[
                "run",
                "--rm",
                "--name",
                &name,
                "-v",
                &format!("{src}:/m"),
                tb.image(),
                "sh",
                "-c",
                "cat /m/f.txt 2>/dev/null || echo none",
            ],
        );
        (out, name)
    };
    // `..` resolves to the real folder, which is synced
    let (out, _) = run(&dotdot);
    assert_eq!(ok(out), "f\n");
    // the others are not synced; the daemon applies its own rules, and
    // whatever it says comes back as one clear line
    for src in ["loop", "fifo", "sock"] {
        let t0 = Instant::now();
        let (out, name) = run(&dir.join(src).display().to_string());
        assert!(t0.elapsed() < Duration::from_secs(30), "{src}: hung");
        if !out.status.success() {
            let err = stderr(&out);
            assert!(err.contains("Error response from daemon"), "{src}: {err}");
        }
        let _ = docker_at(&tb.direct_host(), &["rm", "-f", &name]);
    }
    still_serving(&a);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the fake daemon was asked: (path, User-Agent).
type Asked = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A fake daemon on the remote side, as old as API 1.41: `/_ping` and
/// `/version` are fine, a newer version is refused as dockerd refuses it,
/// the rest is cut short or garbage.
fn garbage_daemon() -> (u16, Asked) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let asked = Asked::default();
    let log = asked.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut c = conn;
                c.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match c.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or_default();
                let agent = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("user-agent:")
                            .map(|v| v.trim().to_string())
                    })
                    .unwrap_or_default();
                log.lock().unwrap().push((path.to_string(), agent));
                let too_new = path
                    .strip_prefix("/v1.")
                    .and_then(|r| r.split('/').next())
                    .and_then(|minor| minor.parse::<u32>().ok())
                    .filter(|&minor| minor > 41);
                let json = |body: &str| {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                };
                let reply = if let Some(minor) = too_new {
                    let body = format!(
                        r#"{{"message":"client version 1.{minor} is too new. Maximum supported API version is 1.41"}}"#
                    );
                    format!(
                        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                } else if path.ends_with("/_ping") {
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nApi-Version: 1.41\r\n\r\nOK"
                        .to_string()
                } else if path.ends_with("/version") {
                    json(r#"{"Version":"fake","ApiVersion":"1.41","Os":"linux"}"#)
                } else if path.contains("/containers/json") {
                    // promises more than it sends, then hangs up
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n[{\"Id\":\"ab".to_string()
                } else {
                    "this is not HTTP at all\r\n\r\n".to_string()
                };
                let _ = c.write_all(reply.as_bytes());
            });
        }
    });
    (port, asked)
}

#[test]
fn a_remote_that_answers_garbage_gets_clear_errors() {
    let tb = testbed();
    let (port, asked) = garbage_daemon();
    let mut args = default_args(tb);
    args.extend(["--remote-docker".into(), format!("tcp://127.0.0.1:{port}")]);
    let a = start_agent(&args);
    for cmd in [&["ps"][..], &["info"][..], &["images"][..]] {
        let t0 = Instant::now();
        let out = docker_at(&a.host, cmd);
        assert!(t0.elapsed() < Duration::from_secs(30), "{cmd:?} hung");
        assert!(!out.status.success(), "{cmd:?} succeeded on garbage");
        let err = stderr(&out);
        assert!(!err.trim().is_empty(), "{cmd:?}: no message");
    }
    // the agent itself is fine
    let st = status(a.port());
    assert_eq!(st["connection"]["state"], "connected", "{st}");
    assert_eq!(st["daemon"]["api_version"], "1.41", "{st}");
    // Berth's own calls: the version asked unversioned, then everything at
    // the old daemon's version, never one it refuses
    let ours: Vec<String> = asked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, agent)| agent.starts_with("berth/"))
        .map(|(path, _)| path.clone())
        .collect();
    assert!(ours.iter().any(|p| p == "/version"), "{ours:?}");
    assert!(
        ours.iter().any(|p| p.starts_with("/v1.41/info")),
        "{ours:?}"
    );
    assert!(
        ours.iter().any(|p| p.starts_with("/v1.41/events")),
        "{ours:?}"
    );
    for p in &ours {
        assert!(
            p.starts_with("/v1.41/") || !p.starts_with("/v1."),
            "Berth asked {p} of a 1.41 daemon: {ours:?}"
        );
    }
}
