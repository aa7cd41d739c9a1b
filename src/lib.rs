//! Test-only package: the end-to-end tests live in `tests/`, each behind the
//! `e2e` feature (they bring up dockerd and sshd as root). Plain `cargo test`
//! runs the unit tests only, these among them; `bash tests/run.sh` runs all.

pub mod gate;

#[cfg(test)]
mod module_map;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::gate::{build_script_lines, E2E_OFF_HINT};

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn read(path: &str) -> String {
        std::fs::read_to_string(root().join(path)).unwrap()
    }

    fn manifest() -> toml::Table {
        read("Cargo.toml").parse().unwrap()
    }

    #[test]
    fn the_hint_is_printed_only_when_e2e_is_off() {
        let off = build_script_lines(false);
        let warnings: Vec<_> = off
            .iter()
            .filter_map(|l| l.strip_prefix("cargo:warning="))
            .collect();
        assert_eq!(warnings, [E2E_OFF_HINT]);
        let on = build_script_lines(true);
        assert!(
            on.iter().all(|l| !l.starts_with("cargo:warning=")),
            "{on:?}"
        );
        // both ways build.rs is rerun when it or this file changes
        for lines in [off, on] {
            assert!(lines.contains(&"cargo:rerun-if-changed=src/gate.rs".to_string()));
        }
    }

    #[test]
    fn the_hint_names_commands_that_exist() {
        assert!(
            E2E_OFF_HINT.contains("`bash tests/run.sh`"),
            "{E2E_OFF_HINT}"
        );
        assert!(E2E_OFF_HINT.contains("`cargo test --features e2e`"));
        assert!(root().join("tests/run.sh").is_file());
        let features = manifest()["features"].as_table().cloned().unwrap();
        assert!(features.contains_key("e2e"), "{features:?}");
        // tests/run.sh, the way to run everything, turns the feature on
        let run = read("tests/run.sh");
        assert!(
            run.lines()
                .any(|l| l.contains("cargo test") && l.contains("--features e2e")),
            "tests/run.sh does not pass --features e2e"
        );
    }

    #[test]
    fn the_e2e_feature_brings_the_keychain() {
        let features = manifest()["features"].as_table().cloned().unwrap();
        let e2e = features["e2e"].as_array().unwrap();
        assert!(
            e2e.iter()
                .any(|f| f.as_str() == Some("berth-core/keychain")),
            "{e2e:?}"
        );
    }

    /// Every tests/*.rs is a [[test]] target behind `e2e`, and autotests is
    /// off, so no end-to-end test is compiled by plain `cargo test` and none
    /// is silently left out of `--features e2e`.
    #[test]
    fn every_end_to_end_test_is_behind_the_feature() {
        let m = manifest();
        assert_eq!(m["package"]["autotests"].as_bool(), Some(false));
        let files: BTreeSet<String> = std::fs::read_dir(root().join("tests"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .map(|p| stem(&p))
            .collect();
        assert!(files.len() > 10, "{files:?}");
        let targets = m["test"].as_array().unwrap();
        let mut listed = BTreeSet::new();
        for t in targets {
            let name = t["name"].as_str().unwrap().to_string();
            let required = t.get("required-features").and_then(|r| r.as_array());
            assert_eq!(
                required.map(|r| r.iter().filter_map(|f| f.as_str()).collect::<Vec<_>>()),
                Some(vec!["e2e"]),
                "[[test]] {name} is not behind the e2e feature"
            );
            if let Some(path) = t.get("path") {
                assert_eq!(path.as_str(), Some(format!("tests/{name}.rs").as_str()));
            }
            assert!(listed.insert(name), "a [[test]] is listed twice");
        }
        assert_eq!(files, listed, "tests/*.rs and the [[test]] entries differ");
    }

    #[test]
    fn the_readme_says_what_cargo_test_runs() {
        let readme = read("README.md");
        let section = readme
            .split("## Running the tests")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap();
        assert!(section.contains("bash tests/run.sh"), "{section}");
        assert!(section.contains("unit tests only"), "{section}");
        assert!(section.contains("--features e2e"), "{section}");
    }

    fn stem(p: &Path) -> String {
        p.file_stem().unwrap().to_string_lossy().into_owned()
    }
}
