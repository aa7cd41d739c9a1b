//! The russh client handler: verifies the server's host key against
//! known_hosts (hashed entries included) under the chosen policy.
//!
//! russh only learns "accepted or not" from `check_server_key`; the reason
//! (unknown or changed, with fingerprints) is left in a shared verdict slot
//! that the session turns into a [`SshError`] for the user.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use russh::keys::{Certificate, HashAlg, PublicKey, PublicKeyOrCertificate};

use super::error::SshError;
use super::known_hosts::{self, same_key, HostKeys};

/// What to do with a host key that known_hosts does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Refuse unknown keys (OpenSSH `StrictHostKeyChecking yes`).
    Strict,
    /// Record unknown keys in known_hosts and go on; changed keys are still refused.
    AcceptNew,
}

impl std::str::FromStr for HostKeyPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(Self::Strict),
            "accept-new" => Ok(Self::AcceptNew),
            other => Err(format!(
                "unknown host key policy {other:?}; use strict or accept-new"
            )),
        }
    }
}

/// What a server proved it holds: a bare host key, or a host certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    Key(PublicKey),
    Certificate(Box<Certificate>),
}

impl Offered {
    /// The host key itself (a certificate's own key for a certificate).
    pub fn key(&self) -> PublicKey {
        match self {
            Self::Key(k) => k.clone(),
            Self::Certificate(c) => PublicKey::new(c.public_key().clone(), ""),
        }
    }
}

impl From<&PublicKeyOrCertificate> for Offered {
    fn from(o: &PublicKeyOrCertificate) -> Self {
        match o {
            PublicKeyOrCertificate::PublicKey { key, .. } => Self::Key(key.clone()),
            PublicKeyOrCertificate::Certificate(c) => Self::Certificate(Box::new(c.clone())),
        }
    }
}

/// Outcome of comparing an offered key with known_hosts (pure, see [`judge`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyVerdict {
    /// A plain line records exactly this key.
    Known,
    /// A valid host certificate signed by the CA on `line`.
    Certified {
        line: usize,
    },
    Unknown,
    /// Another key (of any type) is recorded for the host.
    Changed {
        line: usize,
        expected: String,
    },
    /// `@revoked` on `line`: `fingerprint` is the revoked key (the host key
    /// or its certificate's CA). No policy accepts it.
    Revoked {
        line: usize,
        fingerprint: String,
    },
    /// A certificate from the CA on `line` that is not valid for this host,
    /// and no plain line records its key.
    CertificateRejected {
        line: usize,
        reason: CertProblem,
    },
}

/// Judges what a server offers against the lines for the host, as OpenSSH's
/// check_host_key does: revocation first (the key, or a certificate's CA);
/// a certificate from a listed CA must be valid for `host` (as dialled) at
/// `now` (Unix seconds), else OpenSSH falls back to the plain key; a
/// certificate from an unlisted CA counts as its plain key. A plain key is
/// known if recorded, changed if any other key is recorded for the host.
pub fn judge(offered: &Offered, keys: &HostKeys, host: &str, now: u64) -> HostKeyVerdict {
    let key = offered.key();
    if let Some(e) = keys.revoked(&key) {
        return HostKeyVerdict::Revoked {
            line: e.line,
            fingerprint: fingerprint(&key),
        };
    }
    if let Offered::Certificate(cert) = offered {
        let ca = PublicKey::new(cert.signature_key().clone(), "");
        if let Some(e) = keys.revoked(&ca) {
            return HostKeyVerdict::Revoked {
                line: e.line,
                fingerprint: fingerprint(&ca),
            };
        }
        if let Some(e) = keys.authorities().find(|e| same_key(&e.key, &ca)) {
            let reason = match validate_certificate(cert, &ca, host, now) {
                Ok(()) => return HostKeyVerdict::Certified { line: e.line },
                Err(reason) => reason,
            };
            return match judge_plain(&key, keys) {
                HostKeyVerdict::Unknown => HostKeyVerdict::CertificateRejected {
                    line: e.line,
                    reason,
                },
                other => other,
            };
        }
    }
    judge_plain(&key, keys)
}

