use super::*;

fn d() -> EntryKind {
    EntryKind::Dir
}
fn f(size: u64, mtime: i64) -> EntryKind {
    EntryKind::File {
        size,
        mtime,
        exec: false,
    }
}
fn x(size: u64, mtime: i64) -> EntryKind {
    EntryKind::File {
        size,
        mtime,
        exec: true,
    }
}
fn l(target: &str) -> EntryKind {
    EntryKind::Symlink {
        target: target.to_string(),
    }
}
fn m(entries: &[(&str, EntryKind)]) -> Manifest {
    entries
        .iter()
        .map(|(p, k)| (p.to_string(), k.clone()))
        .collect()
}
fn mkdir(p: &str) -> Op {
    Op::Mkdir(p.to_string())
}
fn put(p: &str, size: u64, exec: bool) -> Op {
    Op::Put {
        path: p.to_string(),
        size,
        exec,
    }
}
fn link(p: &str, t: &str) -> Op {
    Op::Symlink {
        path: p.to_string(),
        target: t.to_string(),
    }
}
fn rm(p: &str) -> Op {
    Op::Remove(p.to_string())
}
fn rmdir(p: &str) -> Op {
    Op::Rmdir(p.to_string())
}

#[test]
fn diff_table() {
    let tree = m(&[
        ("a", d()),
        ("a/b", d()),
        ("a/b/f", f(3, 10)),
        ("l", l("a/b/f")),
        ("z", x(1, 1)),
    ]);
    let cases: Vec<(&str, Manifest, Manifest, Vec<Op>)> = vec![
        ("unchanged", tree.clone(), tree.clone(), vec![]),
        ("both empty", m(&[]), m(&[]), vec![]),
        (
            "initial upload: parents first, then files and links",
            tree.clone(),
            m(&[]),
            vec![
                mkdir("a"),
                mkdir("a/b"),
                put("a/b/f", 3, false),
                link("l", "a/b/f"),
                put("z", 1, true),
            ],
        ),
        (
            "size, mtime or exec change re-sends",
            m(&[
                ("s", f(2, 1)),
                ("t", f(1, 2)),
                ("u", x(1, 1)),
                ("v", f(1, 1)),
            ]),
            m(&[
                ("s", f(1, 1)),
                ("t", f(1, 1)),
                ("u", f(1, 1)),
                ("v", f(1, 1)),
            ]),
            vec![put("s", 2, false), put("t", 1, false), put("u", 1, true)],
        ),
        (
            "vanished entries go deepest first",
            m(&[("keep", f(1, 1))]),
            m(&[
                ("a", d()),
                ("a/b", d()),
                ("a/b/f", f(1, 1)),
                ("a/l", l("x")),
                ("keep", f(1, 1)),
            ]),
            vec![rm("a/l"), rm("a/b/f"), rmdir("a/b"), rmdir("a")],
        ),
        (
            "dir becomes file: its contents go first, then the dir",
            m(&[("a", f(5, 5)), ("a-b", f(1, 1))]),
            m(&[
                ("a", d()),
                ("a-b", f(1, 1)),
                ("a/c", d()),
                ("a/c/f", f(1, 1)),
                ("a/g", f(1, 1)),
            ]),
            vec![
                rm("a/g"),
                rm("a/c/f"),
                rmdir("a/c"),
                rmdir("a"),
                put("a", 5, false),
            ],
        ),
        (
            "file becomes dir",
            m(&[("a", d()), ("a/f", f(1, 1))]),
            m(&[("a", f(1, 1))]),
            vec![rm("a"), mkdir("a"), put("a/f", 1, false)],
        ),
        (
            "symlink to a dir becomes a real dir: never written through",
            m(&[("a", d()), ("a/f", f(1, 1))]),
            m(&[("a", l("/etc"))]),
            vec![rm("a"), mkdir("a"), put("a/f", 1, false)],
        ),
        (
            "dir becomes symlink, symlink target changes, file becomes symlink",
            m(&[("a", l("../out")), ("b", l("new")), ("c", l("/abs"))]),
            m(&[
                ("a", d()),
                ("a/f", f(1, 1)),
                ("b", l("old")),
                ("c", f(1, 1)),
            ]),
            vec![
                rm("a/f"),
                rmdir("a"),
                rm("b"),
                rm("c"),
                link("a", "../out"),
                link("b", "new"),
                link("c", "/abs"),
            ],
        ),
        (
            "mixed: replace, create, update, delete in phase order",
            m(&[("d", d()), ("d/new", f(1, 1)), ("k", f(9, 9)), ("n", d())]),
            m(&[
                ("d", d()),
                ("d/old", f(1, 1)),
                ("k", f(1, 1)),
                ("n", f(1, 1)),
                ("o", d()),
                ("o/p", f(1, 1)),
            ]),
            vec![
                rm("n"),
                mkdir("n"),
                put("d/new", 1, false),
                put("k", 9, false),
                rm("o/p"),
                rmdir("o"),
                rm("d/old"),
            ],
        ),
    ];
    for (name, local, remote, want) in cases {
        assert_eq!(diff(&local, &remote), want, "{name}");
    }
}

