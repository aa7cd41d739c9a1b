//! The one helper every end-to-end test uses: brings the real test bed up
//! (dockerd, two sshds, the busybox test image; see tests/testbed), starts
//! `berth-agent` against it, and runs the real docker CLI through it.
#![allow(dead_code)]

pub mod sync_helpers;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test bed's facts (`tests/testbed/testbed.sh up` writes them).
pub struct Testbed {
    pub env: HashMap<String, String>,
}

impl Testbed {
    pub fn get(&self, k: &str) -> &str {
        self.env
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("test bed env has no {k}"))
    }
    pub fn ssh_url(&self) -> String {
        format!("ssh://root@127.0.0.1:{}", self.get("SSH_PORT"))
    }
    pub fn image(&self) -> &str {
        self.get("TEST_IMAGE")
    }
    /// The daemon addressed directly, for side-by-side comparisons.
    pub fn direct_host(&self) -> String {
        format!("unix://{}", self.get("DOCKER_SOCK"))
    }
}

static TESTBED: OnceLock<Testbed> = OnceLock::new();

/// Brings the test bed up once per test binary (the script is idempotent).
pub fn testbed() -> &'static Testbed {
    TESTBED.get_or_init(|| {
        let script = repo_root().join("tests/testbed/testbed.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("up")
            .output()
            .expect("run testbed.sh");
        assert!(
            out.status.success(),
            "testbed.sh up failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let dir =
            std::env::var("BERTH_TESTBED_DIR").unwrap_or_else(|_| "/tmp/berth-testbed".into());
        let text = std::fs::read_to_string(Path::new(&dir).join("env")).expect("read test bed env");
        let env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Testbed { env }
    })
}

/// The agent binary (with the keychain, as users build it), built on demand
/// so `cargo test --features e2e` alone is enough.
pub fn agent_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "berth-core", "--features", "keychain"])
            .args(["--bin", "berth-agent"])
            .current_dir(repo_root())
            .status()
            .expect("cargo build berth-agent");
        assert!(status.success(), "building berth-agent failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join("target"));
        target.join("debug/berth-agent")
    })
    .clone()
}

/// A running `berth-agent`; killed when dropped.
pub struct AgentProc {
    pub child: Child,
    /// `tcp://127.0.0.1:PORT`, usable as DOCKER_HOST.
    pub host: String,
    pub ready_line: String,
    stderr_path: PathBuf,
}

impl AgentProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
    pub fn port(&self) -> u16 {
        self.host.rsplit(':').next().unwrap().parse().unwrap()
    }
    /// Resident memory in KiB (VmRSS), and the peak so far (VmHWM).
    pub fn rss_kib(&self) -> (u64, u64) {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let field = |k: &str| {
            s.lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The standard arguments for the Linux-like remote, plus `extra`.
/// A local port that is free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn default_args(tb: &Testbed) -> Vec<String> {
    vec![
        "--remote".into(),
        tb.ssh_url(),
        "--identity".into(),
        tb.get("SSH_KEY").into(),
        "--known-hosts".into(),
        tb.get("KNOWN_HOSTS").into(),
    ]
}

/// Starts the agent and waits for its ready line (or its failure).
pub fn try_start_agent(args: &[String]) -> Result<AgentProc, (i32, String)> {
    try_start_agent_env(args, &[])
}

/// As [`try_start_agent`], with extra environment variables.
pub fn try_start_agent_env(
    args: &[String],
    envs: &[(&str, &str)],
) -> Result<AgentProc, (i32, String)> {
    let dir = std::env::temp_dir().join(format!("berth-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stderr_path = dir.join(format!("agent-{n}.err"));
    let mut cmd = Command::new(agent_bin());
    cmd.args(args)
        .env("BERTH_LOG", "info,russh=warn")
        .env_remove("SSH_AUTH_SOCK")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    if !args.iter().any(|a| a == "--listen") {
        cmd.args(["--listen", "tcp://127.0.0.1:0"]);
    }
    let mut child = cmd.spawn().expect("spawn berth-agent");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    if line.is_empty() {
        let code = wait_exit(&mut child, Duration::from_secs(30)).unwrap_or(-1);
        let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        return Err((code, err));
    }
    let host = line
        .split_whitespace()
        .find(|w| w.starts_with("tcp://"))
        .map(|w| w.trim_end_matches(',').to_string())
        .unwrap_or_default();
    Ok(AgentProc {
        child,
        host,
        ready_line: line.trim().to_string(),
        stderr_path,
    })
}

pub fn start_agent(args: &[String]) -> AgentProc {
    match try_start_agent(args) {
        Ok(a) => a,
        Err((code, err)) => panic!("berth-agent failed to start (exit {code}):\n{err}"),
    }
}

/// The agent for the default Linux-like remote.
pub fn agent() -> AgentProc {
    start_agent(&default_args(testbed()))
}

pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s.code().unwrap_or(-1));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Runs the docker CLI against `host` with a time limit; a hang is a failure.
pub fn docker_at(host: &str, args: &[&str]) -> Output {
    docker_with(host, args, None)
}

pub fn docker_with(host: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new("docker");
    cmd.args(args)
        .env("DOCKER_HOST", host)
        .env_remove("DOCKER_CONTEXT")
        .env("DOCKER_CONFIG", docker_config_dir())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn docker");
    if let Some(data) = stdin {
        use std::io::Write;
        let mut si = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = si.write_all(&data);
        });
    }
    let pid = child.id();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(120));
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    });
    let out = child.wait_with_output().expect("docker output");
    drop(killer);
    out
}

