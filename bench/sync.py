#!/usr/bin/env python3
"""Berth benchmark, section 5: bind-mount sync (imported by bench.py; run.sh sets everything up,
`bash bench/run.sh sync` runs this section alone). Also `python3 sync.py relay LPORT RHOST RPORT
DELAY_MS`: the latency relay used by 5a (run as its own process, so it has its own GIL).

Extra environment (set by run.sh): AGENT_BIN (run.sh's private copy of berth-agent), SSH_KEY,
KNOWN_HOSTS, SSH_PORT, SSH_USER, BENCH_SSH_CONFIG, BENCH_WORK (pids of every agent/relay started
here go to sync.pids, container names to ports-containers and replica paths to sync-replicas,
before they exist, so run.sh's trap can clean up after a kill), TEST_IMAGE, BERTH_HOST,
DIRECT_HOST, BENCH_CONFIG.
Knobs: SYNC_ROUNDS=3 SYNC_RTT_ROUNDS=3 SYNC_RTT_MS=10 (per direction) SYNC_FILES=2000
SYNC_MB=140 SYNC_READOPT_RUNS=3 SYNC_EDITS=100 SYNC_MEM_FILES=100000 SYNC_MEM_TIMEOUT=180
SYNC_REMOTE_EDITS=30 SYNC_REMOTE_EXEC_EDITS=5 SYNC_REMOTE_WRITE=rename|inplace
SYNC_REMOTE_PAUSE_MS=300,800 SYNC_REMOTE_TIMEOUT=15 (s, per edit) SYNC_BIG_FILES=100000
SYNC_BIG_DIRS=1000 SYNC_BIG_ROUNDS=2 SYNC_BIG_EDITS=50 SYNC_BIG_TIMEOUT=900 (s, per part of 5f).
BENCH_SYNC_PARTS (or SYNC_PARTS) = comma list of 5a,5b,5c,5d,5e,5f (also 5f1 = 5f's first sync
only, 5f2/5f3 = 5f's watching session only, or the names initial,readopt,edit,memory,remote,big);
default all.

5a. initial sync: `docker run --rm -v DIR:/app IMAGE true` through the agent (the create blocks
    until the replica is complete) minus `docker run --rm IMAGE true`, vs rsync -a over OpenSSH
    into an empty dir; interleaved, shuffled; then the same through a relay adding RTT.
5b. re-adopt: SIGKILL the agent that owns a running container's mount, start another one, time
    from its ready line until /berth/v1/status shows the mount "watching"; uploaded_files == 0?
5c. edit -> replica: rewrite a file locally, poll the replica file (remote == this machine).
5d. agent RSS per tracked file: fresh agent, RSS before/after syncing a tree of tiny files.
5e. remote change -> local (two-way): write a file in the replica on disk, poll the local file;
    then the same written by `docker exec` through the agent (its end nudges a round).
5f. large tree (100k small files): (1) first sync vs rsync as in 5a, through a dedicated agent;
    (3) a fresh agent's RSS per file while watching it, then (2) edit -> replica as in 5c, on the
    same container. Each part has a time limit and reports "did not finish" instead of hanging.
"""
import asyncio
import glob
import hashlib
import json
import os
import pwd
import random
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

E = os.environ
MB = 1_000_000
MIB = 1 << 20


def _int(name, default):
    return int(E.get(name, str(default)))


# ---------------------------------------------------------------- relay (own process)
async def _relay_main(lport, rhost, rport, delay):
    loop = asyncio.get_running_loop()

    async def pump(reader, writer):
        q = asyncio.Queue(maxsize=8192)

        async def rd():
            try:
                while True:
                    data = await reader.read(65536)
                    await q.put((loop.time() + delay, data))
                    if not data:
                        return
            except (ConnectionError, OSError):
                await q.put((0, b""))

        async def wr():
            try:
                while True:
                    t, data = await q.get()
                    d = t - loop.time()
                    if d > 0:
                        await asyncio.sleep(d)
                    if not data:
                        if writer.can_write_eof():
                            writer.write_eof()
                        return
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                return

        await asyncio.gather(rd(), wr())

    async def handle(cr, cw):
        try:
            ur, uw = await asyncio.open_connection(rhost, rport)
        except OSError:
            cw.close()
            return
        for w in (cw, uw):
            s = w.get_extra_info("socket")
            if s is not None:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.gather(pump(cr, uw), pump(ur, cw))
        finally:
            for w in (cw, uw):
                w.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", lport)
    print(f"relay ready on {srv.sockets[0].getsockname()[1]}", flush=True)
    async with srv:
        await srv.serve_forever()


def relay_main(argv):
    lport, rhost, rport, delay_ms = int(argv[0]), argv[1], int(argv[2]), float(argv[3])
    try:
        asyncio.run(_relay_main(lport, rhost, rport, delay_ms / 1000))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "relay":
    relay_main(sys.argv[2:])
    sys.exit(0)

# ---------------------------------------------------------------- benchmark setup
WORK = E["BENCH_WORK"]
IMAGE = E["TEST_IMAGE"]
AGENT_BIN = E["AGENT_BIN"]
SSH_PORT = int(E["SSH_PORT"])
SSH_USER = E["SSH_USER"]
SSH_KEY = E["SSH_KEY"]
KNOWN_HOSTS = E["KNOWN_HOSTS"]
ROUNDS = _int("SYNC_ROUNDS", 3)
RTT_ROUNDS = _int("SYNC_RTT_ROUNDS", 3)
RTT_MS = float(E.get("SYNC_RTT_MS", "10"))
NFILES = _int("SYNC_FILES", 2000)
TOTAL_MB = _int("SYNC_MB", 140)
READOPT_RUNS = _int("SYNC_READOPT_RUNS", 3)
EDITS = _int("SYNC_EDITS", 100)
MEM_FILES = _int("SYNC_MEM_FILES", 100_000)
MEM_TIMEOUT = _int("SYNC_MEM_TIMEOUT", 180)
REMOTE_EDITS = _int("SYNC_REMOTE_EDITS", 30)
REMOTE_EXEC_EDITS = _int("SYNC_REMOTE_EXEC_EDITS", 5)
REMOTE_WRITE = E.get("SYNC_REMOTE_WRITE", "rename")  # rename | inplace
REMOTE_PAUSE = tuple(float(x) for x in E.get("SYNC_REMOTE_PAUSE_MS", "300,800").split(","))
REMOTE_TIMEOUT = _int("SYNC_REMOTE_TIMEOUT", 15)  # s, per edit
BIG_FILES = _int("SYNC_BIG_FILES", 100_000)
BIG_DIRS = _int("SYNC_BIG_DIRS", 1000)
BIG_ROUNDS = _int("SYNC_BIG_ROUNDS", 2)
BIG_EDITS = _int("SYNC_BIG_EDITS", 50)
BIG_TIMEOUT = _int("SYNC_BIG_TIMEOUT", 900)  # s, per part of 5f
REMOTE_HOME = pwd.getpwnam(SSH_USER).pw_dir
D = os.path.join(WORK, "sync")  # all local trees live here (run.sh's trap removes WORK)
_seq = [0]


