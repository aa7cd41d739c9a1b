//! `berth-agent --config`: several remotes from the tray app's config file in
//! one process, each on its own endpoint; one remote's outage or absence
//! never touches another's traffic.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn one_process_serves_several_remotes_independently() {
    let tb = testbed();
    let mut sshd = PrivateSshd::start("multi", |l| Some(l.to_string()));
    let dir = std::env::temp_dir().join(unique("multi"));
    std::fs::create_dir_all(&dir).unwrap();
    // the test bed's host key, also under the private sshd's port
    let known = std::fs::read_to_string(tb.get("KNOWN_HOSTS")).unwrap();
    let key = known
        .lines()
        .next()
        .and_then(|l| l.split_once(' '))
        .map(|(_, k)| k.to_string())
        .unwrap();
    let known_hosts = dir.join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!("{known}[127.0.0.1]:{} {key}\n", sshd.port),
    )
    .unwrap();
    let (pa, pb) = (free_port(), free_port());
    let sock = dir.join("win.sock");
    let closed = free_port();
    let remote = |name: &str, port: u16, listen: String, docker: &str| {
        format!(
            "[[remote]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"root\"\n\
             auth = {{ kind = \"key-file\", path = \"{}\" }}\ndocker = {docker}\nlisten = \"{listen}\"\n\
             forward_ports = false\nsync = false\n\n",
            tb.get("SSH_KEY")
        )
    };
    let config = [
        remote(
            "lin",
            sshd.port,
            format!("tcp://127.0.0.1:{pa}"),
            "{ kind = \"auto\" }",
        ),
        remote(
            "win",
            tb.get("SSH_WIN_PORT").parse().unwrap(),
            format!("unix://{}", sock.display()),
            "{ kind = \"tcp\", addr = \"127.0.0.1:2375\" }",
        ),
        remote(
            "gone",
            closed,
            format!("tcp://127.0.0.1:{pb}"),
            "{ kind = \"auto\" }",
        ),
    ]
    .concat();
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, config).unwrap();

    let mut child = Command::new(agent_bin())
        .args(["--config", config_path.to_str().unwrap()])
        .args(["--known-hosts", known_hosts.to_str().unwrap()])
        .env("BERTH_LOG", "info,russh=warn")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("DOCKER_HOST")
        .env("DOCKER_CONFIG", dir.join("docker"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let _guard = Kill(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(lines.next().unwrap().unwrap());
    }
    let text = seen.join("\n");
    assert!(text.contains("ready: lin on tcp://127.0.0.1:"), "{text}");
    assert!(text.contains("ready: win on unix://"), "{text}");
    assert!(text.contains("via tcp://127.0.0.1:2375"), "{text}");
    assert!(
        text.contains("gone:") && text.contains("cannot reach"),
        "{text}"
    );

    let lin = format!("tcp://127.0.0.1:{pa}");
    let win = format!("unix://{}", sock.display());
    ok(docker_at(&lin, &["ps"]));
    ok(docker_at(&win, &["ps"]));
    // lin's remote goes down: win does not notice
    sshd.kill();
    let out = docker_at(&lin, &["ps"]);
    assert!(!out.status.success());
    let t = Instant::now();
    for _ in 0..10 {
        ok(docker_at(&win, &["version"]));
    }
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    // and lin comes back by itself
    sshd.resume();
    let t = Instant::now();
    while !docker_at(&lin, &["ps"]).status.success() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "lin did not come back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
