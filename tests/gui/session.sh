#!/usr/bin/env bash
# Runs a command inside a throwaway desktop session for the GUI tests:
#   - Xvfb on a display it picks itself (-displayfd), 1280x800x24;
#   - a private D-Bus session bus whose Secret Service is gnome-keyring with an
#     unlocked throwaway keyring (tests/testbed/with-keychain.sh);
#   - a StatusNotifierWatcher on that bus (tests/gui/sni_watcher.py), so the
#     app's tray item registers and tests/gui/tray.py can read its menu;
#   - WEBKIT_DISABLE_COMPOSITING_MODE=1 (WebKitGTK under Xvfb), GDK_BACKEND=x11;
#   - TAURI_DRIVER=<path of tauri-driver>, installed with `cargo install
#     tauri-driver --locked` when missing (kept in cargo's bin directory);
#   - BERTH_GUI_SESSION=1, which tests/gui.rs looks for.
# Then runs COMMAND and tears all of it down; exits with COMMAND's status.
# Usage: tests/gui/session.sh COMMAND [ARGS...]
# (the Debian packages come from tests/testbed/testbed.sh up: xvfb, x11-apps,
# imagemagick, webkit2gtk-driver, python3-dbus, python3-gi, python3-xlib, ...)
set -euo pipefail
(($#)) || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
log() { echo "[gui-session] $*" >&2; }
die() { echo "[gui-session] ERROR: $*" >&2; exit 1; }

for c in Xvfb WebKitWebDriver xwd; do
  command -v "$c" >/dev/null || die "$c is missing; run tests/testbed/testbed.sh up"
done
/usr/bin/python3 -c "import dbus, gi, Xlib" 2>/dev/null || die "python3-dbus / python3-gi / python3-xlib are missing; run tests/testbed/testbed.sh up"

# tauri-driver (crates.io), once per machine.
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
if command -v tauri-driver >/dev/null; then TAURI_DRIVER=$(command -v tauri-driver)
elif [[ -x $cargo_bin/tauri-driver ]]; then TAURI_DRIVER=$cargo_bin/tauri-driver
else
  log "installing tauri-driver (cargo install tauri-driver --locked)"
  cargo install tauri-driver --locked --quiet >&2 || die "cargo install tauri-driver failed"
  TAURI_DRIVER=$cargo_bin/tauri-driver
fi
export TAURI_DRIVER

tmp=$(mktemp -d "${TMPDIR:-/tmp}/berth-gui-session.XXXXXX")
xvfb_pid=""
cleanup() {
  [[ -z $xvfb_pid ]] || { kill "$xvfb_pid" 2>/dev/null || true; wait "$xvfb_pid" 2>/dev/null || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT

# Xvfb picks a free display and writes its number to fd 3.
exec 3>"$tmp/display"
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp -noreset >"$tmp/xvfb.log" 2>&1 &
xvfb_pid=$!
exec 3>&-
for _ in $(seq 100); do [[ -s $tmp/display ]] && break; kill -0 "$xvfb_pid" 2>/dev/null || break; sleep 0.1; done
[[ -s $tmp/display ]] || { cat "$tmp/xvfb.log" >&2; die "Xvfb did not start"; }
export DISPLAY=:$(tr -dc 0-9 <"$tmp/display")
log "Xvfb on $DISPLAY"

export WEBKIT_DISABLE_COMPOSITING_MODE=1 GDK_BACKEND=x11 NO_AT_BRIDGE=1 BERTH_GUI_SESSION=1
export BERTH_GUI_TMP=$tmp
set +e
bash "$here/../testbed/with-keychain.sh" bash -c '
  set -uo pipefail
  /usr/bin/python3 "$0/sni_watcher.py" "$BERTH_GUI_TMP/watcher.ready" 2>"$BERTH_GUI_TMP/watcher.log" &
  w=$!
  for _ in $(seq 100); do [[ -s $BERTH_GUI_TMP/watcher.ready ]] && break; kill -0 $w 2>/dev/null || break; sleep 0.1; done
  if [[ ! -s $BERTH_GUI_TMP/watcher.ready ]]; then
    cat "$BERTH_GUI_TMP/watcher.log" >&2; echo "[gui-session] ERROR: the StatusNotifierWatcher did not start" >&2; exit 1
  fi
  echo "[gui-session] StatusNotifierWatcher up (pid $w)" >&2
  "$@"; rc=$?
  kill $w 2>/dev/null; wait $w 2>/dev/null
  exit $rc' "$here" "$@"
rc=$?
exit $rc
