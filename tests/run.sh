#!/usr/bin/env bash
# Runs every test: brings the real test bed up (dockerd, two OpenSSH sshds,
# the busybox test image; installing what is missing from Debian), runs
# `cargo test --features e2e` (unit tests, the end-to-end tests against the
# test bed and the GUI tests, which build the tray app) inside tests/gui/session.sh (Xvfb, a
# private D-Bus session with gnome-keyring and a StatusNotifier watcher), and
# tears the test bed down again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/testbed/testbed.sh up >/dev/null
trap 'bash tests/testbed/testbed.sh down >/dev/null 2>&1 || true' EXIT
# Inside a throwaway desktop session (tests/gui/session.sh): Xvfb, a private
# D-Bus session whose Secret Service is gnome-keyring (so the keychain tests
# use the real one and never the user's own keyring) and a StatusNotifier
# watcher, so tests/gui.rs builds the tray app and drives it for real.
bash tests/gui/session.sh cargo test --locked --features e2e "$@"
