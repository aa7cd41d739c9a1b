#!/usr/bin/env python3
"""Berth benchmark driver (called by bench/run.sh, which sets everything up).

Environment (all set by run.sh):
  AGENT_PID, BERTH_HOST (tcp://127.0.0.1:PORT), DIRECT_HOST (unix://...),
  SSHL_HOST (unix://... forwarded by `ssh -N -L`), SSHL_PID, SSHURL_HOST (ssh://...),
  SSH_PATH (PATH whose first `ssh` adds `-F <bench ssh_config>`), BENCH_CONFIG (DOCKER_CONFIG),
  CONTAINER, PS_RUNS, EXEC_RUNS, EXEC_BYTES, CONC, BENCH_SECTIONS (default rss,ps,exec,ports,sync,idle,wan);
  section 4 (port forwarding) lives in ports.py, section 5 (bind-mount sync) in sync.py, section 6 (idle) in idle.py,
  section 7 (a ~20 ms RTT link) in wan.py, see there
  for their extra variables.
Every timing is measured side by side: the variants are interleaved round by round in a
shuffled order, and ratios are computed from medians (plus the median of per-round ratios).
"""
import os
import random
import re
import socket
import statistics
import subprocess
import threading
import time

E = os.environ
AGENT_PID = int(E["AGENT_PID"])
SSHL_PID = int(E["SSHL_PID"])
CONTAINER = E["CONTAINER"]
PS_RUNS = int(E.get("PS_RUNS", "60"))
EXEC_RUNS = int(E.get("EXEC_RUNS", "5"))
EXEC_BYTES = int(E.get("EXEC_BYTES", str(256 << 20)))
CONC = int(E.get("CONC", "100"))
MIB = 1 << 20

VARIANTS = {  # name -> DOCKER_HOST
    "direct": E["DIRECT_HOST"],
    "berth": E["BERTH_HOST"],
    "ssh-L": E["SSHL_HOST"],
    "ssh://": E["SSHURL_HOST"],
}


def env_for(host):
    env = dict(os.environ)
    env["DOCKER_HOST"] = host
    env["DOCKER_CONFIG"] = E["BENCH_CONFIG"]
    env.pop("DOCKER_CONTEXT", None)
    if host.startswith("ssh://"):
        env["PATH"] = E["SSH_PATH"]
    return env


if E.get("SSHL_GCM_HOST"):  # optional exec-only variant: ssh -L forced to aes128-gcm
    VARIANTS["ssh-L-gcm"] = E["SSHL_GCM_HOST"]
