#!/usr/bin/env bash
# Berth performance benchmark. Usage: bash bench/run.sh [SECTIONS]   (see bench/README.md)
#   SECTIONS: comma list of rss,ps,exec,ports,sync,idle,wan,jump (default: all), e.g. `bash bench/run.sh ports`;
#   same as BENCH_SECTIONS=ports.
# Knobs (env): PS_RUNS=60 EXEC_RUNS=5 EXEC_BYTES=268435456 CONC=100 SKIP_BUILD=0 SSHL_GCM=0
#   PORTS_RUNS=5 PORTS_MIB=256 PORTS_OPEN_RUNS=100 PORTS_CLOSE_RUNS=30
#   SYNC_ROUNDS=3 SYNC_RTT_ROUNDS=3 SYNC_RTT_MS=10 SYNC_FILES=2000 SYNC_MB=140 SYNC_READOPT_RUNS=3
#   SYNC_EDITS=100 SYNC_MEM_FILES=100000 SYNC_MEM_TIMEOUT=180
#   IDLE_SECS=60 IDLE_OLD_AGENT=path (an older build measured beside this one)
#   WAN_RTT_MS=20 WAN_PS_RUNS=20 WAN_RUN_RUNS=5 WAN_COMPOSE_RUNS=3 WAN_READY_RUNS=5
set -euo pipefail
BENCH_SECTIONS=${1:-${BENCH_SECTIONS:-rss,ps,exec,ports,sync,idle,wan,jump}}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
log() { echo "[bench +${SECONDS}s] $*" >&2; }
die() { echo "[bench] ERROR: $*" >&2; exit 1; }

# ---------- tools ----------
want=()
command -v python3 >/dev/null || want+=(python3)
command -v head >/dev/null || want+=(coreutils)
if [[ ,$BENCH_SECTIONS, == *,sync,* ]]; then command -v rsync >/dev/null || want+=(rsync); fi
if [[ ,$BENCH_SECTIONS, == *,wan,* ]]; then command -v docker-compose >/dev/null || want+=(docker-compose)
  # Debian's docker-py needs paramiko importable for ssh:// even when it shells out to ssh
  /usr/bin/python3 -c 'import paramiko' 2>/dev/null || want+=(python3-paramiko); fi
