//! Debian's docker-compose (1.29, a docker-py client) through berth-agent:
//! a two-service project comes up, is listed, logs, and goes down.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[test]
fn compose_up_ps_logs_down() {
    let tb = testbed();
    let a = agent();
    let project = unique("proj").replace('-', "");
    let dir = std::env::temp_dir().join(&project);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        format!(
            "version: '3'\nservices:\n  web:\n    image: {img}\n    command: httpd -f -p 8080 -h /www\n  worker:\n    image: {img}\n    command: sh -c 'echo worker-started; wget -q -O - http://web:8080/ ; sleep 600'\n    depends_on: [web]\n",
            img = tb.image()
        ),
    )
    .unwrap();
    ok(compose(&a.host, &dir, &project, &["up", "-d"]));
    let ps = ok(compose(&a.host, &dir, &project, &["ps"]));
    for svc in ["web_1", "worker_1"] {
        assert!(
            ps.lines().any(|l| l.contains(svc) && l.contains("Up")),
            "{svc} not up:\n{ps}"
        );
    }
    // the project is really on the daemon
    let direct = ok(docker_at(
        &tb.direct_host(),
        &[
            "ps",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
            "--format",
            "{{.Names}}",
        ],
    ));
    assert_eq!(direct.lines().count(), 2, "{direct}");
    // logs show the worker reached the web service over the project network
    let mut logs = String::new();
    for _ in 0..50 {
        logs = ok(compose(
            &a.host,
            &dir,
            &project,
            &["logs", "--no-color", "worker"],
        ));
        if logs.contains("berth-test-page") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        logs.contains("worker-started") && logs.contains("berth-test-page"),
        "{logs}"
    );
    ok(compose(&a.host, &dir, &project, &["down"]));
    let left = ok(docker_at(
        &tb.direct_host(),
        &[
            "ps",
            "-a",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
            "-q",
        ],
    ));
    assert!(left.trim().is_empty(), "containers left after down: {left}");
    let _ = std::fs::remove_dir_all(dir);
}
