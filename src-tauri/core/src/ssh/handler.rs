//! The russh client handler: verifies the server's host key against
//! known_hosts (hashed entries included) under the chosen policy.
//!
//! russh only learns "accepted or not" from `check_server_key`; the reason
//! (unknown or changed, with fingerprints) is left in a shared verdict slot
//! that the session turns into a [`SshError`] for the user.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use russh::keys::{HashAlg, PublicKey, PublicKeyOrCertificate};

use super::error::SshError;

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

/// Outcome of comparing an offered key with known_hosts (pure, see [`judge`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyVerdict {
    Known,
    Unknown,
    Changed { line: usize, expected: String },
}

/// Compares the offered key with the recorded keys of that host: a recorded
/// key of the same algorithm that differs means the key changed.
pub fn judge(offered: &PublicKey, recorded: &[(usize, PublicKey)]) -> HostKeyVerdict {
    if recorded.iter().any(|(_, k)| k == offered) {
        return HostKeyVerdict::Known;
    }
    match recorded
        .iter()
        .find(|(_, k)| k.algorithm() == offered.algorithm())
    {
        Some((line, k)) => HostKeyVerdict::Changed {
            line: *line,
            expected: fingerprint(k),
        },
        None => HostKeyVerdict::Unknown,
    }
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

    fn verify(&self, offered: &PublicKey) -> Result<(), SshError> {
        let c = &self.check;
        let recorded =
            russh::keys::known_hosts::known_host_keys_path(&c.host, c.port, &c.known_hosts)
                .map_err(|e| SshError::KnownHosts {
                    path: c.known_hosts.clone(),
                    reason: e.to_string(),
                })?;
        match judge(offered, &recorded) {
            HostKeyVerdict::Known => Ok(()),
            HostKeyVerdict::Changed { line, expected } => Err(SshError::HostKeyChanged {
                host_port: host_port(&c.host, c.port),
                known_hosts: c.known_hosts.clone(),
                line,
                expected,
                offered: fingerprint(offered),
            }),
            HostKeyVerdict::Unknown if c.policy == HostKeyPolicy::AcceptNew => {
                if let Some(dir) = c.known_hosts.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                russh::keys::known_hosts::learn_known_hosts_path(
                    &c.host,
                    c.port,
                    offered,
                    &c.known_hosts,
                )
                .map_err(|e| SshError::KnownHosts {
                    path: c.known_hosts.clone(),
                    reason: e.to_string(),
                })?;
                tracing::warn!(host = %c.host, port = c.port, fingerprint = %fingerprint(offered),
                    "trusted a new host key (accept-new) and recorded it in {}", c.known_hosts.display());
                Ok(())
            }
            HostKeyVerdict::Unknown => Err(SshError::HostKeyUnknown {
                host: c.host.clone(),
                port: c.port,
                fingerprint: fingerprint(offered),
                known_hosts: c.known_hosts.clone(),
            }),
        }
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
        let key = offered_key(offered);
        match self.verify(&key) {
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

/// The host key a server offered (a certificate's own key for a certificate).
pub fn offered_key(offered: &PublicKeyOrCertificate) -> PublicKey {
    match offered {
        PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
        PublicKeyOrCertificate::Certificate(cert) => PublicKey::new(cert.public_key().clone(), ""),
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

    #[test]
    fn verdicts() {
        let (a, b, e) = (key(ED_A), key(ED_B), key(ECDSA));
        let table: Vec<(&str, Vec<(usize, PublicKey)>, HostKeyVerdict)> = vec![
            ("none recorded", vec![], HostKeyVerdict::Unknown),
            ("same key", vec![(3, a.clone())], HostKeyVerdict::Known),
            (
                "other algorithm only",
                vec![(1, e.clone())],
                HostKeyVerdict::Unknown,
            ),
            (
                "same algorithm, other key",
                vec![(7, b.clone())],
                HostKeyVerdict::Changed {
                    line: 7,
                    expected: fingerprint(&b),
                },
            ),
            (
                "one of several matches",
                vec![(1, e.clone()), (2, a.clone())],
                HostKeyVerdict::Known,
            ),
        ];
        for (name, recorded, want) in table {
            assert_eq!(judge(&a, &recorded), want, "{name}");
        }
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
