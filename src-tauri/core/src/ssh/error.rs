//! Errors of the SSH subsystem, one variant per thing a user acts on; the
//! fix is a separate [`Hint`].

use std::path::PathBuf;

use crate::hint::{Advice, Hint};

/// Why the SSH session could not be made or used. Each message is one line
/// saying what happened and its cause; [`Advice::hint`] says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot reach {addr}: {source}")]
    Unreachable {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    #[error("SSH handshake with {addr} failed: {source}")]
    Handshake {
        addr: String,
        #[source]
        source: russh::Error,
    },

    #[error("SSH handshake with {addr} failed: no answer in {secs} s")]
    HandshakeTimeout { addr: String, secs: u64 },

    #[error("{addr} offered no host key Berth can use")]
    NoUsableHostKey { addr: String },

    #[error("host key of {host} is not known (fingerprint {fingerprint})")]
    HostKeyUnknown {
        host: String,
        port: u16,
        fingerprint: String,
        known_hosts: PathBuf,
    },

    #[error(
        "HOST KEY CHANGED for {host_port}: {known_hosts} line {line} has {expected}, the server \
         offered {offered}; someone may be intercepting the connection"
    )]
    HostKeyChanged {
        host_port: String,
        known_hosts: PathBuf,
        line: usize,
        expected: String,
        offered: String,
    },

    #[error(
        "host key {fingerprint} of {host_port} is marked @revoked in {known_hosts} line {line}"
    )]
    HostKeyRevoked {
        host_port: String,
        known_hosts: PathBuf,
        line: usize,
        /// `SHA256:…` of the revoked key (the host key, or its certificate's CA).
        fingerprint: String,
    },

    #[error(
        "host certificate of {host_port} is not valid: {reason} (its CA is trusted by \
         {known_hosts} line {line})"
    )]
    HostCertificateRejected {
        host_port: String,
        known_hosts: PathBuf,
        line: usize,
        /// Which rule of the CA the certificate breaks.
        #[source]
        reason: super::handler::CertProblem,
    },

    #[error("cannot use known_hosts: {source}")]
    KnownHostsFile {
        #[source]
        source: super::known_hosts::KnownHostsError,
    },

    #[error("authentication as {user}@{host} failed (tried: {tried})")]
    AuthFailed {
        user: String,
        host: String,
        tried: String,
    },

    #[error("cannot use key {path}: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: russh::keys::Error,
    },

    #[error("cannot decrypt key {path}: {source} (wrong passphrase?)")]
    KeyPassphraseWrong {
        path: PathBuf,
        #[source]
        source: russh::keys::Error,
    },

    #[error("key {path} is encrypted and there is no way to ask for its passphrase")]
    KeyEncrypted { path: PathBuf },

    #[error("cannot read the passphrase of key {path}: {source}")]
    KeyPrompt {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("SSH session to {addr} is down: {source}")]
    Disconnected {
        addr: String,
        #[source]
        source: russh::Error,
    },

    #[error("SSH session to {addr} was closed")]
    Closed { addr: String },

    /// The session is down and the next dial waits for the backoff;
    /// `last_error` is what the last dial said, with its hint as the CLI words.
    #[error("{last_error}; reconnecting (attempt {attempt} in {in_secs:.1} s)")]
    Reconnecting {
        last_error: String,
        attempt: u32,
        in_secs: f64,
    },

    #[error("cannot start ProxyCommand {command:?}: {source}")]
    ProxyCommandStart {
        command: String,
        #[source]
        source: std::io::Error,
    },

    /// The command ended before (or while) the SSH handshake ran over it.
    #[error("ProxyCommand {command:?} {status}: {last_stderr}")]
    ProxyCommandEnded {
        command: String,
        /// `exited with N` or `was killed`.
        status: String,
        /// The last line it wrote to stderr (empty if none).
        last_stderr: String,
    },

    /// A jump host on the way failed; `source` says how.
    #[error("jump host {hop}: {source}")]
    Jump {
        hop: String,
        #[source]
        source: Box<SshError>,
    },

    #[error("the remote refused a channel to {target}: {reason}")]
    ChannelRefused {
        target: String,
        /// The server's answer (its reason code, or none in time).
        reason: String,
    },
}

impl Advice for SshError {
    fn hint(&self) -> Option<Hint> {
        use SshError::*;
        Some(match self {
            Unreachable { .. } => Hint::CheckSshAddress,
            Handshake { .. } | HandshakeTimeout { .. } | NoUsableHostKey { .. } => {
                Hint::CheckSshPort
            }
            HostKeyUnknown {
                host,
                port,
                known_hosts,
                ..
            } => Hint::TrustHostKey {
                host: host.clone(),
                port: *port,
                known_hosts: known_hosts.clone(),
            },
            HostKeyChanged {
                host_port,
                known_hosts,
                ..
            } => Hint::RemoveChangedHostKey {
                host_port: host_port.clone(),
                known_hosts: known_hosts.clone(),
            },
            HostKeyRevoked { .. } => Hint::AskForNewHostKey,
            HostCertificateRejected { .. } => Hint::ReissueHostCertificate,
            KnownHostsFile { .. } => Hint::CheckFilePermissions,
            AuthFailed { user, .. } => Hint::AuthorizeKey { user: user.clone() },
            Key { .. } => Hint::UseAnotherKey,
            KeyPassphraseWrong { .. } => Hint::EnterSavedPassphrase,
            KeyEncrypted { .. } => Hint::GivePassphrase,
            KeyPrompt { .. } => Hint::GivePassphrase,
            Jump { source, .. } => return source.hint(),
            ProxyCommandStart { .. } | ProxyCommandEnded { .. } => Hint::CheckProxyCommand,
            Disconnected { .. } | Closed { .. } | Reconnecting { .. } | ChannelRefused { .. } => {
                return None
            }
        })
    }
}