#[test]
fn safety_check_table() {
    let many = |n: usize| -> Manifest { (0..n).map(|i| (format!("f{i:04}"), f(1, 1))).collect() };
    let cases: Vec<(&str, bool, Manifest, Manifest, bool)> = vec![
        ("first sync", true, many(5), m(&[]), true),
        ("both empty", true, m(&[]), m(&[]), true),
        ("root gone", false, m(&[]), m(&[]), false),
        ("root gone with a replica", false, m(&[]), many(3), false),
        ("local empty, replica not", true, m(&[]), many(1), false),
        (
            "small replica may lose everything but one",
            true,
            many(1),
            many(100),
            true,
        ),
        ("101 entries, 91 deleted", true, many(10), many(101), false),
        ("101 entries, 90 deleted", true, many(11), many(101), true),
        (
            "1000 entries, exactly 90% deleted",
            true,
            many(100),
            many(1000),
            true,
        ),
        (
            "1000 entries, 901 deleted",
            true,
            many(99),
            many(1000),
            false,
        ),
        (
            "kind changes are not deletions",
            true,
            (0..200).map(|i| (format!("f{i:04}"), d())).collect(),
            many(200),
            true,
        ),
    ];
    for (name, exists, local, remote, ok) in cases {
        let got = safety_check(exists, &local, &remote);
        assert_eq!(got.is_ok(), ok, "{name}: {got:?}");
    }
}

#[test]
fn safety_check_messages() {
    let root = Path::new("/home/me/src");
    let err = safety_check(true, &m(&[]), &m(&[("a", d())]))
        .err()
        .map(|e| with_local(e, root).to_string());
    assert_eq!(
        err.as_deref(),
        Some("refusing to sync /home/me/src: it is empty locally but its replica has 1 entries (an unmounted disk or a deleted checkout?); the replica on the remote is left as it was")
    );
    let other = with_local(
        SyncError::Unsafe {
            local: "/x".into(),
            reason: "r".into(),
        },
        root,
    );
    assert!(matches!(other, SyncError::Unsafe { local, .. } if local == Path::new("/x")));
}

#[test]
fn manifest_round_trips_through_json() {
    let tree = m(&[("a", d()), ("a/f", x(3, -5)), ("l", l("../x"))]);
    let text = serde_json::to_string(&tree).unwrap();
    assert_eq!(
        text,
        r#"{"a":"dir","a/f":{"file":{"size":3,"mtime":-5,"exec":true}},"l":{"symlink":{"target":"../x"}}}"#
    );
    let back: Manifest = serde_json::from_str(&text).unwrap();
    assert_eq!(back, tree);
}

/// A fresh directory under the system temp dir, removed on drop.
struct Temp(PathBuf);

