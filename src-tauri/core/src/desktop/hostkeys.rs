//! Host keys for the window: fetch the keys a server offers (like
//! `ssh-keyscan`: handshakes that stop right after the server proved its
//! key, no authentication), judge the one a session would get against a
//! known_hosts file exactly as the engine does (`ssh::known_hosts`,
//! `ssh::handler::judge`: revoked keys, CAs, another key type recorded), and
//! trust it on the user's word. Trusting appends one OpenSSH line
//! (`host key…`, `[host]:port key…` off port 22), only for a key known_hosts
//! says nothing about, and only when the server still offers exactly the
//! fingerprint the user was shown; a changed or revoked key is never
//! replaced here.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PublicKey, PublicKeyOrCertificate};

use super::DesktopError;
use crate::ssh::handler::{
    apply_known_algorithms, fingerprint, host_port, judge, refusal, unix_now, HostKeyCheck,
    HostKeyPolicy, HostKeyVerdict, Offered,
};
use crate::ssh::known_hosts::{self, same_type, HostKeys};
use crate::ssh::SshError;

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

/// Records what the server offered and stops the handshake there.
struct Scanner(Arc<Mutex<Option<Offered>>>);

impl russh::client::Handler for Scanner {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(Offered::from(offered));
        }
        // refusing ends the handshake: nothing is authenticated or sent
        Ok(false)
    }
}

/// Every host key (and host certificate) a server offers: a session picks
/// among them by the order known_hosts gives, so the window must know them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    pub offers: Vec<Offered>,
}

impl Scanned {
    /// What a session with the lines `keys` would be offered: the client's
    /// first algorithm the server has (certificates first when a CA is listed).
    pub fn negotiated(&self, keys: &HostKeys) -> Option<&Offered> {
        let mut preferred = russh::Preferred::default();
        apply_known_algorithms(keys, &mut preferred);
        let fits = |a: &Algorithm, k: &PublicKey| same_type(&k.algorithm(), a);
        let certs = preferred.host_key_certificates.iter().find_map(|a| {
            self.offers
                .iter()
                .find(|o| matches!(o, Offered::Certificate(_)) && fits(a, &o.key()))
        });
        certs.or_else(|| {
            preferred.key.iter().find_map(|a| {
                self.offers
                    .iter()
                    .find(|o| matches!(o, Offered::Key(_)) && fits(a, &o.key()))
            })
        })
    }
}

/// One handshake offering `keys` (and certificates for `certs`).
async fn scan_one(
    host: &str,
    port: u16,
    keys: Vec<Algorithm>,
    certs: Vec<Algorithm>,
) -> Result<Offered, DesktopError> {
    let addr = format!("{host}:{port}");
    let unreachable = |source| SshError::Unreachable {
        addr: addr.clone(),
        source,
    };
    let tcp = tokio::time::timeout(SCAN_TIMEOUT, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| {
            unreachable(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection timed out",
            ))
        })?
        .map_err(unreachable)?;
    let slot = Arc::new(Mutex::new(None));
    let mut config = russh::client::Config::default();
    config.preferred.key = keys.into();
    config.preferred.host_key_certificates = certs.into();
    let handshake = russh::client::connect_stream(Arc::new(config), tcp, Scanner(slot.clone()));
    let outcome = tokio::time::timeout(SCAN_TIMEOUT, handshake).await;
    let offered = slot.lock().ok().and_then(|mut s| s.take());
    match (offered, outcome) {
        (Some(o), _) => Ok(o),
        (None, Err(_)) => Err(SshError::HandshakeTimeout {
            addr,
            secs: SCAN_TIMEOUT.as_secs(),
        }
        .into()),
        (None, Ok(Err(source))) => Err(SshError::Handshake { addr, source }.into()),
        (None, Ok(Ok(_))) => Err(SshError::NoUsableHostKey { addr }.into()),
    }
}

