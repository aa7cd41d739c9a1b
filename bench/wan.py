#!/usr/bin/env python3
"""Berth benchmark, section "wan": the docker CLI over a real-ish network. A latency relay
(`python3 sync.py relay`, its own process) in front of the test bed's sshd adds WAN_RTT_MS/2 each
way; a release berth-agent whose remote is the relay port (its own BERTH_DATA_DIR, so it never
adopts another test's containers) is measured side by side, interleaved and shuffled, against
`DOCKER_HOST=ssh://` through the same relay (an `ssh` wrapper with a private ssh_config whose
known_hosts names the relay port) and the daemon's unix socket directly:

  `docker ps`                                berth / ssh:// / direct   (WAN_PS_RUNS)
  `docker run --rm IMAGE true`               berth / ssh://            (WAN_RUN_RUNS)
  `docker-compose up -d` of five services    berth / ssh://            (WAN_COMPOSE_RUNS; down after)
  agent start → its ready line               berth / `ssh HOST true`   (WAN_READY_RUNS)

Environment: set by run.sh (AGENT_BIN, SSH_*, KNOWN_HOSTS, TEST_IMAGE, DIRECT_HOST, BENCH_CONFIG,
BENCH_WORK, BENCH_ID). Every pid goes to BENCH_WORK/wan.pids, every container name to
ports-containers and every compose network to wan-networks before it exists, for run.sh's trap.
"""
import os
import random
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

E = os.environ
HERE = os.path.dirname(os.path.abspath(__file__))
WORK = E["BENCH_WORK"]
IMAGE = E["TEST_IMAGE"]
AGENT_BIN = E["AGENT_BIN"]
SSH_PORT = int(E["SSH_PORT"])
SSH_USER = E["SSH_USER"]
RTT_MS = float(E.get("WAN_RTT_MS", "20"))
PS_RUNS = int(E.get("WAN_PS_RUNS", "20"))
RUN_RUNS = int(E.get("WAN_RUN_RUNS", "5"))
COMPOSE_RUNS = int(E.get("WAN_COMPOSE_RUNS", "3"))
READY_RUNS = int(E.get("WAN_READY_RUNS", "5"))
SERVICES = 5


