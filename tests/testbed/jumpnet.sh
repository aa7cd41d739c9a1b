#!/usr/bin/env bash
# Hosts behind bastions, for the jump-host tests: two network namespaces in
# a line, and a target whose sshd is reachable only from the second, each
# sshd with its own host key (the test bed's authorized_keys):
#
#   this machine 10.231.1.1 ── 10.231.1.2 berth-j1 (bastion) 10.231.2.1
#                           ── 10.231.2.2 berth-j2 (inner bastion) 10.231.3.1
#                           ── 10.231.3.2 jt: back on this machine, where dockerd is
#
# The target's sshd runs in this machine's own namespace, so its 127.0.0.1
# is the daemon's (published ports, as on a real remote), but an iptables
# rule lets only connections that arrive from berth-j2 reach it: anything
# else, this machine itself included, gets "no route to host". No namespace
# forwards packets and this machine's route to the rest of 10.231.0.0/16 is
# `unreachable` (never its default route). So berth-j2 and the target are
# reached through the bastions or not at all. The sshds log at DEBUG1: the
# bastions' logs show each `direct-tcpip` they carried.
# Usage: jumpnet.sh up | down | stop HOP | start HOP | status   (HOP: j1, j2, jt)
# Needs `testbed.sh up` first (its keys and state dir). State: $DIR/jump/.
set -euo pipefail

DIR=${BERTH_TESTBED_DIR:-/tmp/berth-testbed}
J=$DIR/jump
HOPS=(j1 j2 jt)
declare -A ADDR=([j1]=10.231.1.2 [j2]=10.231.2.2 [jt]=10.231.3.2)

log() { echo "[jumpnet] $*" >&2; }
die() { echo "[jumpnet] ERROR: $*" >&2; exit 1; }
ns() { echo "berth-$1"; }
inns() { local n=$1; shift; if [[ $n == jt ]]; then "$@"; else ip netns exec "$(ns "$n")" "$@"; fi; }
# where each sshd is reachable from
declare -A FROM=([j1]=- [j2]=j1 [jt]=j2)
listening() {  # listening HOP
  local from=${FROM[$1]} probe="exec 3<>/dev/tcp/${ADDR[$1]}/22"
  if [[ $from == - ]]; then bash -c "$probe" 2>/dev/null; else ip netns exec "$(ns "$from")" bash -c "$probe" 2>/dev/null; fi
}
GUARD=(INPUT -d 10.231.3.2 -p tcp --dport 22 ! -i bjti -j REJECT --reject-with icmp-host-unreachable)

link() {  # link OUTER_NS|- IF_OUT ADDR_OUT INNER_NS IF_IN ADDR_IN
  local outer=$1 a=$2 aa=$3 inner=$4 b=$5 ba=$6
  ip link add "$a" type veth peer name "$b"
  ip link set "$b" netns "$(ns "$inner")"
  if [[ $outer == - ]]; then
    ip addr add "$aa/24" dev "$a"; ip link set "$a" up
  else
    ip link set "$a" netns "$(ns "$outer")"
    inns "$outer" ip addr add "$aa/24" dev "$a"; inns "$outer" ip link set "$a" up
  fi
  inns "$inner" ip addr add "$ba/24" dev "$b"; inns "$inner" ip link set "$b" up
}

net_up() {
  local h
  # nothing for 10.231.0.0/16 ever leaves by this machine's default route:
  # beyond the bastion's link the answer here is "no route to host"
  ip route replace unreachable 10.231.0.0/16
  iptables -C "${GUARD[@]}" 2>/dev/null || iptables -I "${GUARD[@]}"
  ip netns list | grep -q "^$(ns j2)\b" && return 0
  for h in j1 j2; do
    ip netns add "$(ns "$h")"
    inns "$h" ip link set lo up
    inns "$h" sysctl -qw net.ipv4.ip_forward=0
  done
  link - bj1o 10.231.1.1 j1 bj1i 10.231.1.2
  link j1 bj2o 10.231.2.1 j2 bj2i 10.231.2.2
  ip link add bjti type veth peer name bjto
  ip link set bjto netns "$(ns j2)"
  inns j2 ip addr add 10.231.3.1/24 dev bjto; inns j2 ip link set bjto up
  ip addr add 10.231.3.2/24 dev bjti; ip link set bjti up
}

