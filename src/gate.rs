//! Whether the end-to-end tests are built, and what to say when they are not.
//! Shared with build.rs, which includes this file with `#[path]`.

/// The hint build.rs prints as a cargo warning when the `e2e` feature is off.
pub const E2E_OFF_HINT: &str = "end-to-end tests are off: run `bash tests/run.sh` \
     (root; installs Debian packages) or `cargo test --features e2e`";

/// The `cargo:` lines build.rs prints, given whether the `e2e` feature is on.
pub fn build_script_lines(e2e: bool) -> Vec<String> {
    let mut lines = vec![
        "cargo:rerun-if-changed=build.rs".to_string(),
        "cargo:rerun-if-changed=src/gate.rs".to_string(),
    ];
    if !e2e {
        lines.push(format!("cargo:warning={E2E_OFF_HINT}"));
    }
    lines
}
