//! The one SFTP request the replica needs that russh-sftp's `SftpSession`
//! does not make: `posix-rename@openssh.com`, a `rename(2)` that replaces
//! the target in one step. SFTP v3's RENAME refuses to overwrite, so without
//! it replacing a file is remove-then-rename, and a reader in the container
//! finds the file missing for a moment after every edit.
//!
//! `SftpSession` keeps its raw session (which can send any extended request)
//! private and builds it itself, so `replica::connect` opens a second, raw
//! SFTP session beside it on the same SSH session (one more channel and
//! `sftp-server` process per agent, opened alongside the first, so no extra
//! wait) and keeps it only when the server's version reply advertises the
//! extension. The raw session is found again from the `SftpSession` it was
//! opened with, through a registry of weak references: an entry of a dropped
//! session is pruned, and while it exists it keeps that session's address from
//! being reused, so it can never be mistaken for a newer session's.
//!
//! Ordering between the two channels needs nothing more: every rename is sent
//! only after the reply that the file it moves was closed on the first one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::{RawSftpSession, SftpSession};
use russh_sftp::protocol::{Packet, StatusCode};

use crate::ssh::SshSession;

/// The extension's name, as OpenSSH's `sftp-server` advertises it (version "1").
pub const POSIX_RENAME: &str = "posix-rename@openssh.com";

/// Raw sessions offering `posix-rename@openssh.com`, by the `SftpSession`
/// they were opened with.
static ATTACHED: Mutex<Vec<(Weak<SftpSession>, Arc<RawSftpSession>)>> = Mutex::new(Vec::new());

/// The fallback is logged once per process, not once per reconnect.
static SAID_FALLBACK: AtomicBool = AtomicBool::new(false);

fn say_fallback(why: &str) {
    if !SAID_FALLBACK.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "{why}: a synced file replaced by an edit is removed, then renamed into place \
             on the remote, so a container may find it missing for a moment"
        );
    }
}

/// Opens the raw SFTP session that makes atomic renames, if the server
/// offers them; `None` (said once in the log) when it does not or the
/// channel is refused. Run beside the `SftpSession`'s own start.
pub async fn open(ssh: &SshSession, config: russh_sftp::client::Config) -> Option<RawSftpSession> {
    let io = match ssh.open_subsystem("sftp").await {
        Ok(io) => io,
        Err(e) => {
            say_fallback(&format!(
                "could not open a second SFTP channel for atomic renames ({e})"
            ));
            return None;
        }
    };
    let raw = RawSftpSession::new_with_config(io, config);
    match raw.init().await {
        Ok(v) if v.extensions.get(POSIX_RENAME).is_some_and(|ver| ver == "1") => Some(raw),
        Ok(_) => {
            say_fallback(&format!(
                "the remote's SFTP server does not offer {POSIX_RENAME}"
            ));
            None
        }
        Err(e) => {
            say_fallback(&format!("the second SFTP channel did not start ({e})"));
            None
        }
    }
}

/// Records `raw` as the atomic-rename session of `sftp` (and forgets the
/// sessions dropped since).
pub fn attach(sftp: &Arc<SftpSession>, raw: RawSftpSession) {
    if let Ok(mut all) = ATTACHED.lock() {
        all.retain(|(s, _)| s.strong_count() > 0);
        all.push((Arc::downgrade(sftp), Arc::new(raw)));
    }
}

/// The atomic-rename session opened with `sftp`, if any.
fn raw_for(sftp: &SftpSession) -> Option<Arc<RawSftpSession>> {
    let all = ATTACHED.lock().ok()?;
    all.iter()
        .find(|(s, _)| std::ptr::eq(s.as_ptr(), sftp) && s.strong_count() > 0)
        .map(|(_, raw)| raw.clone())
}

/// Whether renames on `sftp` replace their target atomically.
pub fn atomic_renames(sftp: &SftpSession) -> bool {
    raw_for(sftp).is_some()
}

/// SFTP's string: a big-endian u32 length, then the bytes.
fn put_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// `rename(2)` of `from` to `to` on the remote: what is at `to` (a file, or
/// a link, never what it points to) is replaced in one step, so a reader sees
/// the old entry or the new, never neither. `None` when `sftp` has no such
/// session (the caller falls back); an error of the session itself (closed,
/// timed out) is returned as such, so the caller can tell it from a refusal.
pub async fn posix_rename(
    sftp: &SftpSession,
    from: &str,
    to: &str,
) -> Option<Result<(), SftpError>> {
    let raw = raw_for(sftp)?;
    let mut data = Vec::with_capacity(8 + from.len() + to.len());
    put_string(&mut data, from);
    put_string(&mut data, to);
    Some(match raw.extended(POSIX_RENAME, data).await {
        Ok(Packet::Status(s)) if s.status_code == StatusCode::Ok => Ok(()),
        Ok(Packet::Status(s)) => Err(SftpError::Status(s)),
        Ok(_) => Err(SftpError::UnexpectedPacket),
        Err(e) => Err(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_two_sftp_strings() {
        let mut buf = Vec::new();
        put_string(&mut buf, "/r/.berth-tmp-a");
        put_string(&mut buf, "/r/a");
        let mut want = vec![0, 0, 0, 15];
        want.extend_from_slice(b"/r/.berth-tmp-a");
        want.extend_from_slice(&[0, 0, 0, 4]);
        want.extend_from_slice(b"/r/a");
        assert_eq!(buf, want);
    }
}