/// A private DOCKER_CONFIG so the user's contexts and credentials never interfere.
pub fn docker_config_dir() -> PathBuf {
    let d = std::env::temp_dir().join("berth-e2e-docker-config");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs docker and asserts success, returning stdout.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A name unique to this test run.
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "berth-e2e-{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// One-shot raw HTTP exchange, for malformed requests and the status endpoint.
pub fn raw_http(port: u16, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// GET /berth/v1/status as JSON.
pub fn status(port: u16) -> serde_json::Value {
    let resp = raw_http(
        port,
        b"GET /berth/v1/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("status is not JSON ({e}): {resp}"))
}

/// `auto` passed over the refused unix socket and took the daemon's tcp
/// endpoint, and says so in the ready line and the status.
pub fn assert_auto_chose_tcp(a: &AgentProc) {
    assert!(
        a.ready_line.contains("via tcp://127.0.0.1:2375"),
        "{}",
        a.ready_line
    );
    let reason = upstream_reason(a.port());
    assert!(
        reason.contains("unix:///var/run/docker.sock failed"),
        "{reason}"
    );
}

/// Why the agent chose its upstream, from the status endpoint.
pub fn upstream_reason(port: u16) -> String {
    status(port)["upstream"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Asserts the daemon has no container of that name (a refused create left nothing).
pub fn assert_not_created(name: &str) {
    let filter = format!("name={name}");
    let left = ok(docker_at(
        &testbed().direct_host(),
        &["ps", "-a", "-q", "--filter", &filter],
    ));
    assert!(
        left.trim().is_empty(),
        "a container named {name} was created anyway"
    );
}

/// An sshd of its own for one test, on a free port, from the test bed's
/// config (edited by the test): it can be stopped and started without
/// disturbing the tests that share the test bed's sshd.
pub struct PrivateSshd {
    pub port: u16,
    pub dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl PrivateSshd {
    /// Starts it; `edit` may drop or change lines of the test bed's config.
    pub fn start(tag: &str, edit: impl Fn(&str) -> Option<String>) -> Self {
        let tb = testbed();
        let dir = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&dir).unwrap();
        let base =
            std::fs::read_to_string(Path::new(tb.get("BERTH_TESTBED_DIR")).join("sshd_config"))
                .unwrap();
        let port = free_port();
        let config: String = base
            .lines()
            .filter_map(|l| match l.split_once(' ') {
                Some(("Port", _)) => Some(format!("Port {port}")),
                Some(("PidFile", _)) => Some(format!("PidFile {}", dir.join("sshd.pid").display())),
                _ => edit(l),
            })
            .map(|l| l + "\n")
            .collect();
        let path = dir.join("sshd_config");
        std::fs::write(&path, config).unwrap();
        let mut me = Self {
            port,
            dir,
            config: path,
            child: None,
        };
        me.resume();
        me
    }

    /// Starts sshd again after [`PrivateSshd::kill`], on the same port.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-f", self.config.to_str().unwrap(), "-E"])
            .arg(self.dir.join("sshd.log"))
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "sshd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the listener and every session it serves (as a network drop or
    /// a remote reboot would).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // the sessions are children of the listener: end them too, but
            // after the listener, so that a client re-dialing as its session
            // drops finds the port closed, not a dying sshd mid-handshake
            let sessions = Command::new("pgrep")
                .args(["-P", &c.id().to_string()])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let _ = c.kill();
            let _ = c.wait();
            for pid in sessions.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
    }

    /// Agent arguments for this sshd (host key accepted on first use).
    pub fn agent_args(&self) -> Vec<String> {
        let tb = testbed();
        vec![
            "--remote".into(),
            format!("ssh://root@127.0.0.1:{}", self.port),
            "--identity".into(),
            tb.get("SSH_KEY").into(),
            "--known-hosts".into(),
            self.dir.join("known_hosts").display().to_string(),
            "--host-key-policy".into(),
            "accept-new".into(),
        ]
    }
}

impl Drop for PrivateSshd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// GET `path` from `addr` with plain HTTP/1.0; the body, or the error.
pub fn http_get(addr: &str, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    match out.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") =>
        {
            Ok(body.to_string())
        }
        _ => Err(format!("unexpected answer: {out:?}")),
    }
}

/// Every agent of this machine adopts this machine's replicas (and ports):
/// tests of one binary that start agents take turns.
pub fn turn() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// `docker run -d --name NAME -v BIND IMAGE sleep 600` through `host`.
pub fn sleeper(host: &str, name: &str, bind: &str) {
    ok(docker_at(
        host,
        &[
            "run",
            "-d",
            "--name",
            name,
            "-v",
            bind,
            testbed().image(),
            "sleep",
            "600",
        ],
    ));
}

/// `docker run --rm -v BIND IMAGE sh -c SCRIPT` through `host`; its output.
pub fn run_rm(host: &str, bind: &str, script: &str) -> String {
    ok(docker_at(
        host,
        &[
            "run",
            "--rm",
            "-v",
            bind,
            testbed().image(),
            "sh",
            "-c",
            script,
        ],
    ))
}

/// An agent syncing bind mounts one way (the replica mirrors the local
/// folder), for tests of that mode.
pub fn agent_one_way() -> AgentProc {
    let mut args = default_args(testbed());
    args.extend(["--sync-mode".to_string(), "one-way".to_string()]);
    start_agent(&args)
}

/// Runs a Python snippet with DOCKER_HOST set (docker-py and testcontainers
/// are installed by tests/testbed/testbed.sh); returns its stdout.
pub fn python(host: &str, code: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", code])
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", docker_config_dir())
        // this machine may itself be a container (/.dockerenv): use DOCKER_HOST's address
        .env("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
        // Ryuk would be pulled from Docker Hub; the tests remove their containers themselves
        .env("TESTCONTAINERS_RYUK_DISABLED", "true")
        .output()
        .expect("run python3 (pip install docker testcontainers)");
    ok(out)
}

/// Debian's docker-compose for `project` in `dir`, through `host`.
pub fn compose(host: &str, dir: &Path, project: &str, args: &[&str]) -> Output {
    Command::new("docker-compose")
        .arg("-p")
        .arg(project)
        .args(args)
        .current_dir(dir)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", docker_config_dir())
        .env("COMPOSE_INTERACTIVE_NO_CLI", "1")
        .output()
        .expect("run docker-compose")
}

/// Waits (at most `limit`) for `docker ps` through `a` to work again after
/// its session went down, then checks the status says it reconnected.
pub fn reconnects_within(a: &AgentProc, limit: Duration, what: &str) {
    let t = std::time::Instant::now();
    loop {
        let out = docker_at(&a.host, &["ps"]);
        if out.status.success() {
            break;
        }
        assert!(t.elapsed() < limit, "{what}: {}", stderr(&out));
        std::thread::sleep(Duration::from_millis(300));
    }
    let st = status(a.port());
    assert_eq!(st["connection"]["state"], "connected", "{st}");
    assert!(st["connection"]["connects"].as_u64().unwrap() >= 2, "{st}");
}
