//! Host keys for the window: fetch the key a server offers (like
//! `ssh-keyscan`, a handshake that stops right after the server proved its
//! key, no authentication), judge it against a known_hosts file, and trust
//! it on the user's word. Trusting appends one OpenSSH line
//! (`host key…`, `[host]:port key…` off port 22), and only when the server
//! still offers exactly the fingerprint the user was shown; a key that
//! changed is never replaced here.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::{PublicKey, PublicKeyOrCertificate};

use super::DesktopError;
use crate::ssh::handler::{fingerprint, host_port, judge, HostKeyVerdict};

/// How long reaching the server and reading its key may take.
pub const SCAN_TIMEOUT: Duration = Duration::from_secs(10);

/// What known_hosts says about the key a server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// Recorded: the connection may go on.
    Known { fingerprint: String },
    /// Not recorded: show the fingerprint and ask the user to trust it.
    Unknown { fingerprint: String },
    /// A different key of that type is recorded: refuse, never overwrite.
    Changed {
        /// `SHA256:…` the server offers now.
        offered: String,
        /// `SHA256:…` recorded in known_hosts.
        expected: String,
        /// Line of the recorded key in known_hosts (1-based).
        line: usize,
    },
}

/// Records the offered key and stops the handshake there.
struct Scanner(Arc<Mutex<Option<PublicKey>>>);

impl russh::client::Handler for Scanner {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = crate::ssh::handler::offered_key(offered);
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(key);
        }
        // refusing ends the handshake: nothing is authenticated or sent
        Ok(false)
    }
}

