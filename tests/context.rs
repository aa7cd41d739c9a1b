//! The docker context Berth creates, against the real docker CLI: with a
//! private DOCKER_CONFIG holding registry auths, unknown fields and a current
//! context of its own, `berth-<name>` is created for a running agent and made
//! current, plain `docker` (no -H, no DOCKER_HOST) then goes through Berth,
//! and restoring brings the user's context back with config.json intact.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use berth_core::desktop::config::{Config, Remote};
use berth_core::desktop::context::DockerContexts;
use serde_json::{json, Value};

/// The docker CLI as a user runs it: only DOCKER_CONFIG decides where it goes.
fn docker_plain(config: &Path, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("120")
        .arg("docker")
        .args(args)
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .output()
        .expect("run docker")
}

/// (name, current) for every context the CLI lists.
fn contexts(config: &Path) -> Vec<(String, bool)> {
    let out = ok(docker_plain(
        config,
        &["context", "ls", "--format", "{{.Name}}\t{{.Current}}"],
    ));
    out.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, c)| (n.to_string(), c == "true"))
        .collect()
}

fn current(config: &Path) -> Vec<String> {
    contexts(config)
        .into_iter()
        .filter(|(_, c)| *c)
        .map(|(n, _)| n)
        .collect()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn requests(port: u16) -> u64 {
    status(port)["requests"]["total"].as_u64().unwrap()
}

#[test]
fn berth_context_is_used_by_plain_docker_and_restored() {
    let tb = testbed();
    let dir = std::env::temp_dir().join(unique("context"));
    std::fs::create_dir_all(&dir).unwrap();
    // the user's own context, made by the real CLI, current before Berth
    ok(docker_plain(
        &dir,
        &[
            "context",
            "create",
            "mine",
            "--docker",
            "host=unix:///nonexistent/docker.sock",
        ],
    ));
    let original = json!({
        "auths": {"registry.example": {"auth": "dXNlcjpwYXNz"}},
        "psFormat": "table {{.ID}}\t{{.Names}}",
        "detachKeys": "ctrl-e,e",
        "someFutureField": {"nested": [1, 2, {"x": null}]},
        "currentContext": "mine",
    });
    let config_json = dir.join("config.json");
    std::fs::write(
        &config_json,
        serde_json::to_string_pretty(&original).unwrap(),
    )
    .unwrap();
    assert_eq!(current(&dir), ["mine"]);

    let mut args = default_args(tb);
    args.extend(["--no-port-forwarding".into(), "--no-sync".into()]);
    let a = start_agent(&args);

    // the remote as the tray app keeps it, through a saved and reloaded config
    let name = format!("e2e{}", std::process::id());
    let mut remote = Remote::new(&name, "127.0.0.1", "root");
    remote.port = tb.get("SSH_PORT").parse().unwrap();
    remote.listen = a.host.clone();
    remote.forward_ports = false;
    remote.sync = false;
    let mut cfg = Config::default();
    cfg.add_remote(remote).unwrap();
    let cfg_path = dir.join("berth/config.toml");
    cfg.save_to(&cfg_path).unwrap();
    let cfg = Config::load_from(&cfg_path).unwrap();
    let remote = cfg.remote(&name).unwrap();
    let endpoint = remote.listen_addr().unwrap().to_string();

    let ctx = DockerContexts::at(&dir);
    let ctx_name = ctx.ensure_context(&remote.name, &endpoint).unwrap();
    assert_eq!(ctx_name, remote.context_name());
    let previous = ctx.use_context(&ctx_name).unwrap();
    assert_eq!(previous.as_deref(), Some("mine"));

    // the real CLI sees it as current, with Berth's endpoint
    assert_eq!(current(&dir), std::slice::from_ref(&ctx_name));
    let table = ok(docker_plain(&dir, &["context", "ls"]));
    let star = format!("{ctx_name} *");
    assert!(table.lines().any(|l| l.starts_with(&star)), "{table}");
    let inspect = ok(docker_plain(
        &dir,
        &[
            "context",
            "inspect",
            &ctx_name,
            "--format",
            "{{.Endpoints.docker.Host}}",
        ],
    ));
    assert_eq!(inspect.trim(), a.host);

    // plain `docker ps` goes through the agent (and still honours psFormat)
    let before = requests(a.port());
    let ps = ok(docker_plain(&dir, &["ps", "-a"]));
    assert!(
        ps.starts_with("CONTAINER ID") && ps.contains("NAMES") && !ps.contains("IMAGE"),
        "{ps}"
    );
    let after = requests(a.port());
    assert!(
        after > before,
        "docker ps did not reach Berth ({before} -> {after})"
    );
    let info = ok(docker_plain(&dir, &["info", "--format", "{{.ID}}"]));
    let direct = ok(docker_at(
        &tb.direct_host(),
        &["info", "--format", "{{.ID}}"],
    ));
    assert_eq!(info.trim(), direct.trim(), "not the test bed's daemon");

    // every other field of config.json is kept
    let mut want = original.clone();
    want["currentContext"] = json!(ctx_name);
    assert_eq!(read_json(&config_json), want);

    // restoring brings the user's context back, config.json as it was
    ctx.restore(previous.as_deref()).unwrap();
    assert_eq!(current(&dir), ["mine"]);
    assert_eq!(read_json(&config_json), original);
    let count = requests(a.port());
    let out = docker_plain(&dir, &["ps"]);
    assert!(!out.status.success(), "the user's context is a dead socket");
    assert_eq!(requests(a.port()), count, "docker still went through Berth");

    // removing the context leaves no trace in the CLI
    ctx.remove_context(&remote.name).unwrap();
    let names: Vec<String> = contexts(&dir).into_iter().map(|(n, _)| n).collect();
    assert!(!names.contains(&ctx_name), "{names:?}");
    assert_eq!(read_json(&config_json), original);
    drop(a);
    std::fs::remove_dir_all(&dir).unwrap();
}
