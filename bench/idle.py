#!/usr/bin/env python3
"""Section "idle": what an idle Berth costs. `berth-agent --config` (the tray
app's engine: one controller, one agent per remote) serves two connected
remotes of the test bed (the socket one and the tcp one) and nothing happens;
its wake-ups are counted over IDLE_SECS (default 60) from the scheduler's own
counter (/proc/PID/task/*/schedstat, field 2: times a thread was put on a CPU)
and its CPU time from /proc/PID/stat. Beside it, in the same run, OpenSSH's
`ssh -N` to the same two hosts (no keepalive options, as most users run it):
what an idle tunnel costs without Berth. With IDLE_OLD_AGENT=path, an older
build is measured the same way, side by side.

Then, with the agent still running: `docker run -d -p` through it, and the
time from the run returning to the forward answering on this machine (the
push path: daemon event → forwarder → status). Prints one line per figure.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ENV = os.environ
IDLE_SECS = float(ENV.get("IDLE_SECS", "60"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# built by bench/run.sh: cargo build --release -p berth-core --features keychain --bin berth-agent
AGENT = ENV.get("AGENT_BIN") or os.path.join(ROOT, "target", "release", "berth-agent")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wakeups(pid):
    """Times any thread of `pid` was scheduled, and its CPU seconds."""
    n = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                n += int(f.read().split()[2])
        except (FileNotFoundError, ProcessLookupError):
            pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return n, cpu


def idle_cost(pids):
    before = [wakeups(p) for p in pids]
    time.sleep(IDLE_SECS)
    after = [wakeups(p) for p in pids]
    n = sum(a[0] - b[0] for a, b in zip(after, before))
    cpu = sum(a[1] - b[1] for a, b in zip(after, before))
    return n, cpu


def remote(name, ssh_port, docker, listen_port):
    return f"""
[[remote]]
name = "{name}"
host = "127.0.0.1"
port = {ssh_port}
user = "{ENV["SSH_USER"]}"
auth = {{ kind = "key-file", path = "{ENV["SSH_KEY"]}" }}
docker = {docker}
listen = "tcp://127.0.0.1:{listen_port}"
sync = false
"""


def config(dirpath, ports):
    lin, win = ports
    text = remote("lin", ENV["SSH_PORT"], f'{{ kind = "unix", path = "{ENV["DOCKER_SOCK"]}" }}', lin) + \
        remote("win", ENV["SSH_WIN_PORT"], f'{{ kind = "tcp", addr = "{ENV["DOCKER_TCP"]}" }}', win)
    path = os.path.join(dirpath, "config.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def start_agent(binary, dirpath):
    ports = (free_port(), free_port())
    cfg = config(dirpath, ports)
    env = dict(ENV, HOME=dirpath, DOCKER_CONFIG=os.path.join(dirpath, "docker"))
    p = subprocess.Popen(
        [binary, "--config", cfg, "--known-hosts", ENV["KNOWN_HOSTS"]],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    ready = 0
    deadline = time.time() + 30
    while ready < 2 and time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        ready += "ready:" in line
    if ready < 2:
        p.kill()
        sys.exit(f"idle: {binary} did not get both remotes ready")
    return p, ports


def forward_latency(lin_port, image):
    host = f"tcp://127.0.0.1:{lin_port}"
    port = free_port()
    name = f"berth-bench-idle-{os.getpid()}"
    run = subprocess.run(
        ["docker", "-H", host, "run", "-d", "--name", name, "-p", f"{port}:80",
         image, "httpd", "-f", "-p", "80", "-h", "/"],
        capture_output=True, text=True,
    )
    returned = time.monotonic()
    try:
        if run.returncode != 0:
            sys.exit(f"idle: docker run failed: {run.stderr.strip()}")
        while time.monotonic() - returned < 10:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    if s.recv(12).startswith(b"HTTP/1."):
                        return (time.monotonic() - returned) * 1000
            except OSError:
                time.sleep(0.005)
        return None
    finally:
        subprocess.run(["docker", "-H", host, "rm", "-f", name], capture_output=True)


def openssh_idle():
    procs = []
    for port in (ENV["SSH_PORT"], ENV["SSH_WIN_PORT"]):
        procs.append(subprocess.Popen(
            ["ssh", "-N", "-i", ENV["SSH_KEY"], "-p", port,
             "-o", f"UserKnownHostsFile={ENV['KNOWN_HOSTS']}", "-o", "StrictHostKeyChecking=yes",
             "-o", "BatchMode=yes", "-L", f"127.0.0.1:{free_port()}:{ENV['DOCKER_SOCK']}",
             f"{ENV['SSH_USER']}@127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
    time.sleep(2)
    try:
        return idle_cost([p.pid for p in procs])
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def measure(label, binary, image, with_forward):
    with tempfile.TemporaryDirectory(prefix="berth-bench-idle-") as d:
        p, ports = start_agent(binary, d)
        try:
            time.sleep(3)  # past connect-time work (memory trim, first events)
            n, cpu = idle_cost([p.pid])
            print(f"idle {label}: {n} wake-ups in {IDLE_SECS:.0f} s, CPU {cpu * 1000:.0f} ms "
                  f"(two connected remotes, nothing happening)")
            ms = None
            if with_forward:
                ms = forward_latency(ports[0], image)
                shown = "did not answer within 10 s" if ms is None else f"{ms:.0f} ms"
                print(f"idle {label}: docker run -p → the port answers on this machine: {shown}")
            return n, ms
        finally:
            p.terminate()
            p.wait()


def bench_idle(result=None, hdr=print):
    """The section: figures printed; with `result`, the summary's lines."""
    hdr(f"6. idle: two connected remotes, nothing happening, {IDLE_SECS:.0f} s")
    image = ENV.get("TEST_IMAGE", "berth-test/busybox:latest")
    n, ms = measure("berth", AGENT, image, True)
    old = ENV.get("IDLE_OLD_AGENT")
    if old:
        m, _ = measure("berth (older build)", old, image, False)
        print(f"idle: wake-ups, this build / older build: {n}/{m} = {n / max(m, 1):.2f}")
    ssh_n, ssh_cpu = openssh_idle()
    print(f"idle OpenSSH: {ssh_n} wake-ups in {IDLE_SECS:.0f} s, CPU {ssh_cpu * 1000:.0f} ms "
          f"(ssh -N to the same two hosts)")
    print(json.dumps({"idle_wakeups": n, "openssh_wakeups": ssh_n, "secs": IDLE_SECS,
                      "forward_ms": ms}))
    if result:
        # "no periodic work": at most a handful of wake-ups a minute beyond
        # what OpenSSH's own idle tunnels cost, side by side in this run
        per_min = n * 60 / IDLE_SECS
        ssh_per_min = ssh_n * 60 / IDLE_SECS
        result("idle wake-ups per minute (two remotes), Berth vs ssh -N",
               f"{per_min:.0f} vs {ssh_per_min:.0f}", "<= ssh -N + 10",
               per_min <= ssh_per_min + 10)
        result("docker run -p → the port answers", "none" if ms is None else f"{ms:.0f} ms",
               "< 500 ms", ms is not None and ms < 500)


if __name__ == "__main__":
    bench_idle()
