//! One persistent SSH session per remote, shared by every Docker request.
//!
//! Channels are opened on the live session. When it drops (a reset at once;
//! a silent network within about 6 s, by the kernel's keepalives:
//! `liveness.rs`), a supervisor re-dials with capped exponential backoff
//! (`reconnect.rs`), single flight, with the
//! credentials loaded at start; meanwhile channel requests fail at once with
//! the last error and the next attempt. Whoever rides on the session
//! (events, forwards, sync) follows its state through [`SshSession::subscribe_state`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::ChannelId;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::reconnect::{self, Backoff};

use super::auth::Credentials;
use super::channel_io::ChannelIo;
use super::error::SshError;
use super::handler::{ClientHandler, HostKeyCheck};
use crate::hint::{Advice, Hint};

/// How long the remote may take to answer a channel (or subsystem) request.
const CHANNEL_OPEN_TIMEOUT: Duration = Duration::from_secs(20);
/// Per-channel receive window: the most unread data one channel can hold.
pub const CHANNEL_WINDOW: u32 = 4 * 1024 * 1024;

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: String,
    pub host: String,
    pub port: u16,
    /// Jump hosts, first to last, through which the target is reached
    /// (`ProxyJump`, `--jump`); empty: dialed directly. A hop's own `jumps`
    /// are not used (the chain is flat).
    pub jumps: Vec<SshTarget>,
    /// `ProxyCommand`, its tokens expanded: its stdin/stdout carry the
    /// connection instead of TCP. Only a first hop's is used (`ssh -J`
    /// replaces the target's).
    pub proxy_command: Option<String>,
}

impl SshTarget {
    /// `host:port`, as errors name a hop.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `user@host:port`, as the status lists a jump host.
    pub fn user_addr(&self) -> String {
        format!("{}@{}", self.user, self.addr())
    }

    /// `user@host:port, …` of the jump hosts; `None` when there are none.
    pub fn via(&self) -> Option<String> {
        (!self.jumps.is_empty()).then(|| {
            self.jumps
                .iter()
                .map(SshTarget::user_addr)
                .collect::<Vec<_>>()
                .join(", ")
        })
    }

    /// `ssh://user@host:port`, the form printed in the ready line and status.
    pub fn url(&self) -> String {
        format!("ssh://{}", self.user_addr())
    }
}

/// A cheap clone of the live russh handle, with the jump hosts' sessions
/// that carry it (kept alive as long as it is).
#[derive(Clone)]
pub struct SessionHandle(Arc<Handle<ClientHandler>>, Arc<Vec<Handle<ClientHandler>>>);

impl SessionHandle {
    pub(super) fn new(target: Handle<ClientHandler>, jumps: Vec<Handle<ClientHandler>>) -> Self {
        Self(Arc::new(target), Arc::new(jumps))
    }

    /// Resolves when this session has ended.
    pub(super) async fn closed(&self) {
        self.0.closed().await
    }

    /// Credits `bytes` consumed by the application back to the channel's
    /// window (never waits; see `window_adjust_on_read`).
    pub fn try_consumed(&self, id: ChannelId, bytes: u32) -> Result<(), russh::Error> {
        self.0.try_consumed(id, bytes)
    }
}

/// Connection state, for status and the UI.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnState {
    Connecting,
    Connected {
        #[serde(skip)]
        since: Instant,
        connects: u64,
    },
    Disconnected {
        last_error: String,
        hint: Option<Hint>,
    },
    /// Down; the supervisor tries again at `next_at`.
    Reconnecting {
        attempt: u32,
        /// What the last dial said (without the fix: that is `hint`).
        last_error: String,
        hint: Option<Hint>,
        #[serde(skip)]
        next_at: Instant,
    },
}

