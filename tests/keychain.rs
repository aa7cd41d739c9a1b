//! SSH keys in the real OS keychain: gnome-keyring's Secret Service in a
//! private D-Bus session (tests/run.sh runs `cargo test --features e2e` through
//! tests/testbed/with-keychain.sh). A key generated into the keychain, read
//! back through a fresh store, authorizes an in-process `Agent` against the
//! test bed's sshd and carries `docker version`, with no key file written
//! and nothing secret in the log; an imported encrypted key does the same.
//!
//! Without a session bus the test fails when `CI` is set (CI must exercise
//! the real keychain) and is skipped, saying so, otherwise.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_core::agent::{bind_all, Agent, AgentConfig};
use berth_core::keys::{self, KeyringStore, KeysError, SecretStore};
use berth_core::ssh::{AuthConfig, HostKeyPolicy, SshTarget};
use berth_core::upstream::UpstreamSpec;
use common::*;

/// Everything the engine logs, at every level, kept to search for secrets.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Holds the test bed's lock (the one `testbed.sh` takes) while a key is
/// added to its `authorized_keys`, so no concurrent `testbed.sh up` rewrites
/// the file meanwhile; the key is removed again before the lock is released.
struct AuthorizedKey {
    file: PathBuf,
    line: String,
    lock: std::fs::File,
}

impl AuthorizedKey {
    fn add(dir: &Path, line: &str) -> Self {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(".lock"))
            .unwrap();
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
        assert_eq!(rc, 0, "cannot lock the test bed");
        let file = dir.join("authorized_keys");
        let old = std::fs::read_to_string(&file).unwrap();
        rewrite(&file, &format!("{old}{line}\n"));
        AuthorizedKey {
            file,
            line: line.to_string(),
            lock,
        }
    }
}

impl Drop for AuthorizedKey {
    fn drop(&mut self) {
        let old = std::fs::read_to_string(&self.file).unwrap_or_default();
        let kept: String = old
            .lines()
            .filter(|l| *l != self.line)
            .map(|l| format!("{l}\n"))
            .collect();
        rewrite(&self.file, &kept);
        // SAFETY: as above; closing the file would release it too.
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&self.lock), libc::LOCK_UN) };
    }
}

/// Replaces a file atomically (sshd may be reading it for another test).
fn rewrite(file: &Path, text: &str) {
    let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, text).unwrap();
    let mut perm = std::fs::metadata(&tmp).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o644);
    std::fs::set_permissions(&tmp, perm).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

/// Secret fragments of a private key: each base64 line of its PEM body and
/// the hex of its raw ed25519 secret.
fn secret_needles(pem: &str, key: &russh::keys::PrivateKey) -> Vec<String> {
    let mut v: Vec<String> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 20)
        .map(str::to_string)
        .collect();
    if let Some(kp) = key.key_data().ed25519() {
        v.push(
            kp.private
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        );
    }
    v
}

/// Files under `dir` (recursively) that contain any needle, as text or bytes.
fn files_containing(dir: &Path, needles: &[String], raw: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            hits.extend(files_containing(&p, needles, raw));
        } else if let Ok(bytes) = std::fs::read(&p) {
            let text = String::from_utf8_lossy(&bytes);
            let raw_hit = !raw.is_empty() && bytes.windows(raw.len()).any(|w| w == raw);
            if raw_hit || needles.iter().any(|n| text.contains(n.as_str())) {
                hits.push(p);
            }
        }
    }
    hits
}

