//! A change rescans only what changed (issue 15), against the real test
//! bed: a round the file watcher starts reads only its paths, in two-way
//! and in one-way mode, with folders created, renamed and deleted, excluded
//! paths left alone on both sides, and what such a round agreed known to
//! the next agent after a SIGKILL.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::sync_helpers::*;
use common::*;

use std::time::Duration;

/// What `script` printed in container `name`, errors included, whether it
/// failed or not.
fn inside(name: &str, script: &str) -> String {
    exec_direct(name, &format!("{{ {script}; }} 2>&1; true"))
}

/// Edits `rel` until the container sees an edit carried by a round over
/// changed paths; asserts it read fewer than `most` entries.
fn an_edit_reads_only_its_path(port: u16, t: &Tree, name: &str, rel: &str, most: u64) {
    let mut seen = Vec::new();
    for n in 0..3 {
        let text = format!("edited {n}\n");
        t.write(rel, &text);
        until(
            Duration::from_secs(10),
            "the edit never reached the container",
            || inside(name, &format!("cat /app/{rel}")) == text,
        );
        let m = mount_of(port, &t.0).unwrap();
        seen.push(m["last_round"].clone());
        if m["last_round"]["scope"] == "changes" {
            break;
        }
    }
    let last = seen.last().unwrap();
    assert_eq!(last["scope"], "changes", "rounds seen: {seen:?}");
    assert!(last["scanned"].as_u64().unwrap() < most, "{seen:?}");
}

/// New nested folders, a folder renamed, a folder deleted: each reaches
/// the container.
fn folders_made_renamed_and_deleted_arrive(t: &Tree, name: &str) {
    let secs = Duration::from_secs;
    t.write("new/a/b.txt", "b\n");
    until(secs(10), "new/a/b.txt never arrived", || {
        inside(name, "cat /app/new/a/b.txt") == "b\n"
    });
    std::fs::rename(t.0.join("new"), t.0.join("renamed")).unwrap();
    until(secs(10), "the rename never arrived", || {
        inside(name, "cat /app/renamed/a/b.txt; ls /app/new")
            == "b\nls: /app/new: No such file or directory\n"
    });
    std::fs::remove_dir_all(t.0.join("many/d2")).unwrap();
    until(secs(10), "the deletion never arrived", || {
        inside(name, "ls /app/many/d2") == "ls: /app/many/d2: No such file or directory\n"
    });
}

