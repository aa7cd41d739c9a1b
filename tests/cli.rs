//! The real docker CLI through berth-agent behaves as against the daemon
//! directly: each test runs the same command both ways where that makes sense.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn version_info_ps_images_match_direct() {
    let tb = testbed();
    let a = agent();
    let direct = tb.direct_host();
    for args in [
        &[
            "version",
            "--format",
            "{{.Server.Version}} {{.Server.APIVersion}} {{.Server.Os}}",
        ][..],
        &[
            "info",
            "--format",
            "{{.ID}} {{.Name}} {{.ServerVersion}} {{.Driver}}",
        ],
        &[
            "ps",
            "-a",
            "--format",
            "{{.ID}} {{.Names}} {{.Status}}",
            "--filter",
            "label=berth-none",
        ],
        // the test bed's own images: tags other tests add and remove
        // meanwhile would make the two listings race
        &[
            "images",
            "--filter",
            "reference=berth-test/*",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}",
        ],
    ] {
        // as sets of lines: the daemon lists images created in the same
        // second in no fixed order, whoever asks
        let lines = |s: String| {
            let mut l: Vec<String> = s.lines().map(String::from).collect();
            l.sort();
            l
        };
        let via = ok(docker_at(&a.host, args));
        let want = ok(docker_at(&direct, args));
        assert_eq!(lines(via.clone()), lines(want), "docker {args:?}");
        assert!(
            !via.trim().is_empty() || args[0] == "ps",
            "docker {args:?} printed nothing"
        );
    }
    assert!(
        a.ready_line.contains("via unix:///var/run/docker.sock"),
        "{}",
        a.ready_line
    );
}

#[test]
fn ps_lists_a_container_created_directly() {
    let tb = testbed();
    let a = agent();
    let name = unique("ps");
    ok(docker_at(
        &tb.direct_host(),
        &["run", "-d", "--name", &name, tb.image(), "sleep", "60"],
    ));
    let via = ok(docker_at(
        &a.host,
        &[
            "ps",
            "--filter",
            &format!("name={name}"),
            "--format",
            "{{.Names}} {{.Image}}",
        ],
    ));
    assert_eq!(via.trim(), format!("{name} {}", tb.image()));
    ok(docker_at(&a.host, &["rm", "-f", &name]));
    let direct = ok(docker_at(
        &tb.direct_host(),
        &["ps", "-a", "--filter", &format!("name={name}"), "-q"],
    ));
    assert!(
        direct.trim().is_empty(),
        "rm -f through berth did not remove it"
    );
}