impl Temp {
    fn new(tag: &str) -> Temp {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("berth-tree-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Temp(dir)
    }
    fn write(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The manifest with mtimes zeroed, for comparison.
fn shape(tree: &Manifest) -> Manifest {
    tree.iter()
        .map(|(p, k)| {
            let k = match k {
                EntryKind::File { size, exec, .. } => EntryKind::File {
                    size: *size,
                    mtime: 0,
                    exec: *exec,
                },
                other => other.clone(),
            };
            (p.clone(), k)
        })
        .collect()
}

/// No exclusions: what a local bind mount shows.
fn none() -> Exclusions {
    Exclusions::default()
}

fn rules(patterns: &[&str], gitignore: bool) -> Exclusions {
    Exclusions {
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
        gitignore,
    }
}

#[cfg(unix)]
#[test]
fn scan_hides_nothing_by_default_and_never_follows_links() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let t = Temp::new("scan");
    for (rel, text) in [
        (".gitignore", "*.log\n"),
        (".dockerignore", "secret.txt\n"),
        (".env", "TOKEN=1\n"),
        ("a.log", "x"),
        ("secret.txt", "x"),
        (".git/HEAD", "ref"),
        ("node_modules/p/i.js", "x"),
        ("run.sh", "#!/bin/sh\n"),
    ] {
        t.write(rel, text);
    }
    let root = &t.0;
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    symlink("/etc/passwd", root.join("abs_link")).unwrap();
    symlink("../../outside", root.join("node_modules/up_link")).unwrap();
    symlink("node_modules", root.join("dir_link")).unwrap();
    symlink("missing", root.join("dangling")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();

    let got = scan(root, &none()).unwrap();
    let want = m(&[
        (".dockerignore", f(11, 0)),
        (".env", f(8, 0)),
        (".git", d()),
        (".git/HEAD", f(3, 0)),
        (".gitignore", f(6, 0)),
        ("a.log", f(1, 0)),
        ("abs_link", l("/etc/passwd")),
        ("dangling", l("missing")),
        ("dir_link", l("node_modules")),
        ("node_modules", d()),
        ("node_modules/p", d()),
        ("node_modules/p/i.js", f(1, 0)),
        ("node_modules/up_link", l("../../outside")),
        ("run.sh", x(10, 0)),
        ("secret.txt", f(1, 0)),
    ]);
    assert_eq!(shape(&got), want);
    assert!(none().sources(root).is_empty());

    let mtime = match got.get(".env") {
        Some(EntryKind::File { mtime, .. }) => *mtime / 1_000_000_000,
        other => panic!("{other:?}"),
    };
    let now = SystemTimeNow::secs();
    assert!(
        (now - 60..=now + 60).contains(&mtime),
        "mtime {mtime} vs now {now}"
    );
}

#[test]
fn scan_honours_berthignore_patterns_and_gitignore_when_asked() {
    let t = Temp::new("excl");
    for (rel, text) in [
        (
            ".berthignore",
            "# local only\n.git\n/build\nweb/dist\n*.tmp\n!keep.tmp\n",
        ),
        (".gitignore", "*.log\n.env\n"),
        ("sub/.gitignore", "local.txt\n!b.log\n"),
        ("sub/.berthignore", "*\n"),
        (".git/HEAD", "ref"),
        ("sub/.git", "gitdir: ../.git/modules/sub"),
        ("build/out", "x"),
        ("sub/build/out", "kept: /build is anchored"),
        ("web/dist/app.js", "x"),
        ("dist/kept.js", "x"),
        ("x.tmp", "x"),
        ("sub/deep/y.tmp", "x"),
        ("keep.tmp", "k"),
        ("a.log", "x"),
        ("sub/b.log", "x"),
        (".env", "x"),
        ("sub/local.txt", "x"),
        ("local.txt", "x"),
        ("node_modules/p/i.js", "x"),
        ("sub/node_modules/q.js", "x"),
    ] {
        t.write(rel, text);
    }
    let root = &t.0;
    let keys = |r: &Exclusions| scan(root, r).unwrap().into_keys().collect::<Vec<_>>();

    // .berthignore only (a nested one is an ordinary file)
    assert_eq!(
        keys(&none()),
        [
            ".berthignore",
            ".env",
            ".gitignore",
            "a.log",
            "dist",
            "dist/kept.js",
            "keep.tmp",
            "local.txt",
            "node_modules",
            "node_modules/p",
            "node_modules/p/i.js",
            "sub",
            "sub/.berthignore",
            "sub/.gitignore",
            "sub/b.log",
            "sub/build",
            "sub/build/out",
            "sub/deep",
            "sub/local.txt",
            "sub/node_modules",
            "sub/node_modules/q.js",
            "web",
        ]
    );
    // plus a pattern and .gitignore (git semantics: the deeper file wins)
    let both = rules(&["node_modules"], true);
    assert_eq!(
        keys(&both),
        [
            ".berthignore",
            ".gitignore",
            "dist",
            "dist/kept.js",
            "keep.tmp",
            "local.txt",
            "sub",
            "sub/.berthignore",
            "sub/.gitignore",
            "sub/b.log",
            "sub/build",
            "sub/build/out",
            "sub/deep",
            "web",
        ]
    );
    assert_eq!(
        both.sources(root),
        [
            ".berthignore",
            "--sync-ignore node_modules",
            ".gitignore (honoured)"
        ]
    );
    // a single-file mount: no rules apply
    let file = root.join("x.tmp");
    assert_eq!(scan(&file, &both).unwrap().len(), 1);
    assert!(both.sources(&file).is_empty());
}

#[test]
fn excluded_paths_are_neither_uploaded_nor_deleted() {
    let t = Temp::new("forget");
    t.write("app.js", "x");
    t.write("out/a.txt", "x");
    t.write("node_modules/m.js", "x");
    let root = &t.0;
    let before = scan(root, &none()).unwrap();
    // the replica also holds what a container wrote and was never synced
    let mut stored = before.clone();
    stored.insert("cache".into(), d());
    stored.insert("cache/c.bin".into(), f(9, 9));
    // later: node_modules and *.log are excluded, out/ is deleted locally
    // except for a log the replica has
    t.write(".berthignore", "node_modules/\n*.log\ncache\n");
    stored.insert("out/keep.log".into(), f(1, 1));
    std::fs::remove_dir_all(root.join("out")).unwrap();
    let local = scan(root, &none()).unwrap();
    assert!(!local.contains_key("node_modules"));
    let dropped = forget_excluded(&mut stored, &local, root, &none()).unwrap();
    // node_modules (2), cache (2), out/keep.log and out, which holds it
    assert_eq!(dropped, 6, "{stored:?}");
    let ops = diff(&local, &stored);
    assert_eq!(
        ops,
        [put(".berthignore", 26, false), rm("out/a.txt")],
        "only the unexcluded deletion remains"
    );
    // nothing excluded: a vanished entry is still deleted
    let mut stored = before.clone();
    std::fs::remove_file(root.join(".berthignore")).unwrap();
    std::fs::remove_file(root.join("app.js")).unwrap();
    let local = scan(root, &none()).unwrap();
    assert_eq!(
        forget_excluded(&mut stored, &local, root, &none()).unwrap(),
        0
    );
    assert!(diff(&local, &stored).contains(&rm("app.js")));
}

#[test]
fn vanished_folders_keep_what_gitignore_excludes_in_them() {
    let t = Temp::new("forgetgit");
    t.write("keep/x", "x");
    let root = &t.0;
    let mut stored = m(&[
        ("gone", d()),
        ("gone/a.log", f(1, 1)),
        ("keep", d()),
        ("keep/x", f(1, 0)),
        ("keep/y.log", f(1, 1)),
    ]);
    t.write(".gitignore", "*.log\n");
    let local = scan(root, &rules(&[], true)).unwrap();
    let n = forget_excluded(&mut stored, &local, root, &rules(&[], true)).unwrap();
    // both logs are excluded by the root's .gitignore; gone/ holds one
    assert_eq!(n, 3, "{stored:?}");
    assert_eq!(stored.keys().collect::<Vec<_>>(), ["keep", "keep/x"]);
}

struct SystemTimeNow;
impl SystemTimeNow {
    fn secs() -> i64 {
        std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }
}

#[test]
fn scan_single_file_root() {
    let t = Temp::new("file");
    t.write("conf.toml", "a = 1\n");
    let got = scan(&t.0.join("conf.toml"), &none()).unwrap();
    assert_eq!(shape(&got), m(&[("conf.toml", f(6, 0))]));
}

#[cfg(unix)]
#[test]
fn scan_follows_a_symlinked_root() {
    let t = Temp::new("rootlink");
    t.write("real/a", "1");
    std::os::unix::fs::symlink(t.0.join("real"), t.0.join("link")).unwrap();
    let got = scan(&t.0.join("link"), &none()).unwrap();
    assert_eq!(shape(&got), m(&[("a", f(1, 0))]));
}

#[test]
fn scan_errors_name_the_path() {
    let t = Temp::new("err");
    let missing = t.0.join("gone");
    let got = scan(&missing, &none());
    assert!(
        matches!(&got, Err(SyncError::Unreadable { path, .. }) if *path == missing),
        "{got:?}"
    );

    let got = scan(&t.0, &rules(&["[z-a]"], false));
    let msg = got.map(|_| ()).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!(
            "refusing to sync {}: the ignore pattern \"[z-a]\" is invalid",
            t.0.display()
        )),
        "{msg}"
    );
}

#[cfg(unix)]
#[test]
fn scan_reports_an_unreadable_dir() {
    use std::os::unix::fs::PermissionsExt;
    let t = Temp::new("perm");
    t.write("locked/f", "x");
    let locked = t.0.join("locked");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let readable_anyway = std::fs::read_dir(&locked).is_ok(); // running as root
    let got = scan(&t.0, &none());
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    if readable_anyway {
        return;
    }
    assert!(
        matches!(&got, Err(SyncError::Unreadable { path, .. }) if *path == locked),
        "{got:?}"
    );
}

#[test]
fn bad_patterns_skipped_in_gitignore_refused_in_berthignore() {
    let t = Temp::new("badpat");
    t.write(".gitignore", "[z-a]\n*.log\n");
    t.write(".dockerignore", "[y-b]\n*.tmp\n");
    t.write("x.log", "x");
    t.write("y.tmp", "y");
    let got = scan(&t.0, &rules(&[], true)).unwrap();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        [".dockerignore", ".gitignore", "y.tmp"]
    );
    t.write(".berthignore", "*.tmp\n[q-a]\n");
    let msg = scan(&t.0, &none()).map(|_| ()).unwrap_err().to_string();
    assert!(msg.contains("the pattern \"[q-a]\" in"), "{msg}");
}

