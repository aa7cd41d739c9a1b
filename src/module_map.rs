//! The README's module map and ARCHITECTURE.md against the tree: every
//! top-level module of the engine is on the map, and every file either names
//! exists, so a rename or a new module that skips the docs fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

/// The README's "How it works" section.
fn map() -> String {
    let readme = read("README.md");
    let start = readme
        .find("\n## How it works")
        .expect("README has no How it works");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

/// File and folder names under `dir`, recursively.
fn names_under(dir: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            out.insert(format!("{name}/"));
            names_under(&e.path(), out);
        } else {
            out.insert(name);
        }
    }
}

/// `name.rs` tokens a text mentions (the last path component).
fn rs_files_named(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '/'))
        .map(|t| t.trim_end_matches('.'))
        .filter(|t| t.ends_with(".rs") && t.len() > 3)
        .map(|t| t.rsplit('/').next().unwrap_or(t).to_string())
        .collect()
}

#[test]
fn every_top_level_engine_module_is_on_the_map() {
    let map = map();
    let mut missing = vec![];
    for e in std::fs::read_dir(root().join("src-tauri/core/src")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let entry = if e.file_type().unwrap().is_dir() {
            format!("`{name}/`")
        } else if name.ends_with(".rs") && name != "lib.rs" {
            format!("`{name}`")
        } else {
            continue;
        };
        if name != "bin" && !map.contains(&entry) {
            missing.push(entry);
        }
    }
    assert!(
        missing.is_empty(),
        "not in README How it works: {missing:?}"
    );
}

#[test]
fn every_file_the_docs_name_exists() {
    let mut tree = BTreeSet::new();
    for dir in ["src-tauri", "tests", "vendor/russh/src"] {
        names_under(&root().join(dir), &mut tree);
    }
    for (doc, text) in [
        ("README How it works", map()),
        ("ARCHITECTURE.md", read("ARCHITECTURE.md")),
    ] {
        let gone: Vec<_> = rs_files_named(&text)
            .into_iter()
            .filter(|f| !tree.contains(f))
            .collect();
        assert!(
            gone.is_empty(),
            "{doc} names files that do not exist: {gone:?}"
        );
    }
}

#[test]
fn the_file_scanner_finds_names_in_prose() {
    let found = rs_files_named("`ssh/session.rs` (and `reconnect.rs`), mod.rs.");
    let want: BTreeSet<String> = ["session.rs", "reconnect.rs", "mod.rs"]
        .map(String::from)
        .into();
    assert_eq!(found, want);
}
