//! A web page speaking to the endpoint, a local user racing the unix socket,
//! and the key's passphrase left in the environment (see tests/security.rs).
//!
//! The page's requests are sent byte for byte as a browser sends them, after
//! DNS rebinding (`Host: evil.example:PORT`) and cross-origin (`Origin`,
//! `Sec-Fetch-*`); each must get a 403 with a Docker-style body and reach
//! nothing. The real clients (docker CLI, docker-compose, docker-py,
//! testcontainers-python) must keep working over TCP and the unix socket.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// Sends `request` and splits the answer into status, head and body.
fn exchange(port: u16, request: &str) -> (u16, String, String) {
    let resp = raw_http(port, request.as_bytes());
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {resp:?}"));
    (code, head.to_string(), body.to_string())
}

/// 403, `{"message": "berth: …"}` on one line saying why, and nothing a
/// page could read it with (no CORS grant).
fn assert_refused(what: &str, (code, head, body): &(u16, String, String)) {
    assert_eq!(*code, 403, "{what}: {head}\n{body}");
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("berth: ") && msg.contains("web pages") && !msg.contains('\n'),
        "{what}: {msg}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("access-control-allow"),
        "{what}: {head}"
    );
}

fn requests_total(port: u16) -> u64 {
    status(port)["requests"]["total"].as_u64().unwrap()
}

