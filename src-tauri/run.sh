#!/usr/bin/env bash
# Sets up and runs the Berth tray app on a Debian/Ubuntu machine: installs the
# system libraries the app builds against (WebKitGTK, the tray indicator,
# D-Bus, …) when they are missing, builds the release app and starts it.
# Extra arguments go to the app (e.g. --hidden to start in the tray only).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for spec in /usr/include/webkitgtk-4.1/webkit2/webkit2.h:libwebkit2gtk-4.1-dev \
            /usr/include/libayatana-appindicator3-0.1/libayatana-appindicator/app-indicator.h:libayatana-appindicator3-dev \
            /usr/include/librsvg-2.0/librsvg/rsvg.h:librsvg2-dev /usr/include/xdo.h:libxdo-dev \
            /usr/include/openssl/ssl.h:libssl-dev /usr/include/dbus-1.0/dbus/dbus.h:libdbus-1-dev \
            /usr/bin/pkg-config:pkg-config /usr/bin/cc:build-essential; do
  [[ -e ${spec%%:*} ]] || need+=("${spec#*:}")
done
if ((${#need[@]})); then
  echo "berth: installing ${need[*]}" >&2
  sudo=""; ((EUID == 0)) || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "berth: needs Rust (https://rustup.rs)" >&2; exit 1; }
cargo build --release -p berth
exec ./target/release/berth "$@"