/// The host key `host:port` offers. Errors are one line with the fix.
pub async fn scan(host: &str, port: u16) -> Result<PublicKey, DesktopError> {
    let addr = format!("{host}:{port}");
    let unreachable = |reason: String| DesktopError::Unreachable {
        addr: addr.clone(),
        reason,
    };
    let tcp = tokio::time::timeout(SCAN_TIMEOUT, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| unreachable("connection timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let slot = Arc::new(Mutex::new(None));
    let config = Arc::new(russh::client::Config::default());
    let handshake = russh::client::connect_stream(config, tcp, Scanner(slot.clone()));
    let outcome = tokio::time::timeout(SCAN_TIMEOUT, handshake).await;
    let key = slot.lock().ok().and_then(|mut s| s.take());
    match (key, outcome) {
        (Some(k), _) => Ok(k),
        (None, Err(_)) => Err(DesktopError::NotSsh {
            addr,
            reason: "no SSH answer in time".into(),
        }),
        (None, Ok(Err(e))) => Err(DesktopError::NotSsh {
            addr,
            reason: e.to_string(),
        }),
        (None, Ok(Ok(_))) => Err(DesktopError::NotSsh {
            addr,
            reason: "the server offered no host key".into(),
        }),
    }
}

/// Judges `offered` against what `known_hosts` records for `host:port`
/// (hashed entries understood; a missing file records nothing).
pub fn check(
    host: &str,
    port: u16,
    offered: &PublicKey,
    known_hosts: &Path,
) -> Result<HostKeyStatus, DesktopError> {
    let recorded = if known_hosts.exists() {
        russh::keys::known_hosts::known_host_keys_path(host, port, known_hosts).map_err(|e| {
            DesktopError::KnownHosts {
                path: known_hosts.to_path_buf(),
                reason: e.to_string().replace('\n', " "),
            }
        })?
    } else {
        Vec::new()
    };
    let fp = fingerprint(offered);
    Ok(match judge(offered, &recorded) {
        HostKeyVerdict::Known => HostKeyStatus::Known { fingerprint: fp },
        HostKeyVerdict::Unknown => HostKeyStatus::Unknown { fingerprint: fp },
        HostKeyVerdict::Changed { line, expected } => HostKeyStatus::Changed {
            offered: fp,
            expected,
            line,
        },
    })
}

/// The one-line refusal for a changed key, naming both fingerprints and the fix.
pub fn changed_error(
    host: &str,
    port: u16,
    known_hosts: &Path,
    offered: &str,
    expected: &str,
    line: usize,
) -> DesktopError {
    DesktopError::Ssh(crate::ssh::SshError::HostKeyChanged {
        host_port: host_port(host, port),
        known_hosts: known_hosts.to_path_buf(),
        line,
        expected: expected.to_string(),
        offered: offered.to_string(),
    })
}

/// Appends the key `host:port` offers to `known_hosts`, only if its
/// fingerprint is `fingerprint`; a key already recorded is left as is, a
/// changed key is refused.
pub async fn trust(
    host: &str,
    port: u16,
    fingerprint_shown: &str,
    known_hosts: &Path,
) -> Result<(), DesktopError> {
    let key = scan(host, port).await?;
    let offered = fingerprint(&key);
    if offered != fingerprint_shown.trim() {
        return Err(DesktopError::HostKeyMismatch {
            host_port: host_port(host, port),
            shown: fingerprint_shown.trim().to_string(),
            offered,
        });
    }
    match check(host, port, &key, known_hosts)? {
        HostKeyStatus::Known { .. } => Ok(()),
        HostKeyStatus::Changed {
            offered,
            expected,
            line,
        } => Err(changed_error(
            host,
            port,
            known_hosts,
            &offered,
            &expected,
            line,
        )),
        HostKeyStatus::Unknown { .. } => append(host, port, &key, known_hosts),
    }
}

/// Appends one known_hosts line for `key` (creating the file and its
/// directory): `host key…` on port 22, `[host]:port key…` otherwise.
pub fn append(
    host: &str,
    port: u16,
    key: &PublicKey,
    known_hosts: &Path,
) -> Result<(), DesktopError> {
    use std::io::Write;
    let fail = |e: &dyn std::fmt::Display| DesktopError::KnownHosts {
        path: known_hosts.to_path_buf(),
        reason: e.to_string().replace('\n', " "),
    };
    let mut bare = key.clone();
    bare.set_comment("");
    let text = bare.to_openssh().map_err(|e| fail(&e))?;
    if let Some(dir) = known_hosts.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    }
    // a file not ending in a newline gets one first, so the new line stands alone
    let existing = std::fs::read(known_hosts).unwrap_or_default();
    let sep = if existing.is_empty() || existing.ends_with(b"\n") {
        ""
    } else {
        "\n"
    };
    let line = format!("{sep}{} {text}\n", host_port(host, port));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(known_hosts)
        .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|()| f.sync_all()))
        .map_err(|e| fail(&e))?;
    tracing::info!(host, port, fingerprint = %fingerprint(key), "trusted host key, recorded in {}", known_hosts.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIFMmft8ttWvC9Ll+t8MvTvJtDwGWbAmi6Ii3Cp5OSUHX";
    const ED_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIDCD8RdZc+ef8bV6YqJvQmua8JUWPGxVc+zFwvewUm1r";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    #[test]
    fn append_then_check_round_trips_with_port_spelling() {
        let dir = std::env::temp_dir().join(format!("berth-hostkeys-{}", std::process::id()));
        let kh = dir.join("sub/known_hosts");
        let (a, b) = (key(ED_A), key(ED_B));
        let st = check("127.0.0.1", 2222, &a, &kh).unwrap();
        assert_eq!(
            st,
            HostKeyStatus::Unknown {
                fingerprint: fingerprint(&a)
            }
        );
        append("127.0.0.1", 2222, &a, &kh).unwrap();
        // a file without a final newline still gets a line of its own
        let mut f = std::fs::OpenOptions::new().append(true).open(&kh).unwrap();
        std::io::Write::write_all(&mut f, b"# note").unwrap();
        append("example.org", 22, &b, &kh).unwrap();
        let text = std::fs::read_to_string(&kh).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("[127.0.0.1]:2222 ssh-ed25519 {ED_A}"));
        assert_eq!(lines[1], "# note");
        assert_eq!(lines[2], format!("example.org ssh-ed25519 {ED_B}"));
        assert!(matches!(
            check("127.0.0.1", 2222, &a, &kh).unwrap(),
            HostKeyStatus::Known { .. }
        ));
        // same host, other port: not known
        assert!(matches!(
            check("127.0.0.1", 22, &a, &kh).unwrap(),
            HostKeyStatus::Unknown { .. }
        ));
        match check("127.0.0.1", 2222, &b, &kh).unwrap() {
            HostKeyStatus::Changed {
                offered,
                expected,
                line,
            } => {
                assert_eq!(offered, fingerprint(&b));
                assert_eq!(expected, fingerprint(&a));
                assert_eq!(line, 1);
                let msg = changed_error("127.0.0.1", 2222, &kh, &offered, &expected, line);
                let msg = msg.to_string();
                assert!(
                    msg.contains("[127.0.0.1]:2222") && !msg.contains('\n'),
                    "{msg}"
                );
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn scanning_a_closed_port_says_unreachable() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = scan("127.0.0.1", port).await.unwrap_err();
        assert!(matches!(e, DesktopError::Unreachable { .. }), "{e}");
    }
}