/// Connects an in-process agent with only `key`, serves one local endpoint
/// and runs `docker version` through it.
async fn docker_version_with(
    tb: &Testbed,
    key: (String, Arc<russh::keys::PrivateKey>),
    authorized: Option<AuthorizedKey>,
) -> Result<String, String> {
    let cfg = AgentConfig {
        target: SshTarget {
            user: "root".into(),
            host: "127.0.0.1".into(),
            port: tb.get("SSH_PORT").parse().unwrap(),
            jumps: Vec::new(),
            proxy_command: None,
        },
        auth: AuthConfig {
            keys: vec![key],
            ..Default::default()
        },
        known_hosts: tb.get("KNOWN_HOSTS").into(),
        policy: HostKeyPolicy::Strict,
        upstream: UpstreamSpec::Auto,
        ports: None,
        sync: None,
    };
    tracing::info!("agent config: {cfg:?}");
    let agent = Agent::connect(cfg).await.map_err(|e| e.to_string());
    // Authenticated (or refused): the key leaves authorized_keys right away.
    drop(authorized);
    let agent = agent?;
    let listeners = bind_all(&["tcp://127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let host = listeners[0].local_addr().to_string();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let serving = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { agent.serve(listeners, shutdown).await })
    };
    let out = tokio::task::spawn_blocking(move || {
        docker_at(&host, &["version", "--format", "{{.Server.Version}}"])
    })
    .await
    .unwrap();
    shutdown.cancel();
    serving.await.unwrap();
    Ok(ok(out).trim().to_string())
}

#[test]
fn keychain_keys_authenticate_without_files_or_logs() {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        let msg = "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS unset): run the tests \
                   through tests/run.sh, or `bash tests/testbed/with-keychain.sh cargo test \
                   --features e2e --test keychain`";
        assert!(
            std::env::var_os("CI").is_none(),
            "{msg}; CI must test the real keychain"
        );
        // Straight to stderr: libtest would swallow an eprintln! of a passing test.
        let _ = writeln!(std::io::stderr(), "SKIPPED keychain test: {msg}");
        return;
    }
    let tb = testbed();
    // A private HOME and XDG dirs: whatever Berth writes lands there, and is
    // searched for the key afterwards. (Set before any other thread starts.)
    let home = std::env::temp_dir().join(unique("keychain-home"));
    std::fs::create_dir_all(&home).unwrap();
    std::env::set_var("HOME", &home);
    for (var, sub) in [
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CACHE_HOME", ".cache"),
    ] {
        std::env::set_var(var, home.join(sub));
    }
    std::env::remove_var("SSH_AUTH_SOCK");
    let log = LogBuf::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    // A service of our own: the test never touches entries of `dev.berth`.
    let service = unique("dev.berth.test");
    let store = KeyringStore::with_service(&service);
    store
        .probe()
        .unwrap_or_else(|e| panic!("the Secret Service does not answer: {e}"));
    let id = "e2e generated";
    let info = keys::generate_ed25519(&store, id, "berth-e2e").unwrap();
    assert!(info.authorized_keys_line.starts_with("ssh-ed25519 "));

    // Read back through a fresh store: the key is in the keychain, not in us.
    let fresh = KeyringStore::with_service(&service);
    let listed = keys::list(&fresh).unwrap();
    assert_eq!(listed, vec![info.clone()]);
    let (label, key) = keys::load_for_auth(&fresh, id).unwrap();
    assert_eq!(
        key.public_key().to_openssh().unwrap(),
        info.authorized_keys_line
    );
    let pem = fresh.get(&format!("key/{id}")).unwrap().unwrap();
    let needles = secret_needles(&pem, &key);
    let raw = key
        .key_data()
        .ed25519()
        .map(|kp| kp.private.as_ref().to_vec())
        .unwrap_or_default();

    let rt = tokio::runtime::Runtime::new().unwrap();
    // Not yet authorized: refused, and the error names the keychain key.
    let e = rt
        .block_on(docker_version_with(tb, (label.clone(), key.clone()), None))
        .unwrap_err();
    assert!(e.contains(&format!("publickey {label}")), "{e}");

    let dir = PathBuf::from(tb.get("BERTH_TESTBED_DIR"));
    let authorized = AuthorizedKey::add(&dir, &info.authorized_keys_line);
    let version = rt
        .block_on(docker_version_with(tb, (label, key), Some(authorized)))
        .unwrap();
    assert!(!version.is_empty());
    let authorized_now = std::fs::read_to_string(dir.join("authorized_keys")).unwrap();
    assert!(
        !authorized_now.contains(&info.public_key),
        "key left behind"
    );

    // An imported encrypted key (the test bed's), wrong then right passphrase.
    let pass_pem = std::fs::read_to_string(tb.get("SSH_KEY_PASS")).unwrap();
    let e = keys::import_private_key(&store, "e2e imported", &pass_pem, Some("nope"));
    assert!(matches!(e, Err(KeysError::WrongPassphrase { .. })), "{e:?}");
    let pass = tb.get("SSH_KEY_PASSPHRASE");
    keys::import_private_key(&store, "e2e imported", &pass_pem, Some(pass)).unwrap();
    let imported = keys::load_for_auth(&fresh, "e2e imported").unwrap();
    let imported_pem = fresh.get("key/e2e imported").unwrap().unwrap();
    let mut needles2 = secret_needles(&imported_pem, &imported.1);
    needles2.push(pass.to_string());
    let version2 = rt
        .block_on(docker_version_with(tb, imported, None))
        .unwrap();
    assert_eq!(version2, version);

    // Nothing secret in Berth's files, in the log, or in clear in the keyring's own files.
    let logs = log.text();
    assert!(logs.contains("keychain key"), "the log captured nothing?");
    let all: Vec<String> = needles.iter().chain(&needles2).cloned().collect();
    for n in &all {
        assert!(!logs.contains(n.as_str()), "a secret is in the log: {n}");
    }
    let leaked = files_containing(&home, &all, &raw);
    assert!(leaked.is_empty(), "secret key material in {leaked:?}");
    if let Some(kc) = std::env::var_os("BERTH_KEYCHAIN_DIR") {
        let leaked = files_containing(Path::new(&kc), &all, &raw);
        assert!(
            leaked.is_empty(),
            "keyring files hold the key in clear: {leaked:?}"
        );
    }

    for id in [id, "e2e imported"] {
        keys::delete(&fresh, id).unwrap();
        assert!(matches!(
            keys::load_private_key(&store, id),
            Err(KeysError::NotFound { .. })
        ));
    }
    assert!(keys::list(&store).unwrap().is_empty());
    assert!(fresh
        .get("index")
        .unwrap()
        .is_some_and(|s| s.as_str() == "[]"));
    fresh.delete("index").unwrap();
    let _ = std::fs::remove_dir_all(&home);
}