pub struct SshSession {
    target: SshTarget,
    check: HostKeyCheck,
    credentials: Credentials,
    live: tokio::sync::Mutex<Option<SessionHandle>>,
    state: watch::Sender<ConnState>,
    connects: std::sync::atomic::AtomicU64,
    backoff: Mutex<Backoff>,
    /// Set by `close`: no more dialing.
    closed: AtomicBool,
    /// Ends the reconnect supervisor.
    stop: CancellationToken,
}

impl SshSession {
    /// Connects and authenticates; the error says what to fix.
    pub async fn connect(
        target: SshTarget,
        check: HostKeyCheck,
        credentials: Credentials,
    ) -> Result<Arc<Self>, SshError> {
        let session = Arc::new(Self {
            target,
            check,
            credentials,
            live: tokio::sync::Mutex::new(None),
            state: watch::Sender::new(ConnState::Connecting),
            connects: Default::default(),
            backoff: Mutex::new(reconnect::session_backoff()),
            closed: AtomicBool::new(false),
            stop: CancellationToken::new(),
        });
        session.handle().await?;
        tokio::spawn(reconnect::supervise(
            Arc::downgrade(&session),
            session.stop.clone(),
        ));
        Ok(session)
    }

    /// Follows the connection state (connected, reconnecting, …).
    pub fn subscribe_state(&self) -> watch::Receiver<ConnState> {
        self.state.subscribe()
    }

    /// Resolves the next time the session becomes connected (after a drop).
    pub async fn reconnected(&self) {
        let mut rx = self.state.subscribe();
        rx.mark_unchanged();
        while rx.changed().await.is_ok() {
            if matches!(*rx.borrow(), ConnState::Connected { .. }) {
                return;
            }
        }
        std::future::pending::<()>().await
    }

    /// For the supervisor: what to wait for before it looks again.
    pub(super) fn next_look(&self) -> reconnect::Look {
        use reconnect::Look;
        if self.closed.load(Ordering::Acquire) {
            return Look::Never;
        }
        let Ok(live) = self.live.try_lock() else {
            // a dial is under way: its outcome changes the state
            return Look::StateChange(self.state.subscribe());
        };
        match live.as_ref() {
            Some(h) if !h.0.is_closed() => Look::Drop(h.clone()),
            _ => {
                let wait = self
                    .backoff
                    .lock()
                    .ok()
                    .and_then(|b| b.remaining(Instant::now()));
                Look::Dial(wait.unwrap_or(Duration::ZERO))
            }
        }
    }