#[test]
fn a_web_page_gets_403_and_reaches_nothing() {
    let tb = testbed();
    let a = agent();
    let port = a.port();
    let before = requests_total(port);
    // a privileged container with the remote's / mounted: what a page wants
    let body = format!(
        r#"{{"Image":"{}","Cmd":["sh","-c","id"],"HostConfig":{{"Privileged":true,"Binds":["/:/host"]}}}}"#,
        tb.image()
    );
    let post = |name: &str, host: &str, extra: &str, ctype: &str| {
        format!(
            "POST /v1.41/containers/create?name={name} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: */*\r\n{extra}Content-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let evil = format!("evil.example:{port}");
    let local = format!("127.0.0.1:{port}");
    let names: Vec<String> = (0..5).map(|_| unique("webpage")).collect();
    let attacks = [
        // DNS rebinding: the page's own origin now resolves to 127.0.0.1
        (
            "rebound GET",
            format!("GET /v1.41/containers/json?all=1 HTTP/1.1\r\nHost: {evil}\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\nConnection: close\r\n\r\n"),
        ),
        (
            "rebound GET, no fetch metadata",
            format!("GET /v1.41/info HTTP/1.1\r\nHost: {evil}\r\nUser-Agent: Mozilla/5.0\r\nConnection: close\r\n\r\n"),
        ),
        (
            "rebound POST create (JSON)",
            post(&names[0], &evil, &format!("Origin: http://{evil}\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: cors\r\n"), "application/json"),
        ),
        (
            "rebound POST create, no Origin",
            post(&names[1], &evil, "", "application/json"),
        ),
        // cross-origin: a page on evil.example posting to 127.0.0.1
        (
            "cross-origin POST create (text/plain, no preflight)",
            post(&names[2], &local, "Origin: http://evil.example:23750\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: empty\r\n", "text/plain;charset=UTF-8"),
        ),
        (
            "cross-origin POST create (JSON)",
            post(&names[3], &local, "Origin: http://evil.example:23750\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: cors\r\n", "application/json"),
        ),
        (
            "form POST from a sandboxed frame",
            post(&names[4], &local, "Origin: null\r\n", "application/x-www-form-urlencoded"),
        ),
        (
            "CORS preflight",
            format!("OPTIONS /v1.41/containers/create HTTP/1.1\r\nHost: {local}\r\nOrigin: http://evil.example:23750\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\nSec-Fetch-Mode: cors\r\nConnection: close\r\n\r\n"),
        ),
        // Berth's own endpoint tells a page nothing either
        (
            "rebound status",
            format!("GET /berth/v1/status HTTP/1.1\r\nHost: {evil}\r\nSec-Fetch-Site: same-origin\r\nConnection: close\r\n\r\n"),
        ),
        (
            "cross-origin status",
            format!("GET /berth/v1/status HTTP/1.1\r\nHost: {local}\r\nOrigin: http://evil.example:23750\r\nConnection: close\r\n\r\n"),
        ),
        // a build whose arguments carry a secret: refused, and not logged
        (
            "rebound build",
            format!("POST /v1.41/build?buildargs=%7B%22TOKEN%22%3A%22s3cr3t-build-arg%22%7D HTTP/1.1\r\nHost: {evil}\r\nOrigin: http://{evil}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        ),
    ];
    for (what, request) in &attacks {
        assert_refused(what, &exchange(port, request));
    }
    for name in &names {
        assert_not_created(name);
    }
    // refused before any other work: not one request was counted or forwarded
    assert_eq!(requests_total(port), before);
    assert!(!a.stderr().contains("s3cr3t"), "{}", a.stderr());
    // while the docker CLI is served as before
    ok(docker_at(&a.host, &["ps"]));
    assert_eq!(
        requests_total(port),
        before + 2,
        "HEAD /_ping and /containers/json"
    );
}

/// The docker CLI, docker-compose, docker-py and testcontainers-python,
/// each running a container through `host`.
fn real_clients_work(host: &str) {
    let tb = testbed();
    let out = ok(docker_at(
        host,
        &["run", "--rm", tb.image(), "echo", "cli-ok"],
    ));
    assert!(out.contains("cli-ok"), "{out}");

    let project = unique("webcompose").replace('-', "");
    let dir = std::env::temp_dir().join(&project);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        format!(
            "version: '3'\nservices:\n  app:\n    image: {}\n    command: sh -c 'echo compose-ok; sleep 600'\n",
            tb.image()
        ),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        Command::new("docker-compose")
            .arg("-p")
            .arg(&project)
            .args(args)
            .current_dir(&dir)
            .env("DOCKER_HOST", host)
            .env("DOCKER_CONFIG", docker_config_dir())
            .env("COMPOSE_INTERACTIVE_NO_CLI", "1")
            .output()
            .expect("run docker-compose")
    };
    ok(compose(&["up", "-d"]));
    let mut logs = String::new();
    for _ in 0..50 {
        logs = ok(compose(&["logs", "--no-color", "app"]));
        if logs.contains("compose-ok") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(logs.contains("compose-ok"), "{logs}");
    ok(compose(&["down", "-t", "1"]));
    let _ = std::fs::remove_dir_all(&dir);

    let out = python(
        host,
        &format!(
            "import docker\nc = docker.from_env()\nassert c.ping()\nprint(c.containers.run({:?}, 'echo py-ok', remove=True).decode())",
            tb.image()
        ),
    );
    assert!(out.contains("py-ok"), "{out}");

    // testcontainers: a web server on an exposed port, fetched from here
    // through Berth's port forwarding
    let out = python(
        host,
        &format!(
            r#"
import time, urllib.request
from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import wait_for_logs
c = DockerContainer({:?}).with_command("sh -c 'echo tc-ready; exec httpd -f -p 80 -h /www'").with_exposed_ports(80)
with c:
    wait_for_logs(c, "tc-ready", timeout=30)
    url = "http://%s:%s/" % (c.get_container_host_ip(), c.get_exposed_port(80))
    for _ in range(50):
        try:
            print("tc-page:", urllib.request.urlopen(url, timeout=2).read().decode())
            break
        except OSError:
            time.sleep(0.2)
"#,
            tb.image()
        ),
    );
    assert!(out.contains("tc-page: berth-test-page"), "{out}");
}

#[test]
fn docker_clients_work_over_tcp() {
    let a = agent();
    real_clients_work(&a.host);
}

#[test]
fn docker_clients_work_over_the_unix_socket() {
    let tb = testbed();
    let dir = std::env::temp_dir().join(unique("websock"));
    let sock = dir.join("run/berth.sock");
    let mut args = default_args(tb);
    args.extend(["--listen".into(), format!("unix://{}", sock.display())]);
    let _a = start_agent(&args);
    real_clients_work(&format!("unix://{}", sock.display()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_symlink_planted_at_the_socket_path_is_refused() {
    let tb = testbed();
    let dir = std::env::temp_dir().join(unique("sockrace"));
    std::fs::create_dir_all(&dir).unwrap();
    // another local user points the path at a file of the victim's, or at a
    // place of their own where the socket would then be theirs to reach
    let precious = dir.join("precious");
    std::fs::write(&precious, "keep me").unwrap();
    let captured = dir.join("attacker/captured.sock");
    for target in [&precious, &captured] {
        let link = dir.join("berth.sock");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link).unwrap();
        let mut args = default_args(tb);
        args.extend(["--listen".into(), format!("unix://{}", link.display())]);
        let (code, err) = match try_start_agent(&args) {
            Ok(a) => panic!("the agent served through a symlink: {}", a.ready_line),
            Err(e) => e,
        };
        assert_eq!(code, 1, "{err}");
        let line = err.trim();
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(
            line.contains(&*link.to_string_lossy())
                && line.contains("symbolic link")
                && line.contains("remove it"),
            "{line}"
        );
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    assert!(!captured.exists() && !dir.join("attacker").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_socket_and_its_directory_are_owner_only_even_with_umask_0() {
    let tb = testbed();
    let dir = std::env::temp_dir().join(unique("sockmode"));
    let sock = dir.join("run/berth.sock");
    let mut args = default_args(tb);
    args.extend(["--listen".into(), format!("unix://{}", sock.display())]);
    // the loosest umask a user can have: nothing but Berth itself protects it
    let mut child = Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" \"$@\""])
        .arg(agent_bin())
        .args(&args)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
    let (dir_mode, sock_mode) = (mode(&dir.join("run")), mode(&sock));
    let served = docker_at(&format!("unix://{}", sock.display()), &["ps"]);
    let left: Vec<_> = std::fs::read_dir(dir.join("run"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("ready on unix://"), "{line:?}");
    assert_eq!(dir_mode.unwrap(), 0o700);
    assert_eq!(sock_mode.unwrap(), 0o600);
    ok(served);
    // no staging directory beside it
    assert_eq!(left, vec![std::ffi::OsString::from("berth.sock")]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_key_passphrase_leaves_no_trace_in_the_environment_or_logs() {
    let tb = testbed();
    let pass = tb.get("SSH_KEY_PASSPHRASE");
    let args: Vec<String> = vec![
        "--remote".into(),
        tb.ssh_url(),
        "--identity".into(),
        tb.get("SSH_KEY_PASS").into(),
        "--known-hosts".into(),
        tb.get("KNOWN_HOSTS").into(),
    ];
    let a = try_start_agent_env(
        &args,
        &[("BERTH_KEY_PASSPHRASE", pass), ("BERTH_LOG", "debug")],
    )
    .unwrap_or_else(|(code, err)| panic!("exit {code}: {err}"));
    ok(docker_at(&a.host, &["ps"]));
    // what any process of this user (or a core dump) can read
    let environ = std::fs::read(format!("/proc/{}/environ", a.pid())).unwrap();
    let has = |needle: &[u8]| environ.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"BERTH_LOG=debug"), "the environment was read");
    assert!(!has(b"BERTH_KEY_PASSPHRASE"), "the variable is still there");
    assert!(!has(pass.as_bytes()), "the passphrase is still there");
    assert!(!a.stderr().contains(pass), "{}", a.stderr());
}
