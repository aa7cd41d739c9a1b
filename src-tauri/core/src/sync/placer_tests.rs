//! The placer's scripts run by the real `sh` and GNU coreutils of this
//! machine, on folders a "container" swaps for links.

use super::*;
use std::path::Path;
use std::process::Command;

use super::super::remote_find::tests::TempDir;

fn sh(script: &str) -> (u32, Vec<u8>) {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    (out.status.code().unwrap_or(255) as u32, out.stdout)
}

fn place(root: &Path, steps: &[(String, Step)]) -> Vec<u32> {
    let (status, out) = sh(&script(root.to_str().unwrap(), steps));
    assert_eq!(status, 0);
    parse(&out, steps.len()).expect("a status per step")
}

/// A replica `r` (physical path), its stage, and a folder outside it
/// holding a private file `f`, which no step may touch.
struct Fixture {
    _tmp: TempDir,
    root: std::path::PathBuf,
    stage: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn fixture(tag: u32) -> Fixture {
    let tmp = TempDir::new(&format!("placer-{tag}"));
    let root = std::fs::canonicalize(tmp.0.as_path()).unwrap().join("r");
    let stage = root.with_extension("stage");
    let outside = tmp.0.as_path().join("outside");
    for d in [&root, &stage, &outside] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(outside.join("f"), "private").unwrap();
    Fixture {
        _tmp: tmp,
        root,
        stage,
        outside,
    }
}

impl Fixture {
    fn outside_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["f"], "the outside folder changed");
        assert_eq!(
            std::fs::read_to_string(self.outside.join("f")).unwrap(),
            "private"
        );
    }
    fn link_out(&self, rel: &str, to: &str) {
        std::os::unix::fs::symlink(self.outside.join(to), self.root.join(rel)).unwrap();
    }
}

fn steps(list: &[(&str, Step)]) -> Vec<(String, Step)> {
    list.iter()
        .map(|(rel, step)| (rel.to_string(), step.clone()))
        .collect()
}

fn staged(stage: &Path, n: &str, text: &str) -> String {
    let p = stage.join(n);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn the_probe_makes_the_stage_and_prints_the_physical_root() {
    let tmp = TempDir::new(&format!("placer-{}", line!()));
    let real = tmp.0.as_path().join("real");
    std::fs::create_dir_all(real.join("replica")).unwrap();
    std::os::unix::fs::symlink(&real, tmp.0.as_path().join("via")).unwrap();
    let replica = tmp.0.as_path().join("via/replica");
    std::fs::write(stage_of(replica.to_str().unwrap()), "left").ok();
    let (status, out) = sh(&probe_command(replica.to_str().unwrap()));
    assert_eq!(status, 0);
    let phys = std::fs::canonicalize(real.join("replica")).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), phys.to_str().unwrap());
    assert!(Path::new(&stage_of(replica.to_str().unwrap())).is_dir());
}

#[test]
fn a_staged_file_lands_at_its_name_in_its_folder_and_replaces_a_link_there() {
    let f = fixture(line!());
    std::fs::create_dir_all(f.root.join("d")).unwrap();
    f.link_out("d/-odd 'name'\n", "f");
    let list = steps(&[
        (
            "top",
            Step::Place {
                from: staged(&f.stage, "a", "one"),
            },
        ),
        (
            "d/-odd 'name'\n",
            Step::Place {
                from: staged(&f.stage, "b", "two"),
            },
        ),
    ]);
    assert_eq!(place(&f.root, &list), vec![0, 0]);
    assert_eq!(std::fs::read_to_string(f.root.join("top")).unwrap(), "one");
    let odd = f.root.join("d/-odd 'name'\n");
    assert!(!std::fs::symlink_metadata(&odd).unwrap().is_symlink());
    assert_eq!(std::fs::read_to_string(odd).unwrap(), "two");
    f.outside_untouched();
}

#[test]
fn a_folder_swapped_for_a_link_is_never_written_through() {
    let f = fixture(line!());
    std::fs::create_dir_all(f.root.join("real")).unwrap();
    // a link out of the replica, and a link to a folder inside it
    f.link_out("d", "");
    std::os::unix::fs::symlink(f.root.join("real"), f.root.join("e")).unwrap();
    let list = steps(&[
        (
            "d/f",
            Step::Place {
                from: staged(&f.stage, "a", "mine"),
            },
        ),
        (
            "e/f",
            Step::Place {
                from: staged(&f.stage, "b", "mine"),
            },
        ),
        (
            "d/x/f",
            Step::Place {
                from: staged(&f.stage, "c", "mine"),
            },
        ),
    ]);
    assert_eq!(place(&f.root, &list), vec![NOT_INSIDE; 3]);
    f.outside_untouched();
    assert!(!f.root.join("real/f").exists());
    // nothing moved: the staged files are still there for removal
    assert!(f.stage.join("a").exists() && f.stage.join("b").exists());
}

#[test]
fn a_folder_is_made_in_place_of_a_link_and_an_existing_one_is_kept() {
    let f = fixture(line!());
    f.link_out("l", "");
    std::fs::create_dir_all(f.root.join("kept")).unwrap();
    std::fs::write(f.root.join("kept/x"), "x").unwrap();
    std::fs::write(f.root.join("file"), "container's").unwrap();
    let list = steps(&[
        ("l", Step::Mkdir),
        ("kept", Step::Mkdir),
        ("new", Step::Mkdir),
        ("new/deeper", Step::Mkdir),
        ("file", Step::Mkdir),
    ]);
    assert_eq!(place(&f.root, &list), vec![0; 5]);
    for d in ["l", "kept", "new/deeper", "file"] {
        let m = std::fs::symlink_metadata(f.root.join(d)).unwrap();
        assert!(m.is_dir() && !m.is_symlink(), "{d}");
    }
    assert_eq!(std::fs::read_to_string(f.root.join("kept/x")).unwrap(), "x");
    f.outside_untouched();
}