def _record(fname, line):
    with open(os.path.join(WORK, fname), "a") as f:
        f.write(f"{line}\n")


def new_name(tag):
    _seq[0] += 1
    name = f"berth-bench-{E.get('BENCH_ID', os.getppid())}-sync{tag}{_seq[0]}"
    _record("ports-containers", name)
    return name


def denv(host):
    env = dict(os.environ)
    env["DOCKER_HOST"] = host
    env["DOCKER_CONFIG"] = E["BENCH_CONFIG"]
    env.pop("DOCKER_CONTEXT", None)
    return env


ENV_DIRECT = denv(E["DIRECT_HOST"])


def docker(host, *args, check=True, timeout=900):
    t0 = time.perf_counter()
    r = subprocess.run(["docker", *args], env=denv(host), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    dt = time.perf_counter() - t0
    if check and r.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {r.stderr.decode(errors='replace').strip()}")
    return r, dt


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise KeyError("VmRSS")


def tcp_of(host):
    m = re.fullmatch(r"tcp://([0-9.]+):([0-9]+)", host)
    return m.group(1), int(m.group(2))


def status(host):
    addr = tcp_of(host)
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(b"GET /berth/v1/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():
        out, rest = b"", body
        while rest:
            n, _, rest = rest.partition(b"\r\n")
            n = int(n.split(b";")[0], 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return json.loads(body)


def mount_of(host, local):
    for m in status(host).get("mounts", []) or []:
        if m.get("local") == local:
            return m
    return None


def replica_path(remote):
    """The replica's path on this machine (the test bed's remote is this machine)."""
    if remote.startswith("~/"):
        return os.path.join(REMOTE_HOME, remote[2:])
    return remote if remote.startswith("/") else os.path.join(REMOTE_HOME, remote)


def note_replica(m):
    if m and m.get("remote"):
        p = replica_path(m["remote"])
        if p not in _replicas:
            _replicas.add(p)
            _record("sync-replicas", p)
        return p
    return None


_replicas = set()


def wait_mount(host, local, pred, secs=60, every=0.01):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < secs:
        m = mount_of(host, local)
        note_replica(m)
        if pred(m):
            return m, time.perf_counter() - t0
        time.sleep(every)
    return mount_of(host, local), None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Agent:
    """A berth-agent of our own (pid recorded for run.sh's trap)."""

    def __init__(self, port=SSH_PORT, known_hosts=KNOWN_HOSTS, tag="agent"):
        self.err_path = os.path.join(WORK, f"sync-{tag}-{time.monotonic_ns()}.err")
        self.t_spawn = time.perf_counter()
        self.p = subprocess.Popen(
            [AGENT_BIN, "--remote", f"ssh://{SSH_USER}@127.0.0.1:{port}", "--identity", SSH_KEY,
             "--known-hosts", known_hosts, "--listen", "tcp://127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=open(self.err_path, "w"))
        _record("sync.pids", self.p.pid)
        self.pid = self.p.pid
        buf, deadline = b"", time.perf_counter() + 30
        fd = self.p.stdout.fileno()
        while b"\n" not in buf or not re.search(rb"^berth-agent: ready on .*$", buf, re.M):
            left = deadline - time.perf_counter()
            if left <= 0 or self.p.poll() is not None:
                self.kill()
                raise RuntimeError(f"agent not ready: {buf!r} {open(self.err_path).read()[-500:]}")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    continue
                buf += chunk
        self.t_ready = time.perf_counter()
        line = re.search(rb"^berth-agent: ready on .*$", buf, re.M).group(0).decode()
        self.host = re.search(r"tcp://127\.0\.0\.1:[0-9]+", line).group(0)
        threading.Thread(target=self._drain, daemon=True).start()  # never let stdout fill up

    def _drain(self):
        try:
            while os.read(self.p.stdout.fileno(), 65536):
                pass
        except OSError:
            pass

    def kill(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()

    def stderr_tail(self, n=3):
        try:
            return open(self.err_path).read().strip().splitlines()[-n:]
        except OSError:
            return []


def gen_tree(root, nfiles, total_bytes, seed=20240601):
    """Deterministic tree: sizes 200 B .. 2 MB, log-biased so the total is ~total_bytes."""
    rng = random.Random(seed)
    us = [rng.random() for _ in range(nfiles)]
    lo_k, hi_k = 0.2, 50.0
    for _ in range(60):  # size = 200 * 10^4^(u^k); bisect k for the wanted total
        k = (lo_k + hi_k) / 2
        tot = sum(int(200 * 10000 ** (u ** k)) for u in us)
        lo_k, hi_k = (k, hi_k) if tot > total_bytes else (lo_k, k)
    sizes = [int(200 * 10000 ** (u ** k)) for u in us]
    sizes[0], sizes[1] = 200, 2_000_000
    total = 0
    for i, n in enumerate(sizes):
        d = os.path.join(root, f"d{i % 40:02d}", f"s{(i // 40) % 5}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:04d}.bin"), "wb") as f:
            f.write(rng.randbytes(n))
        total += n
    return sizes, total


def gen_tiny(root, ndirs, per_dir):
    for i in range(ndirs):
        d = os.path.join(root, f"t{i:03d}")
        os.makedirs(d, exist_ok=True)
        for j in range(per_dir):
            with open(os.path.join(d, f"{j:04d}"), "wb") as f:
                f.write(b"%09d\n" % (i * per_dir + j))


def fresh_copy(src, tag):
    """A fresh source path with the same content (hard links: instant, and the same page cache)."""
    _seq[0] += 1
    dst = os.path.join(D, f"{tag}{_seq[0]}")
    subprocess.run(["cp", "-al", src, dst], check=True)
    return dst


def wait_gone(host, local, secs=60, rp=None, disk_secs=60):
    """After the last container went: until the agent drops the mount; then is the replica gone
    (waits up to disk_secs for that)?"""
    m = mount_of(host, local)
    rp = note_replica(m) or rp
    _, dt = wait_mount(host, local, lambda m: m is None, secs=secs, every=0.05)
    gone = None
    if rp:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < disk_secs and (os.path.exists(rp) or os.path.exists(rp + ".berth-manifest.json")):
            time.sleep(0.05)
        gone = not os.path.exists(rp) and not os.path.exists(rp + ".berth-manifest.json")
        _gone_s.append(time.perf_counter() - t0 + (dt or 0))
    return dt is not None, gone


_gone_s = []  # seconds from `docker run --rm`/`rm -f` returning until the replica left the disk


def rm_replica(rp):
    if rp and "/berth/" in rp:
        shutil.rmtree(rp, ignore_errors=True)
        try:
            os.unlink(rp + ".berth-manifest.json")
        except OSError:
            pass


# ---------------------------------------------------------------- 5a. initial sync
def rsync_once(src, port, known_hosts, timeout=None):
    _seq[0] += 1
    dst = os.path.join(D, f"rsync-dst{_seq[0]}")
    ssh = (f"/usr/bin/ssh -F {E['BENCH_SSH_CONFIG']} -i {SSH_KEY} -o UserKnownHostsFile={known_hosts} "
           f"-o IdentitiesOnly=yes -o BatchMode=yes -p {port}")
    try:
        t0 = time.perf_counter()
        r = subprocess.run(["rsync", "-a", "-e", ssh, src + "/", f"{SSH_USER}@127.0.0.1:{dst}/"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"rsync failed: {r.stderr.decode(errors='replace').strip()}")
        n = sum(len(fs) for _, _, fs in os.walk(dst))
    finally:
        shutil.rmtree(dst, ignore_errors=True)
    return dt, n


def initial_rounds(label, host, src, rounds, port, known_hosts, result, key, warm_mount=True):
    print(f"-- {label}: {rounds} interleaved rounds in shuffled order (1 warmup of "
          f"{'each' if warm_mount else 'no -v and rsync'} first)")
    t = {"berth -v": [], "berth no -v": [], "rsync": []}
    ok_gone, bad = [], []

    def run_variant(v):
        if v == "berth -v":
            d = fresh_copy(src, "init")
            _, dt = docker(host, "run", "--rm", "-v", f"{d}:/app", IMAGE, "true")
            removed, gone = wait_gone(host, d)
            ok_gone.append(bool(removed and gone is not False))
            return dt
        if v == "berth no -v":
            return docker(host, "run", "--rm", IMAGE, "true")[1]
        dt, n = rsync_once(src, port, known_hosts)
        if n != NFILES:
            bad.append(f"rsync copied {n} files")
        return dt

    _gone_s.clear()
    for v in t:  # warmup (also brings the image, the sshd path and the page cache up to speed)
        if warm_mount or v != "berth -v":
            run_variant(v)
    for _ in range(rounds):
        order = list(t)
        random.shuffle(order)
        for v in order:
            t[v].append(run_variant(v))
    for v, xs in t.items():
        print(f"   {v:12} median {statistics.median(xs):7.2f} s   all: {' '.join(f'{x:.2f}' for x in xs)}")
    mount, base, rs = (statistics.median(t[k]) for k in ("berth -v", "berth no -v", "rsync"))
    sync_only = mount - base
    paired = statistics.median([(a - b) / c for a, b, c in zip(t["berth -v"], t["berth no -v"], t["rsync"])])
    print(f"   berth sync-only estimate (median -v minus median no -v): {sync_only:.2f} s; rsync {rs:.2f} s")
    print(f"   berth/rsync: sync-only {sync_only / rs:.2f} (median of per-round ratios {paired:.2f}); "
          f"whole `docker run -v` vs rsync {mount / rs:.2f}")
    print(f"   replica gone from the status and the disk within 60 s after each --rm: "
          f"{sum(ok_gone)}/{len(ok_gone)} (median {statistics.median(_gone_s or [0]):.1f} s, max "
          f"{max(_gone_s or [0]):.1f} s after `docker run` returned; not timed)"
          + (f"; problems: {bad[:3]}" if bad else ""))
    result(f"sync_initial_{key}_berth_over_rsync", sync_only / rs, "<= 1.00", sync_only / rs <= 1.0)
    result(f"sync_initial_{key}_berth_run_over_rsync", mount / rs, "reference (incl. container start)", None)


def start_relay(delay_ms):
    lport = free_port()
    p = subprocess.Popen([sys.executable, "-u", os.path.abspath(__file__), "relay", str(lport),
                          "127.0.0.1", str(SSH_PORT), str(delay_ms)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _record("sync.pids", p.pid)
    line = p.stdout.readline().decode()
    if not line.startswith("relay ready"):
        raise RuntimeError(f"relay failed: {line!r} {p.stderr.read().decode(errors='replace')}")
    return p, lport


def rtt_probe(port, n=5):
    """Median time to read sshd's banner: connect + 1 one-way trip through the relay."""
    xs = []
    for _ in range(n):
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.recv(256)
        xs.append(time.perf_counter() - t0)
    return statistics.median(xs) * 1000


def bench_initial(result, hdr, src, total):
    hdr(f"5a. initial sync of {NFILES} files / {total / MB:.0f} MB: `docker run --rm -v DIR:/app` "
        f"through the agent (minus `docker run --rm` without -v) vs rsync -a over OpenSSH into an empty dir")
    print("(each berth round uses a fresh source path: a `cp -al` of the generated tree; rsync -e "
          "'ssh -i KEY -o UserKnownHostsFile=… -p PORT' from the generated tree; all in the page cache)")
    initial_rounds("loopback (no added latency)", E["BERTH_HOST"], src, ROUNDS, SSH_PORT, KNOWN_HOSTS,
                   result, "loopback")
    relay, rport = start_relay(RTT_MS)
    agent = None
    try:
        kh = os.path.join(WORK, "sync-known_hosts")
        with open(KNOWN_HOSTS) as f:
            lines = [ln.replace(f"[127.0.0.1]:{SSH_PORT} ", f"[127.0.0.1]:{rport} ")
                     for ln in f if ln.startswith(f"[127.0.0.1]:{SSH_PORT} ")]
        with open(kh, "w") as f:
            f.writelines(lines)
        agent = Agent(rport, kh, "rtt")
        print(f"-- with ~{2 * RTT_MS:.0f} ms RTT: python asyncio relay 127.0.0.1:{rport} -> sshd, each chunk "
              f"delayed {RTT_MS:.0f} ms each way; sshd banner via relay {rtt_probe(rport):.1f} ms vs direct "
              f"{rtt_probe(SSH_PORT):.1f} ms; a second agent ({agent.host}) and rsync both go through it")
        initial_rounds(f"~{2 * RTT_MS:.0f} ms RTT", agent.host, src, RTT_ROUNDS, rport, kh, result,
                       f"rtt{2 * RTT_MS:.0f}ms", warm_mount=False)
    finally:
        if agent:
            agent.kill()
        relay.terminate()
        relay.wait()


# ---------------------------------------------------------------- 5b. re-adopt
def bench_readopt(result, hdr, src):
    hdr(f"5b. re-adopt an unchanged {NFILES}-file tree: SIGKILL the agent, start another, time from its "
        f"ready line until /berth/v1/status shows the mount \"watching\" (status polled every 10 ms), "
        f"{READOPT_RUNS} times in a row")
    d = fresh_copy(src, "readopt")
    name = new_name("readopt")
    rp = None
    agent = Agent(tag="readoptA")
    times, ups, fails = [], [], []
    try:
        _, dt = docker(agent.host, "run", "-d", "--name", name, "-v", f"{d}:/app", IMAGE, "sleep", "600")
        m, w = wait_mount(agent.host, d, lambda m: m and m.get("state") == "watching", secs=30)
        print(f"agent A: docker run -d -v took {dt:.2f} s; mount {m and m.get('state')}, "
              f"files {m and m.get('files')}, uploaded_files {m and m.get('uploaded_files')}")
        rp = note_replica(m)
        if w is None:
            raise RuntimeError(f"agent A never showed the mount watching: {m}")
        for i in range(READOPT_RUNS):
            agent.kill(signal.SIGKILL)
            agent = Agent(tag=f"readopt{i}")
            m, dt = wait_mount(agent.host, d, lambda m: m and m.get("state") == "watching", secs=60)
            up0 = m and m.get("uploaded_files")
            time.sleep(1.0)
            m1 = mount_of(agent.host, d)
            if dt is None:
                fails.append(f"run {i}: not watching after 60 s: {m}")
                continue
            times.append(dt)
            ups.append(max(up0 or 0, (m1 or {}).get("uploaded_files") or 0))
            print(f"   run {i}: spawn->ready {agent.t_ready - agent.t_spawn:.3f} s, ready->watching "
                  f"{dt:.3f} s; at watching: files {m.get('files')}, syncs {m.get('syncs')}, uploaded_files "
                  f"{up0}; 1 s later uploaded_files {(m1 or {}).get('uploaded_files')}, "
                  f"containers {(m1 or {}).get('containers')}")
        for f in fails:
            print(f"   failure: {f}")
    finally:
        docker(agent.host, "rm", "-f", name, check=False)
        removed, gone = wait_gone(agent.host, d, rp=rp)
        print(f"after docker rm -f: mount dropped from status {removed}, replica removed {gone}")
        agent.kill()
    if times:
        print(f"ready->watching: median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
        result("sync_readopt_ready_to_watching_median_s", statistics.median(times), "<= 0.25 s",
               statistics.median(times) <= 0.25)
        result("sync_readopt_ready_to_watching_max_s", max(times), "<= 0.25 s", max(times) <= 0.25)
    result("sync_readopt_uploaded_files_max", max(ups) if ups else -1, "== 0", bool(ups) and max(ups) == 0)
    result("sync_readopt_failures", len(fails), f"== 0 of {READOPT_RUNS}", not fails)


# ---------------------------------------------------------------- 5c. edit -> replica
def local_edits(probe, rprobe, n, per_edit=5, deadline=None):
    """n times: new unique content written in place into the local `probe`, then the replica file
    `rprobe` polled every 1 ms until it matches (gives up on one edit after `per_edit` s), with a
    50-150 ms pause between edits. Stops early at `deadline` (perf_counter). Returns (latencies in
    s, timeouts, the last content)."""
    lat, timeouts, content = [], 0, b""
    for i in range(n):
        if deadline is not None and time.perf_counter() > deadline:
            break
        content = f"edit {i} {time.time_ns()} {random.getrandbits(64):016x}\n".encode()
        t0 = time.perf_counter()
        with open(probe, "wb") as f:
            f.write(content)
        while True:
            try:
                with open(rprobe, "rb") as f:
                    if f.read() == content:
                        break
            except OSError:
                pass
            if time.perf_counter() - t0 > per_edit:
                timeouts += 1
                break
            time.sleep(0.001)
        lat.append(time.perf_counter() - t0)
        time.sleep(random.uniform(0.05, 0.15))  # so successive edits don't share a debounce window
    return lat, timeouts, content


def bench_edit(result, hdr, src):
    hdr(f"5c. edit -> visible: {EDITS} times rewrite one file in a watched {NFILES}-file tree, then poll "
        f"the REPLICA file on disk (1 ms) until its content matches")
    print("NOTE: this measures arrival in the replica on the remote (the test bed's remote is this "
          "machine), which the container's bind mount shows; it does not go through docker exec.")
    host = E["BERTH_HOST"]
    d = fresh_copy(src, "edit")
    os.makedirs(os.path.join(d, "probe"))
    probe = os.path.join(d, "probe", "probe.txt")
    with open(probe, "w") as f:
        f.write("initial\n")
    name = new_name("edit")
    lat, timeouts, rp = [], 0, None
    try:
        _, dt = docker(host, "run", "-d", "--name", name, "-v", f"{d}:/app", IMAGE, "sleep", "600")
        m, w = wait_mount(host, d, lambda m: m and m.get("state") == "watching", secs=30)
        rp = note_replica(m)
        if w is None or not rp:
            raise RuntimeError(f"the mount never showed up watching in the status: {m}")
        rprobe = os.path.join(rp, "probe", "probe.txt")
        r, _ = docker(E["DIRECT_HOST"], "exec", name, "sh", "-c", "find /app -type f | wc -l")
        print(f"container up after {dt:.2f} s; replica {rp}; files in the container's /app: "
              f"{r.stdout.decode().strip()} (expected {NFILES + 1})")
        syncs0 = m.get("syncs")
        lat, timeouts, content = local_edits(probe, rprobe, EDITS)
        m = mount_of(host, d)
        r, _ = docker(E["DIRECT_HOST"], "exec", name, "cat", "/app/probe/probe.txt")
        print(f"after the edits: status syncs {syncs0} -> {m and m.get('syncs')}, uploaded_files "
              f"{m and m.get('uploaded_files')}; container sees the last content: "
              f"{r.stdout == content}")
    finally:
        docker(host, "rm", "-f", name, check=False)
        removed, gone = wait_gone(host, d, rp=rp)
        print(f"after docker rm -f: mount dropped from status {removed}, replica removed {gone}")
    ms = [x * 1000 for x in lat]
    p50, p95 = statistics.median(ms), sorted(ms)[max(0, int(round(0.95 * len(ms))) - 1)]
    print(f"local write -> replica content matches (ms): p50 {p50:.0f}, p95 {p95:.0f}, min {min(ms):.0f}, "
          f"max {max(ms):.0f}; timeouts (> 5 s) {timeouts}/{len(ms)}")
    result("sync_edit_to_replica_p50_ms", p50, "<= 100 ms", p50 <= 100)
    result("sync_edit_to_replica_p95_ms", p95, "<= 250 ms", p95 <= 250)


# ---------------------------------------------------------------- 5d. memory per file
def mem_attempt(nfiles, tree):
    agent = Agent(tag=f"mem{nfiles}")
    name = new_name("mem")
    peak = [0]
    stop = threading.Event()
    try:
        docker(agent.host, "ps")
        status(agent.host)
        time.sleep(1.0)
        before = rss_kib(agent.pid)

        def sampler():
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], rss_kib(agent.pid))
                    m = mount_of(agent.host, tree)
                    note_replica(m)
                except (OSError, KeyError, ValueError):
                    pass
                time.sleep(0.05)

        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        try:
            _, dt = docker(agent.host, "run", "-d", "--name", name, "-v", f"{tree}:/app", IMAGE,
                           "sleep", "600", timeout=MEM_TIMEOUT)
        except subprocess.TimeoutExpired:
            m = mount_of(agent.host, tree)
            print(f"   {nfiles} files: `docker run -d -v` did not return in {MEM_TIMEOUT} s "
                  f"(status then: {m and {k: m.get(k) for k in ('state', 'files', 'uploaded_files')}})")
            return None
        m, _ = wait_mount(agent.host, tree, lambda m: m and m.get("state") == "watching")
        time.sleep(2.0)
        after = rss_kib(agent.pid)
        m = mount_of(agent.host, tree) or {}
        stop.set()
        th.join()
        per = (after - before) * 1024 / nfiles
        print(f"   {nfiles} files ({len(os.listdir(tree))} dirs): docker run -d -v {dt:.1f} s "
              f"({nfiles / dt:.0f} files/s); status files {m.get('files')}, state {m.get('state')}; "
              f"agent VmRSS before {before / 1024:.1f} MiB, 2 s after watching {after / 1024:.1f} MiB, "
              f"peak during sync {peak[0] / 1024:.1f} MiB -> {per:.0f} bytes/file")
        return per
    finally:
        stop.set()
        r, _ = docker(agent.host, "rm", "-f", name, check=False)
        removed, gone = wait_gone(agent.host, tree, secs=120)
        agent.kill(signal.SIGKILL if removed is False else signal.SIGTERM)
        if not gone:  # e.g. the timed-out attempt: the agent never finished; tidy its replica
            for rp in list(_replicas):
                if os.path.basename(rp).startswith(os.path.basename(tree) + "-"):
                    rm_replica(rp)


def bench_memory(result, hdr):
    hdr(f"5d. agent memory per tracked file: a fresh agent's VmRSS before / after `docker run -d -v` of "
        f"a tree of 10-byte files ({MEM_FILES} first; 20000 if that takes > {MEM_TIMEOUT} s)")
    per, used = None, None
    for n in ([MEM_FILES, 20_000] if MEM_FILES > 20_000 else [MEM_FILES]):
        tree = os.path.join(D, f"tiny{n}")
        t0 = time.perf_counter()
        gen_tiny(tree, max(1, n // 1000), min(n, 1000))
        print(f"   generated {n} files in {time.perf_counter() - t0:.1f} s")
        per = mem_attempt(n, tree)
        shutil.rmtree(tree, ignore_errors=True)
        if per is not None:
            used = n
            break
    if per is None:
        result("sync_rss_bytes_per_file", -1, "<= 200 (no attempt finished)", False)
        return
    if used != MEM_FILES:
        print(f"   NOTE: measured with {used} files, not {MEM_FILES} (the {MEM_FILES}-file sync was too slow)")
    result(f"sync_rss_bytes_per_file_{used // 1000}k", per, "<= 200", per <= 200)


# ---------------------------------------------------------------- shared by 5e/5f
def pct(xs, p):
    """The p-quantile as 5c takes its p95: the ceil-ish rank, no interpolation."""
    xs = sorted(xs)
    return xs[max(0, int(round(p * len(xs))) - 1)]


def replica_name(local):
    """binds.rs replica_path's last component: `<name>-<first 16 hex of sha256(path)>`."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(local.rstrip("/")))[:32] or "root"
    return f"{name}-{hashlib.sha256(local.encode()).hexdigest()[:16]}"


def tidy_replicas_of(local):
    """After an agent was killed mid-sync: its replica of `local` (found by the exact name under
    ~/.cache/berth/mounts/*/, or as seen in a status) and its temp files; only under `…/berth/…`."""
    want = replica_name(local)
    found = [rp for rp in _replicas if os.path.basename(rp) == want]
    for root in glob.glob(os.path.join(REMOTE_HOME, ".cache", "berth", "mounts", "*")):
        rp = os.path.join(root, want)
        if os.path.lexists(rp) or os.path.lexists(rp + ".berth-manifest.json"):
            found.append(rp)
        for tmp in glob.glob(os.path.join(root, f".berth-tmp-{want}*")):
            if "/berth/" in tmp and os.path.isfile(tmp):
                os.unlink(tmp)
    for rp in set(found):
        rm_replica(rp)
    return sorted(set(found))


class MountWatch:
    """While it runs (a thread, every `every` s): notes the mount's replica path (for run.sh's
    trap), keeps the mount's last status entry, and the peak VmRSS of `pid` if given."""

    def __init__(self, host, local, pid=None, every=0.2):
        self.host, self.local, self.pid, self.every = host, local, pid, every
        self.last, self.peak = None, 0
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                if self.pid:
                    self.peak = max(self.peak, rss_kib(self.pid))
                m = mount_of(self.host, self.local)
                if m:
                    self.last = m
                note_replica(m)
            except (OSError, KeyError, ValueError):
                pass
            self._stop.wait(self.every)

    def __enter__(self):
        self._th.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._th.join()

    def brief(self):
        if not self.last:
            return "not listed yet"
        return {k: self.last.get(k) for k in ("state", "files", "uploaded_files", "progress") if k in self.last}


class PartTimeout(Exception):
    pass


class Budget:
    """A part's time limit: left() is what a blocking call may still take."""

    def __init__(self, secs):
        self.secs, self.t0 = secs, time.perf_counter()

    def left(self):
        left = self.secs - (time.perf_counter() - self.t0)
        if left <= 0:
            raise PartTimeout(f"did not finish in {self.secs} s")
        return left

    def elapsed(self):
        return time.perf_counter() - self.t0


# ---------------------------------------------------------------- 5e. remote change -> local
def write_replica(path, content, how):
    """As a container's process would: a temp name in the same folder renamed over the file
    (`rename`, the default), or truncate + write in place (`inplace`)."""
    if how == "inplace":
        with open(path, "wb") as f:
            f.write(content)
        return
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.bench-{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(content)
    os.rename(tmp, path)


def wait_content(path, content, t0, timeout, every=0.002):
    """Polls `path` every `every` s until it holds `content`; seconds since t0, or None."""
    while True:
        try:
            with open(path, "rb") as f:
                if f.read() == content:
                    return time.perf_counter() - t0
        except OSError:
            pass
        if time.perf_counter() - t0 > timeout:
            return None
        time.sleep(every)


def bench_remote(result, hdr, src):
    lo, hi = REMOTE_PAUSE
    hdr(f"5e. remote change -> local: {REMOTE_EDITS} times write new content into a probe file IN THE "
        f"REPLICA on disk ({'temp file + rename' if REMOTE_WRITE != 'inplace' else 'in place'}), then poll "
        f"the LOCAL file (2 ms) until it matches; {lo:.0f}-{hi:.0f} ms random pause between edits; then "
        f"{REMOTE_EXEC_EDITS} writes by `docker exec` through the agent, timed from the exec's return")
    host = E["BERTH_HOST"]
    d = fresh_copy(src, "remote")
    os.makedirs(os.path.join(d, "probe"))
    probe = os.path.join(d, "probe", "probe.txt")
    with open(probe, "w") as f:
        f.write("initial\n")
    name = new_name("remote")
    lat, timeouts, xlat, xrun, xearly, xtimeouts, xfail, rp = [], 0, [], [], 0, 0, [], None
    try:
        _, dt = docker(host, "run", "-d", "--name", name, "-v", f"{d}:/app", IMAGE, "sleep", "600")
        m, w = wait_mount(host, d, lambda m: m and m.get("state") == "watching", secs=60)
        rp = note_replica(m)
        if w is None or not rp:
            raise RuntimeError(f"the mount never showed up watching in the status: {m}")
        print(f"container up after {dt:.2f} s; replica {rp}; mode {m.get('mode')!r}, files {m.get('files')}")
        if m.get("mode") not in (None, "two-way"):
            print(f"   NOTE: mode {m.get('mode')!r}: nothing comes back from the replica; expect timeouts")
        rprobe = os.path.join(rp, "probe", "probe.txt")
        m0 = m
        time.sleep(1.5)  # let the first rounds after the initial sync pass
        for i in range(REMOTE_EDITS):
            content = f"remote {i} {time.time_ns()} {random.getrandbits(64):016x}\n".encode()
            t0 = time.perf_counter()
            write_replica(rprobe, content, REMOTE_WRITE)
            x = wait_content(probe, content, t0, REMOTE_TIMEOUT)
            if x is None:
                timeouts += 1
                x = time.perf_counter() - t0
            lat.append(x)
            time.sleep(random.uniform(lo, hi) / 1000)
        m1 = mount_of(host, d) or {}
        print(f"after the replica edits: status syncs {m0.get('syncs')} -> {m1.get('syncs')}, fetched_files "
              f"{m0.get('fetched_files')} -> {m1.get('fetched_files')}, uploaded_files {m1.get('uploaded_files')}, "
              f"conflicts {m1.get('conflicts')}")
        # docker exec: the exec's end nudges a round; pause long enough that the poll is back to
        # its idle interval (4 rounds at 250 ms after the last change, then >= 1 s)
        for i in range(REMOTE_EXEC_EDITS):
            time.sleep(random.uniform(2.0, 3.0))
            text = f"exec-{i}-{time.time_ns()}-{random.getrandbits(64):016x}"
            content = (text + "\n").encode()
            try:
                r, xdt = docker(host, "exec", name, "sh", "-c", f"echo {text} > /app/probe/probe.txt", timeout=60)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                xfail.append(str(e)[-200:])
                continue
            t0 = time.perf_counter()
            xrun.append(xdt)
            try:
                with open(probe, "rb") as f:
                    xearly += f.read() == content
            except OSError:
                pass
            x = wait_content(probe, content, t0, REMOTE_TIMEOUT)
            if x is None:
                xtimeouts += 1
                x = time.perf_counter() - t0
            xlat.append(x)
        for f in xfail:
            print(f"   docker exec failed: {f}")
        m2 = mount_of(host, d) or {}
        print(f"after the exec edits: status syncs {m1.get('syncs')} -> {m2.get('syncs')}, fetched_files "
              f"{m1.get('fetched_files')} -> {m2.get('fetched_files')}, conflicts {m2.get('conflicts')}")
    finally:
        docker(host, "rm", "-f", name, check=False)
        removed, gone = wait_gone(host, d, rp=rp)
        print(f"after docker rm -f: mount dropped from status {removed}, replica removed {gone}")
    ms = [x * 1000 for x in lat]
    p50, p95 = statistics.median(ms), pct(ms, 0.95)
    print(f"replica write -> local content matches (ms): p50 {p50:.0f}, p95 {p95:.0f}, min {min(ms):.0f}, "
          f"max {max(ms):.0f}; timeouts (> {REMOTE_TIMEOUT} s) {timeouts}/{len(ms)}")
    print("   (the poll runs every 250 ms for 4 rounds after a round that brought a change, else every "
          "max(1 s, 10x the last round); with these pauses most edits land in the 250 ms phase)")
    result("sync_remote_to_local_p50_ms", p50, "<= 1000 ms", p50 <= 1000)
    result("sync_remote_to_local_p95_ms", p95, "reference", None)
    result("sync_remote_to_local_max_ms", max(ms), "reference", None)
    if xlat:
        xms = [x * 1000 for x in xlat]
        print(f"docker exec (through the agent) returned -> local content matches (ms): p50 "
              f"{statistics.median(xms):.0f}, min {min(xms):.0f}, max {max(xms):.0f}, all "
              f"{' '.join(f'{x:.0f}' for x in xms)}; already there when exec returned {xearly}/{len(xms)}; "
              f"timeouts {xtimeouts}; `docker exec` itself took median {statistics.median(xrun) * 1000:.0f} ms")
        result("sync_remote_exec_to_local_p50_ms", statistics.median(xms), "reference (exec end nudges a round)",
               None)
    elif REMOTE_EXEC_EDITS:
        result("sync_remote_exec_to_local_p50_ms", -1.0, f"reference (all {len(xfail)} execs failed)", False)


# ---------------------------------------------------------------- 5f. large tree
def gen_big(root, nfiles, ndirs, seed=20240602):
    """Deterministic: nfiles files of 10 .. 2000 bytes (log-uniform), spread round-robin over
    ndirs leaf dirs (g00/h00 .. : 40 per parent), seeded random content."""
    rng = random.Random(seed)
    leaves = []
    for j in range(ndirs):
        leaf = os.path.join(root, f"g{j // 40:02d}", f"h{j % 40:02d}")
        os.makedirs(leaf, exist_ok=True)
        leaves.append(leaf)
    total = 0
    for i in range(nfiles):
        n = int(10 * 200 ** rng.random())
        with open(os.path.join(leaves[i % ndirs], f"f{i:06d}.dat"), "wb") as f:
            f.write(rng.randbytes(n))
        total += n
    return total


def big_copy(big, tag, probe=False):
    d = fresh_copy(big, tag)
    if probe:
        os.makedirs(os.path.join(d, "probe"))
        with open(os.path.join(d, "probe", "probe.txt"), "w") as f:
            f.write("initial\n")
    return d


def big_first_sync(result, hdr, big, nfiles, total):
    hdr(f"5f(1). first sync of a large tree ({nfiles} files / {total / MB:.0f} MB / {BIG_DIRS} dirs): "
        f"`docker run --rm -v` through an agent (minus `docker run --rm` without -v) vs rsync -a; "
        f"{BIG_ROUNDS} interleaved rounds, limit {BIG_TIMEOUT} s")
    print("(a dedicated agent, so that a sync that overruns can be killed; fresh `cp -al` source per "
          "berth round, copied before the clock starts; `sync` before each run; 1 warmup of `docker run` "
          "without -v only)")
    budget = Budget(BIG_TIMEOUT)
    agent = Agent(tag="big1")
    t = {"berth -v": [], "berth no -v": [], "rsync": []}
    bad, gone_ok, cur, aborted = [], [], {}, [False]

    def run_variant(v):
        if v == "berth no -v":
            return docker(agent.host, "run", "--rm", IMAGE, "true", timeout=budget.left())[1]
        if v == "rsync":
            dt, n = rsync_once(big, SSH_PORT, KNOWN_HOSTS, timeout=budget.left())
            if n != nfiles:
                bad.append(f"rsync copied {n} files")
            return dt
        d = big_copy(big, "bigA")
        cur["d"], cur["name"] = d, new_name("big")
        with MountWatch(agent.host, d) as mw:
            cur["mw"] = mw
            _, dt = docker(agent.host, "run", "--rm", "--name", cur["name"], "-v", f"{d}:/app", IMAGE, "true",
                           timeout=budget.left())
        removed, gone = wait_gone(agent.host, d, secs=min(180, budget.left()),
                                  disk_secs=min(180, budget.left()))
        gone_ok.append(bool(removed and gone is not False))
        if gone_ok[-1]:  # else the agent still holds it: leave it to run.sh's trap
            shutil.rmtree(d, ignore_errors=True)
        cur.clear()
        return dt

    _gone_s.clear()
    try:
        try:
            cur["v"] = "berth no -v (warmup)"
            run_variant("berth no -v")
            for k in range(BIG_ROUNDS):
                order = list(t)
                random.shuffle(order)
                for v in order:
                    cur["v"] = v
                    os.sync()  # the last round's 100k creates/unlinks flushed first (not timed)
                    t[v].append(run_variant(v))
                print(f"   round {k + 1}: " + ", ".join(f"{v} {t[v][-1]:.2f} s" for v in order))
        except (subprocess.TimeoutExpired, PartTimeout):
            aborted[0] = True
            what = cur.get("v", "?")
            extra = f"; mount status then: {cur['mw'].brief()}" if cur.get("mw") else ""
            print(f"   DID NOT FINISH in {BIG_TIMEOUT} s (in `{what}`, after "
                  f"{', '.join(f'{k} {len(x)}' for k, x in t.items())} rounds){extra}")
            result("sync_big_initial_berth_over_rsync", -1.0, f"<= 1.00 (did not finish in {BIG_TIMEOUT} s)",
                   False)
            return
    finally:
        agent.kill(signal.SIGKILL if aborted[0] or cur.get("d") else signal.SIGTERM)
        if cur.get("name"):
            docker(E["DIRECT_HOST"], "rm", "-f", cur["name"], check=False)
        if cur.get("d"):
            left = tidy_replicas_of(cur["d"])
            print(f"   (killed the agent; removed its replica {left or 'none found'})")
    for v, xs in t.items():
        print(f"   {v:12} median {statistics.median(xs):7.2f} s   all: {' '.join(f'{x:.2f}' for x in xs)}")
    mount, base, rs = (statistics.median(t[k]) for k in ("berth -v", "berth no -v", "rsync"))
    sync_only = mount - base
    paired = statistics.median([(a - b) / c for a, b, c in zip(t["berth -v"], t["berth no -v"], t["rsync"])])
    print(f"   berth sync-only estimate: {sync_only:.2f} s ({nfiles / max(sync_only, 1e-3):.0f} files/s); "
          f"rsync {rs:.2f} s ({nfiles / rs:.0f} files/s)")
    print(f"   berth/rsync: sync-only {sync_only / rs:.2f} (median of per-round ratios {paired:.2f}); "
          f"whole `docker run -v` vs rsync {mount / rs:.2f}")
    when = (f"median {statistics.median(_gone_s):.1f} s, max {max(_gone_s):.1f} s after `docker run` returned"
            if _gone_s else "the mount had already left the status when `docker run` returned")
    print(f"   replica gone from the status and the disk within 180 s after each --rm: {sum(gone_ok)}/{len(gone_ok)} "
          f"({when}; not timed)" + (f"; problems: {bad[:3]}" if bad else ""))
    result("sync_big_initial_berth_over_rsync", sync_only / rs, "<= 1.00", sync_only / rs <= 1.0)
    result("sync_big_initial_berth_run_over_rsync", mount / rs, "reference (incl. container start)", None)


def big_watch(result, hdr, big, nfiles):
    hdr(f"5f(3)+(2). watching the large tree ({nfiles} files + probe): a fresh agent's VmRSS before / 2 s "
        f"after `docker run -d -v … sleep` is watching; then {BIG_EDITS} local edits -> replica (as 5c); "
        f"limit {BIG_TIMEOUT} s each")
    d = big_copy(big, "bigW", probe=True)
    probe = os.path.join(d, "probe", "probe.txt")
    name = new_name("bigw")
    agent = Agent(tag="bigW")
    rp, killed = None, False
    try:
        docker(agent.host, "ps")
        status(agent.host)
        time.sleep(1.0)
        before = rss_kib(agent.pid)
        budget = Budget(BIG_TIMEOUT)
        with MountWatch(agent.host, d, pid=agent.pid, every=0.1) as mw:
            try:
                _, dt = docker(agent.host, "run", "-d", "--name", name, "-v", f"{d}:/app", IMAGE, "sleep", "3600",
                               timeout=budget.left())
                m, w = wait_mount(agent.host, d, lambda m: m and m.get("state") == "watching",
                                  secs=budget.left(), every=0.1)
                if w is None:
                    raise PartTimeout(f"did not finish in {BIG_TIMEOUT} s")
            except (subprocess.TimeoutExpired, PartTimeout):
                print(f"   (3) DID NOT FINISH in {BIG_TIMEOUT} s: `docker run -d -v` + watching "
                      f"(mount status then: {mw.brief()})")
                result("sync_big_rss_bytes_per_file", -1.0, f"<= 150 (did not finish in {BIG_TIMEOUT} s)", False)
                result("sync_big_edit_to_replica_p50_ms", -1.0, "<= 100 ms (no watching mount)", False)
                killed = True
                return
        time.sleep(2.0)
        after = rss_kib(agent.pid)
        m = mount_of(agent.host, d) or {}
        rp = note_replica(m)
        files = m.get("files") or (nfiles + 1)
        per = (after - before) * 1024 / files
        print(f"   (3) docker run -d -v {dt:.1f} s ({files / dt:.0f} files/s), watching after {budget.elapsed():.1f} s; "
              f"status files {m.get('files')}, bytes {m.get('bytes')}, mode {m.get('mode')!r}; agent VmRSS before "
              f"{before / 1024:.1f} MiB, 2 s after watching {after / 1024:.1f} MiB, peak during sync "
              f"{mw.peak / 1024:.1f} MiB -> {per:.0f} bytes/file")
        result(f"sync_big_rss_bytes_per_file_{nfiles // 1000}k", per, "<= 150", per <= 150)
        rprobe = os.path.join(rp, "probe", "probe.txt")
        budget = Budget(BIG_TIMEOUT)
        lat, timeouts, content = local_edits(probe, rprobe, BIG_EDITS, per_edit=min(30, BIG_TIMEOUT),
                                             deadline=budget.t0 + BIG_TIMEOUT)
        m2 = mount_of(agent.host, d) or {}
        late = rss_kib(agent.pid)
        print(f"   (2) {len(lat)}/{BIG_EDITS} edits in {budget.elapsed():.1f} s; status syncs {m.get('syncs')} -> "
              f"{m2.get('syncs')}, uploaded_files {m2.get('uploaded_files')}; agent VmRSS after the edits "
              f"{late / 1024:.1f} MiB ({(late - before) * 1024 / files:.0f} bytes/file)")
        if len(lat) < BIG_EDITS:
            print(f"   (2) DID NOT FINISH in {BIG_TIMEOUT} s ({len(lat)}/{BIG_EDITS} edits)")
            result("sync_big_edit_to_replica_p50_ms", -1.0, f"<= 100 ms (did not finish in {BIG_TIMEOUT} s)",
                   False)
            return
        ms = [x * 1000 for x in lat]
        p50, p95 = statistics.median(ms), pct(ms, 0.95)
        print(f"   (2) local write -> replica content matches (ms): p50 {p50:.0f}, p95 {p95:.0f}, min {min(ms):.0f}, "
              f"max {max(ms):.0f}; timeouts (> {min(30, BIG_TIMEOUT)} s) {timeouts}/{len(ms)}")
        result("sync_big_edit_to_replica_p50_ms", p50, "<= 100 ms", p50 <= 100)
        result("sync_big_edit_to_replica_p95_ms", p95, "<= 250 ms", p95 <= 250)
    finally:
        if killed:
            agent.kill(signal.SIGKILL)
            docker(E["DIRECT_HOST"], "rm", "-f", name, check=False)
            print(f"   (killed the agent; removed its replica {tidy_replicas_of(d) or 'none found'})")
        else:
            docker(agent.host, "rm", "-f", name, check=False, timeout=120)
            removed, gone = wait_gone(agent.host, d, secs=180, rp=rp, disk_secs=180)
            print(f"   after docker rm -f: mount dropped from status {removed}, replica removed {gone}")
            agent.kill(signal.SIGKILL if removed is False else signal.SIGTERM)
            if not gone:
                tidy_replicas_of(d)
        shutil.rmtree(d, ignore_errors=True)


def bench_big(result, hdr, which):
    big = os.path.join(D, "big")
    t0 = time.perf_counter()
    total = gen_big(big, BIG_FILES, BIG_DIRS)
    print(f"\n(generated the large tree: {BIG_FILES} files, {total / MB:.1f} MB, 10 B .. 2 kB log-uniform, "
          f"{BIG_DIRS} leaf dirs, in {time.perf_counter() - t0:.1f} s)")
    if "big1" in which:
        t1 = time.time()
        big_first_sync(result, hdr, big, BIG_FILES, total)
        print(f"(5f(1): {time.time() - t1:.0f} s)")
    if "big23" in which:
        t1 = time.time()
        big_watch(result, hdr, big, BIG_FILES)
        print(f"(5f(2)+(3): {time.time() - t1:.0f} s)")
    shutil.rmtree(big, ignore_errors=True)


PARTS = {  # token -> part names; BENCH_SYNC_PARTS (or SYNC_PARTS) is a comma list of tokens
    "5a": ["initial"], "5b": ["readopt"], "5c": ["edit"], "5d": ["memory"], "5e": ["remote"],
    "5f": ["big1", "big23"], "5f1": ["big1"], "5f2": ["big23"], "5f3": ["big23"],
    "initial": ["initial"], "readopt": ["readopt"], "edit": ["edit"], "memory": ["memory"],
    "remote": ["remote"], "big": ["big1", "big23"],
}


def wanted_parts():
    raw = E.get("BENCH_SYNC_PARTS") or E.get("SYNC_PARTS") or "5a,5b,5c,5d,5e,5f"
    toks = [x.strip().lower() for x in raw.split(",") if x.strip()]
    unknown = [x for x in toks if x not in PARTS]
    if unknown:
        raise SystemExit(f"unknown sync part(s) {unknown}; known: {', '.join(PARTS)}")
    return {p for x in toks for p in PARTS[x]}


def bench_sync(result, hdr):
    if "mounts" not in status(E["BERTH_HOST"]):
        raise RuntimeError("this berth-agent has no bind-mount sync (no \"mounts\" in /berth/v1/status)")
    parts = wanted_parts()
    print(f"\n(sync parts: {', '.join(p for p in ('initial', 'readopt', 'edit', 'memory', 'remote', 'big1', 'big23') if p in parts)})")
    os.makedirs(D, exist_ok=True)
    src, total = os.path.join(D, "src"), 0
    if parts & {"initial", "readopt", "edit", "remote"}:
        t0 = time.perf_counter()
        sizes, total = gen_tree(src, NFILES, TOTAL_MB * MB)
        print(f"\n(generated {NFILES} files, {total / MB:.1f} MB, sizes {min(sizes)} B .. {max(sizes) / MB:.1f} MB, "
              f"median {statistics.median(sizes) / 1000:.1f} kB, in {time.perf_counter() - t0:.1f} s)")
    for f in (bench_initial, bench_readopt, bench_edit, bench_memory, bench_remote):
        if f.__name__[6:] not in parts:
            continue
        t1 = time.time()
        if f is bench_initial:
            f(result, hdr, src, total)
        elif f is bench_memory:
            f(result, hdr)
        else:
            f(result, hdr, src)
        print(f"({f.__name__[6:]}: {time.time() - t1:.0f} s)")
    if parts & {"big1", "big23"}:
        t1 = time.time()
        bench_big(result, hdr, parts)
        print(f"(big: {time.time() - t1:.0f} s)")
