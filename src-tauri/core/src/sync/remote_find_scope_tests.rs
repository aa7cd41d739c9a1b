//! The scoped listing, run with the real `sh` and GNU find of this machine
//! on hostile names, against the local scoped scan of the same tree.

use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use super::tests::{gnu_find, run_script, touch, TempDir};
use super::*;
use crate::sync::scope::{scope_of, Dirty, Scope};

/// Runs [`scoped_command`] for `root` and `scope` with `sh`.
fn run(root: &std::path::Path, scope: &Paths) -> (Option<i32>, Vec<u8>, String) {
    run_script(
        Command::new("sh"),
        &scoped_command(root.to_str().unwrap(), scope),
    )
}

fn scope(root: &std::path::Path, changed: &[&str]) -> Paths {
    let mut dirty = Dirty::default();
    dirty.add(changed.iter().map(|c| root.join(c)));
    match scope_of(root, &dirty, false) {
        Scope::Paths(p) => p,
        Scope::Full => panic!("{changed:?} widened to the whole tree"),
    }
}

#[test]
fn a_scoped_listing_is_what_the_local_scoped_scan_sees() {
    if !gnu_find() {
        return;
    }
    let tmp = TempDir::new("scoped");
    let root = tmp.0.join("it's a root");
    let at = |rel: &str| root.join(rel);
    let t = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
    std::fs::create_dir_all(at("d/e/f")).unwrap();
    std::fs::create_dir_all(at("-rf/x")).unwrap();
    std::fs::create_dir_all(at("other")).unwrap();
    for name in [
        "plain",
        "two words",
        "new\nline",
        "d/e/f/deep",
        "d/e/q'uote",
        "-rf/x/y",
        "other/z",
    ] {
        touch(&at(name), name.as_bytes(), t);
    }
    touch(&at("d/e/.berth-tmp-1-0011"), b"half", t);
    std::os::unix::fs::symlink("../..", at("d/link")).unwrap();
    let scope = scope(
        &root,
        &[
            "d/e",
            "d/e/f/deep",
            "two words",
            "new\nline",
            "-rf/x",
            "gone",
            "d/link",
            "d/gone/deeper",
        ],
    );
    assert_eq!(scope.above, ["-rf", "d", "d/gone"]);
    // a folder above is gone: only a whole listing can say what happened
    let (status, _, stderr) = run(&root, &scope);
    assert_eq!(status, Some(EXIT_ABOVE as i32), "{stderr}");

    let scope = Paths {
        above: vec!["-rf".into(), "d".into()],
        roots: scope
            .roots
            .into_iter()
            .filter(|r| r != "d/gone/deeper")
            .collect(),
    };
    let (status, out, stderr) = run(&root, &scope);
    assert_eq!(status, Some(0), "{stderr}");
    let got = parse_listing(&out, MAX_ENTRIES, true).unwrap();
    let (want, kept) = crate::sync::tree::scan_scope(&root, &Default::default(), &scope)
        .unwrap()
        .unwrap();
    assert_eq!(kept, scope);
    assert_eq!(got, want);
    let keys: Vec<&str> = got.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "-rf",
            "-rf/x",
            "-rf/x/y",
            "d",
            "d/e",
            "d/e/f",
            "d/e/f/deep",
            "d/e/q'uote",
            "d/link",
            "new\nline",
            "two words"
        ]
    );
    // nothing outside the scope, the link not followed, the temporary file left out
    assert!(!got.contains_key("plain") && !got.contains_key("other/z"));

    // a folder above swapped for a link: what find read through it is
    // refused (the round widens to a whole listing, which never follows it)
    std::fs::rename(at("-rf"), at("moved")).unwrap();
    std::os::unix::fs::symlink("moved", at("-rf")).unwrap();
    let (status, out, stderr) = run(&root, &scope);
    assert_eq!(status, Some(0), "{stderr}");
    assert_eq!(
        parse_listing(&out, MAX_ENTRIES, true),
        Err(FindError::Orphan("-rf/x".into()))
    );
    let only_above = Paths {
        roots: vec!["d/e".into()],
        above: vec!["-rf".into(), "d".into()],
    };
    let (_, out, _) = run(&root, &only_above);
    let got = parse_listing(&out, MAX_ENTRIES, true).unwrap();
    assert!(!only_above.above_are_dirs(&got));
    assert!(
        crate::sync::tree::scan_scope(&root, &Default::default(), &scope)
            .unwrap()
            .is_none()
    );

    // an empty replica folder, and one that is gone
    let empty = tmp.0.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let only = Paths {
        roots: vec!["a".into()],
        above: vec![],
    };
    let (status, out, _) = run(&empty, &only);
    assert_eq!(status, Some(0));
    assert!(parse_listing(&out, MAX_ENTRIES, true).unwrap().is_empty());
    let (status, _, _) = run(&tmp.0.join("nowhere"), &only);
    assert_eq!(status, Some(EXIT_NO_ROOT as i32));
}

#[test]
fn a_dotted_listing_must_name_its_paths_from_a_start_point() {
    let rec = |path: &str| format!("f\x003\x001.0\x00644\x00{path}\x00\x00end");
    assert!(parse_listing(rec("./a").as_bytes(), 10, true)
        .unwrap()
        .contains_key("a"));
    for bad in ["a", "/etc/passwd", ".", "./", "../x"] {
        assert!(
            parse_listing(rec(bad).as_bytes(), 10, true).is_err(),
            "{bad:?} accepted"
        );
    }
}