sshd_config() {  # sshd_config HOP
  cat <<EOF
ListenAddress ${ADDR[$1]}
Port 22
HostKey $J/$1_host_key
PidFile $J/$1.pid
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AuthorizedKeysFile $DIR/authorized_keys
StrictModes no
Subsystem sftp internal-sftp
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
UsePAM no
LogLevel DEBUG1
EOF
}

start() {  # start HOP
  local h=$1 i
  mkdir -p /run/sshd
  inns "$h" /usr/sbin/sshd -f "$J/$h.sshd_config" -E "$J/$h.log" 9>&-
  for ((i = 0; i < 50; i++)); do listening "$h" && return 0; sleep 0.1; done
  tail -n 20 "$J/$h.log" >&2; die "sshd $h is not listening"
}

stop() {  # stop HOP: the listener and every session it serves
  local h=$1 pid
  pid=$(cat "$J/$h.pid" 2>/dev/null) || return 0
  kill -TERM "$pid" 2>/dev/null || true
  pkill -TERM -f "sshd -f $J/$h.sshd_config" 2>/dev/null || true
  # its sessions: the netns holds them all (a target's sessions are left running)
  [[ $h == jt ]] || ip netns pids "$(ns "$h")" 2>/dev/null | xargs -r kill -TERM 2>/dev/null || true
  rm -f "$J/$h.pid"
}

cmd_up() {
  [[ -f $DIR/authorized_keys ]] || die "run testbed.sh up first"
  command -v ip >/dev/null || die "no ip(8) (iproute2)"
  mkdir -p "$J"
  net_up
  local h
  : >"$J/known_hosts.new"
  for h in "${HOPS[@]}"; do
    [[ -f $J/${h}_host_key ]] || ssh-keygen -q -t ed25519 -N '' -C "berth-$h" -f "$J/${h}_host_key"
    sshd_config "$h" >"$J/$h.sshd_config"
    /usr/sbin/sshd -t -f "$J/$h.sshd_config" || die "invalid $J/$h.sshd_config"
    echo "${ADDR[$h]} $(cut -d' ' -f1,2 "$J/${h}_host_key.pub")" >>"$J/known_hosts.new"
    listening "$h" || start "$h"
  done
  mv -f "$J/known_hosts.new" "$J/known_hosts"
  # for OpenSSH's own client (`ssh -F $J/ssh_config -J …`): -J's inner ssh reads only the config
  printf 'Host *\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n  BatchMode yes\n  User root\n' \
    "$DIR/id_ed25519" "$J/known_hosts" >"$J/ssh_config"
  log "up: ${ADDR[j1]} -> ${ADDR[j2]} -> ${ADDR[jt]} (known_hosts $J/known_hosts)"
}

cmd_down() {
  local h
  for h in "${HOPS[@]}"; do stop "$h"; done
  for h in j1 j2; do ip netns del "$(ns "$h")" 2>/dev/null || true; done
  ip link del bj1o 2>/dev/null || true
  ip link del bjti 2>/dev/null || true
  iptables -D "${GUARD[@]}" 2>/dev/null || true
  ip route del unreachable 10.231.0.0/16 2>/dev/null || true
}

# one invocation at a time (tests stop and start hops while others run up)
mkdir -p "$J"; exec 9>"$J/.lock"; flock -w 120 9 || die "could not lock $J/.lock"
case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  stop) stop "${2:?HOP}" ;;
  start) start "${2:?HOP}" ;;
  status) for h in "${HOPS[@]}"; do if listening "$h"; then echo "$h up"; else echo "$h DOWN"; fi; done ;;
  *) echo "usage: $0 up|down|stop HOP|start HOP|status" >&2; exit 2 ;;
esac
