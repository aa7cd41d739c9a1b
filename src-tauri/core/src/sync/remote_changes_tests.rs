//! The commands run by the real `sh` and GNU find of this machine on a
//! tree changed after a moment; the pure part as a table.

use super::*;
use std::path::Path;
use std::process::Command;

use super::super::remote_find::tests::TempDir;

fn run(script: &str) -> Vec<u8> {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn file(size: u64) -> EntryKind {
    EntryKind::File {
        size,
        mtime: 0,
        exec: false,
    }
}

fn tree(entries: &[(&str, EntryKind)]) -> Manifest {
    entries
        .iter()
        .map(|(p, k)| (p.to_string(), k.clone()))
        .collect()
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

/// What `since` computes, with the real commands, for `root`.
fn look(root: &Path, t: &RemoteTime, ancestor: &Manifest) -> BTreeSet<String> {
    let root = root.to_str().unwrap();
    let (_, changed) = parse_changed(&run(&changed_command(root, t))).unwrap();
    let dirs = dirs_to_list(&changed, ancestor);
    let listed = match dirs.is_empty() {
        true => BTreeSet::new(),
        false => parse_children(&run(&children_command(root, &dirs))).unwrap(),
    };
    paths_to_rescan(&changed, &listed, ancestor)
}

#[test]
fn what_changed_after_the_moment_is_all_that_is_rescanned() {
    let tmp = TempDir::new(&format!("changes-{}", line!()));
    let r = tmp.0.as_path();
    for d in ["a", "b", "quiet"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    for f in ["a/x", "a/y", "b/z", "top", "quiet/q"] {
        std::fs::write(r.join(f), "1").unwrap();
    }
    let ancestor = tree(&[
        ("a", EntryKind::Dir),
        ("a/x", file(1)),
        ("a/y", file(1)),
        ("b", EntryKind::Dir),
        ("b/z", file(1)),
        ("quiet", EntryKind::Dir),
        ("quiet/q", file(1)),
        ("top", file(1)),
    ]);
    let (now, nothing) = parse_changed(&run(NOW_COMMAND)).unwrap();
    assert!(nothing.is_empty());
    // past the coarse clock of ctime, and with the margin taken back off
    std::thread::sleep(std::time::Duration::from_millis(50));
    let t = RemoteTime(now.0 + MARGIN);
    std::fs::write(r.join("a/x"), "22").unwrap();
    std::fs::remove_file(r.join("a/y")).unwrap();
    std::fs::write(r.join("b/new"), "n").unwrap();
    let exec = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(r.join("b/z"), exec).unwrap();
    std::fs::rename(r.join("top"), r.join("top2")).unwrap();
    std::fs::create_dir_all(r.join("c")).unwrap();
    std::fs::write(r.join("c/f"), "f").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", r.join("link")).unwrap();
    std::fs::write(r.join(".berth-tmp-0123"), "half").unwrap();
    assert_eq!(
        look(r, &t, &ancestor),
        set(&["a/x", "a/y", "b/new", "b/z", "c", "c/f", "link", "top", "top2"])
    );
    // nothing since a moment after all that
    std::thread::sleep(std::time::Duration::from_millis(50));
    let (later, _) = parse_changed(&run(NOW_COMMAND)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(look(r, &RemoteTime(later.0 + MARGIN), &ancestor), set(&[]));
}

#[test]
fn hostile_names_are_listed_as_they_are_and_bad_answers_refused() {
    let tmp = TempDir::new(&format!("changes-{}", line!()));
    let r = tmp.0.as_path();
    std::fs::create_dir_all(r.join("d")).unwrap();
    let (now, _) = parse_changed(&run(NOW_COMMAND)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let odd = "-odd 'name'\n$x";
    std::fs::write(r.join("d").join(odd), "x").unwrap();
    let ancestor = tree(&[("d", EntryKind::Dir)]);
    assert_eq!(
        look(r, &RemoteTime(now.0 + MARGIN), &ancestor),
        set(&[&format!("d/{odd}")])
    );
    assert!(parse_changed(b"12.5\0fa/b").is_none(), "cut short");
    assert!(parse_changed(b"12.5\0f../x\0").is_none(), "climbs out");
    assert!(parse_changed(b"soon\0").is_none(), "no time");
    assert!(parse_children(b"./a/../../x\0").is_none());
    assert!(parse_children(b"./a/b").is_none());
}

#[test]
fn the_rescan_paths_follow_from_the_changes_and_the_ancestor() {
    let ancestor = tree(&[
        ("d", EntryKind::Dir),
        ("d/a", file(1)),
        ("d/b", file(1)),
        ("f", file(1)),
    ]);
    let c = |d: bool, p: &str| (d, p.to_string());
    // (what changed, what the changed known folders hold, the paths rescanned)
    type Row = (Vec<(bool, String)>, BTreeSet<String>, BTreeSet<String>);
    let table: Vec<Row> = vec![
        // a file changed in place
        (vec![c(false, "f")], set(&[]), set(&["f"])),
        // a name gone from a known folder
        (vec![c(true, "d")], set(&["d/a"]), set(&["d/b"])),
        // a name new in the root
        (
            vec![c(true, ""), c(false, "n")],
            set(&["d", "f", "n"]),
            set(&["n"]),
        ),
        // a folder where a file was: all of it
        (vec![c(true, "f")], set(&[]), set(&["f"])),
        // Berth's own half-sent file
        (
            vec![c(true, "d"), c(false, "d/.berth-tmp-1")],
            set(&["d/a", "d/b", "d/.berth-tmp-1"]),
            set(&[]),
        ),
        // a folder's mode changed, nothing in it
        (vec![c(true, "d")], set(&["d/a", "d/b"]), set(&[])),
    ];
    for (changed, listed, want) in table {
        assert_eq!(
            paths_to_rescan(&changed, &listed, &ancestor),
            want,
            "{changed:?}"
        );
    }
}