if ((${#want[@]})); then
  log "installing: ${want[*]}"
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${want[@]}"
fi

# ---------- test bed (idempotent; never stopped here: it is shared) ----------
log "bringing up the test bed"
bash "$ROOT/tests/testbed/testbed.sh" up >/dev/null 2>"${TMPDIR:-/tmp}/berth-bench-testbed.log" ||
  { tail -n 30 "${TMPDIR:-/tmp}/berth-bench-testbed.log" >&2; die "testbed.sh up failed"; }
# shellcheck disable=SC1091
. "${BERTH_TESTBED_DIR:-/tmp/berth-testbed}/env"
command -v docker >/dev/null || die "docker CLI missing after testbed up"

# ---------- build ----------
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "building the release agent (not part of the measured time)"
  t0=$SECONDS
  (cd "$ROOT" && cargo build --release -p berth-core --features keychain --bin berth-agent) >&2
  log "build took $((SECONDS - t0)) s"
fi
[[ -x $ROOT/target/release/berth-agent ]] || die "no target/release/berth-agent"

WORK=$(mktemp -d /tmp/berth-bench.XXXXXX)
AGENT_PID="" SSHL_PID="" CONTAINER=berth-bench-$$
cleanup() {
  local rc=$?
  log "cleaning up"
  [[ -n $AGENT_PID ]] && kill -TERM "$AGENT_PID" 2>/dev/null || true
  [[ -n $SSHL_PID ]] && kill -TERM "$SSHL_PID" 2>/dev/null || true
  [[ -n ${SSHL_GCM_PID:-} ]] && kill -TERM "$SSHL_GCM_PID" 2>/dev/null || true
  docker -H "unix://$DOCKER_SOCK" rm -f "$CONTAINER" >/dev/null 2>&1 || true
  # section 4 (ports.py) records its ssh -L pids and container names here before starting them
  if [[ -s $WORK/ports-sshL.pids ]]; then
    while read -r p; do kill -TERM "$p" 2>/dev/null || true; done <"$WORK/ports-sshL.pids"
  fi
  if [[ -s $WORK/ports-containers ]]; then
    # shellcheck disable=SC2046
    docker -H "unix://$DOCKER_SOCK" rm -f $(sort -u "$WORK/ports-containers") >/dev/null 2>&1 || true
  fi
  # section 5 (sync.py) records the pids of its own agents and relay, and the replica paths
  # (remote == this machine) it has seen, before/when they come up
  if [[ -s $WORK/sync.pids ]]; then
    while read -r p; do kill -KILL "$p" 2>/dev/null || true; done <"$WORK/sync.pids"
  fi
  if [[ -s $WORK/sync-replicas ]]; then
    while read -r r; do
      [[ $r == */berth/* && -d $r ]] && rm -rf "$r" "$r.berth-manifest.json"
    done <"$WORK/sync-replicas"
  fi
  # section 7 (wan.py) records its relay and agents, and its compose networks, the same way
  if [[ -s $WORK/wan.pids ]]; then
    while read -r p; do kill -KILL "$p" 2>/dev/null || true; done <"$WORK/wan.pids"
  fi
  if [[ -s $WORK/wan-networks ]]; then
    # shellcheck disable=SC2046
    docker -H "unix://$DOCKER_SOCK" network rm $(sort -u "$WORK/wan-networks") >/dev/null 2>&1 || true
  fi
  [[ -n $AGENT_PID ]] && wait "$AGENT_PID" 2>/dev/null || true
  [[ -n $SSHL_PID ]] && wait "$SSHL_PID" 2>/dev/null || true
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# a private copy: concurrent `cargo build`s by others must not swap the binary mid-run
cp "$ROOT/target/release/berth-agent" "$WORK/berth-agent"
mkdir -p "$WORK/docker-config" "$WORK/bin"

# OpenSSH ignores $HOME (it uses the passwd entry), so a temp-HOME ~/.ssh/config would not
# be read: instead the docker CLI's ssh connection helper finds an `ssh` wrapper first on
# PATH that passes `-F` with this config. /root/.ssh is never touched.
cat >"$WORK/ssh_config" <<EOF
Host *
    IdentityFile $SSH_KEY
    IdentitiesOnly yes
    UserKnownHostsFile $KNOWN_HOSTS
    StrictHostKeyChecking yes
    BatchMode yes
EOF
printf '#!/bin/sh\nexec /usr/bin/ssh -F %s "$@"\n' "$WORK/ssh_config" >"$WORK/bin/ssh"
chmod +x "$WORK/bin/ssh"

# ---------- berth-agent ----------
log "starting berth-agent, ssh -L and the target container"
"$WORK/berth-agent" --remote "ssh://$SSH_USER@127.0.0.1:$SSH_PORT" --identity "$SSH_KEY" \
  --known-hosts "$KNOWN_HOSTS" --listen tcp://127.0.0.1:0 \
  >"$WORK/agent.out" 2>"$WORK/agent.err" </dev/null &
AGENT_PID=$!
for ((i = 0; i < 300; i++)); do
  grep -q '^berth-agent: ready on ' "$WORK/agent.out" 2>/dev/null && break
  kill -0 "$AGENT_PID" 2>/dev/null || { cat "$WORK/agent.err" >&2; die "berth-agent exited"; }
  sleep 0.1
done
READY=$(grep -m1 '^berth-agent: ready on ' "$WORK/agent.out") || { cat "$WORK/agent.err" >&2; die "berth-agent not ready in 30 s"; }
BERTH_HOST=$(grep -o 'tcp://127\.0\.0\.1:[0-9]*' <<<"$READY" | head -n1)

# ---------- OpenSSH unix-socket forward (same key / known_hosts) ----------
/usr/bin/ssh -F "$WORK/ssh_config" -N -o ExitOnForwardFailure=yes -p "$SSH_PORT" \
  -L "$WORK/fwd.sock:$DOCKER_SOCK" "$SSH_USER@127.0.0.1" </dev/null 2>"$WORK/sshL.err" &
SSHL_PID=$!
for ((i = 0; i < 100; i++)); do
  [[ -S $WORK/fwd.sock ]] && break
  kill -0 "$SSHL_PID" 2>/dev/null || { cat "$WORK/sshL.err" >&2; die "ssh -L exited"; }
  sleep 0.1
done
[[ -S $WORK/fwd.sock ]] || die "ssh -L socket did not appear"
SSHL_GCM_PID=""
if [[ ${SSHL_GCM:-0} == 1 ]]; then  # optional: an ssh -L on russh's cipher (aes128-gcm) too
  /usr/bin/ssh -F "$WORK/ssh_config" -N -o ExitOnForwardFailure=yes -c aes128-gcm@openssh.com \
    -p "$SSH_PORT" -L "$WORK/fwd-gcm.sock:$DOCKER_SOCK" "$SSH_USER@127.0.0.1" </dev/null 2>"$WORK/sshL-gcm.err" &
  SSHL_GCM_PID=$!
  for ((i = 0; i < 100; i++)); do [[ -S $WORK/fwd-gcm.sock ]] && break; sleep 0.1; done
  [[ -S $WORK/fwd-gcm.sock ]] || die "ssh -L (aes128-gcm) socket did not appear"
  export SSHL_GCM_HOST="unix://$WORK/fwd-gcm.sock" SSHL_GCM_PID
fi

# ---------- target container ----------
docker -H "unix://$DOCKER_SOCK" run -d --name "$CONTAINER" "$TEST_IMAGE" sleep 3600 >/dev/null

echo "Berth benchmark  $(date -u +%FT%TZ)  host: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "agent: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet HEAD -- src-tauri vendor 2>/dev/null || echo '+dirty'), binary $(date -u -r "$ROOT/target/release/berth-agent" +%FT%TZ)"
echo "$READY"
echo "docker client $(docker version --format '{{.Client.Version}}' 2>/dev/null || echo '?'), server $(docker -H "unix://$DOCKER_SOCK" version --format '{{.Server.Version}}' 2>/dev/null)"

export AGENT_PID SSHL_PID CONTAINER BERTH_HOST
export DIRECT_HOST="unix://$DOCKER_SOCK" SSHL_HOST="unix://$WORK/fwd.sock"
export SSHURL_HOST="ssh://$SSH_USER@127.0.0.1:$SSH_PORT" SSH_PATH="$WORK/bin:$PATH"
export BENCH_CONFIG="$WORK/docker-config"
export BENCH_SECTIONS BENCH_WORK="$WORK" BENCH_ID=$$ BENCH_SSH_CONFIG="$WORK/ssh_config"
export SSH_PORT SSH_USER TEST_IMAGE SSH_KEY KNOWN_HOSTS AGENT_BIN="$WORK/berth-agent"
export SSH_WIN_PORT DOCKER_TCP DOCKER_SOCK
export PS_RUNS=${PS_RUNS:-60} EXEC_RUNS=${EXEC_RUNS:-5} EXEC_BYTES=${EXEC_BYTES:-268435456} CONC=${CONC:-100}
log "measuring: $BENCH_SECTIONS"
python3 -u "$BENCH/bench.py"
if [[ -s $WORK/agent.err ]]; then
  echo; echo "berth-agent stderr (last 10 lines):"; tail -n 10 "$WORK/agent.err"
fi
