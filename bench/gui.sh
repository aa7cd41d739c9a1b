#!/usr/bin/env bash
# The tray app's figures, from release builds, in one run: click Connect →
# connected, `docker run -d` returned → port in the tray menu, and Berth idle
# in the tray with its window closed against the empty Tauri tray app (PSS,
# both measured in this run). Runs the GUI test (tests/gui.rs) under the
# desktop session of tests/gui/session.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/testbed/testbed.sh up >/dev/null
BERTH_GUI_PROFILE=release bash tests/gui/session.sh \
  cargo test --locked --features e2e --test gui -- --nocapture 2>&1 | grep -E '^(VALUE|RATIO)|^  |\[gui\]'
