//! Indistinguishable from a local daemon, as clients nobody here wrote see
//! it: every host port and host address form the daemon takes is taken the
//! same way (checked side by side against the daemon itself), Testcontainers
//! for Node and Python start containers with ports, exec and bind mounts,
//! and a synced bind mount shows the user's own folder to the CLI, docker-py
//! and Compose.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Removes the named containers when the test ends, passed or failed.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = docker_at(&testbed().direct_host(), &["rm", "-f", n]);
        }
    }
}

/// One HTTP call with a JSON body to 127.0.0.1:`port`: (status, body).
fn call(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let resp = raw_http(port, req.as_bytes());
    let code = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {resp:?}"));
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (code, body.to_string())
}

fn daemon_tcp_port() -> u16 {
    let tcp = testbed().get("DOCKER_TCP");
    tcp.rsplit(':').next().unwrap().parse().unwrap()
}

/// A local folder holding `hello.txt`.
fn folder(tag: &str, text: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique(tag));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("hello.txt"), text).unwrap();
    d
}

#[test]
fn host_port_and_host_ip_forms_are_taken_as_the_daemon_takes_them() {
    let _turn = turn();
    let tb = testbed();
    let a = agent();
    let mut cleanup = Cleanup(Vec::new());
    let p = || free_port();
    let (p1, p2, p3, p4, p5, p6) = (p(), p(), p(), p(), p(), p());
    // (HostIp, HostPort, the local port a client must find, if fixed)
    let forms: Vec<(&str, String, Option<u16>)> = vec![
        ("", String::new(), None),
        ("", "0".into(), None),
        ("", "00".into(), None),
        ("", "0-0".into(), None),
        ("", "/tcp".into(), None),
        ("", format!("0{p1}"), Some(p1)),
        ("", format!("{p2}/tcp"), Some(p2)),
        ("", format!("{p3}-{p3}"), Some(p3)),
        ("0.0.0.0", p4.to_string(), Some(p4)),
        ("127.0.0.1", "0".into(), None),
        ("::1", p5.to_string(), Some(p5)),
        ("localhost", p6.to_string(), Some(p6)),
        ("", "9010-9000".into(), None),
        ("", "65536".into(), None),
        ("", "abc".into(), None),
        ("", " 81".into(), None),
        ("", "+81".into(), None),
        ("", "-1".into(), None),
    ];
    for (ip, port, fixed) in forms {
        let form = format!("HostIp {ip:?} HostPort {port:?}");
        let body = serde_json::json!({
            "Image": tb.image(),
            "Cmd": ["httpd", "-f", "-p", "80", "-h", "/www"],
            "ExposedPorts": {"80/tcp": {}},
            "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": ip, "HostPort": port}]}},
        })
        .to_string();
        let direct_name = unique("form-direct");
        let berth_name = unique("form-berth");
        cleanup.0.extend([direct_name.clone(), berth_name.clone()]);
        let create = |port: u16, name: &str| {
            call(
                port,
                "POST",
                &format!("/v1.41/containers/create?name={name}"),
                &body,
            )
        };
        let (direct, direct_says) = create(daemon_tcp_port(), &direct_name);
        let (berth, berth_says) = create(a.port(), &berth_name);
        assert_eq!(
            direct / 100 == 2,
            berth / 100 == 2,
            "{form}: the daemon answered {direct} {direct_says}, Berth {berth} {berth_says}"
        );
        if berth / 100 != 2 {
            assert_eq!(berth, direct, "{form}: {berth_says}");
            assert!(
                berth_says.contains("invalid port specification"),
                "{form}: {berth_says}"
            );
            continue;
        }
        // accepted: started through Berth, the page answers where inspect says
        ok(docker_at(&a.host, &["start", &berth_name]));
        let shown = ok(docker_at(&a.host, &["port", &berth_name, "80/tcp"]));
        let addr = shown.lines().next().unwrap_or_default().trim().to_string();
        let local: u16 = addr.rsplit(':').next().unwrap().parse().unwrap_or(0);
        if let Some(want) = fixed {
            assert_eq!(local, want, "{form}: docker port says {shown:?}");
        }
        let dial = if ip == "::1" {
            format!("[::1]:{local}")
        } else {
            format!("127.0.0.1:{local}")
        };
        let mut page = Err(String::new());
        for _ in 0..50 {
            page = http_get(&dial, "/");
            if page.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            page.as_deref().map(str::trim),
            Ok("berth-test-page"),
            "{form}: {dial} (docker port: {shown:?})"
        );
        ok(docker_at(&a.host, &["rm", "-f", &berth_name]));
    }
}