fn judge_plain(key: &PublicKey, keys: &HostKeys) -> HostKeyVerdict {
    if keys
        .plain()
        .chain(keys.bare_plain())
        .any(|e| same_key(&e.key, key))
    {
        return HostKeyVerdict::Known;
    }
    // the recorded key of the offered type is the one to name, if there is one
    let recorded = keys
        .plain()
        .find(|e| e.key.algorithm() == key.algorithm())
        .or_else(|| keys.plain().next());
    match recorded {
        Some(e) => HostKeyVerdict::Changed {
            line: e.line,
            expected: fingerprint(&e.key),
        },
        None => HostKeyVerdict::Unknown,
    }
}

/// What OpenSSH checks of a host certificate once its CA is trusted: a
/// host (not user) certificate, inside its validity window, with the host
/// among its principals (an empty list means any host), no critical
/// options, and a signature by that CA.
pub fn validate_certificate(
    cert: &Certificate,
    ca: &PublicKey,
    host: &str,
    now: u64,
) -> Result<(), CertProblem> {
    use russh::keys::ssh_key::certificate::CertType;
    if cert.cert_type() != CertType::Host {
        return Err(CertProblem::UserCertificate);
    }
    if now < cert.valid_after() {
        return Err(CertProblem::NotYet {
            from: cert.valid_after(),
        });
    }
    if now >= cert.valid_before() {
        return Err(CertProblem::Expired {
            at: cert.valid_before(),
        });
    }
    let host = host.to_ascii_lowercase();
    let principals = cert.valid_principals();
    if !principals.is_empty() && !principals.contains(&host) {
        return Err(CertProblem::OtherHost {
            principals: principals.to_vec(),
            host,
        });
    }
    if !cert.critical_options().is_empty() {
        return Err(CertProblem::CriticalOptions);
    }
    let ca_fp = ca.fingerprint(HashAlg::Sha256);
    cert.validate_at(now, [&ca_fp])
        .map_err(|_| CertProblem::BadSignature)
}

/// Which of OpenSSH's rules a host certificate breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertProblem {
    #[error("it is a user certificate, not a host certificate")]
    UserCertificate,
    #[error("it is valid only from {from} (Unix time)")]
    NotYet { from: u64 },
    #[error("it expired at {at} (Unix time)")]
    Expired { at: u64 },
    #[error("it is for {principals:?}, not {host:?}")]
    OtherHost {
        principals: Vec<String>,
        host: String,
    },
    #[error("it carries critical options, which a host certificate may not")]
    CriticalOptions,
    #[error("its signature does not verify with the CA key")]
    BadSignature,
}

/// OpenSSH orders (and Berth offers) host key algorithms so that the types
/// known_hosts records for the host come first, and certificates are asked
/// for only when a CA is listed for it. A file that cannot be read changes
/// nothing here (the check itself reports it).
pub fn offer_known_algorithms(check: &HostKeyCheck, preferred: &mut russh::Preferred) {
    if let Ok(keys) = HostKeys::load(&check.known_hosts, &check.host, check.port) {
        apply_known_algorithms(&keys, preferred);
    }
}

