//! One long-lived `sh` on the remote, for commands a sync runs often (the
//! replica scans of two-way sync, every second or so). Opening an exec
//! channel costs the remote sshd a fork and a shell, 150–300 ms on a busy
//! host; writing a command into a shell that is already running costs one
//! round trip.
//!
//! Each command runs in a subshell with stdin from `/dev/null` (it cannot
//! eat the commands after it) and its stderr into a temporary file; then
//! the shell prints a marker carrying a random nonce and the exit status,
//! the first KiB of stderr, and the marker again. Output is untrusted (a
//! container names the files `find` lists), but no output can fake the end
//! of a command without knowing the nonce, which is new for every command.
//! Any failure (a limit, the channel closing) drops the shell; the next
//! command opens a new one.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ssh::channel_io::ChannelIo;
use crate::ssh::SshSession;

/// How long a new shell may take to say it is ready.
const READY_WAIT: Duration = Duration::from_secs(15);

/// Bytes of a command's stderr kept (enough for its first lines).
const STDERR_KEPT: usize = 2048;

/// Why a command could not be run to its end.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// No POSIX shell could be started (an exec channel refused, a Windows
    /// shell): the caller uses another way.
    #[error("no POSIX shell on the remote: {0}")]
    Unavailable(String),
    #[error("the command printed more than {0} bytes")]
    TooLarge(u64),
    #[error("the command printed nothing for {0:?}")]
    Idle(Duration),
    #[error("the command did not finish within {0:?}")]
    TooLong(Duration),
    /// The end marker came without a readable exit status.
    #[error("the remote shell ended with a malformed exit status")]
    MalformedStatus,
    /// The channel closed or failed mid-command.
    #[error("the remote shell ended: {0}")]
    Ended(String),
}

/// Bounds on one command.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most bytes of stdout.
    pub cap: u64,
    /// Longest silence.
    pub idle: Duration,
    /// Longest run.
    pub total: Duration,
}

/// What a command left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub stdout: Vec<u8>,
    pub status: u32,
    /// The start of its stderr.
    pub stderr: String,
}

/// The shell, opened on first use; one command at a time.
#[derive(Default)]
pub struct RemoteShell {
    slot: tokio::sync::Mutex<Option<ChannelIo>>,
}

fn nonce() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// The text sent for `script`, and the two markers its output ends with.
fn framed(script: &str, nonce: &str) -> (String, Vec<u8>, Vec<u8>) {
    let text = format!(
        "( {script}\n) </dev/null 2>\"$BERTH_ERR\"; s=$?; printf '\\000BERTH-END-{nonce} %d\\000' \
         \"$s\"; head -c {STDERR_KEPT} \"$BERTH_ERR\"; printf '\\000BERTH-END-{nonce}\\000'\n"
    );
    let status = format!("\0BERTH-END-{nonce} ").into_bytes();
    let end = format!("\0BERTH-END-{nonce}\0").into_bytes();
    (text, status, end)
}

/// Where `needle` starts in `hay`, looking from `from` on.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Splits a finished command's bytes: stdout, status, stderr. `None` while
/// the end marker has not arrived.
fn split(buf: &[u8], status_mark: &[u8], end_mark: &[u8]) -> Option<Result<Ran, ShellError>> {
    let end = find(buf, end_mark, 0)?;
    // stdout cannot contain the status marker: it carries the nonce
    let at = find(buf, status_mark, 0)?;
    let rest = &buf[at + status_mark.len()..end];
    let nul = rest.iter().position(|&b| b == 0)?;
    let status = std::str::from_utf8(&rest[..nul])
        .ok()
        .and_then(|s| s.parse::<u32>().ok());
    Some(match status {
        Some(status) => Ok(Ran {
            stdout: buf[..at].to_vec(),
            status,
            stderr: String::from_utf8_lossy(&rest[nul + 1..]).into_owned(),
        }),
        None => Err(ShellError::MalformedStatus),
    })
}

impl RemoteShell {
    /// Runs `script` (a POSIX shell command list) on the remote.
    pub async fn run(
        &self,
        ssh: &SshSession,
        script: &str,
        limits: Limits,
    ) -> Result<Ran, ShellError> {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|io| io.report().is_closed()) {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(open(ssh).await?);
        }
        let Some(io) = slot.as_mut() else {
            return Err(ShellError::Ended("not open".into()));
        };
        let result = run_on(io, script, limits).await;
        if result.is_err() {
            // its state is unknown: the next command gets a new shell
            *slot = None;
        }
        result
    }
}