#[test]
fn removals_take_the_name_itself_and_refuse_the_wrong_kind() {
    let f = fixture(line!());
    f.link_out("link", "f");
    f.link_out("dirlink", "");
    std::fs::write(f.root.join("file"), "x").unwrap();
    for d in ["empty", "full", "isdir"] {
        std::fs::create_dir_all(f.root.join(d)).unwrap();
    }
    std::fs::write(f.root.join("full/keep"), "keep").unwrap();
    std::fs::write(f.root.join("notdir"), "keep").unwrap();
    let list = steps(&[
        ("link", Step::Remove),
        ("file", Step::Remove),
        ("gone", Step::Remove),
        ("isdir", Step::Remove),
        ("empty", Step::Rmdir),
        ("dirlink", Step::Rmdir),
        ("gone", Step::Rmdir),
        ("full", Step::Rmdir),
        ("notdir", Step::Rmdir),
    ]);
    let got = place(&f.root, &list);
    assert_eq!(&got[..3], &[0, 0, 0]);
    assert_ne!(got[3], 0, "a folder is no file to remove");
    assert_eq!(&got[4..7], &[0, 0, 0]);
    assert_ne!(got[7], 0, "a folder with something in it stays");
    assert_ne!(got[8], 0, "a file is no folder to remove");
    for gone in ["link", "file", "empty", "dirlink"] {
        assert!(
            std::fs::symlink_metadata(f.root.join(gone)).is_err(),
            "{gone}"
        );
    }
    assert!(f.root.join("isdir").is_dir());
    assert_eq!(
        std::fs::read_to_string(f.root.join("full/keep")).unwrap(),
        "keep"
    );
    assert_eq!(
        std::fs::read_to_string(f.root.join("notdir")).unwrap(),
        "keep"
    );
    f.outside_untouched();
}

#[test]
fn nothing_is_done_below_a_folder_swapped_for_a_link() {
    let f = fixture(line!());
    // the outside folder holds namesakes of what the steps name
    f.link_out("d", "");
    std::fs::create_dir_all(f.root.join("real")).unwrap();
    let list = steps(&[
        ("d/f", Step::Remove),
        ("d/f", Step::Rmdir),
        ("d/f", Step::MoveAside { to: "g".into() }),
        ("d/f", Step::Touch { mtime: 5 }),
        ("d/new", Step::Mkdir),
    ]);
    assert_eq!(place(&f.root, &list), vec![NOT_INSIDE; 5]);
    f.outside_untouched();
}

#[test]
fn a_loser_moves_aside_without_replacing_anything() {
    let f = fixture(line!());
    std::fs::create_dir_all(f.root.join("d")).unwrap();
    std::fs::write(f.root.join("d/a.txt"), "loser").unwrap();
    std::fs::write(f.root.join("d/b.txt"), "b").unwrap();
    std::fs::write(f.root.join("d/taken"), "someone's").unwrap();
    let list = steps(&[
        (
            "d/a.txt",
            Step::MoveAside {
                to: "a.kept.txt".into(),
            },
        ),
        ("d/b.txt", Step::MoveAside { to: "taken".into() }),
        ("d/none", Step::MoveAside { to: "x".into() }),
    ]);
    let got = place(&f.root, &list);
    assert_eq!(got[0], 0);
    assert_ne!(got[1], 0, "a name in use is never replaced");
    assert_ne!(got[2], 0, "nothing to move is no success");
    let read = |n: &str| std::fs::read_to_string(f.root.join("d").join(n)).unwrap();
    assert_eq!(read("a.kept.txt"), "loser");
    assert!(!f.root.join("d/a.txt").exists());
    assert_eq!(
        (read("b.txt"), read("taken")),
        ("b".into(), "someone's".into())
    );
}

#[test]
fn a_touch_sets_the_mtime_to_the_nanosecond_and_never_through_a_link() {
    use std::os::unix::fs::MetadataExt;
    let f = fixture(line!());
    std::fs::write(f.root.join("file"), "x").unwrap();
    f.link_out("link", "f");
    let before = std::fs::metadata(f.outside.join("f")).unwrap().mtime_nsec();
    let mtime = 1_700_000_000_123_456_789;
    let list = steps(&[
        ("file", Step::Touch { mtime }),
        ("link", Step::Touch { mtime }),
        ("gone", Step::Touch { mtime }),
    ]);
    let got = place(&f.root, &list);
    assert_eq!(got[0], 0);
    assert_ne!(got[1], 0);
    assert_ne!(got[2], 0, "a missing file is not touched into being");
    let m = std::fs::metadata(f.root.join("file")).unwrap();
    assert_eq!(m.mtime() as i64 * 1_000_000_000 + m.mtime_nsec(), mtime);
    assert_eq!(
        std::fs::metadata(f.outside.join("f")).unwrap().mtime_nsec(),
        before
    );
    assert!(!f.root.join("gone").exists());
    f.outside_untouched();
}

#[test]
fn statuses_are_one_line_per_step() {
    assert_eq!(parse(b"0\n90\n1\n", 3), Some(vec![0, 90, 1]));
    assert_eq!(parse(b"0\n", 2), None);
    assert_eq!(parse(b"0\nx\n", 2), None);
}
