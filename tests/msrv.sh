#!/usr/bin/env bash
# The MSRV check. Only one Rust toolchain exists where Berth is built and
# tested, so the MSRV is not checked by building with an old compiler. It is
# checked in two halves instead:
#   1. here: the workspace's declared `rust-version` (Cargo.toml) is at least
#      every dependency's own `rust-version` in Cargo.lock (from
#      `cargo metadata`), so no dependency needs a newer compiler than we say,
#      and every member declares the workspace's;
#   2. clippy's `incompatible_msrv` lint, denied in `[workspace.lints]` (also
#      checked here) and run by .ci/run's `cargo clippy ... -D warnings`: our
#      own code uses no std API newer than `rust-version`.
set -euo pipefail
cd "$(dirname "$0")/.."
meta=$(mktemp)
trap 'rm -f "$meta"' EXIT
cargo metadata --locked --format-version 1 >"$meta"
python3 - "$meta" <<'PY'
import json
import sys
import tomllib

with open(sys.argv[1]) as f:
    meta = json.load(f)
with open("Cargo.toml", "rb") as f:
    manifest = tomllib.load(f)


def ver(s):
    return tuple(int(x) for x in s.split("."))


def show(v):
    return ".".join(map(str, v))


declared = manifest["workspace"]["package"]["rust-version"]
members = set(meta["workspace_members"])
needs = sorted(
    (ver(p["rust_version"]), p["name"], p["version"])
    for p in meta["packages"]
    if p.get("rust_version") and p["id"] not in members
)
newer = [n for n in needs if n[0] > ver(declared)]
for v, name, version in newer:
    print(f"msrv: {name} {version} needs Rust {show(v)}", file=sys.stderr)
if newer:
    sys.exit(
        f"msrv: the workspace declares rust-version {declared}, older than its "
        f"dependencies need; raise it to {show(newer[-1][0])}"
    )
for p in meta["packages"]:
    if p["id"] in members and p.get("rust_version") != declared:
        sys.exit(
            f"msrv: workspace member {p['name']} declares rust-version "
            f"{p.get('rust_version')}, not {declared} (use rust-version.workspace = true)"
        )
lint = manifest["workspace"].get("lints", {}).get("clippy", {}).get("incompatible_msrv")
level = lint if isinstance(lint, str) else (lint or {}).get("level")
if level not in ("deny", "forbid"):
    sys.exit("msrv: [workspace.lints.clippy] incompatible_msrv must be deny (or forbid)")
v, name, version = needs[-1]
print(
    f"msrv: rust-version {declared}; the newest any dependency needs is {show(v)} "
    f"({name} {version}); clippy::incompatible_msrv = {level}"
)
PY
