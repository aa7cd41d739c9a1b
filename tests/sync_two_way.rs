//! Two-way bind-mount sync (issue 15), against the real test bed: what a
//! container writes comes back to the local folder; a path changed on both
//! sides keeps both versions; a deletion never beats an edit; exclusions
//! hold on the way back; an agent killed while bringing files back resumes
//! and ends with identical trees.
//!
//! To change both sides "between two syncs", a test freezes the agent
//! (SIGSTOP), edits the local folder and, straight through the daemon, the
//! container, and lets the agent go on (SIGCONT).

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::sync_helpers::*;
use common::*;

use std::path::Path;
use std::time::Duration;

#[test]
fn what_a_container_writes_is_in_the_local_folder_and_the_next_container_sees_it() {
    let _turn = turn();
    let a = agent();
    let t = Tree::new("tw-state");
    let bind = t.bind("/app");
    run_rm(&a.host, &bind, "echo row1 >> /app/data/state.db");
    // the container is gone; its write comes back (say how soon)
    let took = until(Duration::from_secs(5), "state.db never came back", || {
        t.read("data/state.db").as_deref() == Some("row0\nrow1\n")
    });
    eprintln!("state.db local {took:?} after `docker run --rm` returned");
    let seen = run_rm(&a.host, &bind, "cat /app/data/state.db");
    assert_eq!(seen, "row0\nrow1\n");

    // a new file, a folder, a mode and a link, as a local bind would leave them
    run_rm(
        &a.host,
        &bind,
        "echo x > /app/out.txt; mkdir -p /app/build/bin; printf '#!/bin/sh\\n' > /app/build/bin/run; \
         chmod +x /app/build/bin/run; ln -s ../app.txt /app/build/link; ln -s /etc /app/build/etc",
    );
    let took = until(Duration::from_secs(5), "out.txt never came back", || {
        t.read("out.txt").as_deref() == Some("x\n")
    });
    eprintln!("out.txt local {took:?} after `docker run --rm` returned");
    until(
        Duration::from_secs(5),
        "the build folder never came back",
        || t.0.join("build/etc").symlink_metadata().is_ok(),
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(t.0.join("build/bin/run"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "the exec bit came back");
    assert_eq!(
        std::fs::read_link(t.0.join("build/link")).unwrap(),
        Path::new("../app.txt")
    );
    // a link to a folder of the remote host comes back as a link, never its content
    assert_eq!(
        std::fs::read_link(t.0.join("build/etc")).unwrap(),
        Path::new("/etc")
    );
    assert!(t
        .0
        .join("build/etc")
        .symlink_metadata()
        .unwrap()
        .is_symlink());
    // and the replica is gone once the containers are: nothing was left on it
    until(
        Duration::from_secs(10),
        "the replica was not removed",
        || {
            a.stderr().contains(&format!(
                "removed the replica of {} from the remote",
                t.0.display()
            ))
        },
    );
    let own = t.0.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        !a.stderr()
            .lines()
            .any(|l| l.contains("kept the replica") && l.contains(&own)),
        "{}",
        a.stderr()
    );
    // a deletion in a container travels too
    run_rm(&a.host, &bind, "rm /app/out.txt; rm -r /app/build");
    until(
        Duration::from_secs(5),
        "the deletion never came back",
        || t.read("out.txt").is_none() && !t.0.join("build").exists(),
    );
    assert_eq!(t.read("app.txt").as_deref(), Some("app\n"));
}

#[test]
fn a_running_container_s_writes_come_back_within_a_second() {
    let _turn = turn();
    let a = agent();
    let t = Tree::new("tw-live");
    let name = unique("tw-live");
    sleeper(&a.host, &name, &t.bind("/app"));
    let mut took = Vec::new();
    for i in 0..7 {
        exec_direct(&name, &format!("echo {i} > /app/live.txt"));
        // no event for a write: the poll finds it
        took.push(until(
            Duration::from_secs(10),
            "a write never came back",
            || t.read("live.txt") == Some(format!("{i}\n")),
        ));
    }
    took.sort();
    eprintln!(
        "remote write -> local: p50 {:?}, max {:?}",
        took[3], took[6]
    );
    assert!(
        took[3] <= Duration::from_millis(1500),
        "remote -> local p50 {:?}",
        took[3]
    );
    ok(docker_at(&a.host, &["rm", "-f", &name]));
}

#[test]
fn a_path_changed_on_both_sides_keeps_both_versions_and_an_edit_beats_a_deletion() {
    let _turn = turn();
    let a = agent();
    let t = Tree::new("tw-conflict");
    t.write("notes.txt", "agreed\n");
    t.write("keep.txt", "mine\n");
    let name = unique("tw-conflict");
    sleeper(&a.host, &name, &t.bind("/app"));
    let before = syncs(a.port(), &t.0);
    // both sides change between two rounds
    signal(&a, "-STOP");
    t.write("notes.txt", "local edit\n");
    t.write("keep.txt", "mine, edited\n");
    exec_direct(
        &name,
        "echo 'container edit' > /app/notes.txt; rm /app/keep.txt",
    );
    signal(&a, "-CONT");
    synced_past(a.port(), &t.0, before);
    let kept = until(Duration::from_secs(10), "no conflict copy", || {
        t.names("")
            .iter()
            .any(|n| n.starts_with("notes.berth-conflict-remote-") && n.ends_with(".txt"))
    });
    eprintln!("conflict resolved {kept:?} after the agent went on");
    let copy = t
        .names("")
        .into_iter()
        .find(|n| n.starts_with("notes.berth-conflict-remote-"))
        .unwrap();
    // this machine's version stays, the container's is beside it, on both sides
    assert_eq!(t.read("notes.txt").as_deref(), Some("local edit\n"));
    assert_eq!(t.read(&copy).as_deref(), Some("container edit\n"));
    let inside = |script: &str| exec_direct(&name, script);
    until(
        Duration::from_secs(10),
        "the container never saw both",
        || {
            inside(&format!("cat /app/notes.txt /app/{copy} 2>&1"))
                == "local edit\ncontainer edit\n"
        },
    );
    // the deletion lost to the edit: restored in the container
    assert_eq!(t.read("keep.txt").as_deref(), Some("mine, edited\n"));
    until(Duration::from_secs(10), "keep.txt never came back", || {
        inside("cat /app/keep.txt 2>&1") == "mine, edited\n"
    });
    // reported, in the status and in the log
    let m = mount_of(a.port(), &t.0).unwrap();
    let conflicts = m["conflicts"].as_array().cloned().unwrap_or_default();
    assert!(
        conflicts
            .iter()
            .any(|c| c["path"] == "notes.txt" && c["kept_as"] == copy.as_str()),
        "status: {m}"
    );
    assert!(a.stderr().contains("conflict in "), "{}", a.stderr());
    ok(docker_at(&a.host, &["rm", "-f", &name]));
}

#[test]
fn exclusions_hold_on_the_way_back_and_an_excluded_path_is_never_deleted() {
    let _turn = turn();
    let a = agent();
    let t = Tree::new("tw-excl");
    t.write(".berthignore", "node_modules\n");
    t.write("node_modules/local-only.js", "local\n");
    t.write(".gitignore", ".env\n");
    t.write(".env", "SECRET=1\n");
    let name = unique("tw-excl");
    sleeper(&a.host, &name, &t.bind("/app"));
    // gitignored files are seen; the excluded folder is not sent
    assert_eq!(exec_direct(&name, "cat /app/.env"), "SECRET=1\n");
    assert_eq!(
        exec_direct(&name, "ls /app/node_modules 2>&1 || true"),
        "ls: /app/node_modules: No such file or directory\n"
    );
    // the container fills its own node_modules and writes a result
    exec_direct(
        &name,
        "mkdir -p /app/node_modules/pkg && echo remote > /app/node_modules/pkg/i.js; echo done > /app/result.txt",
    );
    until(
        Duration::from_secs(10),
        "result.txt never came back",
        || t.read("result.txt").as_deref() == Some("done\n"),
    );
    // neither side's excluded files moved or went
    assert_eq!(t.names("node_modules"), vec!["local-only.js".to_string()]);
    assert_eq!(
        exec_direct(&name, "cat /app/node_modules/pkg/i.js"),
        "remote\n"
    );
    let m = mount_of(a.port(), &t.0).unwrap();
    assert!(
        m["exclusions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == ".berthignore"),
        "{m}"
    );
    ok(docker_at(&a.host, &["rm", "-f", &name]));
}

#[test]
fn compose_down_and_up_keeps_a_thousand_files_a_container_wrote() {
    let _turn = turn();
    let tb = testbed();
    let a = agent();
    let t = Tree::new("tw-compose");
    t.write(
        "docker-compose.yml",
        &format!(
            "version: '3'\nservices:\n  db:\n    image: {}\n    command: sh -c 'mkdir -p /data/rows; i=0; while [ $$i -lt 1000 ]; do echo row$$i > /data/rows/r$$i; i=$$((i+1)); done; echo ready > /data/ready; sleep 600'\n    volumes:\n      - ./data:/data\n",
            tb.image()
        ),
    );
    let project = unique("twc").replace('-', "");
    let compose = |args: &[&str]| {
        std::process::Command::new("docker-compose")
            .arg("-p")
            .arg(&project)
            .args(args)
            .current_dir(&t.0)
            .env("DOCKER_HOST", &a.host)
            .output()
            .unwrap()
    };
    ok(compose(&["up", "-d"]));
    until(
        Duration::from_secs(60),
        "the container never finished",
        // (cat fails until the container has written the file)
        || compose(&["exec", "-T", "db", "cat", "/data/ready"]).stdout == b"ready\n",
    );
    ok(compose(&["down"]));
    // everything the container wrote is in the local folder
    until(
        Duration::from_secs(30),
        "the rows never all came back",
        || t.names("data/rows").len() == 1000,
    );
    assert_eq!(t.read("data/rows/r999").as_deref(), Some("row999\n"));
    assert_eq!(t.read("data/state.db").as_deref(), Some("row0\n"));
    // and the next `up` sees it (its command rewrites the same rows)
    ok(compose(&["up", "-d"]));
    let seen = ok(compose(&[
        "exec",
        "-T",
        "db",
        "sh",
        "-c",
        "ls /data/rows | wc -l; cat /data/state.db",
    ]));
    assert_eq!(
        seen.split_whitespace().collect::<Vec<_>>(),
        ["1000", "row0"]
    );
    ok(compose(&["down"]));
}

#[test]
fn an_agent_killed_while_bringing_files_back_resumes_with_identical_trees() {
    let _turn = turn();
    let mut a = agent();
    let t = Tree::new("tw-kill");
    let name = unique("tw-kill");
    sleeper(&a.host, &name, &t.bind("/app"));
    let before = syncs(a.port(), &t.0);
    // many files at once, a few large, so the round takes a while
    signal(&a, "-STOP");
    exec_direct(
        &name,
        "mkdir -p /app/gen; i=0; while [ $i -lt 1500 ]; do echo file$i > /app/gen/f$i; i=$((i+1)); done; \
         i=0; while [ $i -lt 8 ]; do head -c 4000000 /dev/urandom > /app/gen/big$i; i=$((i+1)); done",
    );
    signal(&a, "-CONT");
    // killed as soon as files start arriving
    until(Duration::from_secs(20), "nothing came back", || {
        t.names("gen").len() > 5
    });
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let partial = t.names("gen").len();
    assert!(
        partial < 1508,
        "the round finished before the kill ({partial} files)"
    );
    let _ = before;
    let b = agent();
    let hashes = "cd /app && find . -type f | LC_ALL=C sort | while IFS= read -r f; do sha256sum \"$f\"; done";
    let local_hashes = || {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(hashes.replace("/app", &t.0.display().to_string()))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    until(
        Duration::from_secs(60),
        "the trees never became identical",
        || local_hashes() == ok(docker_at(&b.host, &["exec", &name, "sh", "-c", hashes])),
    );
    let all = local_hashes();
    assert_eq!(all.lines().filter(|l| l.contains("./gen/")).count(), 1508);
    // nothing half-written, nothing temporary left in the user's folder
    assert!(!all.contains(".berth-tmp-"), "{all}");
    ok(docker_at(&b.host, &["rm", "-f", &name]));
}

#[test]
fn one_way_mode_keeps_the_replica_a_mirror() {
    let _turn = turn();
    let tb = testbed();
    let mut args = default_args(tb);
    args.extend(["--sync-mode".to_string(), "one-way".to_string()]);
    let a = start_agent(&args);
    let t = Tree::new("tw-oneway");
    let name = unique("tw-oneway");
    sleeper(&a.host, &name, &t.bind("/app"));
    exec_direct(&name, "echo container > /app/made.txt");
    t.write("app.txt", "edited\n");
    until(Duration::from_secs(10), "the edit never arrived", || {
        exec_direct(&name, "cat /app/app.txt") == "edited\n"
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(t.read("made.txt"), None, "one-way wrote locally");
    let m = mount_of(a.port(), &t.0).unwrap();
    assert_eq!(m["mode"], "one-way");
    ok(docker_at(&a.host, &["rm", "-f", &name]));
}

/// A file of `len` bytes that differ from one file to the next.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Every entry under `root`: path, what it is, exec bit, content.
fn listing(root: &Path) -> Vec<(String, char, bool, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let exec = m.permissions().mode() & 0o111 != 0;
            if m.is_dir() {
                out.push((rel, 'd', false, Vec::new()));
                todo.push(p);
            } else {
                out.push((rel, 'f', exec, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_large_first_sync_arrives_whole_through_archives_side_by_side() {
    let _turn = turn();
    let args = default_args(testbed());
    let a = try_start_agent_env(
        &args,
        &[("BERTH_LOG", "info,berth_core::sync::tarball=debug")],
    )
    .unwrap_or_else(|(code, err)| panic!("berth-agent failed (exit {code}): {err}"));
    let t = Tree::new("tw-split");
    // 12 MiB in four large files among 600 small ones, nested folders, an
    // executable, empty folders: past the size that splits the archive
    for i in 0..600 {
        t.write(
            &format!("src/m{}/n{}/f{i}.txt", i % 7, i % 3),
            &format!("{i}\n").repeat(i % 50 + 1),
        );
    }
    for i in 0..4u64 {
        let p = t.0.as_path().join(format!("assets/b{i}.bin"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, noise(i + 1, 3 << 20)).unwrap();
    }
    t.write("bin/tool", "#!/bin/sh\necho tool\n");
    use std::os::unix::fs::PermissionsExt;
    let tool = t.0.as_path().join("bin/tool");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(t.0.as_path().join("empty/inner")).unwrap();
    let name = unique("tw-split");
    sleeper(&a.host, &name, &t.bind("/app"));
    // it went as two archives
    let log = plain(&a.stderr());
    assert!(
        log.lines()
            .any(|l| l.contains("first sync as archives") && l.contains("archives=2")),
        "{log}"
    );
    // the replica (the test bed's remote is this machine) holds exactly the
    // local tree, and the container sees it
    let m = mount_of(a.port(), t.0.as_path()).expect("no mount");
    let replica = std::path::PathBuf::from(m["remote"].as_str().unwrap());
    let want = listing(t.0.as_path());
    // 607 files, 34 folders
    assert_eq!(want.len(), 641, "the tree as made");
    let got = listing(&replica);
    let differ: Vec<&String> = want
        .iter()
        .filter(|e| !got.contains(e))
        .chain(got.iter().filter(|e| !want.contains(e)))
        .map(|e| &e.0)
        .collect();
    assert!(
        differ.is_empty(),
        "{} entries differ: {:?}",
        differ.len(),
        &differ[..differ.len().min(5)]
    );
    let out = exec_direct(
        &name,
        "cat /app/src/m3/n1/f10.txt; /app/bin/tool; ls -A /app/empty",
    );
    assert_eq!(out, format!("{}tool\ninner\n", "10\n".repeat(11)));
    // nothing came back and nothing conflicted: both sides agree on it all
    std::thread::sleep(Duration::from_secs(2));
    let m = mount_of(a.port(), t.0.as_path()).expect("no mount");
    assert_eq!(m["fetched_files"], 0, "{m}");
    assert_eq!(m["conflicts"], serde_json::json!([]), "{m}");
    assert_eq!(m["state"], "watching", "{m}");
    let _ = docker_at(&a.host, &["rm", "-f", &name]);
}
