//! A russh channel as a plain byte stream (`AsyncRead + AsyncWrite`) that can
//! never stall the SSH session it rides on.
//!
//! russh's session loop hands every incoming packet to a bounded per-channel
//! queue and waits when that queue is full, so one channel nobody reads (a
//! `docker logs -f` client that was stopped, a stalled download) would freeze
//! every other channel of the session, keepalives included. Here a pump task
//! drains the russh queue at once into an unbounded hand-off, and memory stays
//! bounded by SSH flow control instead: the session is configured to refill a
//! channel's window only when the application has consumed its data
//! (`window_adjust_on_read`), and the reader below credits the bytes it hands
//! out. A channel can therefore hold at most one window of unread data.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

use super::session::SessionHandle;

/// Per-direction buffer for copying between a local socket and a channel:
/// two SSH packets, so bulk traffic moves in full packets (tokio's default
/// copy buffer is 8 KiB).
pub const PIPE_BUF: usize = 64 * 1024;

/// How many consumed bytes the reader accumulates before it credits them back
/// to the server, as a fraction of the window (fewer, larger adjustments).
const CREDIT_DIVISOR: u32 = 4;

/// Stderr of an exec channel (`docker system dial-stdio`), kept to explain
/// failures; capped so a chatty command cannot grow it without limit.
const STDERR_CAP: usize = 4096;

/// What an exec channel's command said besides its stdout.
#[derive(Clone, Default)]
pub struct ExecReport(Arc<Mutex<ExecReportInner>>, Arc<tokio::sync::Notify>);

#[derive(Default)]
struct ExecReportInner {
    stderr: Vec<u8>,
    exit_status: Option<u32>,
    closed: bool,
}

impl ExecReport {
    fn push_stderr(&self, data: &[u8]) {
        if let Ok(mut r) = self.0.lock() {
            let room = STDERR_CAP.saturating_sub(r.stderr.len());
            r.stderr.extend_from_slice(&data[..data.len().min(room)]);
        }
    }

    fn set_exit_status(&self, status: u32) {
        if let Ok(mut r) = self.0.lock() {
            r.exit_status = Some(status);
        }
    }

    fn set_closed(&self) {
        if let Ok(mut r) = self.0.lock() {
            r.closed = true;
        }
        self.1.notify_waiters();
    }

    /// The command's exit status once the channel has closed (the server
    /// sends it after the output's EOF), or `None` if it never said.
    pub async fn exit_status(&self) -> Option<u32> {
        loop {
            let closed = self.1.notified();
            match self.0.lock() {
                Ok(r) if r.closed => return r.exit_status,
                Ok(_) => {}
                Err(_) => return None,
            }
            closed.await;
        }
    }

    /// The channel has closed (its pump ended): no more traffic either way.
    pub fn is_closed(&self) -> bool {
        self.0.lock().map(|r| r.closed).unwrap_or(true)
    }

    /// What the command wrote to stderr (the first few KiB).
    pub fn stderr(&self) -> String {
        self.0
            .lock()
            .map(|r| String::from_utf8_lossy(&r.stderr).into_owned())
            .unwrap_or_default()
    }

    /// One line for an error message, e.g. `exit 127: sh: docker: not found`;
    /// `None` when the command said nothing.
    pub fn summary(&self) -> Option<String> {
        let r = self.0.lock().ok()?;
        let text = String::from_utf8_lossy(&r.stderr);
        let last = text.lines().map(str::trim).rfind(|l| !l.is_empty());
        match (r.exit_status, last) {
            (None, None) => None,
            (Some(code), None) => Some(format!("exit {code}")),
            (None, Some(line)) => Some(line.chars().take(300).collect()),
            (Some(code), Some(line)) => Some(format!(
                "exit {code}: {}",
                line.chars().take(300).collect::<String>()
            )),
        }
    }
}

/// What the pump hands to the reader.
enum Chunk {
    Data(Bytes),
    Eof,
}

