//! One-way mode (`--sync-mode one-way`): nothing a container wrote into a
//! synced mount is lost when its last container goes (issue 15): the
//! replica holding it is kept, not deleted, and the next container using
//! the same folder sees it; a replica holding only what Berth sent is still
//! removed. (Two-way mode brings those writes back instead:
//! tests/sync_two_way.rs.) Against the real test bed.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Tree(PathBuf);

impl Tree {
    fn new(prefix: &str) -> Self {
        let p = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(p.join("data")).unwrap();
        std::fs::write(p.join("app.txt"), "app\n").unwrap();
        std::fs::write(p.join("data/state.db"), "row0\n").unwrap();
        Tree(p)
    }
    fn bind(&self) -> String {
        format!("{}:/app", self.0.display())
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The replica of `local` on the remote (the test bed's remote is this
/// machine), from the status while a container uses it.
fn replica_of(port: u16, local: &Path) -> String {
    status(port)["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["local"] == local.display().to_string().as_str())
        .and_then(|m| m["remote"].as_str().map(String::from))
        .expect("the mount is in the status")
}

#[test]
fn what_a_container_wrote_survives_its_removal_and_the_next_container_sees_it() {
    let _turn = turn();
    let _tb = testbed();
    let a = agent_one_way();
    let t = Tree::new("keepdata");
    let name = unique("keepdata");
    // a long-lived user first, to learn where the replica is
    ok(docker_at(
        &a.host,
        &[
            "run",
            "-d",
            "--name",
            &name,
            "-v",
            &t.bind(),
            testbed().image(),
            "sleep",
            "600",
        ],
    ));
    let replica = replica_of(a.port(), &t.0);
    ok(docker_at(&a.host, &["rm", "-f", &name]));
    // the same folder, now written by containers
    run_rm(
        &a.host,
        &t.bind(),
        "echo row1 >> /app/data/state.db; mkdir -p /app/out; echo made > /app/out/new.txt",
    );
    // retirement ran (the container is gone) and kept what the container wrote
    let t0 = Instant::now();
    while !a.stderr().contains(&format!("kept the replica {replica} ")) {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no word of keeping the replica; log:\n{}",
            a.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read_to_string(format!("{replica}/data/state.db")).unwrap(),
        "row0\nrow1\n"
    );
    assert_eq!(
        std::fs::read_to_string(format!("{replica}/out/new.txt")).unwrap(),
        "made\n"
    );
    // the next container sees the previous one's writes, as with a local bind
    let seen = run_rm(
        &a.host,
        &t.bind(),
        "cat /app/data/state.db /app/out/new.txt",
    );
    assert_eq!(seen, "row0\nrow1\nmade\n");
    // a restarted agent's orphan sweep keeps it too
    drop(a);
    let manifest = format!("{replica}.berth-manifest.json");
    let backdate = std::process::Command::new("touch")
        .args(["-d", "1 hour ago", &manifest])
        .status()
        .unwrap();
    assert!(backdate.success());
    let b = agent_one_way();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        Path::new(&format!("{replica}/out/new.txt")).exists(),
        "the orphan sweep removed what a container wrote; log:\n{}",
        b.stderr()
    );
    let _ = std::fs::remove_dir_all(&replica);
    let _ = std::fs::remove_file(&manifest);
}

#[test]
fn a_replica_holding_only_what_berth_sent_is_still_removed() {
    let _turn = turn();
    let _tb = testbed();
    let a = agent_one_way();
    let t = Tree::new("cleanret");
    let name = unique("cleanret");
    ok(docker_at(
        &a.host,
        &[
            "run",
            "-d",
            "--name",
            &name,
            "-v",
            &t.bind(),
            testbed().image(),
            "sleep",
            "600",
        ],
    ));
    let replica = replica_of(a.port(), &t.0);
    // the container reads, and removes one synced file: nothing local is lost
    ok(docker_at(
        &a.host,
        &[
            "exec",
            &name,
            "sh",
            "-c",
            "cat /app/app.txt; rm /app/app.txt",
        ],
    ));
    ok(docker_at(&a.host, &["rm", "-f", &name]));
    let t0 = Instant::now();
    while Path::new(&replica).exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the replica {replica} stayed; log:\n{}",
            a.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !a.stderr().contains(&format!("kept the replica {replica} ")),
        "{}",
        a.stderr()
    );
    assert!(t.0.join("app.txt").exists(), "the local file is untouched");
}

/// An agent that starts beside many containers of an earlier agent adopts
/// them one by one; a container created meanwhile is not on the list it
/// took, and must keep its replica all the same (it was once removed under
/// the running container, whose `/app` then vanished).
#[test]
fn a_container_created_while_a_new_agent_adopts_old_ones_keeps_its_replica() {
    let _turn = turn();
    let _tb = testbed();
    // large enough that adopting each takes a while (both sides rescanned)
    let old: Vec<Tree> = (0..8).map(|_| Tree::new("adoptold")).collect();
    for t in &old {
        for i in 0..3000 {
            std::fs::write(t.0.join(format!("data/f{i:04}")), "x").unwrap();
        }
    }
    let names: Vec<String> = old.iter().map(|_| unique("adoptold")).collect();
    {
        let a = agent();
        for (t, name) in old.iter().zip(&names) {
            sleeper(&a.host, name, &t.bind());
        }
    }
    let a = agent();
    let t = Tree::new("adoptnew");
    let name = unique("adoptnew");
    sleeper(&a.host, &name, &t.bind());
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        let out = docker_at(&a.host, &["exec", &name, "cat", "/app/app.txt"]);
        assert!(
            out.status.success() && out.stdout == b"app\n",
            "the new container lost its files: {}; agent log: {}",
            stderr(&out),
            a.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(status(a.port())["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["local"] == t.0.display().to_string().as_str()));
    for n in names.iter().chain([&name]) {
        let _ = docker_at(&a.host, &["rm", "-f", n]);
    }
}
