#!/usr/bin/env bash
# Runs the vendored russh's own library unit tests (e.g. the [Berth] window
# accounting tests in src/session.rs). They cannot run inside Berth's
# workspace: the crate's dev-dependencies were removed when vendoring (see
# VENDORED.md) so that they stay out of Berth's Cargo.lock. This copies the
# crate to a temporary folder, gives it back the dev-dependencies its unit
# tests use, pins everything else to Berth's Cargo.lock, and runs
# `cargo test --lib` with Berth's feature set. Extra arguments go to the test
# binary's filter, e.g. `bash vendor/russh/unit-tests.sh take_window_strict`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$here" "$tmp/russh"
cp "$root/Cargo.lock" "$tmp/russh/Cargo.lock"
cat >>"$tmp/russh/Cargo.toml" <<'EOF'

[dev-dependencies]
env_logger = "0.11"
tempfile = "3.14"
tokio = { version = "1.17", features = ["full"] }
tokio-stream = "0.1"

[workspace]
EOF
cd "$tmp/russh"
# own target folder: never waits for the workspace's build lock
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/russh-unit}"
cargo test --lib --no-default-features --features ring,rsa,flate2 -- "$@"
