#!/usr/bin/env python3
"""Berth benchmark, section 4: automatic port forwarding (imported by bench.py; run.sh sets
everything up, `bash bench/run.sh ports` runs this section alone).

Extra environment (set by run.sh): BENCH_WORK (run.sh's temp dir: the ssh -L pid and every
container name created here are recorded in it, so run.sh's trap can clean up after a kill),
BENCH_SSH_CONFIG, SSH_PORT, SSH_USER, TEST_IMAGE, DIRECT_HOST, BERTH_HOST, BENCH_CONFIG.
Knobs: PORTS_RUNS=5 PORTS_MIB=256 PORTS_OPEN_RUNS=100 PORTS_CLOSE_RUNS=30 SSHL_GCM=0.

4a. PORTS_MIB MiB HTTP download (busybox httpd in a container started through the agent) via
    the Berth listener, via `ssh -N -L Q:127.0.0.1:R` to the container's remote published port
    R, and direct to R; interleaved rounds in shuffled order after one warmup each.
4b. `docker run -d -p P:80` through the agent, then at once ONE connect to 127.0.0.1:P.
4c. `docker stop -t 0` through the agent, then a connect every 1 ms until 127.0.0.1:P refuses.
"""
import errno
import json
import os
import random
import re
import socket
import statistics
import subprocess
import time

E = os.environ
MB = 1_000_000
MIB = 1 << 20
PORTS_RUNS = int(E.get("PORTS_RUNS", "5"))
PORTS_MIB = int(E.get("PORTS_MIB", "256"))
OPEN_RUNS = int(E.get("PORTS_OPEN_RUNS", "100"))
CLOSE_RUNS = int(E.get("PORTS_CLOSE_RUNS", "30"))
CLOSE_CAP_S = 3.0  # give up polling for "refused" after this long
IMAGE = E["TEST_IMAGE"]
HTTPD = ["httpd", "-f", "-p", "80", "-h", "/www"]
WORK = E["BENCH_WORK"]
AGENT_PID = int(E["AGENT_PID"])
_m = re.fullmatch(r"tcp://([0-9.]+):([0-9]+)", E["BERTH_HOST"])
BERTH_TCP = (_m.group(1), int(_m.group(2)))


def _env(host):
    env = dict(os.environ)
    env["DOCKER_HOST"] = host
    env["DOCKER_CONFIG"] = E["BENCH_CONFIG"]
    env.pop("DOCKER_CONTEXT", None)
    return env


ENV_BERTH = _env(E["BERTH_HOST"])
ENV_DIRECT = _env(E["DIRECT_HOST"])
_seq = [0]


def new_name(tag):
    """A container name unique to this run, recorded for run.sh's trap before it exists."""
    _seq[0] += 1
    name = f"berth-bench-{E.get('BENCH_ID', os.getppid())}-{tag}{_seq[0]}"
    with open(os.path.join(WORK, "ports-containers"), "a") as f:
        f.write(name + "\n")
    return name


