#!/usr/bin/env bash
# Runs every test: brings the real test bed up (dockerd, two OpenSSH sshds,
# the busybox test image; installing what is missing from Debian), runs
# `cargo test` (unit tests and the end-to-end tests against the test bed),
# and tears the test bed down again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/testbed/testbed.sh up >/dev/null
trap 'bash tests/testbed/testbed.sh down >/dev/null 2>&1 || true' EXIT
cargo test --locked "$@"
