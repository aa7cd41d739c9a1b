#!/usr/bin/env bash
# Runs every test: brings the real test bed up (dockerd, two OpenSSH sshds,
# the busybox test image; installing what is missing from Debian), runs
# `cargo test` (unit tests and the end-to-end tests against the test bed)
# inside a private D-Bus session whose Secret Service is gnome-keyring,
# and tears the test bed down again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/testbed/testbed.sh up >/dev/null
trap 'bash tests/testbed/testbed.sh down >/dev/null 2>&1 || true' EXIT
# Inside a private D-Bus session with gnome-keyring, so the keychain tests use
# the real Secret Service (and never the user's own keyring).
bash tests/testbed/with-keychain.sh cargo test --locked "$@"