/// The host keys `host:port` offers. Errors (from the first handshake, with
/// russh's default order) are one line with the fix; later handshakes ask
/// for one other key type each, and a type the server lacks is skipped.
pub async fn scan(host: &str, port: u16) -> Result<Scanned, DesktopError> {
    let default = russh::Preferred::DEFAULT.key.to_vec();
    let first = scan_one(host, port, default.clone(), Vec::new()).await?;
    let rsa = [HashAlg::Sha512, HashAlg::Sha256].map(|h| Algorithm::Rsa { hash: Some(h) });
    let mut families: Vec<Vec<Algorithm>> = [
        EcdsaCurve::NistP256,
        EcdsaCurve::NistP384,
        EcdsaCurve::NistP521,
    ]
    .into_iter()
    .map(|curve| vec![Algorithm::Ecdsa { curve }])
    .collect();
    families.push(vec![Algorithm::Ed25519]);
    families.push(
        rsa.into_iter()
            .chain([Algorithm::Rsa { hash: None }])
            .collect(),
    );
    let have = first.key().algorithm();
    families.retain(|f| !f.iter().any(|a| same_type(&have, a)));
    let mut tries: Vec<_> = families
        .into_iter()
        .map(|f| scan_one(host, port, f, Vec::new()))
        .collect();
    tries.push(scan_one(host, port, default.clone(), default));
    let mut offers = vec![first];
    for o in futures_util::future::join_all(tries)
        .await
        .into_iter()
        .flatten()
    {
        if !offers.contains(&o) {
            offers.push(o);
        }
    }
    Ok(Scanned { offers })
}

/// Judges what `host:port` would offer a session against `known_hosts`
/// (a missing file records nothing). A revoked key, or a certificate from a
/// listed CA that is not valid, is an error naming the line and the fix:
/// it is not something to trust.
pub fn check(
    host: &str,
    port: u16,
    scanned: &Scanned,
    known_hosts: &Path,
) -> Result<HostKeyStatus, DesktopError> {
    let keys = HostKeys::load(known_hosts, host, port)
        .map_err(|source| SshError::KnownHostsFile { source })?;
    let offered = scanned
        .negotiated(&keys)
        .ok_or_else(|| SshError::NoUsableHostKey {
            addr: format!("{host}:{port}"),
        })?;
    let key = offered.key();
    let fp = fingerprint(&key);
    Ok(match judge(offered, &keys, host, unix_now()) {
        HostKeyVerdict::Known | HostKeyVerdict::Certified { .. } => {
            HostKeyStatus::Known { fingerprint: fp }
        }
        HostKeyVerdict::Unknown => HostKeyStatus::Unknown { fingerprint: fp },
        HostKeyVerdict::Changed { line, expected } => HostKeyStatus::Changed {
            offered: fp,
            expected,
            line,
        },
        refused => {
            let check = HostKeyCheck {
                host: host.to_string(),
                port,
                known_hosts: known_hosts.to_path_buf(),
                policy: HostKeyPolicy::Strict,
            };
            return Err(DesktopError::Ssh(refusal(&check, &key, refused)));
        }
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
    let scanned = scan(host, port).await?;
    let status = check(host, port, &scanned, known_hosts)?;
    let offered = match &status {
        HostKeyStatus::Known { fingerprint }
        | HostKeyStatus::Unknown { fingerprint }
        | HostKeyStatus::Changed {
            offered: fingerprint,
            ..
        } => fingerprint.clone(),
    };
    if offered != fingerprint_shown.trim() {
        return Err(DesktopError::HostKeyMismatch {
            host_port: host_port(host, port),
            shown: fingerprint_shown.trim().to_string(),
            offered,
        });
    }
    match status {
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
        HostKeyStatus::Unknown { .. } => {
            let keys = HostKeys::load(known_hosts, host, port).unwrap_or_default();
            match scanned.negotiated(&keys) {
                Some(o) => append(host, port, &o.key(), known_hosts),
                None => Ok(()),
            }
        }
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
    known_hosts::append(known_hosts, host, port, key)
        .map_err(|source| SshError::KnownHostsFile { source })?;
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

    fn offers(k: &PublicKey) -> Scanned {
        Scanned {
            offers: vec![Offered::Key(k.clone())],
        }
    }

    #[test]
    fn append_then_check_round_trips_with_port_spelling() {
        let dir = std::env::temp_dir().join(format!("berth-hostkeys-{}", std::process::id()));
        let kh = dir.join("sub/known_hosts");
        let (a, b) = (key(ED_A), key(ED_B));
        let st = check("127.0.0.1", 2222, &offers(&a), &kh).unwrap();
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
            check("127.0.0.1", 2222, &offers(&a), &kh).unwrap(),
            HostKeyStatus::Known { .. }
        ));
        // same host, other port: not known
        assert!(matches!(
            check("127.0.0.1", 22, &offers(&a), &kh).unwrap(),
            HostKeyStatus::Unknown { .. }
        ));
        match check("127.0.0.1", 2222, &offers(&b), &kh).unwrap() {
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
        assert!(
            matches!(e, DesktopError::Ssh(SshError::Unreachable { .. })),
            "{e}"
        );
    }
}