    /// For the supervisor: whether the session should be dialed now.
    pub(super) fn needs_dial_now(&self) -> bool {
        matches!(self.next_look(), reconnect::Look::Dial(w) if w.is_zero())
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    pub fn state(&self) -> ConnState {
        self.state.borrow().clone()
    }

    fn set_state(&self, s: ConnState) {
        self.state.send_replace(s);
    }

    fn addr(&self) -> String {
        self.target.addr()
    }

    /// The live session, reconnecting if it dropped.
    pub async fn handle(&self) -> Result<SessionHandle, SshError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SshError::Closed { addr: self.addr() });
        }
        let mut live = self.live.lock().await;
        // again under the lock: `close` may have run while we waited for it
        if self.closed.load(Ordering::Acquire) {
            return Err(SshError::Closed { addr: self.addr() });
        }
        if let Some(h) = live.as_ref() {
            if !h.0.is_closed() {
                return Ok(h.clone());
            }
            tracing::warn!(remote = %self.target.url(), "SSH session dropped; reconnecting");
        }
        *live = None;
        let gate = self
            .backoff
            .lock()
            .map(|b| b.clone())
            .unwrap_or_else(|_| reconnect::session_backoff());
        if let Some(wait) = gate.remaining(Instant::now()) {
            return Err(SshError::Reconnecting {
                last_error: gate.last_error().unwrap_or("the session dropped").into(),
                attempt: gate.failures() + 1,
                in_secs: (wait.as_millis() as f64 / 1000.0).max(0.1),
            });
        }
        if gate.failures() == 0 {
            let ever = self.connects.load(std::sync::atomic::Ordering::Relaxed) > 0;
            self.set_state(if ever {
                ConnState::Reconnecting {
                    attempt: 1,
                    last_error: "the SSH session dropped".into(),
                    hint: None,
                    next_at: Instant::now(),
                }
            } else {
                ConnState::Connecting
            });
        }
        match self.dial().await {
            Ok(h) => {
                if let Ok(mut b) = self.backoff.lock() {
                    b.succeeded();
                }
                let n = self
                    .connects
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1;
                self.set_state(ConnState::Connected {
                    since: Instant::now(),
                    connects: n,
                });
                *live = Some(h.clone());
                Ok(h)
            }
            Err(e) => {
                let now = Instant::now();
                let (attempt, wait) = match self.backoff.lock() {
                    Ok(mut b) => {
                        // the CLI's words: the fail-fast answer to docker repeats it
                        let wait = b.failed(now, crate::hint::for_cli(&e));
                        (b.failures(), wait)
                    }
                    Err(_) => (1, reconnect::FIRST_RETRY),
                };
                tracing::warn!(
                    remote = %self.target.url(),
                    "reconnect attempt {attempt} failed: {e}; next in {wait:?}"
                );
                self.set_state(ConnState::Reconnecting {
                    attempt,
                    last_error: e.to_string(),
                    hint: e.hint(),
                    next_at: now + wait,
                });
                Err(e)
            }
        }
    }

    async fn dial(&self) -> Result<SessionHandle, SshError> {
        super::dial::connect(&self.target, &self.check, &self.credentials).await
    }

    /// Opens a channel with `open`, reconnecting once if the session was dead.
    async fn open<F, Fut>(&self, target: &str, open: F) -> Result<ChannelIo, SshError>
    where
        F: Fn(SessionHandle) -> Fut,
        Fut: std::future::Future<Output = Result<russh::Channel<client::Msg>, russh::Error>>,
    {
        for attempt in 0..2 {
            let h = self.handle().await?;
            let opened = match tokio::time::timeout(CHANNEL_OPEN_TIMEOUT, open(h.clone())).await {
                Ok(r) => r,
                // a remote that never answers must not hang the client
                Err(_) => {
                    return Err(SshError::ChannelRefused {
                        target: target.to_string(),
                        reason: format!("no answer in {} s", CHANNEL_OPEN_TIMEOUT.as_secs()),
                    })
                }
            };
            match opened {
                Ok(ch) => return Ok(ChannelIo::new(ch, h, CHANNEL_WINDOW)),
                Err(russh::Error::ChannelOpenFailure(reason)) => {
                    return Err(SshError::ChannelRefused {
                        target: target.to_string(),
                        reason: format!("{reason:?}"),
                    })
                }
                Err(russh::Error::RequestDenied) => {
                    return Err(SshError::ChannelRefused {
                        target: target.to_string(),
                        reason: "the server refused the request".into(),
                    })
                }
                Err(e) if attempt == 0 => {
                    tracing::warn!("opening a channel to {target} failed ({e}); reconnecting");
                    if let Some(live) = self.live.lock().await.take() {
                        let _ = live
                            .0
                            .disconnect(russh::Disconnect::ByApplication, "", "en")
                            .await;
                    }
                }
                Err(source) => {
                    return Err(SshError::Disconnected {
                        addr: self.addr(),
                        source,
                    })
                }
            }
        }
        Err(SshError::Closed { addr: self.addr() })
    }

    /// A `direct-streamlocal` channel to a unix socket on the remote.
    pub async fn open_unix(&self, path: &str) -> Result<ChannelIo, SshError> {
        let p = path.to_string();
        self.open(&format!("unix://{path}"), move |h| {
            let p = p.clone();
            async move { h.0.channel_open_direct_streamlocal(p).await }
        })
        .await
    }

    /// A `direct-tcpip` channel to host:port as seen from the remote.
    pub async fn open_tcp(&self, host: &str, port: u16) -> Result<ChannelIo, SshError> {
        let hs = host.to_string();
        self.open(&format!("tcp://{host}:{port}"), move |h| {
            let hs = hs.clone();
            async move {
                h.0.channel_open_direct_tcpip(hs, port as u32, "127.0.0.1", 0)
                    .await
            }
        })
        .await
    }

    /// A session channel running `command` on the remote, stdio as the stream.
    pub async fn open_exec(&self, command: &str) -> Result<ChannelIo, SshError> {
        let cmd = command.to_string();
        self.open(&format!("exec {command}"), move |h| {
            let cmd = cmd.clone();
            async move {
                let ch = h.0.channel_open_session().await?;
                ch.exec(true, cmd.into_bytes()).await?;
                Ok(ch)
            }
        })
        .await
    }

    /// A session channel running a subsystem (`sftp`), stdio as the stream.
    pub async fn open_subsystem(&self, name: &str) -> Result<ChannelIo, SshError> {
        let name = name.to_string();
        self.open(&format!("subsystem {name}"), move |h| {
            let name = name.clone();
            async move {
                let mut ch = h.0.channel_open_session().await?;
                ch.request_subsystem(true, name).await?;
                // wait for the answer: a refused subsystem would otherwise
                // look like a server that never speaks
                let answer = tokio::time::timeout(Duration::from_secs(15), async {
                    loop {
                        match ch.wait().await {
                            Some(russh::ChannelMsg::Success) => return Ok(()),
                            Some(russh::ChannelMsg::Failure) => {
                                return Err(russh::Error::RequestDenied)
                            }
                            Some(russh::ChannelMsg::Close | russh::ChannelMsg::Eof) | None => {
                                return Err(russh::Error::RequestDenied)
                            }
                            Some(_) => {}
                        }
                    }
                });
                answer
                    .await
                    // a slow or silent subsystem is refused, never taken for a dead session
                    .map_err(|_| russh::Error::RequestDenied)??;
                Ok(ch)
            }
        })
        .await
    }

    /// Runs a short command and returns its stdout (diagnostics only).
    pub async fn run(&self, command: &str) -> Result<String, SshError> {
        use tokio::io::AsyncReadExt;
        let mut io = self.open_exec(command).await?;
        let mut out = String::new();
        let read = tokio::time::timeout(Duration::from_secs(10), io.read_to_string(&mut out));
        let _ = read.await;
        Ok(out)
    }

    /// Ends the session politely.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.stop.cancel();
        if let Some(h) = self.live.lock().await.take() {
            let _ =
                h.0.disconnect(
                    russh::Disconnect::ByApplication,
                    "berth-agent stopping",
                    "en",
                )
                .await;
            // the target first, then the hops that carried it
            for jump in h.1.iter().rev() {
                let _ = jump
                    .disconnect(
                        russh::Disconnect::ByApplication,
                        "berth-agent stopping",
                        "en",
                    )
                    .await;
            }
        }
    }
}

pub(super) fn client_config() -> client::Config {
    use russh::cipher;
    use std::borrow::Cow;
    let preferred = russh::Preferred {
        // AES-GCM uses the CPU's AES instructions; chacha20 stays as a fallback.
        cipher: Cow::Owned(vec![
            cipher::AES_128_GCM,
            cipher::AES_256_GCM,
            cipher::CHACHA20_POLY1305,
            cipher::AES_256_CTR,
            cipher::AES_128_CTR,
        ]),
        ..russh::Preferred::default()
    };
    client::Config {
        // a silent network is the kernel's to notice (liveness.rs), which
        // costs no wake-ups; this is for a server that hangs
        keepalive_interval: Some(super::liveness::SSH_KEEPALIVE),
        keepalive_max: super::liveness::SSH_KEEPALIVE_MAX,
        nodelay: true,
        window_size: CHANNEL_WINDOW,
        window_adjust_on_read: true,
        preferred,
        ..Default::default()
    }
}
