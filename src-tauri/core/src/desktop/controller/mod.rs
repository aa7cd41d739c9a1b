//! The engine side of the tray app. A [`Controller`] owns the remotes of the
//! config file and runs one [`crate::agent::Agent`] per connected remote,
//! each with its own SSH session and local endpoint, so one remote's failure
//! never touches another. It persists edits and settings, switches the
//! docker CLI's context, tests and trusts hosts, and tells the window and the
//! tray what changed through [`Controller::subscribe`]: a counter bumped on
//! every change of a remote's state, forwards or mounts, pushed by the
//! agents and by a watch on the docker CLI's config (`changes`); nothing
//! polls. The app's Tauri commands are thin calls onto this; everything
//! here is testable headless.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::{Config, Remote, Settings};
use super::context::{self, DockerContexts};
use super::probe::{self, Step};
use super::run::{self, Running};
use super::view::{self, ConnectionState, Containers, RemoteView, SettingsView};
use super::{advice, hostkeys, menu, sshimport, DesktopError};
use crate::keys::{self, PublicKeyInfo, SecretStore};

mod changes;
mod lifecycle;
mod manage;

/// What a [`Controller`] works on.
#[derive(Clone)]
pub struct ControllerOptions {
    /// The config file (see [`super::config::config_path`]).
    pub config_path: PathBuf,
    /// Where keychain keys live: [`crate::keys::KeyringStore`], or memory in tests.
    pub store: Arc<dyn SecretStore>,
    /// The known_hosts file host keys are checked against and trusted into.
    pub known_hosts: PathBuf,
    /// The docker CLI's config directory; `None`: `$DOCKER_CONFIG`, else `~/.docker`.
    pub docker_config: Option<PathBuf>,
}

impl std::fmt::Debug for ControllerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerOptions")
            .field("config_path", &self.config_path)
            .field("store", &self.store.service())
            .field("known_hosts", &self.known_hosts)
            .field("docker_config", &self.docker_config)
            .finish()
    }
}

impl ControllerOptions {
    /// The defaults: [`super::config::config_path`], the OS keychain,
    /// `~/.ssh/known_hosts`, the docker CLI's own config directory.
    pub fn from_env() -> Result<Self, DesktopError> {
        let home = dirs::home_dir().ok_or(DesktopError::NoHome)?;
        Ok(Self {
            config_path: super::config::config_path()?,
            store: Arc::new(keys::KeyringStore::new()),
            known_hosts: home.join(".ssh").join("known_hosts"),
            docker_config: None,
        })
    }
}

/// One remote's runtime side.
#[derive(Default)]
struct Slot {
    state: Option<ConnectionState>,
    error: Option<String>,
    /// Cancels a connect in flight; the number tells attempts apart.
    attempt: Option<(u64, CancellationToken)>,
    running: Option<Arc<Running>>,
}

struct Inner {
    config: Config,
    slots: HashMap<String, Slot>,
}

/// The tray app's engine; share it as `Arc<Controller>`.
pub struct Controller {
    opts: ControllerOptions,
    contexts: DockerContexts,
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
    /// The docker CLI's current context as last read (`changes`).
    context: Mutex<Option<String>>,
    /// Watches the docker CLI's config directory once started.
    context_watch: Mutex<Option<notify::RecommendedWatcher>>,
    usage: super::activity::Usage,
    attempts: AtomicU64,
    stop: CancellationToken,
    tasks: TaskTracker,
    me: Weak<Controller>,
}

