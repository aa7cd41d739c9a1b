#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (default 60 s each), from the
# seeds in fuzz/seeds. Installs what it needs: the nightly toolchain (for
# the sanitizers) and cargo-fuzz. A crash fails the run and leaves the
# input under fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build
for target in create_body bind_spec; do
  corpus=$(mktemp -d)
  cp seeds/$target/* "$corpus"/
  echo "fuzz: $target for ${secs}s" >&2
  cargo +nightly fuzz run "$target" "$corpus" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 | tail -n 3
  rm -rf "$corpus"
done