async fn open(ssh: &SshSession) -> Result<ChannelIo, ShellError> {
    let mut io = ssh
        .open_exec("sh")
        .await
        .map_err(|e| ShellError::Unavailable(e.to_string()))?;
    let ready = format!("BERTH-READY-{}", nonce());
    let setup =
        format!("BERTH_ERR=$(mktemp) || exit 1; trap 'rm -f \"$BERTH_ERR\"' EXIT; echo {ready}\n");
    io.write_all(setup.as_bytes())
        .await
        .map_err(|e| ShellError::Unavailable(e.to_string()))?;
    io.flush()
        .await
        .map_err(|e| ShellError::Unavailable(e.to_string()))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    let waited = tokio::time::timeout(READY_WAIT, async {
        while find(&got, ready.as_bytes(), 0).is_none() && got.len() < 64 * 1024 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        find(&got, ready.as_bytes(), 0).is_some()
    })
    .await;
    match waited {
        Ok(true) => Ok(io),
        _ => Err(ShellError::Unavailable(
            io.report()
                .summary()
                .unwrap_or_else(|| "it never said it was ready".into()),
        )),
    }
}

async fn run_on(io: &mut ChannelIo, script: &str, limits: Limits) -> Result<Ran, ShellError> {
    let (text, status_mark, end_mark) = framed(script, &nonce());
    io.write_all(text.as_bytes())
        .await
        .map_err(|e| ShellError::Ended(e.to_string()))?;
    io.flush()
        .await
        .map_err(|e| ShellError::Ended(e.to_string()))?;
    let deadline = tokio::time::Instant::now() + limits.total;
    let mut out: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let slack = (STDERR_KEPT + 2 * end_mark.len() + 16) as u64;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let n = match tokio::time::timeout(limits.idle.min(left), io.read(&mut buf)).await {
            Err(_) if left <= limits.idle => return Err(ShellError::TooLong(limits.total)),
            Err(_) => return Err(ShellError::Idle(limits.idle)),
            Ok(Err(e)) => return Err(ShellError::Ended(e.to_string())),
            Ok(Ok(0)) => {
                return Err(ShellError::Ended(
                    io.report()
                        .summary()
                        .unwrap_or_else(|| "end of output".into()),
                ))
            }
            Ok(Ok(n)) => n,
        };
        if out.len() as u64 + n as u64 > limits.cap + slack {
            return Err(ShellError::TooLarge(limits.cap));
        }
        let from = out.len().saturating_sub(end_mark.len());
        out.extend_from_slice(&buf[..n]);
        if find(&out, &end_mark, from).is_some() {
            return match split(&out, &status_mark, &end_mark) {
                Some(Ok(ran)) if ran.stdout.len() as u64 > limits.cap => {
                    Err(ShellError::TooLarge(limits.cap))
                }
                Some(Ok(ran)) => Ok(ran),
                Some(Err(e)) => Err(e),
                None => Err(ShellError::Ended("no exit status".into())),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_s_output_ends_only_at_its_own_markers() {
        let (text, status, end) = framed("echo hi", "abc");
        assert!(text.starts_with("( echo hi\n) </dev/null"));
        let mut out = b"line\0BERTH-END-xyz 0\0fake".to_vec();
        assert!(split(&out, &status, &end).is_none());
        out.extend_from_slice(b"\0BERTH-END-abc 3\0find: oops\n\0BERTH-END-abc\0");
        let ran = split(&out, &status, &end).unwrap().unwrap();
        assert_eq!(ran.stdout, b"line\0BERTH-END-xyz 0\0fake".to_vec());
        assert_eq!(ran.status, 3);
        assert_eq!(ran.stderr, "find: oops\n");
        let bad = b"\0BERTH-END-abc x\0\0BERTH-END-abc\0";
        assert!(split(bad, &status, &end).unwrap().is_err());
    }

    #[test]
    fn the_framed_text_runs_in_a_real_shell() {
        let (text, status, end) = framed("printf 'a\\0b'; echo err >&2; exit 7", "n1");
        let script = format!("BERTH_ERR=$(mktemp); {text}");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let ran = split(&out.stdout, &status, &end).unwrap().unwrap();
        assert_eq!(ran.stdout, b"a\0b".to_vec());
        assert_eq!(ran.status, 7);
        assert_eq!(ran.stderr, "err\n");
    }
}