ENVS = {k: env_for(v) for k, v in VARIANTS.items()}
_m = re.fullmatch(r"tcp://([0-9.]+):([0-9]+)", VARIANTS["berth"])
BERTH_TCP = (_m.group(1), int(_m.group(2)))
API = E.get("API_VERSION", "1.41")


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def cpu_s(pid):
    """utime+stime of a process (children excluded), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nfds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def reset_hwm(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current VmRSS
        return True
    except OSError:
        return False


def mib(kib):
    return kib / 1024


def docker_ps(variant, capture=False):
    t0 = time.perf_counter()
    r = subprocess.run(["docker", "ps"], env=ENVS[variant], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE if capture else subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"docker ps via {variant} failed: {r.stderr.decode(errors='replace') if capture else r.returncode}")
    return dt


def q(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


RESULTS = []  # (name, value, target, ok-or-None)


def result(name, value, target, ok):
    RESULTS.append((name, value, target, ok))


def hdr(s):
    print(f"\n=== {s} ===", flush=True)


# ---------------------------------------------------------------- 3. RSS (fresh agent first)
def bench_rss():
    hdr("3. berth-agent memory")
    docker_ps("berth", capture=True)
    time.sleep(1.0)
    idle = status_kib(AGENT_PID, "VmRSS")
    hwm0 = status_kib(AGENT_PID, "VmHWM")
    print(f"idle after connect + one docker ps: VmRSS {mib(idle):.1f} MiB (VmHWM so far {mib(hwm0):.1f} MiB)")
    result("rss_idle_MiB", mib(idle), "<= 20 MiB", mib(idle) <= 20)

    hwm_reset = reset_hwm(AGENT_PID)
    samples, fds = [], []
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            try:
                samples.append(status_kib(AGENT_PID, "VmRSS"))
                fds.append(nfds(AGENT_PID))
            except (OSError, KeyError):
                pass
            time.sleep(0.01)

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    time.sleep(0.05)
    base_fds = nfds(AGENT_PID)
    # all CONC processes are spawned first and held at a start line (a read on stdin), then
    # released together; the docker CLI's own start-up CPU still spreads them out on 2 cores.
    procs = [subprocess.Popen(["sh", "-c", "read _ || true; exec docker ps"], env=ENVS["berth"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(CONC)]
    t0 = time.perf_counter()
    for p in procs:
        p.stdin.close()
    errs = []
    for p in procs:
        err = p.stderr.read()
        p.wait()
        if p.returncode != 0:
            errs.append(err.decode(errors="replace").strip().splitlines()[-1:] or ["(no stderr)"])
    wall = time.perf_counter() - t0
    time.sleep(0.1)
    stop.set()
    th.join()
    hwm = status_kib(AGENT_PID, "VmHWM")
    peak_sampled = max(samples) if samples else 0
    peak = max(peak_sampled, hwm) if hwm_reset else peak_sampled
    print(f"{CONC} concurrent docker ps: {CONC - len(errs)} ok, {len(errs)} failed, wall {wall:.2f} s")
    for e in errs[:5]:
        print(f"   failure: {e[0]}")
    print(f"peak VmRSS: sampled {mib(peak_sampled):.1f} MiB ({len(samples)} samples), "
          f"VmHWM {mib(hwm):.1f} MiB{' (reset before the burst)' if hwm_reset else ' (NOT reset: lifetime peak)'}")
    print(f"agent open fds: {base_fds} before, max {max(fds) if fds else -1} during the burst "
          f"(rough concurrency indicator)")
    time.sleep(1.0)
    print(f"VmRSS 1 s after the burst: {mib(status_kib(AGENT_PID, 'VmRSS')):.1f} MiB")
    result("concurrent_ps_failures", len(errs), f"== 0 of {CONC}", len(errs) == 0)
    result("rss_peak_concurrent_MiB", mib(peak), "<= 40 MiB", mib(peak) <= 40)
    raw_burst()


def raw_burst():
    """Supplementary: CONC raw HTTP clients that all hold their connection open at once
    (a barrier, then GET /containers/json), i.e. CONC truly simultaneous SSH channels,
    which the docker-CLI burst above cannot reach on 2 cores."""
    host, port = BERTH_TCP
    reset_hwm(AGENT_PID)
    barrier = threading.Barrier(CONC)
    ok, bad = [0], []
    lock = threading.Lock()

    def client():
        try:
            s = socket.create_connection((host, port), timeout=60)
            barrier.wait(timeout=60)
            s.sendall(f"GET /v{API}/containers/json HTTP/1.1\r\nHost: docker\r\n"
                      "Connection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            s.close()
            with lock:
                if data.startswith(b"HTTP/1.1 200"):
                    ok[0] += 1
                else:
                    bad.append(data[:80])
        except Exception as e:  # noqa: BLE001
            with lock:
                bad.append(repr(e))

    samples = []
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            try:
                samples.append(status_kib(AGENT_PID, "VmRSS"))
            except (OSError, KeyError):
                pass
            time.sleep(0.01)

    sm = threading.Thread(target=sampler, daemon=True)
    sm.start()
    ths = [threading.Thread(target=client) for _ in range(CONC)]
    t0 = time.perf_counter()
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    wall = time.perf_counter() - t0
    time.sleep(0.1)
    stop.set()
    sm.join()
    peak = max(max(samples or [0]), status_kib(AGENT_PID, "VmHWM"))
    print(f"supplementary: {CONC} simultaneous raw HTTP GET /containers/json (barrier): "
          f"{ok[0]} ok, {len(bad)} failed, wall {wall:.2f} s, peak VmRSS {mib(peak):.1f} MiB")
    for b in bad[:3]:
        print(f"   failure: {b}")
    result("raw_concurrent_failures", len(bad), f"== 0 of {CONC}", not bad)
    result("rss_peak_raw_concurrent_MiB", mib(peak), "<= 40 MiB", mib(peak) <= 40)


# ---------------------------------------------------------------- 1. docker ps latency
def bench_ps():
    names = ["direct", "berth", "ssh-L", "ssh://"]
    hdr(f"1. docker ps latency ({PS_RUNS} interleaved rounds in shuffled order, ssh:// in every "
        f"2nd round; 3 warmup each)")
    for _ in range(3):
        for v in names:
            docker_ps(v, capture=True)
    t = {v: [] for v in names}
    for i in range(PS_RUNS):
        order = [v for v in names if v != "ssh://" or i % 2 == 0]
        random.shuffle(order)
        for v in order:
            t[v].append(docker_ps(v, capture=True))
    print(f"{'variant':8} {'n':>3} {'median':>9} {'p10':>9} {'p90':>9} {'min':>9}   (ms)")
    for v in names:
        xs = [x * 1000 for x in t[v]]
        print(f"{v:8} {len(xs):3} {statistics.median(xs):9.1f} {q(xs, .1):9.1f} {q(xs, .9):9.1f} {min(xs):9.1f}")

    def ratio(a, b, name, target, ok):
        r = statistics.median(t[a]) / statistics.median(t[b])
        if len(t[a]) == len(t[b]):
            paired = statistics.median([x / y for x, y in zip(t[a], t[b])])
            extra = f", median of per-round ratios {paired:.2f}, ratio of p10s {q(t[a], .1) / q(t[b], .1):.2f}"
        else:
            extra = f", ratio of p10s {q(t[a], .1) / q(t[b], .1):.2f}"
        print(f"{a}/{b}: ratio of medians {r:.2f}{extra}")
        result(name, r, target, ok(r) if ok else None)

    ratio("berth", "direct", "ps_berth_over_direct", "<= 1.20", lambda r: r <= 1.2)
    ratio("ssh://", "berth", "ps_sshurl_over_berth", ">= 10", lambda r: r >= 10)
    ratio("ssh-L", "direct", "ps_sshL_over_direct", "reference", None)
    ratio("berth", "ssh-L", "ps_berth_over_sshL", "reference", None)


# ---------------------------------------------------------------- 2. exec stdin throughput
def exec_once(variant, nbytes):
    cmd = (f"head -c {nbytes} /dev/zero | docker exec -i {CONTAINER} sh -c 'cat >/dev/null'")
    pid = {"berth": AGENT_PID, "ssh-L": SSHL_PID,
           "ssh-L-gcm": int(E.get("SSHL_GCM_PID") or 0)}.get(variant)
    c0 = cpu_s(pid) if pid else 0.0
    t0 = time.perf_counter()
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], env=ENVS[variant],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"exec via {variant} failed: {r.stderr.decode(errors='replace')}")
    return dt, (cpu_s(pid) - c0 if pid else None)


def bench_exec():
    names = ["direct", "berth", "ssh-L"] + (["ssh-L-gcm"] if "ssh-L-gcm" in VARIANTS else [])
    hdr(f"2. {EXEC_BYTES // MIB} MiB into `docker exec -i` ({EXEC_RUNS} interleaved rounds, 1 warmup each)")
    for v in names:
        exec_once(v, 16 * MIB)
    t = {v: [] for v in names}
    cpu = {v: [] for v in names}
    for _ in range(EXEC_RUNS):
        order = names[:]
        random.shuffle(order)
        for v in order:
            dt, c = exec_once(v, EXEC_BYTES)
            t[v].append(dt)
            if c is not None:
                cpu[v].append(c)
    print(f"{'variant':8} {'median s':>9} {'min s':>8} {'max s':>8} {'MiB/s':>8}  forwarder CPU s (median)")
    for v in names:
        m = statistics.median(t[v])
        c = f"{statistics.median(cpu[v]):.2f} ({'berth-agent' if v == 'berth' else v + ' client'})" if cpu[v] else "-"
        print(f"{v:8} {m:9.2f} {min(t[v]):8.2f} {max(t[v]):8.2f} {EXEC_BYTES / MIB / m:8.0f}  {c}")
    for a, b, name, target, ok in [
        ("berth", "ssh-L", f"exec{EXEC_BYTES // MIB}M_berth_over_sshL", "<= 1.00", lambda r: r <= 1.0),
        ("berth", "direct", f"exec{EXEC_BYTES // MIB}M_berth_over_direct", "reference", None),
        ("ssh-L", "direct", f"exec{EXEC_BYTES // MIB}M_sshL_over_direct", "reference", None),
    ] + ([("berth", "ssh-L-gcm", f"exec{EXEC_BYTES // MIB}M_berth_over_sshLgcm", "reference", None)]
         if "ssh-L-gcm" in t else []):
        r = statistics.median(t[a]) / statistics.median(t[b])
        paired = statistics.median([x / y for x, y in zip(t[a], t[b])])
        print(f"{a}/{b} time: ratio of medians {r:.2f}, median of per-round ratios {paired:.2f}")
        result(name, r, target, ok(r) if ok else None)
    print(f"berth-agent after the transfers: VmRSS {mib(status_kib(AGENT_PID, 'VmRSS')):.1f} MiB, "
          f"VmHWM since the burst reset {mib(status_kib(AGENT_PID, 'VmHWM')):.1f} MiB")


def bench_ports():
    import ports  # bench/ports.py: section 4, port forwarding
    ports.bench_ports(result, hdr)


def bench_sync():
    import sync  # bench/sync.py: section 5, bind-mount sync
    sync.bench_sync(result, hdr)


def bench_wan():
    import wan  # bench/wan.py: section 7, the docker CLI over a ~20 ms RTT link
    wan.bench_wan(result, hdr)


def bench_jump():
    import wan  # bench/wan.py: section 8, connecting through a jump host
    wan.bench_jump(result, hdr)


def bench_idle():
    import idle  # bench/idle.py: section 6, what an idle Berth costs
    idle.bench_idle(result, hdr)


SECTIONS = {"rss": bench_rss, "ps": bench_ps, "exec": bench_exec, "ports": bench_ports,
            "sync": bench_sync, "idle": bench_idle, "wan": bench_wan, "jump": bench_jump}


def main():
    random.seed()
    t0 = time.time()
    phases = []
    wanted = [s for s in E.get("BENCH_SECTIONS", "rss,ps,exec,ports,sync,idle,wan").split(",") if s]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; known: {','.join(SECTIONS)}")
    # always in this order: rss first (the agent is fresh, so "idle" is idle), sync last
    for name in [s for s in SECTIONS if s in wanted]:
        f = SECTIONS[name]
        t1 = time.time()
        f()
        phases.append(f"{name} {time.time() - t1:.0f} s")
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    hdr(f"summary (measurement {time.time() - t0:.0f} s: {', '.join(phases)}; load now {load})")
    for name, value, target, ok in RESULTS:
        verdict = "" if ok is None else ("  meets target" if ok else "  MISSES target")
        kind = "RATIO" if "_over_" in name else "VALUE"
        if isinstance(value, str):
            fmt = value
        elif isinstance(value, int):
            fmt = f"{value:.0f}"
        else:
            fmt = f"{value:.2f}"
        print(f"{kind} {name} = {fmt} (target {target}){verdict}")


if __name__ == "__main__":
    main()
