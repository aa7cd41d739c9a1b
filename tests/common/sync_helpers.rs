//! Helpers of the sync tests: a local tree to mount, reading a container
//! straight through the daemon, waiting, and a mount's status.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;

/// A local folder to bind-mount, removed when dropped: `app.txt` and
/// `data/state.db` to start with.
pub struct Tree(pub PathBuf);

impl Tree {
    pub fn new(prefix: &str) -> Self {
        let p = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(p.join("data")).unwrap();
        std::fs::write(p.join("app.txt"), "app\n").unwrap();
        std::fs::write(p.join("data/state.db"), "row0\n").unwrap();
        Tree(p)
    }
    pub fn bind(&self, at: &str) -> String {
        format!("{}:{at}", self.0.display())
    }
    pub fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(rel)).ok()
    }
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    /// Names in `rel` (a folder), sorted.
    pub fn names(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.0.join(rel))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `script` in container `name` straight through the daemon.
pub fn exec_direct(name: &str, script: &str) -> String {
    ok(docker_at(
        &testbed().direct_host(),
        &["exec", name, "sh", "-c", script],
    ))
}

/// Waits until `check` holds, or fails with `what` after `limit`; returns
/// how long it took.
pub fn until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !check() {
        assert!(t0.elapsed() < limit, "{what} (waited {limit:?})");
        std::thread::sleep(Duration::from_millis(10));
    }
    t0.elapsed()
}

pub fn mount_of(port: u16, local: &Path) -> Option<serde_json::Value> {
    status(port)["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["local"] == local.display().to_string().as_str())
        .cloned()
}

/// Waits until the mount has completed a round after `syncs` earlier ones.
pub fn synced_past(port: u16, local: &Path, syncs: u64) {
    until(Duration::from_secs(20), "no further sync round", || {
        mount_of(port, local)
            .is_some_and(|m| m["syncs"].as_u64().unwrap_or(0) > syncs && m["state"] == "watching")
    });
}

pub fn syncs(port: u16, local: &Path) -> u64 {
    mount_of(port, local)
        .and_then(|m| m["syncs"].as_u64())
        .unwrap_or(0)
}

pub fn signal(a: &AgentProc, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, &a.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// `text` without its terminal colour codes.
pub fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for e in chars.by_ref() {
                if e == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