/// [`offer_known_algorithms`] for lines already selected.
pub fn apply_known_algorithms(keys: &HostKeys, preferred: &mut russh::Preferred) {
    preferred.key = keys.preferred_algorithms(&preferred.key).into();
    preferred.host_key_certificates = if keys.authorities().next().is_some() {
        preferred.key.to_vec().into()
    } else {
        Vec::new().into()
    };
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// OpenSSH-style `SHA256:…` fingerprint.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Host key checking inputs, shared by every (re)connect of a session.
#[derive(Debug, Clone)]
pub struct HostKeyCheck {
    pub host: String,
    pub port: u16,
    pub known_hosts: PathBuf,
    pub policy: HostKeyPolicy,
}

pub struct ClientHandler {
    check: HostKeyCheck,
    /// Why the last key was refused, for the error the user sees.
    refusal: Arc<Mutex<Option<SshError>>>,
}

impl ClientHandler {
    pub fn new(check: HostKeyCheck, refusal: Arc<Mutex<Option<SshError>>>) -> Self {
        Self { check, refusal }
    }

    fn verify(&self, offered: &Offered) -> Result<(), SshError> {
        let c = &self.check;
        let keys = HostKeys::load(&c.known_hosts, &c.host, c.port)
            .map_err(|source| SshError::KnownHostsFile { source })?;
        let key = offered.key();
        match judge(offered, &keys, &c.host, unix_now()) {
            HostKeyVerdict::Known => Ok(()),
            HostKeyVerdict::Certified { line } => {
                tracing::info!(host = %c.host, port = c.port, ca_line = line,
                    "host certificate accepted (CA in {})", c.known_hosts.display());
                Ok(())
            }
            HostKeyVerdict::Unknown if c.policy == HostKeyPolicy::AcceptNew => {
                known_hosts::append(&c.known_hosts, &c.host, c.port, &key)
                    .map_err(|source| SshError::KnownHostsFile { source })?;
                tracing::warn!(host = %c.host, port = c.port, fingerprint = %fingerprint(&key),
                    "trusted a new host key (accept-new) and recorded it in {}", c.known_hosts.display());
                Ok(())
            }
            verdict => Err(refusal(c, &key, verdict)),
        }
    }
}

/// The error for a verdict that refuses the key (never `Known`/`Certified`).
pub fn refusal(c: &HostKeyCheck, offered: &PublicKey, verdict: HostKeyVerdict) -> SshError {
    let host_port = host_port(&c.host, c.port);
    let known_hosts = c.known_hosts.clone();
    match verdict {
        HostKeyVerdict::Changed { line, expected } => SshError::HostKeyChanged {
            host_port,
            known_hosts,
            line,
            expected,
            offered: fingerprint(offered),
        },
        HostKeyVerdict::Revoked { line, fingerprint } => SshError::HostKeyRevoked {
            host_port,
            known_hosts,
            line,
            fingerprint,
        },
        HostKeyVerdict::CertificateRejected { line, reason } => SshError::HostCertificateRejected {
            host_port,
            known_hosts,
            line,
            reason,
        },
        _ => SshError::HostKeyUnknown {
            host: c.host.clone(),
            port: c.port,
            fingerprint: fingerprint(offered),
            known_hosts,
        },
    }
}

/// known_hosts spelling of a host: `host` on port 22, `[host]:port` otherwise.
pub fn host_port(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

impl russh::client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match self.verify(&Offered::from(offered)) {
            Ok(()) => Ok(true),
            Err(e) => {
                if let Ok(mut slot) = self.refusal.lock() {
                    *slot = Some(e);
                }
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIFMmft8ttWvC9Ll+t8MvTvJtDwGWbAmi6Ii3Cp5OSUHX";
    const ED_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIDCD8RdZc+ef8bV6YqJvQmua8JUWPGxVc+zFwvewUm1r";
    const ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBCdXnQUzRX0SWcSjuDSFRuRIUHY+oaZiLp2nWNmnv+t4gvDnY6NcPEb7TCgiBPnlCQxQFrnkCUHL5YkpuRp5P6s=";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    // made by `ssh-keygen -s ca -I id [-h] [-n PRINCIPALS] [-V ...] host.pub`
    const CA: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIMEk0jFqFfA+soV0q6uGN52nspv+CGL7iE9RplG0VC/z";
    const HOST: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJ22cGgqVN9Tr/lPu2VvbCF+hy1avlnOY3ro1etdMO6e";
    const CERT_GOOD: &str = "AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIPfBTOOgxhO1RV6VYPd8ICBg4pFUy+Aewi3mOcclDqfyAAAAIJ22cGgqVN9Tr/lPu2VvbCF+hy1avlnOY3ro1etdMO6eAAAAAAAAAAAAAAACAAAAAmlkAAAADQAAAAkxMjcuMC4wLjEAAAAAAAAAAP//////////AAAAAAAAAAAAAAAAAAAAMwAAAAtzc2gtZWQyNTUxOQAAACDBJNIxahXwPrKFdKurhjedp7Kb/ghi+4hPUaZRtFQv8wAAAFMAAAALc3NoLWVkMjU1MTkAAABAypZD663p8jc1dUGGBhTgpWe3pEMVcj0A417rfFreCtBxayhu15iTURVZRiah+kzYlugzxTVk/YBdqJ/NwH11Cw==";
    const CERT_WRONG: &str = "AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIDDLWun+E/h7+wJeuTZn8MRuguqBr4sTpfYRaBMYxr3pAAAAIJ22cGgqVN9Tr/lPu2VvbCF+hy1avlnOY3ro1etdMO6eAAAAAAAAAAAAAAACAAAAAmlkAAAAEQAAAA1vdGhlci5leGFtcGxlAAAAAAAAAAD//////////wAAAAAAAAAAAAAAAAAAADMAAAALc3NoLWVkMjU1MTkAAAAgwSTSMWoV8D6yhXSrq4Y3naeym/4IYvuIT1GmUbRUL/MAAABTAAAAC3NzaC1lZDI1NTE5AAAAQNp06ZG///QT6b02g9wR8fI86DT53gZXJSHOibKf7CrfhTRTybky9qiYHysHQiF0KhycKx4AkEYASxlAR7i9SQA=";
    const CERT_EXPIRED: &str = "AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAINrqNMWROkHKiUK8Tq/4PUANPqkNCt2ymxPChbUlwnMaAAAAIJ22cGgqVN9Tr/lPu2VvbCF+hy1avlnOY3ro1etdMO6eAAAAAAAAAAAAAAACAAAAAmlkAAAADQAAAAkxMjcuMC4wLjEAAAAAXgvhAAAAAABeDTKAAAAAAAAAAAAAAAAAAAAAMwAAAAtzc2gtZWQyNTUxOQAAACDBJNIxahXwPrKFdKurhjedp7Kb/ghi+4hPUaZRtFQv8wAAAFMAAAALc3NoLWVkMjU1MTkAAABA3mOFVTImK32JeUYN0mhMBPlOzD74PA4AW/dREQEKvqwseOk4mEh699u3OD0Sc8sZ/fODLKCtZWZtrBIJWg42DA==";
    const CERT_USER: &str = "AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIKs9ZOX4l2EOjaYxdx0gsMgpqzjJ9Z+m8yqx/IbarnwfAAAAIJ22cGgqVN9Tr/lPu2VvbCF+hy1avlnOY3ro1etdMO6eAAAAAAAAAAAAAAABAAAAAmlkAAAADQAAAAkxMjcuMC4wLjEAAAAAAAAAAP//////////AAAAAAAAAIIAAAAVcGVybWl0LVgxMS1mb3J3YXJkaW5nAAAAAAAAABdwZXJtaXQtYWdlbnQtZm9yd2FyZGluZwAAAAAAAAAWcGVybWl0LXBvcnQtZm9yd2FyZGluZwAAAAAAAAAKcGVybWl0LXB0eQAAAAAAAAAOcGVybWl0LXVzZXItcmMAAAAAAAAAAAAAADMAAAALc3NoLWVkMjU1MTkAAAAgwSTSMWoV8D6yhXSrq4Y3naeym/4IYvuIT1GmUbRUL/MAAABTAAAAC3NzaC1lZDI1NTE5AAAAQEZ7gdJYspYo1zae/lgWRlVVMZ/HW9KKJih4OKYbTUMsPZuvG8+LS12AsyFvvKGGIyrl7mDg9x4hb9LAAN68WQE=";
    const CERT_ANY: &str = "AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIG+jWAvhSLJb7Y8+VbDQBrgzoYJS1Y6Up6Fb/HyHVyzTAAAAIJ22cGgqVN9Tr/lPu2VvbCF+hy1avlnOY3ro1etdMO6eAAAAAAAAAAAAAAACAAAAAmlkAAAAAAAAAAAAAAAA//////////8AAAAAAAAAAAAAAAAAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIMEk0jFqFfA+soV0q6uGN52nspv+CGL7iE9RplG0VC/zAAAAUwAAAAtzc2gtZWQyNTUxOQAAAEDyT4Ka+IVUXgoa03iUDHWHWCFKmS22d1qZiPkZK8G65Gb9SGtOa0kn43RaxQUlC92lWII8r/IHk4cfudPWLTIO";

    fn cert(b64: &str) -> Offered {
        let text = format!("ssh-ed25519-cert-v01@openssh.com {b64}");
        Offered::Certificate(Box::new(Certificate::from_openssh(&text).unwrap()))
    }

    /// known_hosts text from a compact spelling: lines split on `|`, `P` is
    /// `[127.0.0.1]:2222`, `A` `B` `EC` `CA` `HOST` are the keys above.
    fn file(spec: &str, port: u16) -> HostKeys {
        let ed = |b64: &str| format!("ssh-ed25519 {b64}");
        let text = spec
            .split('|')
            .map(|l| {
                l.split(' ')
                    .map(|w| match w {
                        "P" => "[127.0.0.1]:2222".to_string(),
                        "A" => ed(ED_A),
                        "B" => ed(ED_B),
                        "CA" => ed(CA),
                        "HOST" => ed(HOST),
                        "EC" => format!("ecdsa-sha2-nistp256 {ECDSA}"),
                        w => w.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n");
        HostKeys::select(&known_hosts::parse(&text), "127.0.0.1", port)
    }

    #[test]
    fn verdicts() {
        use HostKeyVerdict::{Certified, Known, Unknown};
        let (a, b, e) = (key(ED_A), key(ED_B), key(ECDSA));
        let changed = |line, k: &PublicKey| HostKeyVerdict::Changed {
            line,
            expected: fingerprint(k),
        };
        let revoked = |line, k: &PublicKey| HostKeyVerdict::Revoked {
            line,
            fingerprint: fingerprint(k),
        };
        let now = 1_700_000_000;
        let ka = || Offered::Key(a.clone());
        let table: Vec<(&str, &str, Offered, HostKeyVerdict)> = vec![
            ("none recorded", "", ka(), Unknown),
            ("same key", "P A", ka(), Known),
            ("other type only: changed", "P EC", ka(), changed(1, &e)),
            ("same type, other key", "P EC|P B", ka(), changed(2, &b)),
            ("one of several", "P EC|P A", ka(), Known),
            (
                "revoked though listed",
                "P A|@revoked * A",
                ka(),
                revoked(2, &a),
            ),
            (
                "revoked, bare name",
                "P A|@revoked 127.0.0.1 A",
                ka(),
                revoked(2, &a),
            ),
            ("bare name, no port entry", "127.0.0.1 A", ka(), Known),
            ("bare name, other key", "127.0.0.1 B", ka(), Unknown),
            ("other port only", "[127.0.0.1]:2223 A", ka(), Unknown),
            ("negated", "*,!127.0.0.?,![127.0.0.?]:* A", ka(), Unknown),
            (
                "cert, CA listed",
                "@cert-authority * CA",
                cert(CERT_GOOD),
                Certified { line: 1 },
            ),
            (
                "cert for any host",
                "@cert-authority * CA",
                cert(CERT_ANY),
                Certified { line: 1 },
            ),
            (
                "cert, CA elsewhere",
                "@cert-authority *.example CA",
                cert(CERT_GOOD),
                Unknown,
            ),
            (
                "cert, CA revoked",
                "@cert-authority * CA|@revoked * CA",
                cert(CERT_GOOD),
                revoked(2, &key(CA)),
            ),
            (
                "cert, key revoked",
                "@cert-authority * CA|@revoked * HOST",
                cert(CERT_GOOD),
                revoked(2, &key(HOST)),
            ),
            (
                "cert invalid, key listed",
                "@cert-authority * CA|P HOST",
                cert(CERT_WRONG),
                Known,
            ),
        ];
        for (name, spec, offered, want) in table {
            let got = judge(&offered, &file(spec, 2222), "127.0.0.1", now);
            assert_eq!(got, want, "{name}");
        }
        let ca_line = "@cert-authority * CA";
        for (name, c, reason) in [
            ("wrong principal", CERT_WRONG, "other.example"),
            ("expired", CERT_EXPIRED, "expired"),
            ("user certificate", CERT_USER, "user certificate"),
        ] {
            match judge(&cert(c), &file(ca_line, 2222), "127.0.0.1", now) {
                HostKeyVerdict::CertificateRejected { line: 1, reason: r } => {
                    assert!(r.to_string().contains(reason), "{name}: {r}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        // the window is checked against the clock given
        assert!(matches!(
            judge(
                &cert(CERT_EXPIRED),
                &file(ca_line, 22),
                "127.0.0.1",
                1_577_900_000
            ),
            Certified { .. }
        ));
    }

    #[test]
    fn host_port_spelling() {
        assert_eq!(host_port("h", 22), "h");
        assert_eq!(host_port("127.0.0.1", 2222), "[127.0.0.1]:2222");
    }

    #[test]
    fn policy_parse() {
        assert_eq!("strict".parse::<HostKeyPolicy>(), Ok(HostKeyPolicy::Strict));
        assert_eq!(
            "accept-new".parse::<HostKeyPolicy>(),
            Ok(HostKeyPolicy::AcceptNew)
        );
        assert!("yes".parse::<HostKeyPolicy>().is_err());
    }
}