#[test]
fn run_rm_prints_output_and_exit_code() {
    let tb = testbed();
    let a = agent();
    let out = docker_at(
        &a.host,
        &[
            "run",
            "--rm",
            tb.image(),
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(stderr(&out), "err\n");
}

#[test]
fn run_i_with_eof_exits() {
    let tb = testbed();
    let a = agent();
    let t = Instant::now();
    let out = docker_with(
        &a.host,
        &["run", "-i", "--rm", tb.image(), "cat"],
        Some(b"hi\n"),
    );
    assert_eq!(ok(out), "hi\n");
    assert!(t.elapsed() < Duration::from_secs(30));
    // a larger stdin, through half-close, arrives whole
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let out = docker_with(
        &a.host,
        &["run", "-i", "--rm", tb.image(), "sh", "-c", "wc -c"],
        Some(&data),
    );
    assert_eq!(ok(out).trim(), "2000000");
}

#[test]
fn run_t_through_a_pty() {
    let tb = testbed();
    let a = agent();
    // `script` gives the docker CLI a real terminal
    let cmd = format!(
        "docker run -t --rm {} sh -c 'tty; echo rows=$(stty size)'",
        tb.image()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("DOCKER_HOST", &a.host)
        .env("DOCKER_CONFIG", docker_config_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("/dev/pts/"),
        "no tty in the container: {text}"
    );
}

#[test]
fn detached_logs_follow_exec_and_wait() {
    let tb = testbed();
    let a = agent();
    let name = unique("logs");
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
            "for i in 1 2 3; do echo line$i; sleep 0.3; done; sleep 600",
        ],
    ));
    // logs -f streams lines as they come; stop following after three
    let mut child = Command::new("docker")
        .args(["logs", "-f", &name])
        .env("DOCKER_HOST", &a.host)
        .env("DOCKER_CONFIG", docker_config_dir())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut v = Vec::new();
        for l in std::io::BufReader::new(stdout).lines().take(3) {
            v.push(l.unwrap());
        }
        v
    });
    let t = Instant::now();
    while !reader.is_finished() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    lines.extend(reader.join().unwrap());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(lines, ["line1", "line2", "line3"]);

    // exec with stdin
    let out = docker_with(
        &a.host,
        &[
            "exec",
            "-i",
            &name,
            "sh",
            "-c",
            "cat > /tmp/in; wc -c < /tmp/in",
        ],
        Some(&[b'x'; 100_000]),
    );
    assert_eq!(ok(out).trim(), "100000");
    // exec exit code
    assert_eq!(
        docker_at(&a.host, &["exec", &name, "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );

    // wait returns the exit code once the container stops
    let waiter = {
        let host = a.host.clone();
        let name = name.clone();
        std::thread::spawn(move || ok(docker_at(&host, &["wait", &name])))
    };
    std::thread::sleep(Duration::from_millis(500));
    ok(docker_at(&a.host, &["kill", "-s", "KILL", &name]));
    assert_eq!(waiter.join().unwrap().trim(), "137");
    ok(docker_at(&a.host, &["rm", &name]));
}

#[test]
fn attach_sees_output_and_sends_input() {
    let tb = testbed();
    let a = agent();
    let name = unique("attach");
    ok(docker_at(
        &a.host,
        &[
            "run",
            "-d",
            "-i",
            "--name",
            &name,
            tb.image(),
            "sh",
            "-c",
            "read x; echo got:$x",
        ],
    ));
    let mut child = Command::new("docker")
        .args(["attach", &name])
        .env("DOCKER_HOST", &a.host)
        .env("DOCKER_CONFIG", docker_config_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    child.stdin.as_mut().unwrap().write_all(b"hello\n").unwrap();
    let out = wait_output(child, Duration::from_secs(30));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "got:hello");
    ok(docker_at(&a.host, &["rm", "-f", &name]));
}

fn wait_output(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let t = Instant::now();
    while t.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("command did not finish within {limit:?}");
}

#[test]
fn cp_both_ways() {
    let tb = testbed();
    let a = agent();
    let name = unique("cp");
    ok(docker_at(
        &a.host,
        &["run", "-d", "--name", &name, tb.image(), "sleep", "600"],
    ));
    let dir = std::env::temp_dir().join(unique("cpdir"));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(dir.join("sub/big.bin"), &big).unwrap();
    std::fs::write(dir.join("small.txt"), "hello cp\n").unwrap();
    ok(docker_at(
        &a.host,
        &["cp", dir.to_str().unwrap(), &format!("{name}:/data")],
    ));
    let listing = ok(docker_at(
        &a.host,
        &[
            "exec",
            &name,
            "sh",
            "-c",
            "wc -c < /data/sub/big.bin; cat /data/small.txt",
        ],
    ));
    assert_eq!(listing, "3000000\nhello cp\n");
    let back = std::env::temp_dir().join(unique("cpback"));
    ok(docker_at(
        &a.host,
        &["cp", &format!("{name}:/data"), back.to_str().unwrap()],
    ));
    assert_eq!(std::fs::read(back.join("sub/big.bin")).unwrap(), big);
    ok(docker_at(&a.host, &["rm", "-f", &name]));
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(back);
}

#[test]
fn build_with_a_50mb_context() {
    let tb = testbed();
    let a = agent();
    let dir = std::env::temp_dir().join(unique("build"));
    std::fs::create_dir_all(&dir).unwrap();
    let blob: Vec<u8> = (0..50u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(dir.join("blob.bin"), &blob).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY blob.bin /blob.bin\nRUN wc -c < /blob.bin > /size\n",
            tb.image()
        ),
    )
    .unwrap();
    let tag = format!("{}:latest", unique("img"));
    let out = Command::new("docker")
        .args(["build", "-q", "-t", &tag, dir.to_str().unwrap()])
        .env("DOCKER_HOST", &a.host)
        .env("DOCKER_CONFIG", docker_config_dir())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    ok(out);
    assert_eq!(
        ok(docker_at(&a.host, &["run", "--rm", &tag, "cat", "/size"])).trim(),
        "52428800"
    );
    ok(docker_at(&a.host, &["rmi", &tag]));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn events_since_until_and_stats() {
    let tb = testbed();
    let a = agent();
    let name = unique("ev");
    let since = ok(docker_at(
        &a.host,
        &["version", "--format", "{{.Server.Version}}"],
    ));
    assert!(!since.is_empty());
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ok(docker_at(
        &a.host,
        &["run", "-d", "--name", &name, tb.image(), "sleep", "600"],
    ));
    let stats = ok(docker_at(
        &a.host,
        &["stats", "--no-stream", "--format", "{{.Name}}", &name],
    ));
    assert_eq!(stats.trim(), name);
    ok(docker_at(&a.host, &["rm", "-f", &name]));
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let args = [
        "events",
        "--since",
        &start.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        &format!("container={name}"),
        "--format",
        "{{.Status}}",
    ];
    let via = ok(docker_at(&a.host, &args));
    let direct = ok(docker_at(&tb.direct_host(), &args));
    assert_eq!(via, direct);
    for ev in ["create", "start", "destroy"] {
        assert!(via.lines().any(|l| l == ev), "no {ev} event in {via:?}");
    }
}

#[test]
fn volumes_networks_and_tags() {
    let tb = testbed();
    let a = agent();
    let vol = unique("vol");
    let net = unique("net");
    let tag = format!("{}:v1", unique("tag"));
    ok(docker_at(&a.host, &["volume", "create", &vol]));
    ok(docker_at(&a.host, &["network", "create", &net]));
    ok(docker_at(&a.host, &["tag", tb.image(), &tag]));
    assert!(ok(docker_at(&tb.direct_host(), &["volume", "ls", "-q"]))
        .lines()
        .any(|l| l == vol));
    assert!(ok(docker_at(&a.host, &["volume", "ls", "-q"]))
        .lines()
        .any(|l| l == vol));
    assert!(ok(docker_at(
        &a.host,
        &["network", "ls", "--format", "{{.Name}}"]
    ))
    .lines()
    .any(|l| l == net));
    assert!(ok(docker_at(
        &a.host,
        &["images", "--format", "{{.Repository}}:{{.Tag}}"]
    ))
    .lines()
    .any(|l| l == tag));
    // a volume written by one container is read by the next
    ok(docker_at(
        &a.host,
        &[
            "run",
            "--rm",
            "-v",
            &format!("{vol}:/v"),
            "--network",
            &net,
            tb.image(),
            "sh",
            "-c",
            "echo kept > /v/f",
        ],
    ));
    assert_eq!(
        ok(docker_at(
            &a.host,
            &[
                "run",
                "--rm",
                "-v",
                &format!("{vol}:/v"),
                tb.image(),
                "cat",
                "/v/f"
            ]
        )),
        "kept\n"
    );
    ok(docker_at(&a.host, &["volume", "rm", &vol]));
    ok(docker_at(&a.host, &["network", "rm", &net]));
    ok(docker_at(&a.host, &["rmi", &tag]));
    assert!(!ok(docker_at(&tb.direct_host(), &["volume", "ls", "-q"]))
        .lines()
        .any(|l| l == vol));
    // errors from the daemon come through unchanged
    let out = docker_at(&a.host, &["volume", "rm", &vol]);
    assert!(!out.status.success());
    let direct = docker_at(&tb.direct_host(), &["volume", "rm", &vol]);
    assert_eq!(stderr(&out), stderr(&direct));
}

#[test]
fn unix_socket_endpoint_works() {
    let tb = testbed();
    let sock = std::env::temp_dir().join(format!("{}.sock", unique("sock")));
    let mut args = default_args(tb);
    args.extend(["--listen".to_string(), format!("unix://{}", sock.display())]);
    let a = start_agent(&args);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = ok(docker_at(
        &format!("unix://{}", sock.display()),
        &["version", "--format", "{{.Server.Version}}"],
    ));
    assert!(!out.trim().is_empty());
    drop(a);
}

#[test]
fn host_alias_from_ssh_config() {
    let tb = testbed();
    // HostName, Port, User, IdentityFile and UserKnownHostsFile all come from the config
    let a = start_agent(&[
        "--remote".into(),
        tb.get("SSH_CONFIG_HOST").into(),
        "--ssh-config".into(),
        tb.get("SSH_CONFIG").into(),
    ]);
    assert!(
        a.ready_line.contains(&format!("-> {}", tb.ssh_url())),
        "{}",
        a.ready_line
    );
    ok(docker_at(&a.host, &["ps"]));
}

#[test]
fn buildkit_build_over_h2c_upgrades() {
    let tb = testbed();
    let a = agent();
    // Debian's docker.io CLI (20.10) builds with its embedded BuildKit client:
    // /session and /grpc are `Upgrade: h2c` connections
    let cli = "/usr/bin/docker";
    assert!(
        std::path::Path::new(cli).exists(),
        "docker.io's CLI is part of the test bed"
    );
    let dir = std::env::temp_dir().join(unique("bk"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo built-with-buildkit > /proof\n",
            tb.image()
        ),
    )
    .unwrap();
    let tag = format!("{}:bk", unique("bkimg"));
    let before = status(a.port())["requests"]["upgraded"].as_u64().unwrap();
    let out = Command::new(cli)
        .args([
            "build",
            "--progress=plain",
            "-t",
            &tag,
            dir.to_str().unwrap(),
        ])
        .env("DOCKER_HOST", &a.host)
        .env("DOCKER_CONFIG", docker_config_dir())
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .unwrap();
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("naming to docker.io/library/"),
        "not a BuildKit build: {log}"
    );
    let after = status(a.port())["requests"]["upgraded"].as_u64().unwrap();
    assert!(after > before, "no upgraded connection during the build");
    assert_eq!(
        ok(docker_at(&a.host, &["run", "--rm", &tag, "cat", "/proof"])),
        "built-with-buildkit\n"
    );
    ok(docker_at(&a.host, &["rmi", &tag]));
    let _ = std::fs::remove_dir_all(dir);
}