def docker(env, *args, check=True):
    t0 = time.perf_counter()
    r = subprocess.run(["docker", *args], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if check and r.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {r.stderr.decode(errors='replace').strip()}")
    return r, dt


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    """A port free on 127.0.0.1 and (if there is one) [::1]: Berth listens on both for -p P:80."""
    for _ in range(50):
        s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s4.bind(("127.0.0.1", 0))
        port = s4.getsockname()[1]
        try:
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            try:
                s6.bind(("::1", port))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    continue
            finally:
                s6.close()
        except OSError:
            pass  # no IPv6
        finally:
            s4.close()
        return port
    raise RuntimeError("no free port")


def try_connect(host, port, timeout=1.0):
    """One connect attempt: 'ok', 'refused' or the error's name."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        return "ok"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return type(e).__name__ + (f"({errno.errorcode.get(e.errno, e.errno)})" if e.errno else "")
    finally:
        s.close()


def berth_status():
    host, port = BERTH_TCP
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"GET /berth/v1/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():  # de-chunk
        out, rest = b"", body
        while rest:
            n, _, rest = rest.partition(b"\r\n")
            n = int(n.split(b";")[0], 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return json.loads(body)


def remote_port(name):
    r, _ = docker(ENV_DIRECT, "port", name, "80")
    for line in r.stdout.decode().split():
        if line.startswith("127.0.0.1:"):
            return int(line.rsplit(":", 1)[1])
    raise RuntimeError(f"daemon did not publish {name}:80 on 127.0.0.1: {r.stdout!r}")


def wait_listening(port, pid=None, what="", secs=10):
    for _ in range(int(secs * 100)):
        if try_connect("127.0.0.1", port) == "ok":
            return
        if pid is not None and pid.poll() is not None:
            raise RuntimeError(f"{what} exited: {pid.stderr.read().decode(errors='replace')}")
        time.sleep(0.01)
    raise RuntimeError(f"{what} not listening on 127.0.0.1:{port}")


def start_sshL(lport, rport, cipher=None):
    cmd = ["/usr/bin/ssh", "-F", E["BENCH_SSH_CONFIG"], "-N", "-o", "ExitOnForwardFailure=yes",
           "-p", E["SSH_PORT"], "-L", f"127.0.0.1:{lport}:127.0.0.1:{rport}"]
    if cipher:
        cmd += ["-c", cipher]
    p = subprocess.Popen(cmd + [f"{E['SSH_USER']}@127.0.0.1"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with open(os.path.join(WORK, "ports-sshL.pids"), "a") as f:
        f.write(f"{p.pid}\n")
    wait_listening(lport, p, "ssh -L")
    return p


def download(port, pid):
    c0 = cpu_s(pid) if pid else None
    t0 = time.perf_counter()
    r = subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}",
                        f"http://127.0.0.1:{port}/big"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    got = int(r.stdout or b"0")
    if r.returncode != 0 or got != PORTS_MIB * MIB:
        raise RuntimeError(f"download from 127.0.0.1:{port}: curl rc {r.returncode}, {got} bytes, "
                           f"{r.stderr.decode(errors='replace').strip()}")
    return dt, (cpu_s(pid) - c0 if pid else None)


# ---------------------------------------------------------------- 4a. throughput
def bench_download(result, hdr):
    hdr(f"4a. {PORTS_MIB} MiB HTTP download from a container: Berth -p listener vs ssh -L to the "
        f"same remote port vs direct ({PORTS_RUNS} interleaved rounds in shuffled order, 1 warmup each)")
    name = new_name("dl")
    lport = free_port()
    procs = []
    try:
        docker(ENV_BERTH, "run", "-d", "--name", name, "-p", f"{lport}:80", IMAGE, *HTTPD)
        docker(ENV_DIRECT, "exec", name, "sh", "-c",
               f"dd if=/dev/zero of=/www/big bs=1M count={PORTS_MIB} 2>/dev/null")
        rport = remote_port(name)
        qport = free_port()
        procs.append(start_sshL(qport, rport))
        variants = {"berth": (lport, AGENT_PID), "ssh-L": (qport, procs[0].pid), "direct": (rport, None)}
        if E.get("SSHL_GCM") == "1":
            gport = free_port()
            procs.append(start_sshL(gport, rport, "aes128-gcm@openssh.com"))
            variants["ssh-L-gcm"] = (gport, procs[-1].pid)
        fw = [f for c in berth_status().get("forwards", [])
              if c.get("name", "").lstrip("/") == name for f in c.get("forwards", [])]
        print(f"container {name}: daemon published 80 on 127.0.0.1:{rport}; "
              f"Berth listens on {', '.join(f['local'] + ' (' + f['state'] + ', remote_port ' + str(f['remote_port']) + ')' for f in fw) or 'NOTHING in /berth/v1/status'}; "
              f"ssh -L on 127.0.0.1:{qport}")
        names = list(variants)
        for v in names:
            download(*variants[v])
        t = {v: [] for v in names}
        cpu = {v: [] for v in names}
        for _ in range(PORTS_RUNS):
            order = names[:]
            random.shuffle(order)
            for v in order:
                dt, c = download(*variants[v])
                t[v].append(dt)
                if c is not None:
                    cpu[v].append(c)
        size_mb = PORTS_MIB * MIB / MB
        print(f"{'variant':9} {'median MB/s':>11} {'min MB/s':>9} {'max MB/s':>9}  forwarder CPU s (median)")
        for v in names:
            m = statistics.median(t[v])
            c = (f"{statistics.median(cpu[v]):.2f} ({'berth-agent' if v == 'berth' else v + ' client'})"
                 if cpu[v] else "-")
            print(f"{v:9} {size_mb / m:11.0f} {size_mb / max(t[v]):9.0f} {size_mb / min(t[v]):9.0f}  {c}")
        pairs = [("berth", "ssh-L", ">= 1.00", lambda r: r >= 1.0),
                 ("berth", "direct", "reference", None), ("ssh-L", "direct", "reference", None)]
        if "ssh-L-gcm" in t:
            pairs.append(("berth", "ssh-L-gcm", "reference", None))
        for a, b, target, ok in pairs:
            r = statistics.median(t[b]) / statistics.median(t[a])  # throughput ratio = inverse time ratio
            paired = statistics.median([y / x for x, y in zip(t[a], t[b])])
            print(f"{a}/{b} throughput: ratio of medians {r:.2f}, median of per-round ratios {paired:.2f}")
            result(f"portfwd_dl{PORTS_MIB}M_{a.replace('-', '')}_over_{b.replace('-', '')}_throughput", r, target,
                   ok(r) if ok else None)
        fw = [f for c in berth_status().get("forwards", [])
              if c.get("name", "").lstrip("/") == name for f in c.get("forwards", [])]
        for f in fw:
            print(f"status after: {f['local']} total_connections {f.get('total_connections')}, "
                  f"bytes_from_container {f.get('bytes_from_container', 0) / MIB:.0f} MiB, "
                  f"open_connections {f.get('open_connections')}")
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        docker(ENV_BERTH, "rm", "-f", name, check=False)


# ---------------------------------------------------------------- 4b. open on return
def bench_open(result, hdr):
    hdr(f"4b. listener open when `docker run -d -p P:80` returns ({OPEN_RUNS} runs through the "
        f"agent, fresh P each run; ONE connect to 127.0.0.1:P right after, no retry)")
    ok, v6ok, closed_after_rm = 0, 0, 0
    fails, run_t, rm_t = [], [], []
    for i in range(OPEN_RUNS):
        name = new_name("open")
        port = free_port()
        try:
            _, dt = docker(ENV_BERTH, "run", "-d", "--name", name, "-p", f"{port}:80", IMAGE, *HTTPD)
            r4 = try_connect("127.0.0.1", port)  # immediately: nothing between return and connect
            r6 = try_connect("::1", port)
            run_t.append(dt)
            ok += r4 == "ok"
            v6ok += r6 == "ok"
            if r4 != "ok":
                fails.append(f"run {i}: 127.0.0.1:{port} -> {r4}")
        finally:
            _, dt = docker(ENV_BERTH, "rm", "-f", name, check=False)
        rm_t.append(dt)
        closed_after_rm += try_connect("127.0.0.1", port) == "refused"
    print(f"connect to 127.0.0.1:P right after `docker run -d` returned: {ok}/{OPEN_RUNS} ok "
          f"(then [::1]:P: {v6ok}/{OPEN_RUNS} ok)")
    for f in fails[:5]:
        print(f"   failure: {f}")
    print(f"refused right after `docker rm -f` returned (one try): {closed_after_rm}/{OPEN_RUNS}")
    print(f"docker run -d via berth: median {statistics.median(run_t) * 1000:.0f} ms; "
          f"docker rm -f: median {statistics.median(rm_t) * 1000:.0f} ms")
    result("portfwd_open_on_run_return", ok, f"== {OPEN_RUNS} of {OPEN_RUNS}", ok == OPEN_RUNS)


# ---------------------------------------------------------------- 4c. closed after stop
def bench_close(result, hdr):
    hdr(f"4c. listener closed after `docker stop -t 0` returns ({CLOSE_RUNS} stop/start cycles of one "
        f"container through the agent; connect every 1 ms until 127.0.0.1:P is refused)")
    name = new_name("close")
    port = free_port()
    lags, stop_t, start_open, others = [], [], 0, []
    try:
        docker(ENV_BERTH, "run", "-d", "--name", name, "-p", f"{port}:80", IMAGE, *HTTPD)
        start_open += try_connect("127.0.0.1", port) == "ok"
        for i in range(CLOSE_RUNS):
            if i:
                docker(ENV_BERTH, "start", name)
                start_open += try_connect("127.0.0.1", port) == "ok"
            _, dt = docker(ENV_BERTH, "stop", "-t", "0", name)
            t0 = time.perf_counter()
            first = True
            while True:
                r = try_connect("127.0.0.1", port, timeout=0.5)
                lag = time.perf_counter() - t0
                if r == "refused":
                    lags.append(0.0 if first else lag)  # 0 = refused at once
                    break
                first = False
                if r != "ok":
                    others.append(r)
                if lag > CLOSE_CAP_S:
                    lags.append(lag)
                    others.append(f"still accepting {CLOSE_CAP_S:.0f} s after stop")
                    break
                time.sleep(0.001)
            stop_t.append(dt)
    finally:
        docker(ENV_BERTH, "rm", "-f", name, check=False)
    ms = [x * 1000 for x in lags]
    at_once = sum(1 for x in ms if x == 0.0)
    print(f"ms from `docker stop` return until refused: median {statistics.median(ms):.1f}, "
          f"p90 {sorted(ms)[int(0.9 * (len(ms) - 1))]:.1f}, max {max(ms):.1f}; refused on the first try "
          f"{at_once}/{len(ms)}")
    if others:
        print(f"   other connect results while polling: {sorted(set(others))[:5]}")
    print(f"open right after `docker run -d`/`docker start` returned: {start_open}/{CLOSE_RUNS}; "
          f"docker stop -t 0 via berth: median {statistics.median(stop_t) * 1000:.0f} ms")
    result("portfwd_close_after_stop_max_ms", max(ms), "<= 100 ms", max(ms) <= 100)
    result("portfwd_close_after_stop_median_ms", statistics.median(ms), "reference", None)


def bench_ports(result, hdr):
    t0 = time.time()
    for f in (bench_download, bench_open, bench_close):
        t1 = time.time()
        f(result, hdr)
        print(f"({f.__name__[6:]}: {time.time() - t1:.0f} s)")
    return time.time() - t0
