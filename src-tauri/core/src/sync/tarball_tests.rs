//! The archive's pure parts: quoting, tar's errors, the split into
//! streams, and what goes into an archive at all.

use super::*;

#[test]
fn quoting_survives_quotes_and_spaces() {
    assert_eq!(sh_quote("/a b/it's"), r"'/a b/it'\''s'");
    assert_eq!(
        unpack_command("/m/x y"),
        "mkdir -p -- '/m/x y' && exec tar --no-same-owner -xpf - -C '/m/x y'"
    );
}

#[test]
fn tar_errors_name_the_file() {
    let gnu = "tar: big.bin: Cannot write: No space left on device\n\
               tar: Exiting with failure status due to previous errors\n";
    assert_eq!(
        first_file_error(gnu),
        Some(("big.bin", "Cannot write: No space left on device"))
    );
    assert_eq!(first_file_error("tar: Exiting with failure status"), None);
}

#[test]
fn windows_paths_are_not_posix() {
    assert!(posix_path("/root/.cache/berth/mounts/m-1/src-2"));
    assert!(!posix_path("/C:/Users/dev/.cache/berth"));
    assert!(!posix_path("C:/Users"));
}

#[test]
fn exactly_pads_a_file_that_shrank() {
    let dir = std::env::temp_dir().join(format!("berth-exactly-{}", std::process::id()));
    std::fs::write(&dir, b"abc").unwrap();
    let mut out = Vec::new();
    Exactly::new(File::open(&dir).unwrap(), 5)
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, b"abc\0\0");
    let mut out = Vec::new();
    Exactly::new(File::open(&dir).unwrap(), 2)
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, b"ab");
    std::fs::remove_file(&dir).unwrap();
}

fn put(path: &str, size: u64) -> Op {
    Op::Put {
        path: path.into(),
        size,
        exec: false,
    }
}

#[test]
fn a_large_first_sync_splits_into_runs_of_the_tree_with_their_folders() {
    let mb = 1 << 20;
    let ops = vec![
        Op::Mkdir("a".into()),
        Op::Mkdir("a/x".into()),
        put("a/x/1", 6 * mb),
        put("a/x/2", 6 * mb),
        Op::Mkdir("b".into()),
        put("b/3", 6 * mb),
        Op::Symlink {
            path: "b/l".into(),
            target: "3".into(),
        },
        Op::Mkdir("empty".into()),
        put("top", 6 * mb),
    ];
    let names = |part: &[Op]| -> Vec<String> {
        part.iter()
            .map(|op| replica::op_path(op).to_string())
            .collect()
    };
    let parts = split(&ops, 2);
    let got: Vec<Vec<String>> = parts.iter().map(|p| names(p)).collect();
    assert_eq!(
        got,
        vec![
            vec!["a", "a/x", "b", "empty", "a/x/1", "a/x/2"],
            vec!["b", "b/3", "top"],
        ]
    );
    // one stream, or little to send: one archive, in the order of `ops`
    let one = vec![names(
        &ops.iter()
            .filter(|o| in_archive(o))
            .cloned()
            .collect::<Vec<_>>(),
    )];
    assert_eq!(
        split(&ops, 1).iter().map(|p| names(p)).collect::<Vec<_>>(),
        one
    );
    let small = vec![Op::Mkdir("a".into()), put("a/1", 10), put("a/2", 10)];
    assert_eq!(split(&small, 2), vec![small.clone()]);
    assert_eq!(split(&[], 2), vec![Vec::<Op>::new()]);
}

#[test]
fn every_file_goes_into_exactly_one_archive_after_its_folders() {
    let mut ops = Vec::new();
    for d in 0..7 {
        ops.push(Op::Mkdir(format!("d{d}")));
        for f in 0..50 {
            ops.push(put(&format!("d{d}/f{f}"), 1000 * (f + 1)));
        }
    }
    for streams in 2..5 {
        let parts = split(&ops, streams);
        assert_eq!(parts.len(), streams);
        let mut files: Vec<&str> = Vec::new();
        for part in &parts {
            let mut made = std::collections::HashSet::new();
            for op in part {
                match op {
                    Op::Mkdir(d) => {
                        made.insert(d.as_str());
                    }
                    Op::Put { path, .. } => {
                        let (dir, _) = path.rsplit_once('/').unwrap();
                        assert!(made.contains(dir), "{path} before its folder");
                        files.push(path);
                    }
                    _ => unreachable!(),
                }
            }
        }
        let want: Vec<&str> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Put { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(files, want, "{streams} streams");
        let work: Vec<u64> = parts
            .iter()
            .map(|p| {
                p.iter()
                    .map(|op| match op {
                        Op::Put { size, .. } => size + FILE_COST,
                        _ => 0,
                    })
                    .sum()
            })
            .collect();
        let (lo, hi) = (work.iter().min().unwrap(), work.iter().max().unwrap());
        assert!(hi - lo <= 51_000 + FILE_COST, "{streams} streams: {work:?}");
    }
}

#[test]
fn only_dirs_and_files_go_into_the_archive() {
    let put = Op::Put {
        path: "a".into(),
        size: 1,
        exec: false,
    };
    assert!(in_archive(&put));
    assert!(in_archive(&Op::Mkdir("d".into())));
    assert!(!in_archive(&Op::Symlink {
        path: "l".into(),
        target: "/etc".into()
    }));
    assert!(!in_archive(&Op::Remove("x".into())));
}
