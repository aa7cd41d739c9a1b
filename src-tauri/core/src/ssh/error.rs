//! Errors of the SSH subsystem, one variant per thing a user acts on.

use std::path::PathBuf;

/// Why the SSH session could not be made or used. Each message is one line
/// that names the cause and the fix.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot reach {addr}: {reason}; check the host and port, and that sshd runs there")]
    Unreachable { addr: String, reason: String },

    #[error("SSH handshake with {addr} failed: {reason}")]
    Handshake { addr: String, reason: String },

    #[error(
        "host key of {host} is not known (fingerprint {fingerprint}); verify it, \
         then trust it with `ssh-keyscan -p {port} {host} >> {known_hosts}` or run with \
         --host-key-policy accept-new"
    )]
    HostKeyUnknown {
        host: String,
        port: u16,
        fingerprint: String,
        known_hosts: PathBuf,
    },

    #[error(
        "HOST KEY CHANGED for {host_port}: {known_hosts} line {line} has {expected}, the server \
         offered {offered}; someone may be intercepting the connection. If the change is \
         expected, remove the old key with `ssh-keygen -R '{host_port}' -f {known_hosts}`"
    )]
    HostKeyChanged {
        host_port: String,
        known_hosts: PathBuf,
        line: usize,
        expected: String,
        offered: String,
    },

    #[error("cannot read known_hosts {path}: {reason}")]
    KnownHosts { path: PathBuf, reason: String },

    #[error(
        "host key {fingerprint} of {host_port} is marked @revoked in {known_hosts} line {line}; \
         Berth never accepts it: get the server's new host key from its owner (remove that \
         line only if the revocation was a mistake)"
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
         {known_hosts} line {line}); ask the server's owner to re-issue it \
         (`ssh-keygen -s CA -h -n HOST`), or record the server's plain host key"
    )]
    HostCertificateRejected {
        host_port: String,
        known_hosts: PathBuf,
        line: usize,
        reason: String,
    },

    #[error("cannot use known_hosts: {source}; check the file and its permissions")]
    KnownHostsFile {
        #[source]
        source: super::known_hosts::KnownHostsError,
    },

    #[error(
        "authentication as {user}@{host} failed (tried: {tried}); add your public key to \
         ~{user}/.ssh/authorized_keys on the remote, or pass --identity FILE"
    )]
    AuthFailed {
        user: String,
        host: String,
        tried: String,
    },

    #[error("cannot use key {path}: {reason}")]
    Key { path: PathBuf, reason: String },

    #[error("SSH session to {addr} is down: {reason}")]
    Disconnected { addr: String, reason: String },

    #[error("{last_error}; reconnecting (attempt {attempt} in {in_secs:.1} s)")]
    Reconnecting {
        last_error: String,
        attempt: u32,
        in_secs: f64,
    },

    #[error("the remote refused a channel to {target}: {reason}")]
    ChannelRefused { target: String, reason: String },
}
