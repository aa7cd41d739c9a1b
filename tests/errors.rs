//! Every failure a user can meet is provoked for real and must read as one
//! line naming the cause and the fix: at start (exit 1) or, once serving, as
//! a Docker-style JSON error the docker CLI prints — never a hang.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::time::{Duration, Instant};

fn args_with(tb: &Testbed, replace: &[(&str, String)]) -> Vec<String> {
    let mut args = default_args(tb);
    for (flag, value) in replace {
        match args.iter().position(|a| a == flag) {
            Some(i) => args[i + 1] = value.clone(),
            None => args.extend([flag.to_string(), value.clone()]),
        }
    }
    args
}

fn start_fails(args: &[String]) -> String {
    let t = Instant::now();
    match try_start_agent(args) {
        Ok(a) => panic!("agent started but should not have: {}", a.ready_line),
        Err((code, err)) => {
            assert_eq!(code, 1, "exit code; stderr: {err}");
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "took {:?}",
                t.elapsed()
            );
            let last = err.lines().last().unwrap_or_default().to_string();
            assert!(last.starts_with("berth-agent: "), "{err}");
            last
        }
    }
}

#[test]
fn wrong_key_names_what_was_tried() {
    let tb = testbed();
    let line = start_fails(&args_with(
        tb,
        &[("--identity", tb.get("SSH_WRONG_KEY").into())],
    ));
    assert!(
        line.contains("authentication as root@127.0.0.1 failed"),
        "{line}"
    );
    assert!(
        line.contains(&format!("publickey {}", tb.get("SSH_WRONG_KEY"))),
        "{line}"
    );
    assert!(line.contains("authorized_keys"), "{line}");
}

#[test]
fn unknown_host_key_is_refused_with_its_fingerprint() {
    let tb = testbed();
    let line = start_fails(&args_with(
        tb,
        &[("--known-hosts", tb.get("KNOWN_HOSTS_EMPTY").into())],
    ));
    assert!(line.contains("is not known"), "{line}");
    assert!(line.contains(tb.get("HOST_KEY_FINGERPRINT")), "{line}");
    assert!(line.contains("accept-new"), "{line}");
}

#[test]
fn accept_new_records_the_key_then_strict_accepts_it() {
    let tb = testbed();
    let kh = std::env::temp_dir().join(unique("kh"));
    std::fs::write(&kh, "").unwrap();
    let mut args = args_with(tb, &[("--known-hosts", kh.display().to_string())]);
    args.extend(["--host-key-policy".into(), "accept-new".into()]);
    drop(start_agent(&args));
    let recorded = std::fs::read_to_string(&kh).unwrap();
    assert!(
        recorded.contains(&format!("[127.0.0.1]:{}", tb.get("SSH_PORT"))),
        "{recorded}"
    );
    drop(start_agent(&args_with(
        tb,
        &[("--known-hosts", kh.display().to_string())],
    )));
}

#[test]
fn hashed_known_hosts_are_understood() {
    let tb = testbed();
    let a = start_agent(&args_with(
        tb,
        &[("--known-hosts", tb.get("KNOWN_HOSTS_HASHED").into())],
    ));
    ok(docker_at(&a.host, &["ps"]));
}

#[test]
fn changed_host_key_is_refused_loudly() {
    let tb = testbed();
    let mut args = args_with(
        tb,
        &[("--known-hosts", tb.get("KNOWN_HOSTS_CHANGED").into())],
    );
    args.extend(["--host-key-policy".into(), "accept-new".into()]);
    let line = start_fails(&args);
    assert!(line.contains("HOST KEY CHANGED"), "{line}");
    assert!(
        line.contains(tb.get("HOST_KEY_FINGERPRINT")),
        "offered key missing: {line}"
    );
    assert!(line.contains("ssh-keygen -R"), "{line}");
}

#[test]
fn ssh_unreachable_at_start() {
    let tb = testbed();
    // a port nothing listens on
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let line = start_fails(&args_with(
        tb,
        &[("--remote", format!("ssh://root@127.0.0.1:{free}"))],
    ));
    assert!(
        line.contains(&format!("cannot reach 127.0.0.1:{free}")),
        "{line}"
    );
    assert!(line.contains("sshd runs there"), "{line}");
}