/// A channel as a byte stream. Dropping it closes the channel.
pub struct ChannelIo {
    rx: mpsc::UnboundedReceiver<Chunk>,
    current: Bytes,
    eof: bool,
    writer: Pin<Box<dyn AsyncWrite + Send + Sync>>,
    id: russh::ChannelId,
    handle: SessionHandle,
    pending_credit: u32,
    credit_threshold: u32,
    report: ExecReport,
    /// Dropped with the stream; the pump then closes the channel.
    _close: tokio::sync::oneshot::Sender<()>,
}

impl ChannelIo {
    /// Wraps an opened channel; `window` is the session's channel window.
    pub(crate) fn new(channel: russh::Channel<Msg>, handle: SessionHandle, window: u32) -> Self {
        let id = channel.id();
        let (read_half, write_half) = channel.split();
        let writer = Box::pin(write_half.make_writer());
        let (data_tx, rx) = mpsc::unbounded_channel();
        let (close_tx, close_rx) = tokio::sync::oneshot::channel();
        let report = ExecReport::default();
        let pump = Pump {
            id,
            handle: handle.clone(),
            read_half,
            write_half,
            data_tx,
            report: report.clone(),
        };
        tokio::spawn(pump.run(close_rx));
        Self {
            rx,
            current: Bytes::new(),
            eof: false,
            writer,
            id,
            handle,
            pending_credit: 0,
            credit_threshold: (window / CREDIT_DIVISOR).max(1),
            report,
            _close: close_tx,
        }
    }

    /// Stderr and exit status of an exec channel's command, readable after
    /// the stream itself has been handed on.
    pub fn report(&self) -> ExecReport {
        self.report.clone()
    }

    fn credit(&mut self, n: usize) {
        self.pending_credit = self.pending_credit.saturating_add(n as u32);
        if self.pending_credit >= self.credit_threshold {
            // fails only when the session is gone, and then nothing is owed
            let _ = self.handle.try_consumed(self.id, self.pending_credit);
            self.pending_credit = 0;
        }
    }
}

impl AsyncRead for ChannelIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.current.is_empty() {
                let n = self.current.len().min(buf.remaining());
                buf.put_slice(&self.current[..n]);
                self.current.advance(n);
                self.credit(n);
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Chunk::Data(data))) => self.current = data,
                Poll::Ready(Some(Chunk::Eof)) | Poll::Ready(None) => self.eof = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for ChannelIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writer.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer.as_mut().poll_flush(cx)
    }

    /// Half-close: sends EOF, the read side stays open.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer.as_mut().poll_shutdown(cx)
    }
}

/// Owns the channel's halves: drains incoming messages and closes the
/// channel when the stream is dropped.
struct Pump {
    id: russh::ChannelId,
    handle: SessionHandle,
    read_half: ChannelReadHalf,
    write_half: ChannelWriteHalf<Msg>,
    data_tx: mpsc::UnboundedSender<Chunk>,
    report: ExecReport,
}

impl Pump {
    async fn run(mut self, mut close_rx: tokio::sync::oneshot::Receiver<()>) {
        let mut open = true;
        while open {
            tokio::select! {
                msg = self.read_half.wait() => open = self.on_message(msg),
                _ = &mut close_rx => break,
            }
        }
        let _ = self.data_tx.send(Chunk::Eof);
        self.report.set_closed();
        let _ = self.write_half.close().await;
    }

    /// Returns false once the channel is gone.
    fn on_message(&mut self, msg: Option<ChannelMsg>) -> bool {
        match msg {
            Some(ChannelMsg::Data { data }) => {
                let _ = self.data_tx.send(Chunk::Data(data));
            }
            Some(ChannelMsg::ExtendedData { data, .. }) => {
                // stderr is consumed right here, so its window is credited at once
                self.report.push_stderr(&data);
                let _ = self.handle.try_consumed(self.id, data.len() as u32);
            }
            Some(ChannelMsg::Eof) => {
                let _ = self.data_tx.send(Chunk::Eof);
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => {
                self.report.set_exit_status(exit_status);
            }
            Some(ChannelMsg::Close) | None => return false,
            Some(_) => {}
        }
        true
    }
}