#[test]
fn a_sync_stopped_halfway_keeps_exactly_what_took_effect() {
    let file = |size: u64| EntryKind::File {
        size,
        mtime: 1,
        exec: false,
    };
    let before: Manifest = [
        ("old.txt".to_string(), file(1)),
        ("gone.txt".to_string(), file(2)),
    ]
    .into_iter()
    .collect();
    let local: Manifest = [
        ("old.txt".to_string(), file(5)),
        ("d".to_string(), EntryKind::Dir),
        ("d/new.txt".to_string(), file(3)),
        ("d/late.txt".to_string(), file(4)),
    ]
    .into_iter()
    .collect();
    let ops = diff(&local, &before);
    // the directory and one new file landed, the rest did not
    let done: Vec<bool> = ops
        .iter()
        .map(|op| {
            matches!(op, Op::Mkdir(p) if p == "d")
                || matches!(op, Op::Put { path, .. } if path == "d/new.txt")
        })
        .collect();
    let now = after_ops(&before, &local, &ops, &done);
    assert_eq!(now.get("d"), Some(&EntryKind::Dir));
    assert_eq!(now.get("d/new.txt"), Some(&file(3)));
    assert_eq!(now.get("old.txt"), Some(&file(1)), "not re-sent yet");
    assert_eq!(now.get("gone.txt"), Some(&file(2)), "not removed yet");
    assert_eq!(now.get("d/late.txt"), None);
    // so the next diff redoes exactly the rest
    let rest = diff(&local, &now);
    assert_eq!(rest.len(), 3, "{rest:?}");
    // and a file that landed but vanished locally meanwhile is removed next time
    let local2: Manifest = local
        .iter()
        .filter(|(k, _)| k.as_str() != "d/new.txt")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(diff(&local2, &now).contains(&Op::Remove("d/new.txt".into())));
}
