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
SYNC_PARTS=initial,readopt,edit,memory (any subset).

5a. initial sync: `docker run --rm -v DIR:/app IMAGE true` through the agent (the create blocks
    until the replica is complete) minus `docker run --rm IMAGE true`, vs rsync -a over OpenSSH
    into an empty dir; interleaved, shuffled; then the same through a relay adding RTT.
5b. re-adopt: SIGKILL the agent that owns a running container's mount, start another one, time
    from its ready line until /berth/v1/status shows the mount "watching"; uploaded_files == 0?
5c. edit -> replica: rewrite a file locally, poll the replica file (remote == this machine).
5d. agent RSS per tracked file: fresh agent, RSS before/after syncing a tree of tiny files.
"""
import asyncio
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
        s.sendall(b"GET /berth/v1/status HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n")
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


def wait_gone(host, local, secs=60, rp=None):
    """After the last container went: until the agent drops the mount; then is the replica gone?"""
    m = mount_of(host, local)
    rp = note_replica(m) or rp
    _, dt = wait_mount(host, local, lambda m: m is None, secs=secs, every=0.05)
    gone = None
    if rp:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 60 and (os.path.exists(rp) or os.path.exists(rp + ".berth-manifest.json")):
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
def rsync_once(src, port, known_hosts):
    _seq[0] += 1
    dst = os.path.join(D, f"rsync-dst{_seq[0]}")
    ssh = (f"/usr/bin/ssh -F {E['BENCH_SSH_CONFIG']} -i {SSH_KEY} -o UserKnownHostsFile={known_hosts} "
           f"-o IdentitiesOnly=yes -o BatchMode=yes -p {port}")
    t0 = time.perf_counter()
    r = subprocess.run(["rsync", "-a", "-e", ssh, src + "/", f"{SSH_USER}@127.0.0.1:{dst}/"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"rsync failed: {r.stderr.decode(errors='replace').strip()}")
    n = sum(len(fs) for _, _, fs in os.walk(dst))
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
        for i in range(EDITS):
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
                if time.perf_counter() - t0 > 5:
                    timeouts += 1
                    break
                time.sleep(0.001)
            lat.append(time.perf_counter() - t0)
            time.sleep(random.uniform(0.05, 0.15))  # so successive edits don't share a debounce window
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


def bench_sync(result, hdr):
    if "mounts" not in status(E["BERTH_HOST"]):
        raise RuntimeError("this berth-agent has no bind-mount sync (no \"mounts\" in /berth/v1/status)")
    os.makedirs(D, exist_ok=True)
    src = os.path.join(D, "src")
    t0 = time.perf_counter()
    sizes, total = gen_tree(src, NFILES, TOTAL_MB * MB)
    print(f"\n(generated {NFILES} files, {total / MB:.1f} MB, sizes {min(sizes)} B .. {max(sizes) / MB:.1f} MB, "
          f"median {statistics.median(sizes) / 1000:.1f} kB, in {time.perf_counter() - t0:.1f} s)")
    parts = E.get("SYNC_PARTS", "initial,readopt,edit,memory").split(",")
    for f in (bench_initial, bench_readopt, bench_edit, bench_memory):
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
