//! One connected remote of the tray app: its credentials loaded (a keychain
//! key from the [`SecretStore`], else key files or the ssh-agent), its local
//! endpoint bound, an [`Agent`] connected and serving in a task of its own
//! until [`Running::stop`]. Errors keep the engine's error as their cause;
//! the window words its fix (`advice`).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::{Auth, Remote};
use super::DesktopError;
use crate::agent::{bind_all, Agent, AgentError};
use crate::keys::{self, SecretStore};
use crate::ssh::{AuthConfig, HostKeyPolicy};

/// How long stopping waits for the agent to drain and close SSH.
const STOP_TIMEOUT: Duration = Duration::from_secs(6);

/// A serving agent and the means to stop it.
pub(crate) struct Running {
    pub agent: Arc<Agent>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// The credentials of `remote`: a keychain key loaded from `store`, else
/// key files or the ssh-agent. Never prompts (there is no terminal).
pub(crate) async fn auth_for(
    remote: &Remote,
    store: &Arc<dyn SecretStore>,
) -> Result<AuthConfig, DesktopError> {
    match &remote.auth {
        Auth::Keychain { key } => {
            let (store, id) = (store.clone(), key.clone());
            let loaded = keys::blocking(move || keys::load_for_auth(&*store, &id)).await?;
            Ok(AuthConfig {
                keys: vec![loaded],
                ..AuthConfig::default()
            })
        }
        _ => remote.file_auth(),
    }
}

/// Binds the remote's endpoint, connects its agent and starts serving.
pub(crate) async fn start(
    remote: &Remote,
    store: &Arc<dyn SecretStore>,
    known_hosts: &Path,
) -> Result<Running, DesktopError> {
    let fail = |source: AgentError| DesktopError::Connect {
        remote: remote.name.clone(),
        source: Box::new(source),
    };
    let plan = remote.engine_plan()?;
    let listen = plan.listen.clone();
    let auth = auth_for(remote, store).await?;
    let cfg = plan.into_agent_config(auth, known_hosts.to_path_buf(), HostKeyPolicy::Strict);
    let listeners = bind_all(std::slice::from_ref(&listen))
        .await
        .map_err(fail)?;
    let agent = Arc::new(Agent::connect(cfg).await.map_err(fail)?);
    let stop = CancellationToken::new();
    let serving = agent.clone();
    let token = stop.clone();
    let task = tokio::spawn(async move { serving.serve(listeners, token).await });
    Ok(Running {
        agent,
        stop,
        task: Mutex::new(Some(task)),
    })
}

impl Running {
    /// The chosen upstream, e.g. `unix:///var/run/docker.sock`.
    pub fn endpoint(&self) -> String {
        self.agent.status.selected.upstream.url()
    }

    /// The remote daemon's version.
    pub fn docker_version(&self) -> String {
        self.agent.status.daemon.version.clone()
    }

    /// Cancelled when it stops (or is dropped).
    pub fn stopped(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops serving, closes the session and waits (bounded) for it.
    pub async fn stop(&self) {
        self.stop.cancel();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let abort = task.abort_handle();
            if tokio::time::timeout(STOP_TIMEOUT, task).await.is_err() {
                tracing::warn!(
                    "an agent did not stop in {}s; aborted",
                    STOP_TIMEOUT.as_secs()
                );
                abort.abort();
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
