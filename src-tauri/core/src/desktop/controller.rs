//! The engine side of the tray app. A [`Controller`] owns the remotes of the
//! config file and runs one [`crate::agent::Agent`] per connected remote,
//! each with its own SSH session and local endpoint, so one remote's failure
//! never touches another. It persists edits and settings, switches the
//! docker CLI's context, tests and trusts hosts, and tells the window and the
//! tray what changed through [`Controller::subscribe`]: a counter bumped on
//! every change of a remote's state, forwards or mounts (a poller compares
//! the views every 200 ms). The app's Tauri commands are thin calls onto
//! this; everything here is testable headless.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
use super::{hostkeys, menu, sshimport, DesktopError};
use crate::keys::{self, PublicKeyInfo, SecretStore};

/// How often the poller compares the views for changes.
const POLL: Duration = Duration::from_millis(200);

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
    poller: AtomicBool,
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
            poller: AtomicBool::new(false),
            attempts: AtomicU64::new(0),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            me: me.clone(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bumps the change counter.
    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver whose value changes (within 250 ms) whenever a remote's
    /// state, forwards or mounts change. Starts the poller if a tokio
    /// runtime is current (it also starts at the first connect).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        if tokio::runtime::Handle::try_current().is_ok() {
            self.ensure_poller();
        }
        self.changed.subscribe()
    }

    /// The config file's remotes with their state, in config order.
    pub fn views(&self) -> Vec<RemoteView> {
        let current = self.contexts.current().ok().flatten();
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
        Some(view::containers_from_status(&running.agent.snapshot()))
    }

    /// Adds a remote (`original` `None`) or replaces the one called
    /// `original` (possibly renaming it), and saves the config. A connected
    /// remote keeps running with its old settings until reconnected.
    pub fn save_remote(&self, original: Option<&str>, remote: Remote) -> Result<(), DesktopError> {
        let mut inner = self.lock();
        let mut next = inner.config.clone();
        let new_name = remote.name.clone();
        match original {
            Some(old) => next.update_remote(old, remote)?,
            None => next.add_remote(remote)?,
        }
        next.save_to(&self.opts.config_path)?;
        inner.config = next;
        if let Some(old) = original.filter(|o| *o != new_name) {
            if let Some(slot) = inner.slots.remove(old) {
                inner.slots.insert(new_name, slot);
            }
        }
        drop(inner);
        self.bump();
        Ok(())
    }

    /// Disconnects the remote, removes its docker context (restoring the
    /// previous one if it was current) and removes it from the config.
    pub async fn remove_remote(&self, name: &str) -> Result<(), DesktopError> {
        if self.lock().config.remote(name).is_none() {
            return Err(DesktopError::NoSuchRemote(name.to_string()));
        }
        self.disconnect(name).await;
        let was_current = self.is_current_context(name);
        {
            let mut inner = self.lock();
            let mut next = inner.config.clone();
            next.remove_remote(name)?;
            if was_current {
                self.contexts
                    .restore(next.settings.previous_context.as_deref())?;
                next.settings.previous_context = None;
            }
            next.save_to(&self.opts.config_path)?;
            inner.config = next;
            inner.slots.remove(name);
        }
        self.contexts.remove_context(name)?;
        self.bump();
        Ok(())
    }

    /// Connects the remote: state `connecting`, then `connected` or `error`
    /// (with the one-line reason, also returned). Already connected or
    /// connecting: nothing to do. If the remote is the default-context one,
    /// its context is made current once it is connected.
    pub async fn connect(&self, name: &str) -> Result<(), DesktopError> {
        self.ensure_poller();
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
        let outcome = {
            let mut inner = self.lock();
            let current = inner.slots.get_mut(name).filter(|s| {
                s.attempt
                    .as_ref()
                    .is_some_and(|(n, t)| *n == id && !t.is_cancelled())
            });
            match (current, started) {
                (Some(slot), Ok(running)) => {
                    slot.state = Some(ConnectionState::Connected);
                    slot.attempt = None;
                    slot.running = Some(Arc::new(running));
                    Ok(())
                }
                (Some(slot), Err(e)) => {
                    let msg = run::one_line(&e);
                    slot.state = Some(ConnectionState::Error);
                    slot.error = Some(msg);
                    slot.attempt = None;
                    Err(e)
                }
                // disconnected (or removed) meanwhile: drop what was made
                (None, Ok(running)) => {
                    drop(inner);
                    running.stop().await;
                    Err(DesktopError::Cancelled(name.to_string()))
                }
                (None, Err(_)) => Err(DesktopError::Cancelled(name.to_string())),
            }
        };
        self.bump();
        if outcome.is_ok() && self.settings().default_context.as_deref() == Some(name) {
            if let Err(e) = self.use_context_of(&remote) {
                tracing::warn!("cannot make the context of {name:?} current: {e}");
            }
        }
        outcome
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

    /// Runs the step-by-step check of `remote` (which need not be saved).
    pub async fn test_connection(&self, remote: &Remote) -> Vec<Step> {
        probe::test_connection(remote, &self.opts.store, &self.opts.known_hosts).await
    }

    /// Trusts the host key of `host:port`: appended to known_hosts only if
    /// the server offers exactly `fingerprint` now; a changed key is refused.
    pub async fn trust_host_key(
        &self,
        host: &str,
        port: u16,
        fingerprint: &str,
    ) -> Result<(), DesktopError> {
        hostkeys::trust(host, port, fingerprint, &self.opts.known_hosts).await
    }

    /// The settings as saved.
    pub fn settings(&self) -> Settings {
        self.lock().config.settings.clone()
    }

    /// The settings the window shows, with `DOCKER_HOST` if it is set.
    pub fn settings_view(&self) -> SettingsView {
        SettingsView::new(&self.settings(), context::docker_host_override())
    }

    /// Records "start at login" (the app registers the OS autostart itself).
    pub fn set_start_at_login(&self, on: bool) -> Result<(), DesktopError> {
        self.update_settings(|s| s.start_at_login = on)
    }

    /// `Some(name)`: creates `berth-<name>` for the remote's endpoint and makes
    /// it the docker CLI's current context, remembering the non-Berth context
    /// current before; it is made current again whenever the remote connects.
    /// `None`: restores the remembered context (if a Berth one is current).
    pub fn set_default_context(&self, name: Option<&str>) -> Result<(), DesktopError> {
        match name {
            Some(n) => {
                let remote = self
                    .lock()
                    .config
                    .remote(n)
                    .cloned()
                    .ok_or_else(|| DesktopError::NoSuchRemote(n.to_string()))?;
                self.use_context_of(&remote)?;
                self.update_settings(|s| s.default_context = Some(n.to_string()))?;
            }
            None => {
                let previous = self.settings().previous_context;
                if self.current_is_berth() {
                    self.contexts.restore(previous.as_deref())?;
                }
                self.update_settings(|s| {
                    s.default_context = None;
                    s.previous_context = None;
                })?;
            }
        }
        self.bump();
        Ok(())
    }

    /// Connects the remotes that were connected when Berth last quit.
    pub async fn restore_connected(&self) {
        let names = self.settings().connected;
        let connects = names.iter().map(|n| self.connect(n));
        for (name, r) in names
            .iter()
            .zip(futures_util::future::join_all(connects).await)
        {
            if let Err(e) = r {
                tracing::warn!("reconnecting {name:?} at start failed: {e}");
            }
        }
    }

    /// Quits: records which remotes are connected (for [`Self::restore_connected`]),
    /// disconnects all, restores the docker context if a Berth one is
    /// current, and stops the poller.
    pub async fn shutdown(&self) {
        let connected: Vec<String> = self
            .views()
            .into_iter()
            .filter(|v| {
                matches!(
                    v.state,
                    ConnectionState::Connected | ConnectionState::Connecting
                )
            })
            .map(|v| v.remote.name)
            .collect();
        if let Err(e) = self.update_settings(|s| s.connected = connected.clone()) {
            tracing::warn!("cannot record the connected remotes: {e}");
        }
        let names: Vec<String> = self.lock().slots.keys().cloned().collect();
        futures_util::future::join_all(names.iter().map(|n| self.disconnect(n))).await;
        if self.current_is_berth() {
            let previous = self.settings().previous_context;
            if let Err(e) = self.contexts.restore(previous.as_deref()) {
                tracing::warn!("cannot restore the docker context: {e}");
            }
        }
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.tasks.wait()).await;
    }

    /// Drafts of remotes from `~/.ssh/config` not configured yet (not saved).
    pub fn import_ssh_config(&self) -> Result<Vec<Remote>, DesktopError> {
        let path = sshimport::default_ssh_config()?;
        let config = self.lock().config.clone();
        sshimport::import_file(&path, &config)
    }

    /// The keychain's keys (public parts only).
    pub async fn list_keys(&self) -> Result<Vec<PublicKeyInfo>, DesktopError> {
        let store = self.opts.store.clone();
        Ok(keys::blocking(move || keys::list(&*store)).await?)
    }

    /// Generates an ed25519 key in the keychain.
    pub async fn generate_key(
        &self,
        id: &str,
        comment: &str,
    ) -> Result<PublicKeyInfo, DesktopError> {
        let (store, id, comment) = (self.opts.store.clone(), id.to_string(), comment.to_string());
        Ok(keys::blocking(move || keys::generate_ed25519(&*store, &id, &comment)).await?)
    }

    /// Imports a private key into the keychain (decrypted with `passphrase`).
    pub async fn import_key(
        &self,
        id: &str,
        private_key: &str,
        passphrase: Option<&str>,
    ) -> Result<PublicKeyInfo, DesktopError> {
        let store = self.opts.store.clone();
        let id = id.to_string();
        let pem = zeroize::Zeroizing::new(private_key.to_string());
        let pass = passphrase.map(|p| zeroize::Zeroizing::new(p.to_string()));
        Ok(keys::blocking(move || {
            keys::import_private_key(&*store, &id, &pem, pass.as_deref().map(|p| p.as_str()))
        })
        .await?)
    }

    /// Deletes a key from the keychain.
    pub async fn delete_key(&self, id: &str) -> Result<(), DesktopError> {
        let (store, id) = (self.opts.store.clone(), id.to_string());
        Ok(keys::blocking(move || keys::delete(&*store, &id)).await?)
    }

    fn update_settings(&self, f: impl FnOnce(&mut Settings)) -> Result<(), DesktopError> {
        let mut inner = self.lock();
        let mut next = inner.config.clone();
        f(&mut next.settings);
        next.save_to(&self.opts.config_path)?;
        inner.config = next;
        Ok(())
    }

    /// Creates and switches to `berth-<remote>`, remembering a non-Berth previous context.
    fn use_context_of(&self, remote: &Remote) -> Result<(), DesktopError> {
        let name = self.contexts.ensure_context(&remote.name, &remote.listen)?;
        let previous = self.contexts.use_context(&name)?;
        if !previous.as_deref().is_some_and(context::is_berth_context) {
            self.update_settings(|s| s.previous_context = previous)?;
        }
        Ok(())
    }

    fn current_is_berth(&self) -> bool {
        matches!(self.contexts.current(), Ok(Some(c)) if context::is_berth_context(&c))
    }

    fn is_current_context(&self, name: &str) -> bool {
        matches!(self.contexts.current(), Ok(Some(c)) if c == context::context_name(name))
    }

    /// Starts the change poller once (needs a tokio runtime).
    fn ensure_poller(&self) {
        if self.poller.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.me.clone();
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            let mut last = String::new();
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let Some(ctl) = me.upgrade() else { break };
                let now = ctl.fingerprint();
                if now != last {
                    if !last.is_empty() {
                        ctl.bump();
                    }
                    last = now;
                }
            }
        });
    }

    /// Everything a change notification covers, as one comparable string.
    fn fingerprint(&self) -> String {
        let views = self.views();
        let containers: Vec<Option<Containers>> = views
            .iter()
            .map(|v| self.containers(&v.remote.name))
            .collect();
        serde_json::to_string(&(views, containers)).unwrap_or_default()
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
            crate::ssh::ConnState::Disconnected { last_error } => {
                state_now = ConnectionState::Error;
                error = Some(last_error);
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
