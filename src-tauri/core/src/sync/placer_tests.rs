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
    let tmp = TempDir::new(&format!("placer-{}", line!()));
    let root = std::fs::canonicalize(tmp.0.as_path()).unwrap().join("r");
    let stage = root.with_extension("stage");
    let outside = tmp.0.as_path().join("outside");
    for d in [root.join("d"), stage.clone(), outside.clone()] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(outside.join("t"), "private").unwrap();
    std::os::unix::fs::symlink(outside.join("t"), root.join("d/-odd 'name'\n")).unwrap();
    let steps = vec![
        (
            "top".to_string(),
            Step::Place {
                from: staged(&stage, "a", "one"),
            },
        ),
        (
            "d/-odd 'name'\n".to_string(),
            Step::Place {
                from: staged(&stage, "b", "two"),
            },
        ),
    ];
    assert_eq!(place(&root, &steps), vec![0, 0]);
    assert_eq!(std::fs::read_to_string(root.join("top")).unwrap(), "one");
    let odd = root.join("d/-odd 'name'\n");
    assert!(!std::fs::symlink_metadata(&odd).unwrap().is_symlink());
    assert_eq!(std::fs::read_to_string(odd).unwrap(), "two");
    assert_eq!(
        std::fs::read_to_string(outside.join("t")).unwrap(),
        "private"
    );
}

#[test]
fn a_folder_swapped_for_a_link_is_never_written_through() {
    let tmp = TempDir::new(&format!("placer-{}", line!()));
    let root = std::fs::canonicalize(tmp.0.as_path()).unwrap().join("r");
    let stage = root.with_extension("stage");
    let outside = tmp.0.as_path().join("outside");
    for d in [root.join("real"), stage.clone(), outside.clone()] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(outside.join("f"), "private").unwrap();
    // a link out of the replica, and a link to a folder inside it
    std::os::unix::fs::symlink(&outside, root.join("d")).unwrap();
    std::os::unix::fs::symlink(root.join("real"), root.join("e")).unwrap();
    let steps = vec![
        (
            "d/f".to_string(),
            Step::Place {
                from: staged(&stage, "a", "mine"),
            },
        ),
        (
            "e/f".to_string(),
            Step::Place {
                from: staged(&stage, "b", "mine"),
            },
        ),
        (
            "d/x/f".to_string(),
            Step::Place {
                from: staged(&stage, "c", "mine"),
            },
        ),
    ];
    assert_eq!(place(&root, &steps), vec![NOT_INSIDE; 3]);
    assert_eq!(
        std::fs::read_to_string(outside.join("f")).unwrap(),
        "private"
    );
    assert!(!root.join("real/f").exists());
    // nothing moved: the staged files are still there for removal
    assert!(stage.join("a").exists() && stage.join("b").exists());
}

#[test]
fn statuses_are_one_line_per_step() {
    assert_eq!(parse(b"0\n90\n1\n", 3), Some(vec![0, 90, 1]));
    assert_eq!(parse(b"0\n", 2), None);
    assert_eq!(parse(b"0\nx\n", 2), None);
}