def _record(fname, line):
    with open(os.path.join(WORK, fname), "a") as f:
        f.write(f"{line}\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def q(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


class Relay:
    """The latency relay in front of sshd, with a known_hosts and ssh_config for its port."""

    def __init__(self):
        self.port = free_port()
        self.p = subprocess.Popen(
            [sys.executable, "-u", os.path.join(HERE, "sync.py"), "relay", str(self.port), "127.0.0.1",
             str(SSH_PORT), str(RTT_MS / 2)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _record("wan.pids", self.p.pid)
        line = self.p.stdout.readline().decode()
        if not line.startswith("relay ready"):
            raise RuntimeError(f"relay failed: {line!r} {self.p.stderr.read().decode(errors='replace')}")
        self.known_hosts = os.path.join(WORK, "wan-known_hosts")
        with open(E["KNOWN_HOSTS"]) as f:
            lines = [ln.replace(f"[127.0.0.1]:{SSH_PORT} ", f"[127.0.0.1]:{self.port} ")
                     for ln in f if ln.startswith(f"[127.0.0.1]:{SSH_PORT} ")]
        with open(self.known_hosts, "w") as f:
            f.writelines(lines)
        self.ssh_config = os.path.join(WORK, "wan-ssh_config")
        with open(self.ssh_config, "w") as f:
            f.write(f"Host *\n    IdentityFile {E['SSH_KEY']}\n    IdentitiesOnly yes\n"
                    f"    UserKnownHostsFile {self.known_hosts}\n    StrictHostKeyChecking yes\n"
                    "    BatchMode yes\n")
        bindir = os.path.join(WORK, "wan-bin")
        os.makedirs(bindir, exist_ok=True)
        with open(os.path.join(bindir, "ssh"), "w") as f:
            f.write(f'#!/bin/sh\nexec /usr/bin/ssh -F {self.ssh_config} "$@"\n')
        os.chmod(os.path.join(bindir, "ssh"), 0o755)
        self.path = f"{bindir}:{E['PATH']}"

    def banner_ms(self, port, n=5):
        """Median time to sshd's banner: connect plus one one-way trip."""
        xs = []
        for _ in range(n):
            t0 = time.perf_counter()
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.recv(256)
            xs.append(time.perf_counter() - t0)
        return statistics.median(xs) * 1000

    def close(self):
        self.p.terminate()
        self.p.wait()


class Agent:
    """A release berth-agent through the relay (or to `remote` with `extra` args), with a
    private data dir."""

    def __init__(self, relay, remote=None, extra=()):
        self.data = tempfile.mkdtemp(prefix="wan-data-", dir=WORK)
        self.err = os.path.join(WORK, f"wan-agent-{time.monotonic_ns()}.err")
        env = dict(E, BERTH_DATA_DIR=self.data)
        if remote is None:
            remote, extra = f"ssh://{SSH_USER}@127.0.0.1:{relay.port}", ["--known-hosts", relay.known_hosts]
        t0 = time.perf_counter()
        self.p = subprocess.Popen(
            [AGENT_BIN, "--remote", remote, "--identity", E["SSH_KEY"], *extra,
             "--listen", "tcp://127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=open(self.err, "w"), env=env)
        _record("wan.pids", self.p.pid)
        buf, deadline, fd = b"", time.perf_counter() + 30, self.p.stdout.fileno()
        while not re.search(rb"^berth-agent: ready on .*\n", buf, re.M):
            left = deadline - time.perf_counter()
            if left <= 0 or self.p.poll() is not None:
                self.kill()
                raise RuntimeError(f"agent not ready: {buf!r} {open(self.err).read()[-500:]}")
            if select.select([fd], [], [], left)[0]:
                buf += os.read(fd, 4096)
        self.ready_s = time.perf_counter() - t0
        line = re.search(rb"^berth-agent: ready on .*$", buf, re.M).group(0).decode()
        self.ready_line = line
        self.host = re.search(r"tcp://127\.0\.0\.1:[0-9]+", line).group(0)

    def kill(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        shutil.rmtree(self.data, ignore_errors=True)


def env_for(host, relay):
    env = dict(E, DOCKER_HOST=host, DOCKER_CONFIG=E["BENCH_CONFIG"])
    env.pop("DOCKER_CONTEXT", None)
    if host.startswith("ssh://"):
        env["PATH"] = relay.path
    return env


def timed(cmd, env, what, cwd=None):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{what} failed: {r.stderr.decode(errors='replace').strip()[-400:]}")
    return dt


def rounds(variants, runs, once, warmup=1):
    """`once(variant)` for every variant, `runs` rounds in shuffled order, after `warmup` each."""
    for _ in range(warmup):
        for v in variants:
            once(v)
    t = {v: [] for v in variants}
    for _ in range(runs):
        order = list(variants)
        random.shuffle(order)
        for v in order:
            t[v].append(once(v))
    return t


def table(t, unit="ms", scale=1000):
    print(f"{'variant':10} {'n':>3} {'median':>9} {'p10':>9} {'p90':>9} {'min':>9}   ({unit})")
    for v, xs in t.items():
        xs = [x * scale for x in xs]
        print(f"{v:10} {len(xs):3} {statistics.median(xs):9.1f} {q(xs, .1):9.1f} {q(xs, .9):9.1f} "
              f"{min(xs):9.1f}")


def ratio(t, a, b, label):
    r = statistics.median(t[a]) / statistics.median(t[b])
    paired = statistics.median([x / y for x, y in zip(t[a], t[b])])
    print(f"{label}: ratio of medians {r:.2f}, median of per-round ratios {paired:.2f}")
    return r


def compose_file(d):
    path = os.path.join(d, "docker-compose.yml")
    with open(path, "w") as f:
        f.write('version: "3"\nservices:\n')
        for i in range(SERVICES):
            f.write(f"  s{i}:\n    image: {IMAGE}\n    command: sleep 3600\n")
    return path


def bench_wan(result, hdr):
    hdr(f"7. wan: ~{RTT_MS:.0f} ms RTT relay in front of sshd; berth-agent vs DOCKER_HOST=ssh:// "
        "through it, direct socket as the floor (interleaved, shuffled)")
    relay = Relay()
    agent = None
    projects = []
    try:
        print(f"relay 127.0.0.1:{relay.port} -> sshd, {RTT_MS / 2:.0f} ms each way; sshd banner via relay "
              f"{relay.banner_ms(relay.port):.1f} ms vs direct {relay.banner_ms(SSH_PORT):.1f} ms")
        agent = Agent(relay)
        print(agent.ready_line)
        envs = {"berth": env_for(agent.host, relay),
                "ssh://": env_for(f"ssh://{SSH_USER}@127.0.0.1:{relay.port}", relay),
                "direct": env_for(E["DIRECT_HOST"], relay)}

        # ---- docker ps
        t = rounds(["berth", "ssh://", "direct"], PS_RUNS,
                   lambda v: timed(["docker", "ps"], envs[v], f"docker ps via {v}"), warmup=2)
        print(f"\n-- docker ps ({PS_RUNS} rounds)")
        table(t)
        r = ratio(t, "ssh://", "berth", "ssh:// / berth")
        result("wan_ps_sshurl_over_berth", r, ">= 15", r >= 15)
        floor = statistics.median(t["direct"]) + RTT_MS / 1000
        r = statistics.median(t["berth"]) / floor
        print(f"berth / (direct + {RTT_MS:.0f} ms RTT): {statistics.median(t['berth']) * 1000:.1f} / "
              f"{floor * 1000:.1f} ms = {r:.2f}")
        result("wan_ps_berth_over_direct_plus_rtt", r, "<= 1.30", r <= 1.3)
        # a faithful proxy cannot beat the daemon's own time plus the one
        # round trip of the request, so this is the most ssh:// / berth can be
        r = statistics.median(t["ssh://"]) / floor
        print(f"ssh:// / (direct + {RTT_MS:.0f} ms RTT), the ceiling of ssh:// / berth: {r:.2f}")
        result("wan_ps_sshurl_over_floor", r, "reference", None)

        # ---- docker run --rm
        t = rounds(["berth", "ssh://"], RUN_RUNS,
                   lambda v: timed(["docker", "run", "--rm", IMAGE, "true"], envs[v], f"docker run via {v}"))
        print(f"\n-- docker run --rm {IMAGE} true ({RUN_RUNS} rounds)")
        table(t)
        r = ratio(t, "ssh://", "berth", "ssh:// / berth")
        result("wan_run_sshurl_over_berth", r, "reference", None)

        # ---- docker-compose up -d, five services
        d = tempfile.mkdtemp(prefix="wan-compose-", dir=WORK)
        cf = compose_file(d)
        seq = [0]

        def compose_up(v):
            seq[0] += 1
            proj = f"berthbenchwan{E.get('BENCH_ID', os.getpid())}x{seq[0]}"
            projects.append((proj, v))
            for i in range(SERVICES):
                _record("ports-containers", f"{proj}_s{i}_1")
            _record("wan-networks", f"{proj}_default")
            dt = timed(["docker-compose", "-p", proj, "-f", cf, "up", "-d"], envs[v],
                       f"compose up via {v}", cwd=d)
            timed(["docker-compose", "-p", proj, "-f", cf, "down", "-t", "0"], envs[v],
                  f"compose down via {v}", cwd=d)
            return dt

        t = rounds(["berth", "ssh://"], COMPOSE_RUNS, compose_up)
        print(f"\n-- docker-compose up -d, {SERVICES} services `sleep 3600` ({COMPOSE_RUNS} rounds; down after "
              "each, untimed)")
        table(t, "s", 1)
        r = ratio(t, "ssh://", "berth", "ssh:// / berth")
        result("wan_compose_up_sshurl_over_berth", r, "reference", None)

        # ---- start to ready vs ssh HOST true
        agent.kill()
        agent = None

        def start(v):
            nonlocal agent
            if v == "berth":
                a = Agent(relay)
                a.kill()
                return a.ready_s
            return timed(["ssh", "-p", str(relay.port), f"{SSH_USER}@127.0.0.1", "true"],
                         envs["ssh://"], "ssh true")

        t = rounds(["berth", "ssh true"], READY_RUNS, start)
        print(f"\n-- agent start → ready line vs OpenSSH `ssh HOST true` through the relay ({READY_RUNS} rounds)")
        table(t)
        r = ratio(t, "berth", "ssh true", "berth / ssh true")
        result("wan_ready_berth_over_ssh_true", r, "reference", None)
    finally:
        if agent:
            agent.kill()
        for proj, _ in projects:
            names = [f"{proj}_s{i}_1" for i in range(SERVICES)]
            subprocess.run(["docker", "-H", E["DIRECT_HOST"], "rm", "-f", *names], capture_output=True)
            subprocess.run(["docker", "-H", E["DIRECT_HOST"], "network", "rm", f"{proj}_default"],
                           capture_output=True)
        relay.close()


def bench_jump(result, hdr):
    """Connecting through one jump host: tests/testbed/jumpnet.sh's bastion (its own network
    namespace) in front of a target only it reaches; berth-agent's start to its ready line
    against OpenSSH's `ssh -J bastion target true`, interleaved."""
    hdr("8. jump: agent start → ready through one jump host vs `ssh -J bastion target true`")
    jumpnet = os.path.join(HERE, "..", "tests", "testbed", "jumpnet.sh")
    subprocess.run(["bash", jumpnet, "up"], check=True, stdout=subprocess.DEVNULL)
    jdir = os.path.join(E.get("BERTH_TESTBED_DIR", "/tmp/berth-testbed"), "jump")
    bastion, target = "10.231.1.2", "10.231.2.2"
    extra = ["-J", f"root@{bastion}", "--known-hosts", os.path.join(jdir, "known_hosts")]

    def once(v):
        if v == "berth":
            a = Agent(None, f"ssh://root@{target}", extra)
            a.kill()
            return a.ready_s
        return timed(["ssh", "-F", os.path.join(jdir, "ssh_config"), "-J", bastion, target, "true"],
                     dict(E), "ssh -J")

    t = rounds(["berth", "ssh -J"], READY_RUNS, once)
    print(f"-- start → ready ({READY_RUNS} rounds)")
    table(t)
    r = ratio(t, "berth", "ssh -J", "berth / ssh -J")
    result("jump_ready_berth_over_ssh_j", r, "<= 1.20", r <= 1.2)



if __name__ == "__main__":
    def _result(name, value, target, ok):
        print(f"RESULT {name} = {value} (target {target})")

    bench_wan(_result, lambda s: print(f"\n=== {s} ==="))
