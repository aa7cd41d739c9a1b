#!/usr/bin/env bash
# Runs a command inside a private D-Bus session bus whose Secret Service is
# gnome-keyring with a throwaway, unlocked login keyring, so tests exercise
# the real OS keychain and never touch the user's own.
# Usage: with-keychain.sh COMMAND [ARGS...]   (tests/testbed/testbed.sh up installs
# dbus-run-session and gnome-keyring). The keyring lives in a temporary
# directory that is removed afterwards.
set -euo pipefail
(($#)) || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
for c in dbus-run-session gnome-keyring-daemon; do
  command -v "$c" >/dev/null || { echo "[with-keychain] ERROR: $c is missing; run tests/testbed/testbed.sh up" >&2; exit 1; }
done
data=$(mktemp -d "${TMPDIR:-/tmp}/berth-keychain.XXXXXX")
trap 'rm -rf "$data"' EXIT
mkdir -m 700 "$data/run" "$data/share"
# Inside the session: gnome-keyring creates and unlocks a "login" keyring
# (the default collection) from the password on stdin; an empty password
# creates none, hence a fixed one. Its files go to $data, not to $HOME.
BERTH_KEYCHAIN_DIR=$data dbus-run-session -- bash -c '
  set -euo pipefail
  printf %s berth-test | XDG_DATA_HOME=$BERTH_KEYCHAIN_DIR/share XDG_RUNTIME_DIR=$BERTH_KEYCHAIN_DIR/run \
    gnome-keyring-daemon --unlock --components=secrets >/dev/null
  exec "$@"' with-keychain "$@" 2> >(grep --line-buffered -v "Failed to set fd limit" >&2)
