//! `ProxyCommand`: the SSH connection to the first hop is a command's stdin
//! and stdout instead of a TCP socket (`ssh -W %h:%p bastion`, `cloudflared
//! access ssh --hostname %h`, `aws ssm start-session …`), as OpenSSH runs it:
//! through `sh -c` with `%h`, `%p`, `%r`, `%n` and `%%` expanded. What the
//! command writes to stderr goes to the log, and its last line is kept for
//! the error if the SSH handshake fails. The command is ended (killed) when
//! the session it carries ends.

use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::{oneshot, Notify};

use super::session::SshTarget;

/// Expands OpenSSH's tokens in a `ProxyCommand`: `%h` host, `%p` port,
/// `%r` user, `%n` the name as given, `%%` a `%`. Another `%x` is an error
/// (OpenSSH refuses it too).
pub fn expand(command: &str, hop: &SshTarget, given: &str) -> Result<String, String> {
    let mut out = String::with_capacity(command.len());
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(&hop.host),
            Some('p') => out.push_str(&hop.port.to_string()),
            Some('r') => out.push_str(&hop.user),
            Some('n') => out.push_str(given),
            Some('%') => out.push('%'),
            Some(other) => return Err(format!("unknown token %{other} in ProxyCommand")),
            None => return Err("a lone % at the end of ProxyCommand".into()),
        }
    }
    Ok(out)
}

/// A running proxy command as a byte stream; dropping it kills the command.
pub struct ProxyStream {
    io: tokio::io::Join<ChildStdout, ChildStdin>,
    /// Dropped with the stream: the task that owns the command kills it.
    _end: oneshot::Sender<()>,
}

/// How a proxy command ended, readable after its stream was handed over.
#[derive(Clone, Default)]
pub struct ProxyReport(Arc<Mutex<Ended>>, Arc<Notify>);

#[derive(Default)]
struct Ended {
    status: Option<String>,
    last_stderr: String,
}

impl ProxyReport {
    /// The command's end (`exited with N`, `was killed`) and the last line
    /// it wrote to stderr, if it ends within `within`.
    pub async fn outcome(&self, within: std::time::Duration) -> Option<(String, String)> {
        let wait = async {
            loop {
                let notified = self.1.notified();
                if let Ok(e) = self.0.lock() {
                    if let Some(status) = &e.status {
                        return (status.clone(), e.last_stderr.clone());
                    }
                }
                notified.await;
            }
        };
        tokio::time::timeout(within, wait).await.ok()
    }
}

impl ProxyStream {
    /// Starts `command` (already expanded) under `sh -c`.
    pub fn spawn(command: &str) -> std::io::Result<(Self, ProxyReport)> {
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdout), Some(stdin), Some(stderr)) =
            (child.stdout.take(), child.stdin.take(), child.stderr.take())
        else {
            return Err(std::io::Error::other("the command's pipes were not set up"));
        };
        let report = ProxyReport::default();
        let (end, ended) = oneshot::channel::<()>();
        let r = report.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            let read_stderr = async {
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::info!("ProxyCommand: {line}");
                    if !line.trim().is_empty() {
                        if let Ok(mut e) = r.0.lock() {
                            e.last_stderr = line;
                        }
                    }
                }
            };
            let status = tokio::select! {
                // its last words first (stderr closes as it exits), then its status
                (_, status) = async { tokio::join!(read_stderr, child.wait()) } => status,
                _ = ended => {
                    let _ = child.kill().await;
                    child.wait().await
                }
            };
            let status = match status.map(|s| s.code()) {
                Ok(Some(c)) => format!("exited with {c}"),
                Ok(None) => "was killed".to_string(),
                Err(e) => format!("could not be waited for ({e})"),
            };
            if let Ok(mut e) = r.0.lock() {
                e.status = Some(status);
            }
            r.1.notify_waiters();
        });
        Ok((
            Self {
                io: tokio::io::join(stdout, stdin),
                _end: end,
            },
            report,
        ))
    }
}

impl AsyncRead for ProxyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for ProxyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_tokens_as_openssh_does() {
        let hop = SshTarget {
            user: "dev".into(),
            host: "10.0.0.5".into(),
            port: 2222,
            jumps: Vec::new(),
            proxy_command: None,
        };
        let table = [
            ("ssh -W %h:%p bastion", "ssh -W 10.0.0.5:2222 bastion"),
            ("nc %h %p # %r %n", "nc 10.0.0.5 2222 # dev build"),
            ("echo 100%%", "echo 100%"),
            ("plain", "plain"),
        ];
        for (given, want) in table {
            assert_eq!(expand(given, &hop, "build").unwrap(), want, "{given}");
        }
        for bad in ["x %q", "x %"] {
            assert!(expand(bad, &hop, "b").is_err(), "{bad}");
        }
    }

    use std::time::Duration;
    /// Long enough for a loaded machine.
    const SETTLE: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn the_command_is_the_transport_and_its_end_is_reported() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, report) =
            ProxyStream::spawn("head -c 5 >/dev/null; echo 'gone for good' >&2; exit 3").unwrap();
        s.write_all(b"hello").await.unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).await.unwrap();
        assert!(back.is_empty());
        let (code, last) = report.outcome(SETTLE).await.unwrap();
        assert_eq!(
            (code.as_str(), last.as_str()),
            ("exited with 3", "gone for good")
        );
        let (mut echo, report) = ProxyStream::spawn("cat").unwrap();
        echo.write_all(b"ping").await.unwrap();
        let mut four = [0u8; 4];
        echo.read_exact(&mut four).await.unwrap();
        assert_eq!(&four, b"ping");
        drop((echo, report));
        // one that never reads its stdin is killed when its session ends
        let (deaf, report) = ProxyStream::spawn("sleep 600").unwrap();
        assert!(
            report.outcome(Duration::from_millis(200)).await.is_none(),
            "still running"
        );
        drop(deaf);
        let (code, _) = report.outcome(SETTLE).await.unwrap();
        assert_eq!(code, "was killed", "ended with its session");
    }
}