#[test]
fn socket_permission_denied_says_docker_group() {
    let tb = testbed();
    let user = tb.get("NODOCKER_USER");
    let mut args = args_with(
        tb,
        &[(
            "--remote",
            format!("ssh://{user}@127.0.0.1:{}", tb.get("SSH_PORT")),
        )],
    );
    args.extend([
        "--remote-docker".into(),
        "unix:///var/run/docker.sock".into(),
    ]);
    let line = start_fails(&args);
    assert!(
        line.contains("permission denied on the remote socket /var/run/docker.sock"),
        "{line}"
    );
    assert!(
        line.contains(&format!("usermod -aG docker {user}")),
        "{line}"
    );
    // auto moves on to the daemon's TCP endpoint (the test bed exposes one) and says why
    let a = start_agent(&args_with(
        tb,
        &[(
            "--remote",
            format!("ssh://{user}@127.0.0.1:{}", tb.get("SSH_PORT")),
        )],
    ));
    assert_auto_chose_tcp(&a);
}

#[test]
fn an_endpoint_that_is_not_docker_is_named() {
    let tb = testbed();
    // sshd's own port answers, but with an SSH banner, not HTTP
    let endpoint = format!("tcp://127.0.0.1:{}", tb.get("SSH_PORT"));
    let mut args = default_args(tb);
    args.extend(["--remote-docker".into(), endpoint.clone()]);
    let line = start_fails(&args);
    assert!(
        line.contains(&format!("{endpoint} did not answer like a Docker daemon")),
        "{line}"
    );
    assert!(
        line.contains("check that Docker runs on the remote"),
        "{line}"
    );
}

#[test]
fn daemon_not_running_names_the_socket() {
    let tb = testbed();
    let mut args = default_args(tb);
    args.extend([
        "--remote-docker".into(),
        "unix:///run/berth-no-such-daemon.sock".into(),
    ]);
    let line = start_fails(&args);
    assert!(
        line.contains("no Docker daemon answers at /run/berth-no-such-daemon.sock"),
        "{line}"
    );
    assert!(line.contains("systemctl start docker"), "{line}");
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let tb = testbed();
    let line = start_fails(&args_with(
        tb,
        &[("--remote", "ssh://root@127.0.0.1:notaport".into())],
    ));
    assert!(line.contains("is not a port"), "{line}");
    let line = start_fails(&args_with(tb, &[("--identity", "/nonexistent/key".into())]));
    assert!(line.contains("cannot use key /nonexistent/key"), "{line}");
    let line = start_fails(&args_with(
        tb,
        &[("--identity", tb.get("SSH_KEY_PASS").into())],
    ));
    assert!(
        line.contains("encrypted") && line.contains("BERTH_KEY_PASSPHRASE"),
        "{line}"
    );
}

#[test]
fn non_loopback_listen_is_refused() {
    let tb = testbed();
    let mut args = default_args(tb);
    args.extend(["--listen".into(), "tcp://0.0.0.0:23750".into()]);
    let out = std::process::Command::new(agent_bin())
        .args(&args)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
}

#[test]
fn encrypted_key_with_passphrase_from_env() {
    let tb = testbed();
    let args = args_with(tb, &[("--identity", tb.get("SSH_KEY_PASS").into())]);
    let mut cmd = std::process::Command::new(agent_bin());
    cmd.args(&args)
        .args(["--listen", "tcp://127.0.0.1:0"])
        .env("BERTH_KEY_PASSPHRASE", tb.get("SSH_KEY_PASSPHRASE"));
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("berth-agent: ready on tcp://127.0.0.1:"),
        "{line}"
    );
}

#[test]
fn malformed_http_gets_400_and_the_agent_stays_up() {
    let _tb = testbed();
    let a = agent();
    let resp = raw_http(a.port(), b"THIS IS NOT HTTP\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp:?}");
    let resp = raw_http(
        a.port(),
        b"GET /_ping HTTP/1.1\r\nHost: localhost\r\nContent-Length: nope\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp:?}");
    let resp = raw_http(
        a.port(),
        b"GET /_ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.ends_with("OK"),
        "{resp:?}"
    );
    ok(docker_at(&a.host, &["ps"]));
}