#[test]
fn an_edit_rescans_only_what_changed_and_what_it_agreed_survives_a_kill() {
    let _turn = turn();
    // the polls' log says what they found on the replica
    let args = default_args(testbed());
    let mut a = try_start_agent_env(
        &args,
        &[("BERTH_LOG", "info,berth_core::sync::mount_task=debug")],
    )
    .unwrap_or_else(|(code, err)| panic!("berth-agent failed (exit {code}): {err}"));
    let t = Tree::new("tw-scope");
    for i in 0..2000 {
        t.write(&format!("many/d{}/f{i}.txt", i % 20), "x\n");
    }
    t.write(".berthignore", "node_modules\n");
    let name = unique("tw-scope");
    sleeper(&a.host, &name, &t.bind("/app"));
    let inside = |script: &str| inside(&name, script);
    let secs = Duration::from_secs;

    // an edit deep in a large tree: the round that carries it reads that
    // path and the folders above it, not the 2,000 files around it
    an_edit_reads_only_its_path(a.port(), &t, &name, "many/d3/f3.txt", 20);
    folders_made_renamed_and_deleted_arrive(&t, &name);

    // a change in an excluded folder is nobody's business on either side
    inside("mkdir -p /app/node_modules/pkg && echo remote > /app/node_modules/pkg/i.js");
    t.write("node_modules/local.js", "local\n");
    t.write("sentinel.txt", "s\n");
    until(secs(10), "sentinel.txt never arrived", || {
        inside("cat /app/sentinel.txt 2>&1") == "s\n"
    });
    assert_eq!(inside("ls /app/node_modules"), "pkg\n");
    assert_eq!(t.names("node_modules"), vec!["local.js".to_string()]);

    // what the container wrote meanwhile, outside any local change, comes back
    inside("echo r > /app/remote.txt");
    until(secs(10), "remote.txt never came back", || {
        t.read("remote.txt").as_deref() == Some("r\n")
    });

    // a write deep in the tree, by the container, comes back through a poll
    // that lists what changed on the replica, not a rescan of all of it
    let looked = |s: &str| {
        s.matches("changed on the replica since the last look")
            .count()
    };
    let before = looked(&a.stderr());
    let replica = mount_of(a.port(), &t.0).unwrap()["remote"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(format!("{replica}/many/d5/deep.txt"), "deep\n").unwrap();
    until(secs(10), "deep.txt never came back", || {
        t.read("many/d5/deep.txt").as_deref() == Some("deep\n")
    });
    let log = plain(&a.stderr());
    assert!(looked(&log) > before, "no poll listed what changed: {log}");
    let found = log
        .lines()
        .rev()
        .find(|l| l.contains("changed on the replica"))
        .unwrap();
    // deep.txt, and what Berth itself wrote within the margin before
    let paths: u64 = found
        .rsplit("paths=")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        paths < 20,
        "the poll listed more than what changed: {found}"
    );

    // what a look found on the replica shows as pending until it is back
    let mut most = 0;
    let mut write = 0;
    until(secs(30), "the 300 files never all came back", || {
        // written while the agent looks, so some looks find part of them
        if write < 300 {
            let p = format!("{replica}/many/d7/big{write}.bin");
            std::fs::write(p, vec![b'b'; 256 << 10]).unwrap();
            write += 1;
        }
        let m = mount_of(a.port(), &t.0).unwrap();
        most = most.max(m["pending_remote_changes"].as_u64().unwrap());
        let back = t
            .names("many/d7")
            .iter()
            .filter(|n| n.starts_with("big"))
            .count();
        back == 300 && m["pending_remote_changes"] == 0
    });
    assert!(
        (1..=300).contains(&most),
        "no status showed the replica's changes on their way back (at most {most})"
    );

    // a file agreed in a round over changed paths, then the agent killed:
    // the next agent knows it was agreed, so the container deleting it
    // deletes it here too (were it forgotten, it would be sent back)
    t.write("fresh.txt", "fresh\n");
    until(secs(10), "fresh.txt never arrived", || {
        inside("cat /app/fresh.txt 2>&1") == "fresh\n"
    });
    std::thread::sleep(Duration::from_millis(300));
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    inside("rm /app/fresh.txt");
    let b = agent();
    until(secs(20), "the container's deletion never came back", || {
        t.read("fresh.txt").is_none()
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        inside("cat /app/fresh.txt"),
        "cat: can't open '/app/fresh.txt': No such file or directory\n"
    );
    // and nothing else moved
    assert_eq!(t.names("many/d3").len(), 100);
    assert!(t.read("many/d3/f3.txt").unwrap().starts_with("edited "));
    assert_eq!(t.names("many").len(), 19);
    ok(docker_at(&b.host, &["rm", "-f", &name]));
}

#[test]
fn one_way_edits_rescan_only_what_changed_and_a_restarted_agent_knows_what_the_replica_holds() {
    let _turn = turn();
    let mut a = agent_one_way();
    let t = Tree::new("ow-scope");
    for i in 0..1000 {
        t.write(&format!("many/d{}/f{i}.txt", i % 10), "x\n");
    }
    let name = unique("ow-scope");
    sleeper(&a.host, &name, &t.bind("/app"));
    let inside = |script: &str| inside(&name, script);
    let secs = Duration::from_secs;
    an_edit_reads_only_its_path(a.port(), &t, &name, "many/d1/f1.txt", 10);
    folders_made_renamed_and_deleted_arrive(&t, &name);

    // a file sent by such a round; once things are quiet the replica's
    // manifest says so, and an agent started after a SIGKILL removes the
    // file from the replica when it is deleted here meanwhile
    t.write("later.txt", "x\n");
    until(secs(10), "later.txt never arrived", || {
        inside("cat /app/later.txt") == "x\n"
    });
    std::thread::sleep(secs(7));
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    std::fs::remove_file(t.0.join("later.txt")).unwrap();
    let b = agent_one_way();
    until(secs(20), "the replica kept a file deleted here", || {
        inside("cat /app/later.txt")
            == "cat: can't open '/app/later.txt': No such file or directory\n"
    });
    assert_eq!(inside("cat /app/renamed/a/b.txt"), "b\n");
    assert_eq!(inside("ls /app/many | wc -l").trim(), "9");
    assert_eq!(t.names("many").len(), 9);
    ok(docker_at(&b.host, &["rm", "-f", &name]));
}