#[test]
fn testcontainers_for_node_starts_a_container_with_a_port_an_exec_and_a_bind_mount() {
    let _turn = turn();
    let tb = testbed();
    let a = agent();
    let dir = folder("tc-node", "hello-from-this-machine\n");
    let script = repo_root().join("tests/sdk/node/testcontainers.js");
    let out = Command::new("node")
        .arg(&script)
        .arg(tb.image())
        .arg(&dir)
        .env("NODE_PATH", tb.get("NODE_MODULES"))
        .env("DOCKER_HOST", &a.host)
        .env("DOCKER_CONFIG", docker_config_dir())
        // Ryuk would be pulled from Docker Hub; the script stops its container itself
        .env("TESTCONTAINERS_RYUK_DISABLED", "true")
        .output()
        .expect("run node (tests/testbed/testbed.sh installs testcontainers)");
    let text = ok(out);
    for want in [
        "tc-page: berth-test-page".to_string(),
        "tc-exec: hello-from-this-machine exit 0".to_string(),
        format!("tc-mount: {}", dir.display()),
        "tc-done".to_string(),
    ] {
        assert!(text.lines().any(|l| l == want), "no {want:?} in:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_synced_mount_shows_the_local_folder_to_the_cli_docker_py_compose_and_testcontainers() {
    let _turn = turn();
    let tb = testbed();
    let a = agent();
    let mut cleanup = Cleanup(Vec::new());
    let dir = folder("view", "seen\n");
    let local = dir.display().to_string();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;

    // the CLI: inspect, the list, and the daemon's own view for contrast
    let name = unique("view-cli");
    cleanup.0.push(name.clone());
    sleeper(&a.host, &name, &format!("{local}:/app:ro"));
    let sources = ok(docker_at(
        &a.host,
        &[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Source}}{{end}} {{json .HostConfig.Binds}}",
            &name,
        ],
    ));
    assert_eq!(sources.trim(), format!("{local} [\"{local}:/app:ro\"]"));
    let listed = ok(docker_at(
        &a.host,
        &[
            "ps",
            "--no-trunc",
            "--filter",
            &format!("name={name}"),
            "--format",
            "{{.Mounts}}",
        ],
    ));
    assert_eq!(listed.trim(), local);
    let remote = ok(docker_at(
        &tb.direct_host(),
        &[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Source}}{{end}}",
            &name,
        ],
    ));
    assert!(
        remote.contains("/.cache/berth/mounts/"),
        "the container does not run on a replica: {remote}"
    );
    let mount = unique("view-mount");
    cleanup.0.push(mount.clone());
    ok(docker_at(
        &a.host,
        &[
            "run",
            "-d",
            "--name",
            &mount,
            "--mount",
            &format!("type=bind,source={local},target=/m"),
            tb.image(),
            "sleep",
            "600",
        ],
    ));
    let shown = ok(docker_at(
        &a.host,
        &[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Source}}{{end}} {{range .HostConfig.Mounts}}{{.Source}}{{end}}",
            &mount,
        ],
    ));
    assert_eq!(shown.trim(), format!("{local} {local}"));
    // the events of both containers name no replica either (the daemon
    // reports no mount events for binds; Berth's label names the local path)
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let events = ok(docker_at(
        &a.host,
        &[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &(now + 1).to_string(),
            "--filter",
            &format!("container={name}"),
            "--filter",
            &format!("container={mount}"),
            "--format",
            "{{json .}}",
        ],
    ));
    assert!(events.contains("\"start\""), "{events}");
    assert!(!events.contains("/.cache/berth/mounts/"), "{events}");

    // docker-py: inspect and the raw list; testcontainers-python with a volume mapping
    let out = python(
        &a.host,
        &format!(
            r#"
import docker
from testcontainers.core.container import DockerContainer
c = docker.from_env()
print("py-inspect:", c.containers.get({name:?}).attrs["Mounts"][0]["Source"])
print("py-list:", c.api.containers(filters={{"name": {name:?}}})[0]["Mounts"][0]["Source"])
tc = DockerContainer({image:?}).with_command("sleep 600").with_volume_mapping({local:?}, "/data", "ro")
with tc:
    w = tc.get_wrapped_container()
    w.reload()
    print("tc-mount:", [m["Source"] for m in w.attrs["Mounts"] if m["Destination"] == "/data"][0])
    print("tc-exec:", w.exec_run("cat /data/hello.txt").output.decode().strip())
"#,
            image = tb.image()
        ),
    );
    for want in [
        format!("py-inspect: {local}"),
        format!("py-list: {local}"),
        format!("tc-mount: {local}"),
        "tc-exec: seen".to_string(),
    ] {
        assert!(out.lines().any(|l| l == want), "no {want:?} in:\n{out}");
    }

    // Compose: the service's mount shows the project folder, and a recreate
    // (which carries the old container's binds over) still mounts it
    let project = unique("view").replace('-', "");
    let proj = std::env::temp_dir().join(&project);
    std::fs::create_dir_all(proj.join("src")).unwrap();
    std::fs::write(proj.join("src/hello.txt"), "from-compose\n").unwrap();
    std::fs::write(
        proj.join("docker-compose.yml"),
        format!(
            "version: '3'\nservices:\n  app:\n    image: {}\n    command: sleep 600\n    volumes:\n      - ./src:/app\n",
            tb.image()
        ),
    )
    .unwrap();
    let src = proj.join("src").display().to_string();
    let container = format!("{project}_app_1");
    ok(compose(&a.host, &proj, &project, &["up", "-d"]));
    for round in ["up", "recreated"] {
        let seen = ok(docker_at(
            &a.host,
            &[
                "inspect",
                "-f",
                "{{range .Mounts}}{{.Source}}{{end}}",
                &container,
            ],
        ));
        assert_eq!(seen.trim(), src, "{round}");
        let read = ok(docker_at(
            &a.host,
            &["exec", &container, "cat", "/app/hello.txt"],
        ));
        assert_eq!(read.trim(), "from-compose", "{round}");
        if round == "up" {
            ok(compose(
                &a.host,
                &proj,
                &project,
                &["up", "-d", "--force-recreate"],
            ));
        }
    }
    ok(compose(&a.host, &proj, &project, &["down", "-t", "0"]));
    let _ = std::fs::remove_dir_all(&proj);
    let _ = std::fs::remove_dir_all(&dir);
}
