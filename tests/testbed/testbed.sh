#!/usr/bin/env bash
# Berth real-component test bed: dockerd + test image + three sshds + socat + keys.
# Usage: testbed.sh up|down|status|deps|dockerd-restart [flags]|sshd-stop [--keep-sessions]|sshd-start
# (deps: only install what is missing, e.g. the tray app's build libraries)
# State dir: ${BERTH_TESTBED_DIR:-/tmp/berth-testbed}. See README.md next to this file.
set -euo pipefail

DIR=${BERTH_TESTBED_DIR:-/tmp/berth-testbed}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DOCKER_SOCK=/var/run/docker.sock
TEST_IMAGE=berth-test/busybox:latest
LOAD_IMAGE=berth-test/loadsrv:latest
NODOCKER_USER=berthnodocker
TCP_PORT=2375
STATE=$DIR/state          # SSH_PORT / SSH_WIN_PORT / STARTED_DOCKERD, survives `down`

log()  { echo "[testbed] $*" >&2; }
die()  { echo "[testbed] ERROR: $*" >&2; exit 1; }
dk()   { docker -H "unix://$DOCKER_SOCK" "$@"; }

# ---------- helpers ----------
ensure_pkgs() {  # ensure_pkgs "cmd-or-path:package" ...
  local want=() spec c p
  for spec in "$@"; do
    c=${spec%%:*}; p=${spec#*:}
    if [[ $c == /* ]]; then [[ -e $c ]] || want+=("$p"); else command -v "$c" >/dev/null || want+=("$p"); fi
  done
  ((${#want[@]})) || return 0
  log "installing: ${want[*]}"
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y "${want[@]}"
}
install_deps() {
  ensure_pkgs dockerd:docker.io docker:docker.io /usr/sbin/sshd:openssh-server ssh:openssh-client \
              ssh-keygen:openssh-client socat:socat docker-compose:docker-compose useradd:passwd \
              pgrep:procps flock:util-linux timeout:coreutils \
              iptables:iptables ip:iproute2
  # The keychain: berth-core's keyring crate talks to the Secret Service over
  # libdbus (headers and pkg-config to build); the tests run in a private
  # D-Bus session with gnome-keyring (tests/testbed/with-keychain.sh).
  ensure_pkgs /usr/include/dbus-1.0/dbus/dbus.h:libdbus-1-dev pkg-config:pkg-config \
              dbus-run-session:dbus-daemon gnome-keyring-daemon:gnome-keyring
  # The tray app (src-tauri, Tauri 2): WebKitGTK 4.1, the tray's
  # libayatana-appindicator, librsvg for icons, libxdo, OpenSSL, D-Bus and a
  # C toolchain to build it.
  ensure_pkgs /usr/include/webkitgtk-4.1/webkit2/webkit2.h:libwebkit2gtk-4.1-dev \
              /usr/include/libayatana-appindicator3-0.1/libayatana-appindicator/app-indicator.h:libayatana-appindicator3-dev \
              /usr/include/librsvg-2.0/librsvg/rsvg.h:librsvg2-dev /usr/include/xdo.h:libxdo-dev \
              /usr/include/openssl/ssl.h:libssl-dev /usr/include/dbus-1.0/dbus/dbus.h:libdbus-1-dev \
              pkg-config:pkg-config cc:build-essential make:build-essential
  # The GUI tests (tests/gui.rs under tests/gui/session.sh): Xvfb, screenshots
  # (xwd, convert), WebKitWebDriver for tauri-driver, python3-dbus for the
  # tray's D-Bus side and python3-xlib to close the window as a window manager would.
  ensure_pkgs Xvfb:xvfb xwd:x11-apps /usr/bin/convert:imagemagick WebKitWebDriver:webkit2gtk-driver \
              /usr/lib/python3/dist-packages/dbus/__init__.py:python3-dbus \
              /usr/lib/python3/dist-packages/gi/__init__.py:python3-gi dbus-launch:dbus-x11 \
              /usr/lib/python3/dist-packages/Xlib/__init__.py:python3-xlib
  # The test image needs a *static* busybox (Debian's `busybox` package is dynamic).
  local l; l=$(ldd /bin/busybox 2>&1) || true
  if [[ ! -x /bin/busybox || $l != *'not a dynamic'* ]]; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y busybox-static
  fi
  # docker-py and testcontainers-python, the SDK clients tests/security/http.rs
  # drives through Berth (with the `python3` on PATH, as a user would)
  if ! python3 -c 'import docker, testcontainers' 2>/dev/null; then
    python3 -m pip --version >/dev/null 2>&1 || ensure_pkgs /usr/lib/python3/dist-packages/pip:python3-pip
    log "installing: docker testcontainers (pip)"
    python3 -m pip install -q docker testcontainers 2>/dev/null ||
      python3 -m pip install -q --break-system-packages docker testcontainers
  fi
  # Testcontainers for Node, pinned by tests/sdk/node/package-lock.json, which
  # tests/fidelity.rs drives through Berth (no install scripts: its optional
  # native ssh helpers are not needed for a tcp:// DOCKER_HOST)
  ensure_pkgs node:nodejs npm:npm
  local sdk=$HERE/../sdk/node nm=$DIR/node
  if ! cmp -s "$sdk/package-lock.json" "$nm/package-lock.json" || [[ ! -d $nm/node_modules/testcontainers ]]; then
    log "installing: testcontainers for Node (npm ci)"
    mkdir -p "$nm"; cp "$sdk/package.json" "$sdk/package-lock.json" "$nm/"
    (cd "$nm" && npm ci -s --no-audit --no-fund --ignore-scripts) >&2
  fi
}
pid_alive() {  # pid_alive PIDFILE COMM-REGEX -> prints pid when alive and matching
  local pf=$1 pid
  [[ -s $pf ]] || return 1
  pid=$(tr -dc 0-9 <"$pf"); [[ -n $pid ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  grep -Eq "^($2)$" "/proc/$pid/comm" 2>/dev/null || return 1
  echo "$pid"
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# (outputs are captured before grepping: with pipefail, `x | grep -q` can fail on SIGPIPE)
ssh_banner() { local b; b=$(timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; head -c4 <&3" 2>/dev/null) || true; [[ $b == SSH- ]]; }
docker_ping_tcp() {
  local r; r=$(timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; printf 'GET /_ping HTTP/1.0\r\n\r\n' >&3; cat <&3" 2>/dev/null) || true
  grep -q '^OK' <<<"$r"
}
free_port() {
  local p
  for _ in $(seq 200); do  # ports below the ephemeral range (32768+)
    p=$((20000 + RANDOM % 12000)); port_open "$p" || { echo "$p"; return; }
  done
  die "no free port found"
}
stop_pid() {  # stop_pid PID NAME TIMEOUT
  local pid=$1 i
  log "stopping $2 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < $3 * 10; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  log "$2 did not exit after $3 s, sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true
}
load_state() { SSH_PORT=""; SSH_WIN_PORT=""; SSH_BARE_PORT=""; STARTED_DOCKERD=0; [[ -f $STATE ]] && . "$STATE"; return 0; }
save_state() {
  printf 'SSH_PORT=%s\nSSH_WIN_PORT=%s\nSSH_BARE_PORT=%s\nSTARTED_DOCKERD=%s\n' \
    "$SSH_PORT" "$SSH_WIN_PORT" "${SSH_BARE_PORT:-}" "$STARTED_DOCKERD" >"$STATE.tmp"
  mv -f "$STATE.tmp" "$STATE"
}

# ---------- 1. dockerd ----------
dockerd_up() {
  if pid_alive "$DIR/dockerd.pid" dockerd >/dev/null && dk version >/dev/null 2>&1; then
    STARTED_DOCKERD=1; log "dockerd: reusing the one we started"; return
  fi
  if dk version >/dev/null 2>&1; then STARTED_DOCKERD=0; log "dockerd: reusing existing daemon"; return; fi
  if pid_alive "$DIR/dockerd.pid" dockerd >/dev/null; then
    log "dockerd: ours is running but not answering yet, waiting"
  else
    dockerd_start
  fi
  dockerd_wait
}
dockerd_start() {  # dockerd_start [extra dockerd flags]
  log "dockerd: starting (data-root $DIR/docker-data) $*"
  mkdir -p "$DIR/docker-data"
  setsid dockerd --data-root "$DIR/docker-data" --pidfile "$DIR/dockerd.pid" -H "unix://$DOCKER_SOCK" "$@" \
    </dev/null >>"$DIR/dockerd.log" 2>&1 9>&- &
}
dockerd_wait() {
  local i
  for ((i = 0; i < 120; i++)); do
    dk version >/dev/null 2>&1 && { STARTED_DOCKERD=1; save_state; return; }
    sleep 0.5
  done
  tail -n 40 "$DIR/dockerd.log" >&2; die "dockerd did not answer within 60 s"
}

# ---------- 2. test image ----------
image_up() {
  if ! dk image inspect "$TEST_IMAGE" >/dev/null 2>&1; then
    log "image: building $TEST_IMAGE from /bin/busybox"
    local r=$DIR/rootfs p
    rm -rf "$r"; mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,root,www,tmp}
    cp /bin/busybox "$r/bin/busybox"
    # --list-full includes bin/busybox itself: never symlink that (it would replace the binary).
    /bin/busybox --list-full | while read -r p; do
      [[ ${p##*/} == busybox || $p != */* ]] && continue
      ln -sf /bin/busybox "$r/bin/${p##*/}"                 # every applet in /bin ...
      [[ $p == bin/* ]] || ln -sf /bin/busybox "$r/$p"      # ... and at its canonical path
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
    echo berth-test-page >"$r/www/index.html"
    chmod 1777 "$r/tmp"; chmod 700 "$r/root"
    tar -C "$r" -cf - . | dk import --change 'CMD ["sh"]' \
      --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' - "$TEST_IMAGE" >/dev/null
    rm -rf "$r"
  fi
  [[ $(dk run --rm "$TEST_IMAGE" echo ok) == ok ]] || die "test image does not run"
  log "image: $TEST_IMAGE ok"
  # the load test's server (see loadsrv.c): one static binary, nothing else
  if ! dk image inspect "$LOAD_IMAGE" >/dev/null 2>&1; then
    local l=$DIR/loadfs
    rm -rf "$l"; mkdir -p "$l"
    gcc -static -O2 -pthread -o "$l/loadsrv" "$HERE/loadsrv.c" || die "cannot build loadsrv"
    tar -C "$l" -cf - . | dk import --change 'CMD ["/loadsrv"]' - "$LOAD_IMAGE" >/dev/null
    rm -rf "$l"
  fi
}

# ---------- 3. keys ----------
keygen() { [[ -f $DIR/$1 ]] || ssh-keygen -q -t ed25519 -N "$2" -C "$3" -f "$DIR/$1"; }
keys_up() {
  keygen id_ed25519 "" berth-test-client
  keygen wrong_ed25519 "" berth-test-wrong
  keygen id_ed25519_pass berth-pass berth-test-client-pass
  keygen ssh_host_ed25519_key "" berth-test-host
  keygen other_host_ed25519_key "" berth-test-other-host
  cat "$DIR/id_ed25519.pub" "$DIR/id_ed25519_pass.pub" >"$DIR/authorized_keys"
  chmod 644 "$DIR/authorized_keys"   # read by sshd as the target user (berthnodocker too)
}

# ---------- 4/5. sshds ----------
nodocker_user_up() {
  id "$NODOCKER_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$NODOCKER_USER"
  gpasswd -d "$NODOCKER_USER" docker >/dev/null 2>&1 || true
  # useradd leaves password "!" which sshd (UsePAM no) treats as a locked account; "*" is not locked.
  [[ $(getent shadow "$NODOCKER_USER" | cut -d: -f2) == '*' ]] || usermod -p '*' "$NODOCKER_USER"
  case $(getent shadow root | cut -d: -f2) in !*) log "WARNING: root account is locked ('!'); sshd will refuse root" ;; esac
}
sshd_config() {  # sshd_config NAME PORT STREAMLOCAL(yes|no)
  cat <<EOF
ListenAddress 127.0.0.1
Port $2
HostKey $DIR/ssh_host_ed25519_key
PidFile $DIR/$1.pid
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AuthorizedKeysFile $DIR/authorized_keys
StrictModes no
Subsystem sftp internal-sftp
AllowTcpForwarding yes
AllowStreamLocalForwarding $3
ClientAliveInterval 0
UsePAM no
LogLevel VERBOSE
EOF
  # the "bare" remote has no Docker at all: nothing to forward tcp to either
  [[ $1 != sshd_bare ]] || echo "PermitOpen none"
}
sshd_start() {  # sshd_start NAME PORT
  local i
  mkdir -p /run/sshd
  /usr/sbin/sshd -t -f "$DIR/$1_config" || die "invalid $DIR/$1_config"
  port_open "$2" && die "$1: port $2 is already in use by someone else"
  if [[ $1 == sshd_bare ]]; then bare_sshd_start "$1"; else /usr/sbin/sshd -f "$DIR/$1_config" -E "$DIR/$1.log" 9>&-; fi
  for ((i = 0; i < 50; i++)); do ssh_banner "$2" && { log "$1: listening on 127.0.0.1:$2"; return; }; sleep 0.2; done
  tail -n 20 "$DIR/$1.log" >&2; die "$1 is not listening on port $2"
}
sshd_up() {  # sshd_up NAME PORTVAR STREAMLOCAL
  local name=$1 port=${!2} pid
  pid=$(pid_alive "$DIR/$name.pid" 'sshd') || pid=""
  if [[ -z $pid ]]; then  # lost pid file: adopt the newest listener on our config, if any
    pid=$(pgrep -n -f "sshd -f $DIR/${name}_config -E .*\[listener\]" || true)
    [[ -z $pid ]] || { log "$name: adopting pid $pid"; echo "$pid" >"$DIR/$name.pid"; }
  fi
  stop_strays "$name" "$pid"
  if [[ -z $pid || -z $port ]] || ! ssh_banner "$port"; then
    [[ -n $pid ]] && stop_pid "$pid" "$name" 5
    [[ -n $port ]] && ! port_open "$port" || port=$(free_port)
    pid=""
  fi
  printf -v "$2" %s "$port"
  sshd_config "$name" "$port" "$3" >"$DIR/$name.config.new"
  if cmp -s "$DIR/$name.config.new" "$DIR/${name}_config"; then rm -f "$DIR/$name.config.new"
  else mv -f "$DIR/$name.config.new" "$DIR/${name}_config"; [[ -n $pid ]] && { stop_pid "$pid" "$name" 5; pid=""; }; fi
  if [[ -n $pid ]]; then log "$name: reusing pid $pid on port $port"; else sshd_start "$name" "$port"; fi
}
# A remote without Docker: sshd in its own mount namespace where /run (so
# /var/run/docker.sock) is an empty tmpfs and overlay whiteouts hide the docker CLIs.
bare_sshd_start() {
  local ov=$DIR/bare-overlay
  rm -rf "$ov"; mkdir -p "$ov"
  unshare --mount --propagation private bash -c '
    set -e; ov=$1; shift
    mount -t tmpfs tmpfs /run; mkdir -p /run/sshd
    for d in /usr/bin /usr/local/bin; do
      [[ -e $d/docker ]] || continue
      n=${d//\//_}; mkdir -p "$ov/up$n" "$ov/work$n"; mknod "$ov/up$n/docker" c 0 0
      mount -t overlay overlay -o "lowerdir=$d,upperdir=$ov/up$n,workdir=$ov/work$n" "$d"
    done
    exec /usr/sbin/sshd "$@"' bare "$ov" -f "$DIR/$1_config" -E "$DIR/$1.log" 9>&-
}
stop_strays() {  # stop_strays NAME KEEP-PID: listeners on our config that the pid file does not know
  local s
  for s in $(pgrep -f "sshd -f $DIR/${1}_config -E .*\[listener\]" || true); do
    [[ $s == "${2:-}" ]] && continue
    stop_pid "$s" "stray $1" 5
    # an exiting sshd deletes the (shared) PidFile: restore the one we keep
    [[ -z ${2:-} ]] || echo "$2" >"$DIR/$1.pid"
  done
}
descendants() { local c; for c in $(pgrep -P "$1" || true); do echo "$c"; descendants "$c"; done; }
sshd_stop() {  # sshd_stop NAME [keep-sessions]
  local pid kids=() c
  stop_strays "$1" "$(pid_alive "$DIR/$1.pid" sshd || true)"
  pid=$(pid_alive "$DIR/$1.pid" sshd) || { rm -f "$DIR/$1.pid"; log "$1: not running"; return 0; }
  [[ ${2:-} == keep ]] || mapfile -t kids < <(descendants "$pid")
  stop_pid "$pid" "$1" 5
  for c in "${kids[@]}"; do grep -Eq '^sshd' "/proc/$c/comm" 2>/dev/null && kill -TERM "$c" 2>/dev/null || true; done
  rm -f "$DIR/$1.pid"
}

# ---------- 5b. socat tcp://127.0.0.1:2375 ----------
socat_up() {
  if pid_alive "$DIR/socat.pid" socat >/dev/null && docker_ping_tcp $TCP_PORT; then log "socat: reusing"; return; fi
  if port_open $TCP_PORT; then
    docker_ping_tcp $TCP_PORT || die "127.0.0.1:$TCP_PORT is in use and is not a Docker API"
    log "socat: 127.0.0.1:$TCP_PORT already serves the Docker API (not ours), reusing"; return
  fi
  setsid socat -t 30 TCP-LISTEN:$TCP_PORT,bind=127.0.0.1,reuseaddr,fork "UNIX-CONNECT:$DOCKER_SOCK" \
    </dev/null >>"$DIR/socat.log" 2>&1 9>&- &
  echo $! >"$DIR/socat.pid"
  local i; for ((i = 0; i < 50; i++)); do docker_ping_tcp $TCP_PORT && { log "socat: listening on $TCP_PORT"; return; }; sleep 0.1; done
  die "socat did not come up on $TCP_PORT"
}

# ---------- 6/7/8. known_hosts, ssh_config, env ----------
client_files_up() {
  local hk ok
  hk=$(cut -d' ' -f1,2 "$DIR/ssh_host_ed25519_key.pub"); ok=$(cut -d' ' -f1,2 "$DIR/other_host_ed25519_key.pub")
  printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$hk" "$SSH_WIN_PORT" "$hk" "$SSH_BARE_PORT" "$hk" >"$DIR/known_hosts"
  cp "$DIR/known_hosts" "$DIR/known_hosts_hashed"
  ssh-keygen -q -H -f "$DIR/known_hosts_hashed" >/dev/null 2>&1; rm -f "$DIR/known_hosts_hashed.old"
  printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$ok" >"$DIR/known_hosts_changed"
  : >"$DIR/known_hosts_empty"
  cat >"$DIR/ssh_config" <<EOF
Host berth-test
    HostName 127.0.0.1
    Port $SSH_PORT
    User root
    IdentityFile $DIR/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $DIR/known_hosts
    StrictHostKeyChecking yes
EOF
}
write_env() {
  cat >"$DIR/env.tmp" <<EOF
BERTH_TESTBED_DIR=$DIR
DOCKER_SOCK=$DOCKER_SOCK
DOCKER_TCP=127.0.0.1:$TCP_PORT
TEST_IMAGE=$TEST_IMAGE
LOAD_IMAGE=$LOAD_IMAGE
SSH_HOST=127.0.0.1
SSH_PORT=$SSH_PORT
SSH_WIN_PORT=$SSH_WIN_PORT
SSH_BARE_PORT=$SSH_BARE_PORT
SSH_USER=root
SSH_KEY=$DIR/id_ed25519
SSH_KEY_PASS=$DIR/id_ed25519_pass
SSH_KEY_PASSPHRASE=berth-pass
SSH_WRONG_KEY=$DIR/wrong_ed25519
KNOWN_HOSTS=$DIR/known_hosts
KNOWN_HOSTS_HASHED=$DIR/known_hosts_hashed
KNOWN_HOSTS_CHANGED=$DIR/known_hosts_changed
KNOWN_HOSTS_EMPTY=$DIR/known_hosts_empty
SSH_CONFIG=$DIR/ssh_config
NODE_MODULES=$DIR/node/node_modules
SSH_CONFIG_HOST=berth-test
NODOCKER_USER=$NODOCKER_USER
HOST_KEY_FINGERPRINT=$(ssh-keygen -lf "$DIR/ssh_host_ed25519_key.pub" | cut -d' ' -f2)
STARTED_DOCKERD=$STARTED_DOCKERD
EOF
  mv -f "$DIR/env.tmp" "$DIR/env"
}

# ---------- sanity checks ----------
sshc() {  # sshc PORT USER ARGS...
  local port=$1 user=$2; shift 2
  timeout 20 ssh -F /dev/null -i "$DIR/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o UserKnownHostsFile="$DIR/known_hosts" -o StrictHostKeyChecking=yes -p "$port" "$user@127.0.0.1" "$@"
}
fwd_ping() {  # fwd_ping PORT TARGET: GET /_ping through `ssh -L sock:TARGET` (direct-streamlocal / direct-tcpip)
  local sock=$DIR/fwd-check.sock pid r="" i
  rm -f "$sock"
  ssh -F /dev/null -i "$DIR/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="$DIR/known_hosts" \
    -o StrictHostKeyChecking=yes -p "$1" -N -o ExitOnForwardFailure=yes -L "$sock:$2" root@127.0.0.1 2>/dev/null 9>&- & pid=$!
  for ((i = 0; i < 50; i++)); do [[ -S $sock ]] && break; sleep 0.1; done
  [[ -S $sock ]] && r=$(printf 'GET /_ping HTTP/1.0\r\n\r\n' | timeout 5 socat -t 5 - "UNIX-CONNECT:$sock" 2>/dev/null) || true
  kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$sock"
  grep -q '^OK' <<<"$r"
}
sanity() {
  local v out
  v=$(sshc "$SSH_PORT" root docker version --format '{{.Server.Version}}') || die "ssh root@sshd#1 docker version failed"
  log "check: ssh root -> docker server $v"
  out=$(sshc "$SSH_PORT" "$NODOCKER_USER" docker version 2>&1) && die "$NODOCKER_USER can reach docker (expected permission denied)"
  grep -qi 'permission denied' <<<"$out" || die "$NODOCKER_USER: unexpected error: $out"
  log "check: ssh $NODOCKER_USER -> permission denied on the socket (expected)"
  fwd_ping "$SSH_PORT" "$DOCKER_SOCK" || die "unix-socket forwarding fails on sshd #1"
  log "check: sshd #1 forwards $DOCKER_SOCK"
  fwd_ping "$SSH_WIN_PORT" "$DOCKER_SOCK" && die "sshd #2 allows unix-socket forwarding"
  fwd_ping "$SSH_WIN_PORT" "127.0.0.1:$TCP_PORT" || die "sshd #2 cannot forward to tcp $TCP_PORT"
  log "check: sshd #2 refuses unix-socket forwarding, forwards to 127.0.0.1:$TCP_PORT"
  out=$(sshc "$SSH_BARE_PORT" root 'command -v docker; ls /var/run/docker.sock' 2>&1) && die "the bare remote has docker: $out"
  log "check: sshd #3 (bare) has neither docker nor its socket"
}

# ---------- subcommands ----------
cmd_up() {
  [[ $(id -u) == 0 ]] || die "must run as root"
  mkdir -p "$DIR"; chmod 755 "$DIR"
  install_deps; load_state
  dockerd_up; save_state
  image_up; keys_up; nodocker_user_up
  sshd_up sshd SSH_PORT yes; save_state
  sshd_up sshd_win SSH_WIN_PORT no; save_state
  sshd_up sshd_bare SSH_BARE_PORT yes; save_state
  socat_up; client_files_up; sanity; write_env
  echo "$DIR/env"
}
cmd_down() {
  local pid
  load_state
  sshd_stop sshd; sshd_stop sshd_win; sshd_stop sshd_bare
  # the jump hosts' namespaces (tests/jump.rs), if a test made them
  [[ ! -d $DIR/jump ]] || bash "$HERE/jumpnet.sh" down || true
  if pid=$(pid_alive "$DIR/socat.pid" socat); then stop_pid "$pid" socat 5; fi
  rm -f "$DIR/socat.pid"
  if [[ $STARTED_DOCKERD == 1 ]] && pid=$(pid_alive "$DIR/dockerd.pid" dockerd); then stop_pid "$pid" dockerd 20; fi
  [[ $STARTED_DOCKERD == 1 ]] && rm -f "$DIR/dockerd.pid"
  log "down"
}
cmd_status() {
  local pid
  load_state
  if dk version >/dev/null 2>&1; then
    echo "dockerd:   up ($(dk version --format '{{.Server.Version}}'), started by testbed: $STARTED_DOCKERD)"
  else echo "dockerd:   DOWN"; fi
  if dk image inspect "$TEST_IMAGE" >/dev/null 2>&1; then echo "image:     $TEST_IMAGE present"
  else echo "image:     $TEST_IMAGE not available"; fi
  local name port
  for name in sshd sshd_win sshd_bare; do
    case $name in sshd) port=$SSH_PORT ;; sshd_win) port=$SSH_WIN_PORT ;; *) port=$SSH_BARE_PORT ;; esac
    if pid=$(pid_alive "$DIR/$name.pid" sshd) && ssh_banner "$port"; then
      printf '%-10s up (pid %s, 127.0.0.1:%s)\n' "$name:" "$pid" "$port"
    else printf '%-10s DOWN\n' "$name:"; fi
  done
  if docker_ping_tcp $TCP_PORT; then
    pid=$(pid_alive "$DIR/socat.pid" socat) && echo "tcp:       up (socat pid $pid, 127.0.0.1:$TCP_PORT)" \
      || echo "tcp:       up (127.0.0.1:$TCP_PORT, not our socat)"
  else echo "tcp:       DOWN"; fi
  [[ -f $DIR/env ]] && echo "env:       $DIR/env" || echo "env:       (none, run up)"
}
# dockerd-restart [flags]: restarts the dockerd the test bed started, with
# these extra flags (none: as `up` starts it); its containers stop with it
cmd_dockerd_restart() {
  load_state
  local pid
  [[ $STARTED_DOCKERD == 1 ]] && pid=$(pid_alive "$DIR/dockerd.pid" dockerd) ||
    die "dockerd-restart: this dockerd was not started by the test bed"
  stop_pid "$pid" dockerd 30
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  dockerd_start "$@"
  dockerd_wait
}
cmd_sshd_start() {
  load_state
  [[ -n $SSH_PORT && -f $DIR/sshd_config ]] || die "run '$0 up' first"
  pid_alive "$DIR/sshd.pid" sshd >/dev/null && ssh_banner "$SSH_PORT" && { log "sshd: already running"; return; }
  sshd_start sshd "$SSH_PORT"
}

# One invocation at a time per state dir (tests may call sshd-stop/start while someone runs up).
if [[ ${1:-} =~ ^(up|down|deps|dockerd-restart|sshd-stop|sshd-start)$ ]]; then
  mkdir -p "$DIR"; exec 9>"$DIR/.lock"
  flock -w 300 9 || die "could not lock $DIR/.lock"
fi
case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  deps) install_deps ;;
  dockerd-restart) shift; cmd_dockerd_restart "$@" ;;
  sshd-stop) sshd_stop sshd "$([[ ${2:-} == --keep-sessions ]] && echo keep)" ;;
  sshd-start) cmd_sshd_start ;;
  *) echo "usage: $0 up|down|status|deps|dockerd-restart [flags]|sshd-stop [--keep-sessions]|sshd-start" >&2; exit 2 ;;
esac