impl Controller {
    /// Loads the config (a missing file is empty) and sets up the docker
    /// contexts directory. Nothing connects until asked.
    pub fn new(opts: ControllerOptions) -> Result<Arc<Self>, DesktopError> {
        let config = Config::load_from(&opts.config_path)?;
        let contexts = match &opts.docker_config {
            Some(d) => DockerContexts::at(d.clone()),
            None => DockerContexts::from_env()?,
        };
        let (changed, _) = watch::channel(0);
        Ok(Arc::new_cyclic(|me| Self {
            opts,
            contexts,
            inner: Mutex::new(Inner {
                config,
                slots: HashMap::new(),
            }),
            changed,
            context: Mutex::new(None),
            context_watch: Mutex::new(None),
            usage: super::activity::Usage::new(),
            attempts: AtomicU64::new(0),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            me: me.clone(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver whose value changes (within about 50 ms) whenever a
    /// remote's state, forwards or mounts change, or the docker CLI's
    /// current context does. Starts watching the docker config.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.watch_docker_config();
        self.changed.subscribe()
    }

    /// The config file's remotes with their state, in config order.
    pub fn views(&self) -> Vec<RemoteView> {
        self.watch_docker_config();
        let current = self.current_context();
        let inner = self.lock();
        inner
            .config
            .remotes
            .iter()
            .map(|r| view_of(r, inner.slots.get(&r.name), current.as_deref()))
            .collect()
    }

    /// One remote's view.
    pub fn view(&self, name: &str) -> Option<RemoteView> {
        self.views().into_iter().find(|v| v.remote.name == name)
    }

    /// What the tray menu is computed from (see [`menu::build`]).
    pub fn menu_input(&self) -> menu::MenuInput {
        let remotes = self
            .views()
            .iter()
            .map(|v| v.to_menu(self.containers(&v.remote.name).as_ref()))
            .collect();
        menu::MenuInput {
            remotes,
            start_at_login: self.settings().start_at_login,
        }
    }

    /// A connected remote's forwards and mounts; `None` when not connected.
    pub fn containers(&self, name: &str) -> Option<Containers> {
        let running = self.lock().slots.get(name)?.running.clone()?;
        Some(view::containers_from_status(&running.agent.status()))
    }

    /// Connects the remote: state `connecting`, then `connected` or `error`
    /// (with the one-line reason, also returned). Already connected or
    /// connecting: nothing to do. If the remote is the default-context one,
    /// its context is made current once it is connected. After
    /// [`Self::shutdown`] this answers [`DesktopError::Cancelled`].
    pub async fn connect(&self, name: &str) -> Result<(), DesktopError> {
        if self.stop.is_cancelled() {
            return Err(DesktopError::Cancelled(name.to_string()));
        }
        self.watch_docker_config();
        let (remote, (id, token)) = {
            let mut inner = self.lock();
            let remote = inner
                .config
                .remote(name)
                .cloned()
                .ok_or_else(|| DesktopError::NoSuchRemote(name.to_string()))?;
            let slot = inner.slots.entry(name.to_string()).or_default();
            if matches!(
                slot.state,
                Some(ConnectionState::Connected | ConnectionState::Connecting)
            ) {
                return Ok(());
            }
            let token = self.stop.child_token();
            let id = self.attempts.fetch_add(1, Ordering::Relaxed);
            *slot = Slot {
                state: Some(ConnectionState::Connecting),
                attempt: Some((id, token.clone())),
                ..Slot::default()
            };
            (remote, (id, token))
        };
        self.bump();
        let started = tokio::select! {
            r = run::start(&remote, &self.opts.store, &self.opts.known_hosts) => r,
            _ = token.cancelled() => Err(DesktopError::Cancelled(name.to_string())),
        };
        let (outcome, stale) = self.settle(name, id, started);
        if let Some(running) = stale {
            running.stop().await;
        }
        self.bump();
        if outcome.is_ok() && self.settings().default_context.as_deref() == Some(name) {
            if let Err(e) = self.use_context_of(&remote) {
                tracing::warn!("cannot make the context of {name:?} current: {e}");
            }
        }
        outcome
    }

    /// Records how connect attempt `id` of `name` ended. An agent that
    /// connected after the attempt was cancelled comes back to be stopped.
    fn settle(
        &self,
        name: &str,
        id: u64,
        started: Result<Running, DesktopError>,
    ) -> (Result<(), DesktopError>, Option<Running>) {
        let mut inner = self.lock();
        let current = inner
            .slots
            .get_mut(name)
            .filter(|s| s.attempt.as_ref().is_some_and(|(n, _)| *n == id));
        let cancelled = || Err(DesktopError::Cancelled(name.to_string()));
        match (current, started) {
            // cancelled by shutdown (a disconnect takes the attempt away)
            (Some(slot), started)
                if slot.attempt.as_ref().is_some_and(|(_, t)| t.is_cancelled()) =>
            {
                *slot = Slot {
                    state: Some(ConnectionState::Disconnected),
                    ..Slot::default()
                };
                (cancelled(), started.ok())
            }
            (Some(slot), Ok(running)) => {
                let running = Arc::new(running);
                self.follow(&running);
                slot.state = Some(ConnectionState::Connected);
                slot.attempt = None;
                slot.running = Some(running);
                (Ok(()), None)
            }
            (Some(slot), Err(e)) => {
                slot.state = Some(ConnectionState::Error);
                slot.error = Some(advice::explain(&e));
                slot.attempt = None;
                (Err(e), None)
            }
            // disconnected (or removed) meanwhile: stop what was made
            (None, Ok(running)) => (cancelled(), Some(running)),
            (None, Err(_)) => (cancelled(), None),
        }
    }

    /// Disconnects the remote (cancelling a connect in flight): stops its
    /// agent, closes its session and waits (bounded) for both.
    pub async fn disconnect(&self, name: &str) {
        let running = {
            let mut inner = self.lock();
            let Some(slot) = inner.slots.get_mut(name) else {
                return;
            };
            if let Some((_, t)) = slot.attempt.take() {
                t.cancel();
            }
            slot.state = Some(ConnectionState::Disconnected);
            slot.error = None;
            slot.running.take()
        };
        self.bump();
        if let Some(r) = running {
            r.stop().await;
        }
    }
}

/// A remote's view from its config and runtime slot.
fn view_of(remote: &Remote, slot: Option<&Slot>, current_context: Option<&str>) -> RemoteView {
    let state = slot
        .and_then(|s| s.state)
        .unwrap_or(ConnectionState::Disconnected);
    let running = slot.and_then(|s| s.running.as_ref());
    let mut state_now = state;
    let mut error = slot.and_then(|s| s.error.clone());
    if let Some(r) = running {
        // the agent reconnects by itself; show what its session does meanwhile
        match r.agent.status.ssh.state() {
            crate::ssh::ConnState::Connecting => state_now = ConnectionState::Connecting,
            crate::ssh::ConnState::Disconnected { last_error, hint } => {
                state_now = ConnectionState::Error;
                error = Some(advice::explain_state(&last_error, hint.as_ref()));
            }
            crate::ssh::ConnState::Reconnecting {
                attempt,
                last_error,
                hint,
                ..
            } => {
                state_now = ConnectionState::Connecting;
                let line = advice::explain_state(&last_error, hint.as_ref());
                error = Some(format!("{line} (reconnecting, attempt {attempt})"));
            }
            crate::ssh::ConnState::Connected { .. } => {}
        }
    }
    RemoteView {
        remote: remote.clone(),
        state: state_now,
        error,
        endpoint: running.map(|r| r.endpoint()),
        docker_version: running.map(|r| r.docker_version()),
        default_context: current_context == Some(context::context_name(&remote.name).as_str()),
    }
}

#[cfg(test)]
mod tests;
