//! Bind-mount sync against the real test bed: `-v LOCAL:/app` shows the local
//! files in the container on the remote, and local edits follow within moments.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Every agent of this machine adopts the replicas of this machine's
/// containers (that is how a restarted agent catches up), so concurrent
/// agents would sync the same trees: these tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A local tree for one test, removed at the end.
struct Tree(PathBuf);

impl Tree {
    fn new(prefix: &str) -> Self {
        let p = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&p).unwrap();
        Tree(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn s(&self) -> String {
        self.0.display().to_string()
    }
    fn write(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `docker run -d --name NAME -v BIND IMAGE sleep 600`, as it came out.
fn try_sleeper(host: &str, name: &str, bind: &str) -> std::process::Output {
    let tb = testbed();
    docker_at(
        host,
        &[
            "run",
            "-d",
            "--name",
            name,
            "-v",
            bind,
            tb.image(),
            "sleep",
            "600",
        ],
    )
}

/// Starts `sleep 600` in a detached container with one bind mount.
fn sleeper(host: &str, name: &str, bind: &str) {
    ok(try_sleeper(host, name, bind));
}

/// Runs `sh -c script` in the container until it prints `want` (or times out).
fn eventually(host: &str, container: &str, script: &str, want: &str) {
    let t = Instant::now();
    let mut last = String::new();
    while t.elapsed() < Duration::from_secs(15) {
        let out = docker_at(host, &["exec", container, "sh", "-c", script]);
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        if last.trim() == want.trim() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("`{script}` never printed {want:?}; last: {last:?}");
}

fn mounts(port: u16) -> Vec<serde_json::Value> {
    status(port)["mounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_local_tree_is_seen_in_the_container_with_modes_and_symlinks() {
    let _turn = turn();
    let _tb = testbed();
    let a = agent();
    let t = Tree::new("tree");
    t.write("hello.txt", "hello from the laptop\n");
    t.write("sub/deep/file.txt", "deep\n");
    t.write("run.sh", "#!/bin/sh\necho ran\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        t.path().join("run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("hello.txt", t.path().join("link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", t.path().join("outside")).unwrap();
    let bind = format!("{}:/app:ro", t.s());
    let name = unique("tree");
    sleeper(&a.host, &name, &bind);
    let out = ok(docker_at(
        &a.host,
        &["exec", &name, "sh", "-c", "cat /app/hello.txt /app/sub/deep/file.txt; /app/run.sh; readlink /app/link; readlink /app/outside; touch /app/x 2>&1 | grep -c Read-only"],
    ));
    assert_eq!(
        out,
        "hello from the laptop\ndeep\nran\nhello.txt\n/etc/passwd\n1\n"
    );
    // the daemon mounted a replica, not the laptop path
    let m = mounts(a.port());
    let entry = m
        .iter()
        .find(|m| m["local"] == t.s().as_str())
        .unwrap_or_else(|| panic!("{m:?}"))
        .clone();
    assert_eq!(entry["state"], "watching");
    assert_eq!(entry["files"], 3);
    assert_eq!(
        entry["containers"].as_array().map(Vec::len),
        Some(1),
        "{entry}"
    );
    let replica = PathBuf::from(entry["remote"].as_str().unwrap());
    assert!(
        replica.join("hello.txt").exists(),
        "the test bed's remote is this machine: {replica:?}"
    );
    // the daemon mounted the replica; clients of Berth see the local folder
    let binds = |host: &str| {
        ok(docker_at(
            host,
            &["inspect", &name, "--format", "{{json .HostConfig.Binds}}"],
        ))
    };
    assert_eq!(
        binds(&testbed().direct_host()).trim(),
        format!("[\"{}:/app:ro\"]", replica.display())
    );
    assert_eq!(binds(&a.host).trim(), format!("[\"{bind}\"]"));
    // the last container gone, the replica goes too
    ok(docker_at(&a.host, &["rm", "-f", &name]));
    let t0 = Instant::now();
    while replica.exists()
        || mounts(a.port())
            .iter()
            .any(|m| m["local"] == t.s().as_str())
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "replica {replica:?} not removed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_restarted_agent_readopts_replicas_and_catches_up() {
    let _turn = turn();
    let _tb = testbed();
    let mut a = agent();
    let t = Tree::new("readopt");
    t.write("v.txt", "before\n");
    let name = unique("readopt");
    sleeper(&a.host, &name, &format!("{}:/app", t.s()));
    eventually(&a.host, &name, "cat /app/v.txt", "before");
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    // changed while no agent runs
    t.write("v.txt", "while the agent was down\n");
    t.write("added.txt", "added\n");
    let b = agent();
    eventually(
        &b.host,
        &name,
        "cat /app/v.txt /app/added.txt",
        "while the agent was down\nadded",
    );
    // and it watches again
    t.write("v.txt", "after\n");
    eventually(&b.host, &name, "cat /app/v.txt", "after");
    ok(docker_at(&b.host, &["rm", "-f", &name]));
}

#[test]
fn local_edits_reach_a_running_container() {
    let _turn = turn();
    let _tb = testbed();
    let a = agent();
    let t = Tree::new("live");
    t.write("a.txt", "one\n");
    t.write("dir/b.txt", "b\n");
    let name = unique("live");
    sleeper(&a.host, &name, &format!("{}:/app", t.s()));
    // write
    t.write("a.txt", "two\n");
    eventually(&a.host, &name, "cat /app/a.txt", "two");
    // create, in a new directory
    t.write("new/dir/c.txt", "c\n");
    eventually(&a.host, &name, "cat /app/new/dir/c.txt", "c");
    // rename a file, and an editor's atomic save (write a temp file, rename it over)
    std::fs::rename(t.path().join("a.txt"), t.path().join("renamed.txt")).unwrap();
    t.write(".a.txt.swp", "saved atomically\n");
    std::fs::rename(t.path().join(".a.txt.swp"), t.path().join("dir/b.txt")).unwrap();
    eventually(
        &a.host,
        &name,
        "ls /app; cat /app/dir/b.txt",
        "dir\nnew\nrenamed.txt\nsaved atomically",
    );
    // move a directory, delete a file
    std::fs::rename(t.path().join("new"), t.path().join("moved")).unwrap();
    std::fs::remove_file(t.path().join("renamed.txt")).unwrap();
    eventually(
        &a.host,
        &name,
        "ls /app; cat /app/moved/dir/c.txt",
        "dir\nmoved\nc",
    );
    // a burst like a `git checkout`: 2,000 files arrive, in one consistent state
    for i in 0..2000 {
        t.write(&format!("burst/{}/f{i}.txt", i % 20), &format!("{i}\n"));
    }
    eventually(
        &a.host,
        &name,
        "find /app/burst -type f | wc -l; cat /app/burst/19/f1999.txt",
        "2000\n1999",
    );
    ok(docker_at(&a.host, &["rm", "-f", &name]));
}

#[test]
fn single_file_binds_and_shared_replicas() {
    let _turn = turn();
    let tb = testbed();
    let a = agent();
    let t = Tree::new("file");
    t.write("nginx.conf", "worker_processes 1;\n");
    let bind = format!("{}/nginx.conf:/etc/nginx/nginx.conf:ro", t.s());
    let name = unique("file");
    sleeper(&a.host, &name, &bind);
    eventually(
        &a.host,
        &name,
        "cat /etc/nginx/nginx.conf",
        "worker_processes 1;",
    );
    t.write("nginx.conf", "worker_processes 4;\n");
    eventually(
        &a.host,
        &name,
        "cat /etc/nginx/nginx.conf",
        "worker_processes 4;",
    );
    // a second container of the same source shares the replica: nothing is sent again
    let before = mounts(a.port());
    let uploaded = |m: &[serde_json::Value]| {
        m.iter()
            .find(|m| m["local"].as_str().unwrap().ends_with("nginx.conf"))
            .unwrap()["uploaded_files"]
            .as_u64()
            .unwrap()
    };
    let out = ok(docker_at(
        &a.host,
        &[
            "run",
            "--rm",
            "-v",
            &bind,
            tb.image(),
            "cat",
            "/etc/nginx/nginx.conf",
        ],
    ));
    assert_eq!(out, "worker_processes 4;\n");
    let after = mounts(a.port());
    assert_eq!(
        uploaded(&before),
        uploaded(&after),
        "an unchanged file was sent again"
    );
    assert_eq!(
        after.len(),
        before.len(),
        "a second replica was made for the same source"
    );
    ok(docker_at(&a.host, &["rm", "-f", &name]));
}

/// The `exclusions` the status lists for the mount of `local`.
fn exclusions(port: u16, local: &str) -> Vec<String> {
    let m = mounts(port);
    let entry = m
        .iter()
        .find(|m| m["local"] == local)
        .unwrap_or_else(|| panic!("no mount {local} in {m:?}"));
    serde_json::from_value(entry["exclusions"].clone()).unwrap()
}

#[test]
fn nothing_is_hidden_by_default_and_exclusions_are_opt_in_and_visible() {
    let _turn = turn();
    let tb = testbed();
    let a = agent();
    let t = Tree::new("excl");
    t.write("keep.txt", "keep\n");
    t.write(".gitignore", "*.log\n.env\n");
    t.write(".env", "TOKEN=1\n");
    t.write("debug.log", "noise\n");
    t.write(".dockerignore", "secret/\n");
    t.write("secret/key", "s3cret\n");
    t.write(".git/HEAD", "ref: refs/heads/main\n");
    t.write(".berthignore", "local-only/\n");
    t.write("local-only/x", "x\n");
    t.write("build/out.txt", "built\n");
    let name = unique("excl");
    sleeper(&a.host, &name, &format!("{}:/app", t.s()));
    // what a local bind mount shows, less what .berthignore excludes
    let out = ok(docker_at(
        &a.host,
        &[
            "exec",
            &name,
            "sh",
            "-c",
            "ls -A /app; cat /app/.env /app/.git/HEAD /app/secret/key",
        ],
    ));
    assert_eq!(
        out,
        ".berthignore\n.dockerignore\n.env\n.git\n.gitignore\nbuild\ndebug.log\nkeep.txt\nsecret\n\
         TOKEN=1\nref: refs/heads/main\ns3cret\n"
    );
    assert_eq!(exclusions(a.port(), &t.s()), [".berthignore"]);

    // a path excluded after it was synced, and one the container wrote in
    // an excluded folder, stay in the replica
    ok(docker_at(
        &a.host,
        &[
            "exec",
            &name,
            "sh",
            "-c",
            "echo mine > /app/build/container.txt",
        ],
    ));
    t.write(".berthignore", "local-only/\nbuild/\n");
    std::fs::remove_dir_all(t.path().join("build")).unwrap();
    t.write("keep.txt", "v2\n");
    eventually(&a.host, &name, "cat /app/keep.txt", "v2");
    // the next round (nothing changed) must not remove them either
    t.write("keep.txt", "v3\n");
    eventually(&a.host, &name, "cat /app/keep.txt", "v3");
    let out = ok(docker_at(
        &a.host,
        &["exec", &name, "sh", "-c", "cat /app/build/out.txt /app/build/container.txt; test -e /app/local-only || echo not-synced"],
    ));
    assert_eq!(out, "built\nmine\nnot-synced\n");
    // settled without an error (a poll's round may be under way right now)
    common::sync_helpers::until(Duration::from_secs(10), "the mount never settled", || {
        let m = mounts(a.port());
        let entry = m.iter().find(|m| m["local"] == t.s().as_str()).unwrap();
        assert_ne!(entry["state"], "error", "{entry}");
        entry["state"] == "watching"
    });
    ok(docker_at(&a.host, &["rm", "-f", &name]));
    drop(a);

    // opt in to .gitignore; --sync-git is accepted and changes nothing
    let mut args = default_args(tb);
    args.extend(
        [
            "--sync-gitignore",
            "--sync-git",
            "--sync-ignore",
            "node_modules",
        ]
        .map(String::from),
    );
    let b = start_agent(&args);
    let t2 = Tree::new("exclgit");
    t2.write("keep.txt", "keep\n");
    t2.write(".gitignore", "*.log\n.env\n");
    t2.write(".env", "TOKEN=1\n");
    t2.write("debug.log", "noise\n");
    t2.write("node_modules/p/i.js", "x\n");
    t2.write(".git/HEAD", "ref: refs/heads/main\n");
    let name = unique("exclgit");
    sleeper(&b.host, &name, &format!("{}:/app", t2.s()));
    let out = ok(docker_at(&b.host, &["exec", &name, "ls", "-A", "/app"]));
    assert_eq!(out, ".git\n.gitignore\nkeep.txt\n");
    assert_eq!(
        exclusions(b.port(), &t2.s()),
        ["--sync-ignore node_modules", ".gitignore (honoured)"]
    );
    ok(docker_at(&b.host, &["rm", "-f", &name]));

    // remote-only sources stay where they are
    let vol = unique("vol");
    let out = ok(docker_at(
        &b.host,
        &[
            "run",
            "--rm",
            "-v",
            &format!("{vol}:/data"),
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            tb.image(),
            "sh",
            "-c",
            "test -S /var/run/docker.sock && echo socket; ls /data | wc -l",
        ],
    ));
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["socket", "0"]);
    ok(docker_at(&b.host, &["volume", "rm", &vol]));
    // a source that does not exist locally is left to the daemon's own rules
    let missing = format!("/tmp/{}", unique("nolocal"));
    let name = unique("nolocal");
    ok(docker_at(
        &b.host,
        &[
            "create",
            "--name",
            &name,
            "-v",
            &format!("{missing}:/x"),
            tb.image(),
        ],
    ));
    let binds = ok(docker_at(
        &b.host,
        &["inspect", &name, "--format", "{{json .HostConfig.Binds}}"],
    ));
    assert_eq!(binds.trim(), format!("[\"{missing}:/x\"]"));
    ok(docker_at(&b.host, &["rm", &name]));
}

#[test]
fn a_vanished_local_root_never_wipes_the_replica() {
    let _turn = turn();
    let _tb = testbed();
    let a = agent();
    let t = Tree::new("vanish");
    for i in 0..5 {
        t.write(&format!("f{i}.txt"), "data\n");
    }
    let name = unique("vanish");
    sleeper(&a.host, &name, &format!("{}:/app", t.s()));
    eventually(&a.host, &name, "ls /app | wc -l", "5");
    // the checkout is deleted (or its disk unmounted)
    for i in 0..5 {
        std::fs::remove_file(t.path().join(format!("f{i}.txt"))).unwrap();
    }
    std::fs::remove_dir(t.path()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let entry = loop {
        let m = mounts(a.port());
        let e = m
            .iter()
            .find(|m| m["local"] == t.s().as_str())
            .cloned()
            .unwrap();
        if e["state"] == "error" || Instant::now() > deadline {
            break e;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(entry["state"], "error", "{entry}");
    assert!(
        entry["error"]
            .as_str()
            .unwrap()
            .contains("refusing to sync"),
        "{entry}"
    );
    let left = ok(docker_at(
        &a.host,
        &["exec", &name, "sh", "-c", "ls /app | wc -l"],
    ));
    assert_eq!(left.trim(), "5", "the replica was emptied");
    ok(docker_at(&a.host, &["rm", "-f", &name]));
}

#[test]
fn an_unwritable_mounts_root_fails_the_create_clearly() {
    let _turn = turn();
    let tb = testbed();
    let mut args = default_args(tb);
    args.extend(["--mounts-root".into(), "/proc/berth-mounts".into()]);
    let a = start_agent(&args);
    let t = Tree::new("unwritable");
    t.write("x", "x\n");
    let name = unique("unwritable");
    let out = try_sleeper(&a.host, &name, &format!("{}:/app", t.s()));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cannot write /proc/berth-mounts"), "{err}");
    assert_not_created(&name);
}

#[test]
fn compose_relative_volumes_are_synced() {
    let _turn = turn();
    let tb = testbed();
    let a = agent();
    let t = Tree::new("compose");
    t.write("src/index.html", "from compose\n");
    t.write(
        "docker-compose.yml",
        &format!("version: '3'\nservices:\n  app:\n    image: {}\n    command: sleep 600\n    volumes:\n      - ./src:/app\n", tb.image()),
    );
    let project = unique("cs").replace('-', "");
    let compose = |args: &[&str]| {
        std::process::Command::new("docker-compose")
            .arg("-p")
            .arg(&project)
            .args(args)
            .current_dir(t.path())
            .env("DOCKER_HOST", &a.host)
            .output()
            .unwrap()
    };
    ok(compose(&["up", "-d"]));
    let out = ok(compose(&["exec", "-T", "app", "cat", "/app/index.html"]));
    assert_eq!(out, "from compose\n");
    t.write("src/index.html", "edited\n");
    let t0 = Instant::now();
    loop {
        let out = ok(compose(&["exec", "-T", "app", "cat", "/app/index.html"]));
        if out == "edited\n" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "edit never arrived: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(compose(&["down"]));
}

/// `sha256sum` of every file under `dir`, sorted by path, as `HASH  ./path` lines.
const HASHES: &str =
    "cd DIR && find . -type f | LC_ALL=C sort | while IFS= read -r f; do sha256sum \"$f\"; done";

fn local_hashes(dir: &Path) -> String {
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            &HASHES.replace("DIR", &format!("'{}'", dir.display())),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn served_edits_odd_names_modes_and_a_5000_change_burst_end_identical() {
    let _turn = turn();
    let tb = testbed();
    let a = agent();
    let t = Tree::new("site");
    t.write("index.html", "version one\n");
    t.write("dir with spaces/naïve – ünïcode.txt", "odd name\n");
    t.write("tool.sh", "#!/bin/sh\necho tool\n");
    let name = unique("site");
    ok(docker_at(
        &a.host,
        &[
            "run",
            "-d",
            "--name",
            &name,
            "-v",
            &format!("{}:/www", t.s()),
            tb.image(),
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ],
    ));
    // httpd serves the local file, then the edited one
    eventually(
        &a.host,
        &name,
        "wget -q -O - http://127.0.0.1/index.html",
        "version one",
    );
    t.write("index.html", "version two\n");
    eventually(
        &a.host,
        &name,
        "wget -q -O - http://127.0.0.1/index.html",
        "version two",
    );
    eventually(
        &a.host,
        &name,
        "cat '/www/dir with spaces/naïve – ünïcode.txt'",
        "odd name",
    );
    // chmod +x on a file that is already there
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        t.path().join("tool.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    eventually(&a.host, &name, "/www/tool.sh", "tool");
    // a burst: 5,000 changes (creates, rewrites, deletes, a renamed directory)
    for i in 0..3000 {
        t.write(&format!("gen/{}/f{i}.txt", i % 30), &format!("first {i}\n"));
    }
    for i in (0..3000).step_by(3) {
        t.write(
            &format!("gen/{}/f{i}.txt", i % 30),
            &format!("second {i} {}\n", "x".repeat(i % 7)),
        );
    }
    for i in (1..3000).step_by(7) {
        let _ = std::fs::remove_file(t.path().join(format!("gen/{}/f{i}.txt", i % 30)));
    }
    std::fs::rename(t.path().join("gen/5"), t.path().join("gen/renamed five")).unwrap();
    let want = local_hashes(t.path());
    assert!(want.lines().count() > 2500, "{}", want.lines().count());
    let script = HASHES.replace("DIR", "/www");
    let t0 = Instant::now();
    loop {
        let got = ok(docker_at(&a.host, &["exec", &name, "sh", "-c", &script]));
        if got == want {
            break;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let (l, r): (
                std::collections::BTreeSet<&str>,
                std::collections::BTreeSet<&str>,
            ) = (want.lines().collect(), got.lines().collect());
            let only_remote: Vec<_> = r.difference(&l).take(5).collect();
            let only_local: Vec<_> = l.difference(&r).take(5).collect();
            panic!("trees differ: {} local vs {} remote; only remote: {only_remote:?}; only local: {only_local:?}; status: {:?}", l.len(), r.len(), mounts(a.port()));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    ok(docker_at(&a.host, &["rm", "-f", &name]));
}

#[test]
fn an_unchanged_tree_is_readopted_without_uploading() {
    let _turn = turn();
    let _tb = testbed();
    let mut a = agent();
    let t = Tree::new("unchanged");
    for i in 0..200 {
        t.write(&format!("d{}/f{i}.txt", i % 10), &format!("{i}\n"));
    }
    let name = unique("unchanged");
    sleeper(&a.host, &name, &format!("{}:/app", t.s()));
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let b = agent();
    let t0 = Instant::now();
    let entry = loop {
        let m = mounts(b.port());
        if let Some(e) = m
            .iter()
            .find(|m| m["local"] == t.s().as_str() && m["state"] == "watching")
        {
            break e.clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "not re-adopted: {m:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        entry["uploaded_files"], 0,
        "re-adopting an unchanged tree uploaded files: {entry}"
    );
    assert_eq!(entry["files"], 200);
    ok(docker_at(&b.host, &["rm", "-f", &name]));
}

#[test]
fn a_full_remote_disk_fails_the_create_clearly() {
    let _turn = turn();
    let tb = testbed();
    // the test bed's remote is this machine: a 1 MiB tmpfs plays a full disk
    let root = std::env::temp_dir().join(unique("fullroot"));
    std::fs::create_dir_all(&root).unwrap();
    let mounted = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "tmpfs",
            root.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(mounted.success(), "mount tmpfs (the tests run as root)");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _unmount = Unmount(root.clone());
    let mut args = default_args(tb);
    args.extend(["--mounts-root".into(), root.display().to_string()]);
    let a = start_agent(&args);
    let t = Tree::new("big");
    std::fs::write(t.path().join("big.bin"), vec![7u8; 3 * 1024 * 1024]).unwrap();
    let name = unique("full");
    let out = try_sleeper(&a.host, &name, &format!("{}:/app", t.s()));
    assert!(!out.status.success(), "created on a full disk");
    let err = stderr(&out);
    assert!(
        err.contains("cannot write") && err.contains("big.bin"),
        "{err}"
    );
    assert!(err.contains("disk may be full"), "{err}");
    assert_not_created(&name);
}

#[test]
fn touched_files_with_unchanged_content_are_not_sent_again() {
    let _turn = turn();
    let _tb = testbed();
    let a = agent();
    let t = Tree::new("touched");
    let big = |c: char| c.to_string().repeat(100 * 1024);
    for i in 0..5 {
        t.write(&format!("big{i}.bin"), &big('a'));
    }
    let name = unique("touched");
    sleeper(&a.host, &name, &format!("{}:/app", t.s()));
    let entry = |port| {
        mounts(port)
            .into_iter()
            .find(|m| m["local"] == t.s().as_str())
            .expect("mount in status")
    };
    let before = entry(a.port());
    assert_eq!(before["uploaded_files"], 5, "{before}");
    // every file gets a new mtime; one also new content of the same size
    std::thread::sleep(Duration::from_millis(20));
    for i in 0..5 {
        let f = std::fs::File::options()
            .write(true)
            .open(t.path().join(format!("big{i}.bin")))
            .unwrap();
        f.set_modified(std::time::SystemTime::now()).unwrap();
    }
    t.write("big3.bin", &big('b'));
    eventually(&a.host, &name, "head -c 3 /app/big3.bin", "bbb");
    let t0 = Instant::now();
    let after = loop {
        let e = entry(a.port());
        if e["state"] == "watching" && e["pending_changes"] == 0 {
            break e;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{e}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        after["uploaded_files"], 6,
        "only the file whose content changed is sent again: {after}"
    );
    let p = &after["progress"];
    assert_eq!(p["files_done"], p["files_total"], "{after}");
    let out = ok(docker_at(
        &a.host,
        &["exec", &name, "sh", "-c", "cat /app/big0.bin | head -c 3"],
    ));
    assert_eq!(out, "aaa");
    ok(docker_at(&a.host, &["rm", "-f", &name]));
}

#[test]
fn a_remote_without_sftp_fails_the_create_clearly() {
    let _turn = turn();
    let _tb = testbed();
    // the test bed's sshd, on another port, without its `Subsystem sftp` line
    let sshd = PrivateSshd::start("nosftp", |l| {
        (!l.starts_with("Subsystem")).then(|| l.to_string())
    });
    let mut args = sshd.agent_args();
    args.extend([
        "--listen".into(),
        "tcp://127.0.0.1:0".into(),
        "--no-port-forwarding".into(),
    ]);
    let a = start_agent(&args);
    let t = Tree::new("nosftp");
    t.write("index.html", "hi\n");
    let name = unique("nosftp");
    let out = try_sleeper(&a.host, &name, &format!("{}:/app", t.s()));
    assert!(!out.status.success(), "created without SFTP");
    let err = stderr(&out);
    assert!(
        err.contains("no SFTP subsystem") && err.contains("Subsystem sftp"),
        "{err}"
    );
    assert_eq!(
        err.trim().lines().count(),
        3,
        "one line and docker's hint: {err}"
    );
    assert_not_created(&name);
    // the rest of the API is unaffected
    ok(docker_at(&a.host, &["ps"]));
}

#[test]
fn a_rejected_create_leaves_no_replica() {
    let _turn = turn();
    let tb = testbed();
    let a = agent();
    let t = Tree::new("rejected");
    t.write("a.txt", "a\n");
    let name = unique("rejected");
    // the daemon refuses the create: there is no such image (and no registry)
    let out = docker_at(
        &a.host,
        &[
            "create",
            "--pull",
            "never",
            "--name",
            &name,
            "-v",
            &format!("{}:/app", t.s()),
            "berth-test/no-such-image:never",
        ],
    );
    assert!(!out.status.success(), "created: {}", stderr(&out));
    assert!(stderr(&out).contains("No such image"), "{}", stderr(&out));
    let leaf = t.path().file_name().unwrap().to_str().unwrap().to_string();
    let mounts_dir = Path::new(&std::env::var("HOME").unwrap()).join(".cache/berth/mounts");
    let t0 = Instant::now();
    loop {
        let in_status = mounts(a.port())
            .iter()
            .any(|m| m["local"] == t.s().as_str());
        let on_disk: Vec<String> = std::fs::read_dir(&mounts_dir)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|machine| {
                std::fs::read_dir(machine.path())
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("{leaf}-")))
            .collect();
        if !in_status && on_disk.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "replica left behind (status: {in_status}, on the remote: {on_disk:?})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = tb;
}

#[test]
fn a_replica_whose_container_went_while_no_agent_ran_is_removed() {
    let _turn = turn();
    let tb = testbed();
    let mut a = agent();
    let t = Tree::new("orphan");
    t.write("a.txt", "a\n");
    let name = unique("orphan");
    sleeper(&a.host, &name, &format!("{}:/app", t.s()));
    let replica = mounts(a.port())
        .into_iter()
        .find(|m| m["local"] == t.s().as_str())
        .expect("mount in status")["remote"]
        .as_str()
        .unwrap()
        .to_string();
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    // removed behind Berth's back, and long enough ago to be sure
    ok(docker_at(&tb.direct_host(), &["rm", "-f", &name]));
    let manifest = format!("{replica}.berth-manifest.json");
    let backdate = std::process::Command::new("touch")
        .args(["-d", "1 hour ago", &manifest])
        .status()
        .unwrap();
    assert!(backdate.success());
    let b = agent();
    let t0 = Instant::now();
    while Path::new(&replica).exists() || Path::new(&manifest).exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the orphaned replica {replica} is still there"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // a replica still in use is left alone
    let t2 = Tree::new("kept");
    t2.write("k.txt", "k\n");
    let kept = unique("kept");
    sleeper(&b.host, &kept, &format!("{}:/app", t2.s()));
    drop(b);
    let c = agent();
    eventually(&c.host, &kept, "cat /app/k.txt", "k");
    ok(docker_at(&c.host, &["rm", "-f", &kept]));
}

/// Waits until the replica seen from the container at `/www` holds exactly
/// the local tree (file hashes compared on both sides).
fn wait_identical(host: &str, name: &str, local: &Path, limit: Duration) {
    let want = local_hashes(local);
    let script = HASHES.replace("DIR", "/www");
    let t0 = Instant::now();
    loop {
        let got = ok(docker_at(host, &["exec", name, "sh", "-c", &script]));
        if got == want {
            return;
        }
        assert!(
            t0.elapsed() < limit,
            "trees differ: {} local vs {} remote lines",
            want.lines().count(),
            got.lines().count()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn syncs_cut_short_by_kill_9_complete_after_a_restart() {
    let _turn = turn();
    let tb = testbed();
    let t = Tree::new("killed");
    for i in 0..3000 {
        t.write(
            &format!("d{}/f{i}.txt", i % 30),
            &format!("{i} {}\n", "y".repeat(i % 300)),
        );
    }
    // a first sync killed halfway: the create never happened
    let mut a = agent();
    let name = unique("killed");
    let bind = format!("{}:/www", t.s());
    let run = {
        let (host, name, bind) = (a.host.clone(), name.clone(), bind.clone());
        std::thread::spawn(move || try_sleeper(&host, &name, &bind))
    };
    let t0 = Instant::now();
    while !mounts(a.port()).iter().any(|m| {
        m["local"] == t.s().as_str() || m["progress"]["files_done"].as_u64().unwrap_or(0) > 0
    }) && t0.elapsed() < Duration::from_millis(300)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let _ = run.join();
    // the daemon may still finish that create after the agent died: the user
    // runs it again under another name, through a new agent; it completes
    let first = name;
    let name = unique("killed");
    let mut b = agent();
    sleeper(&b.host, &name, &bind);
    wait_identical(&b.host, &name, t.path(), Duration::from_secs(30));
    // a burst killed halfway: creates, rewrites, deletes
    for i in 0..3000 {
        if i % 3 == 0 {
            t.write(&format!("d{}/f{i}.txt", i % 30), &format!("second {i}\n"));
        } else if i % 7 == 0 {
            std::fs::remove_file(t.path().join(format!("d{}/f{i}.txt", i % 30))).unwrap();
        }
        if i % 2 == 0 {
            t.write(&format!("new/{}/n{i}.txt", i % 10), &format!("new {i}\n"));
        }
    }
    std::thread::sleep(Duration::from_millis(60));
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let c = agent();
    wait_identical(&c.host, &name, t.path(), Duration::from_secs(60));
    ok(docker_at(&c.host, &["rm", "-f", &name]));
    let _ = docker_at(&tb.direct_host(), &["rm", "-f", &first]);
}

/// The content of `conf.txt` at edit `n`: a fixed length, first and last
/// line naming the same edit, so a reader can tell a whole file from part.
fn conf_version(n: usize) -> String {
    format!("version {n:04}\n{}\nend {n:04}\n", "x".repeat(4000))
}

/// Run in the container: reads `/app/conf.txt` in a tight loop until
/// `/app/stop` appears (or 120 s), classifying every read, and prints the
/// counts. `LEN` is the length of a whole file less its final newline (what
/// `$(cat)` keeps).
const READ_LOOP: &str = r#"
reads=0; empty=0; missing=0; half=0; changes=0; prev=""; t0=$(date +%s)
while [ ! -e /app/stop ]; do
  c=$(cat /app/conf.txt 2>&1)
  reads=$((reads + 1))
  case "$c" in
    "") empty=$((empty + 1)) ;;
    *"No such file"*) missing=$((missing + 1)) ;;
    *)
      first=${c#version }; first=${first%%[!0-9]*}; last=${c##*end }
      if [ "${#c}" != LEN ] || [ "$first" != "$last" ]; then
        half=$((half + 1))
      elif [ "$first" != "$prev" ]; then
        changes=$((changes + 1)); prev=$first
      fi ;;
  esac
  if [ $((reads % 500)) = 0 ] && [ $(( $(date +%s) - t0 )) -gt 120 ]; then break; fi
done
echo "reads=$reads empty=$empty missing=$missing half=$half changes=$changes"
"#;

#[test]
fn a_reader_in_the_container_never_sees_an_edit_half_done() {
    let _turn = turn();
    let _tb = testbed();
    let a = agent();
    let t = Tree::new("atomic");
    t.write("conf.txt", &conf_version(0));
    let name = unique("atomic");
    sleeper(&a.host, &name, &format!("{}:/app", t.s()));
    eventually(&a.host, &name, "head -n1 /app/conf.txt", "version 0000");
    let len = conf_version(0).len() - 1;
    let script = READ_LOOP.replace("LEN", &len.to_string());
    let reader = {
        let (host, name) = (a.host.clone(), name.clone());
        std::thread::spawn(move || docker_at(&host, &["exec", &name, "sh", "-c", &script]))
    };
    // let the loop get going before the first edit
    std::thread::sleep(Duration::from_millis(700));
    for n in 1..=200 {
        // the way editors save: a whole new file, renamed over the old one
        t.write("conf.txt.tmp", &conf_version(n));
        std::fs::rename(t.path().join("conf.txt.tmp"), t.path().join("conf.txt")).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    eventually(&a.host, &name, "head -n1 /app/conf.txt", "version 0200");
    std::thread::sleep(Duration::from_millis(300));
    t.write("stop", "");
    let out = ok(reader.join().unwrap());
    let counts: std::collections::HashMap<&str, u64> = out
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect();
    eprintln!("read loop: {}", out.trim());
    assert!(counts["reads"] >= 1000, "too few reads to tell: {out}");
    // the reader saw the edits go by (not only the first or the last)
    assert!(
        counts["changes"] >= 10,
        "the reader saw too few edits: {out}"
    );
    assert_eq!(
        (counts["empty"], counts["missing"], counts["half"]),
        (0, 0, 0),
        "reads that were empty, missing, half-written: {out}"
    );
    ok(docker_at(&a.host, &["rm", "-f", &name]));
}