#[test]
fn status_endpoint_reports_the_session() {
    let tb = testbed();
    let a = agent();
    ok(docker_at(&a.host, &["ps"]));
    let st = status(a.port());
    assert_eq!(st["remote"], tb.ssh_url());
    assert_eq!(st["connection"]["state"], "connected");
    assert_eq!(st["upstream"]["endpoint"], "unix:///var/run/docker.sock");
    assert!(
        st["upstream"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("auto:"),
        "{st}"
    );
    let direct_api = ok(docker_at(
        &tb.direct_host(),
        &["version", "--format", "{{.Server.APIVersion}}"],
    ));
    assert_eq!(st["daemon"]["api_version"], direct_api.trim());
    assert!(st["requests"]["total"].as_u64().unwrap() >= 2, "{st}");
}

#[test]
fn sigterm_stops_within_5s_and_removes_the_socket() {
    let tb = testbed();
    let sock = std::env::temp_dir().join(format!("{}.sock", unique("term")));
    let mut args = default_args(tb);
    args.extend([
        "--listen".to_string(),
        format!("unix://{}", sock.display()),
        "--listen".into(),
        "tcp://127.0.0.1:0".into(),
    ]);
    let mut a = start_agent(&args);
    // an open streaming request must not hold the agent up
    let mut follower = std::process::Command::new("docker")
        .args(["events"])
        .env("DOCKER_HOST", &a.host)
        .env("DOCKER_CONFIG", docker_config_dir())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &a.pid().to_string()])
        .status()
        .unwrap();
    let code = wait_exit(&mut a.child, Duration::from_secs(6));
    let took = t.elapsed();
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(code, Some(0), "agent did not exit cleanly within 6 s");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(!sock.exists(), "unix socket left behind");
}

#[test]
fn ssh_agent_keys_are_used_without_identity() {
    let tb = testbed();
    let dir = std::env::temp_dir().join(unique("sshagent"));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("agent.sock");
    let mut ssh_agent = std::process::Command::new("ssh-agent")
        .args(["-D", "-a", sock.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !sock.exists() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let add = std::process::Command::new("ssh-add")
        .arg(tb.get("SSH_KEY"))
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    // no --identity, and a HOME without ~/.ssh/id_*: only the agent can authenticate
    let args = vec![
        "--remote".to_string(),
        tb.ssh_url(),
        "--known-hosts".into(),
        tb.get("KNOWN_HOSTS").into(),
    ];
    let envs = [
        ("SSH_AUTH_SOCK", sock.to_str().unwrap()),
        ("HOME", dir.to_str().unwrap()),
    ];
    let result = try_start_agent_env(&args, &envs);
    let _ = ssh_agent.kill();
    let _ = ssh_agent.wait();
    let a = result.unwrap_or_else(|(c, e)| panic!("exit {c}: {e}"));
    ok(docker_at(&a.host, &["ps"]));
    drop(a);
    // with the agent gone and no keys, the failure says what was tried
    let line = start_fails_env(&args, &[("HOME", dir.to_str().unwrap())]);
    assert!(line.contains("no keys"), "{line}");
    let _ = std::fs::remove_dir_all(dir);
}

fn start_fails_env(args: &[String], envs: &[(&str, &str)]) -> String {
    match try_start_agent_env(args, envs) {
        Ok(a) => panic!("agent started but should not have: {}", a.ready_line),
        Err((code, err)) => {
            assert_eq!(code, 1, "{err}");
            err.lines().last().unwrap_or_default().to_string()
        }
    }
}

#[test]
fn docker_not_installed_on_a_bare_remote() {
    let tb = testbed();
    let bare = format!("ssh://root@127.0.0.1:{}", tb.get("SSH_BARE_PORT"));
    let line = start_fails(&args_with(tb, &[("--remote", bare.clone())]));
    assert!(
        line.contains("docker is not installed on the remote"),
        "{line}"
    );
    assert!(line.contains("install Docker there"), "{line}");
    let mut args = args_with(tb, &[("--remote", bare)]);
    args.extend(["--remote-docker".into(), "dial-stdio".into()]);
    let line = start_fails(&args);
    assert!(
        line.contains("docker is not installed on the remote"),
        "{line}"
    );
}
