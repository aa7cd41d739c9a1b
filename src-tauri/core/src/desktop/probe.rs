//! "Test connection": the window's step-by-step check of a remote before
//! (or instead of) connecting it. The steps run in order and stop at the
//! first failure: `tcp` (sshd reachable), `host_key` (the offered key
//! against known_hosts; an unknown key fails with its fingerprint so the
//! window can offer to trust it, a changed one is refused), `auth` (the
//! configured key logs in), `docker` (a daemon answers, with its version),
//! `endpoint` (which way to it was chosen) and `sftp` (what bind-mount sync
//! needs). Each step is `ok` with a detail, or not with a one-line cause and
//! fix. Nothing is recorded anywhere; known_hosts is only read.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::advice::fix_for;
use super::config::Remote;
use super::hostkeys::{self, HostKeyStatus};
use super::run::auth_for;
use crate::hint::{what, Advice};
use crate::keys::SecretStore;
use crate::ssh::{Credentials, HostKeyCheck, HostKeyPolicy, SshSession};
use crate::upstream;

/// How long reaching sshd may take.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);

/// Which check a [`Step`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Tcp,
    HostKey,
    Auth,
    Docker,
    Endpoint,
    Sftp,
}

/// One check's outcome, as `ui/API.md` spells a `Step`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Step {
    pub step: StepKind,
    pub ok: bool,
    /// What was found, e.g. `Docker 20.10.24 (API 1.41)`, or what went wrong.
    pub detail: String,
    /// One line saying what to do, when `!ok`.
    pub fix: Option<String>,
    /// `SHA256:…` of the server's host key (the `host_key` step).
    pub fingerprint: Option<String>,
}

impl Step {
    /// A failed check: what `e` says happened, and its fix (else `fallback`).
    fn failed(step: StepKind, e: &(impl Advice + ?Sized), fallback: &str) -> Self {
        Self::fail(step, what(e), fix_for(e, fallback))
    }

    fn ok(step: StepKind, detail: impl Into<String>) -> Self {
        Self {
            step,
            ok: true,
            detail: detail.into(),
            fix: None,
            fingerprint: None,
        }
    }

    fn fail(step: StepKind, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            step,
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
            fingerprint: None,
        }
    }
}

/// Runs the steps for `remote`, stopping at the first failure.
pub async fn test_connection(
    remote: &Remote,
    store: &Arc<dyn SecretStore>,
    known_hosts: &Path,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let _ = run(remote, store, known_hosts, &mut steps).await;
    steps
}

/// Pushes steps until one fails (`Err(())` then).
async fn run(
    remote: &Remote,
    store: &Arc<dyn SecretStore>,
    known_hosts: &Path,
    steps: &mut Vec<Step>,
) -> Result<(), ()> {
    let mut push = |s: Step| {
        let ok = s.ok;
        steps.push(s);
        if ok {
            Ok(())
        } else {
            Err(())
        }
    };
    let (host, port) = (remote.host.as_str(), remote.port);
    let addr = format!("{host}:{port}");
    let plan = match remote.engine_plan() {
        Ok(p) => p,
        Err(e) => {
            return push(Step::failed(
                StepKind::Tcp,
                &e,
                "correct the field and test again",
            ))
        }
    };

    // tcp
    let reached = tokio::time::timeout(TCP_TIMEOUT, tokio::net::TcpStream::connect((host, port)))
        .await
        .unwrap_or_else(|_| {
            let secs = TCP_TIMEOUT.as_secs();
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer in {secs}s"),
            ))
        });
    match reached {
        Ok(_) => push(Step::ok(
            StepKind::Tcp,
            format!("{addr} accepts connections"),
        ))?,
        // the session's own error, so the step says what a connect would
        Err(source) => {
            let e = crate::ssh::SshError::Unreachable {
                addr: addr.clone(),
                source,
            };
            push(Step::failed(
                StepKind::Tcp,
                &e,
                "check the host and the port",
            ))?
        }
    }

    // host_key
    let key = match hostkeys::scan(host, port).await {
        Ok(k) => k,
        Err(e) => {
            return push(Step::fail(
                StepKind::HostKey,
                what(&e),
                "check the port: it must be the remote's SSH server",
            ))
        }
    };
    let step = match hostkeys::check(host, port, &key, known_hosts) {
        Ok(HostKeyStatus::Known { fingerprint }) => Step {
            fingerprint: Some(fingerprint.clone()),
            ..Step::ok(StepKind::HostKey, format!("{fingerprint} is known"))
        },
        Ok(HostKeyStatus::Unknown { fingerprint }) => Step {
            fingerprint: Some(fingerprint.clone()),
            ..Step::fail(
                StepKind::HostKey,
                format!("the host key {fingerprint} is not known yet"),
                "check the fingerprint with the server's owner, then trust it",
            )
        },
        Ok(HostKeyStatus::Changed {
            offered,
            expected,
            line,
        }) => Step::fail(
            StepKind::HostKey,
            format!("HOST KEY CHANGED: the server offers {offered}, known_hosts line {line} has {expected}; someone may be intercepting the connection"),
            format!(
                "if the change is expected, remove the old key with `ssh-keygen -R '{}' -f {}` and test again",
                crate::ssh::handler::host_port(host, port),
                known_hosts.display()
            ),
        ),
        Err(e) => Step::fail(StepKind::HostKey, what(&e), "fix or move the known_hosts file"),
    };
    push(step)?;

    // auth
    let auth = match auth_for(remote, store).await {
        Ok(a) => a,
        Err(e) => {
            return push(Step::failed(
                StepKind::Auth,
                &e,
                "pick another key for this remote",
            ))
        }
    };
    let credentials = match Credentials::load(&auth) {
        Ok(c) => c,
        Err(e) => {
            return push(Step::failed(
                StepKind::Auth,
                &e,
                "pick another key file, or import it into the keychain (with its passphrase)",
            ))
        }
    };
    let check = HostKeyCheck {
        host: host.to_string(),
        port,
        known_hosts: known_hosts.to_path_buf(),
        policy: HostKeyPolicy::Strict,
    };
    let ssh = match SshSession::connect(plan.target.clone(), check, credentials).await {
        Ok(s) => s,
        Err(e) => {
            return push(Step::failed(
                StepKind::Auth,
                &e,
                "test again; if it persists, check the remote's sshd log",
            ))
        }
    };
    let how = match &remote.auth {
        super::config::Auth::Keychain { key } => format!("keychain key {key:?}"),
        super::config::Auth::KeyFile { path } => format!("key file {path}"),
        super::config::Auth::Agent => "ssh-agent or ~/.ssh keys".to_string(),
    };
    let result = after_login(remote, &plan.upstream, &ssh, &how, &mut push).await;
    ssh.close().await;
    result
}

/// The steps that need the session: docker, endpoint, sftp.
async fn after_login(
    remote: &Remote,
    spec: &upstream::UpstreamSpec,
    ssh: &std::sync::Arc<SshSession>,
    how: &str,
    push: &mut impl FnMut(Step) -> Result<(), ()>,
) -> Result<(), ()> {
    push(Step::ok(
        StepKind::Auth,
        format!("logged in as {} with {how}", remote.user),
    ))?;
    let docker_fix = "start Docker on the remote and let the user use it (docker group), or set the Docker endpoint";
    let selected = match upstream::select(spec, ssh).await {
        Ok(s) => s,
        Err(e) => return push(Step::failed(StepKind::Docker, &e, docker_fix)),
    };
    match upstream::DockerApi::connect(&selected.upstream, ssh.clone()).await {
        Ok((_, v)) => {
            let d = crate::state::DaemonInfo::from(v);
            push(Step::ok(
                StepKind::Docker,
                format!("Docker {} (API {})", d.version, d.api_version),
            ))?
        }
        Err(e) => return push(Step::failed(StepKind::Docker, &e, docker_fix)),
    }
    push(Step::ok(StepKind::Endpoint, selected.upstream.url()))?;
    if !remote.sync {
        return push(Step::ok(StepKind::Sftp, "not needed: sync is off"));
    }
    match crate::sync::replica::connect(ssh).await {
        Ok(_) => push(Step::ok(StepKind::Sftp, "the SFTP subsystem answers")),
        // the step's own fix: it also offers switching sync off
        Err(e) => push(Step::fail(
            StepKind::Sftp,
            what(&e),
            "enable `Subsystem sftp` in the remote's sshd_config, or switch sync off for this remote",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MemoryStore;

    #[test]
    fn steps_serialize_like_the_api_document() {
        let s = Step {
            fingerprint: Some("SHA256:x".into()),
            ..Step::fail(StepKind::HostKey, "unknown", "trust it")
        };
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["step"], "host_key");
        assert_eq!(j["ok"], false);
        assert_eq!(j["fix"], "trust it");
        assert_eq!(j["fingerprint"], "SHA256:x");
    }

    #[tokio::test]
    async fn a_closed_port_stops_at_tcp() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let mut r = Remote::new("x", "127.0.0.1", "u");
        r.port = port;
        let store: Arc<dyn SecretStore> = Arc::new(MemoryStore::new());
        let steps = test_connection(&r, &store, Path::new("/nonexistent")).await;
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].step, StepKind::Tcp);
        assert!(!steps[0].ok && steps[0].fix.is_some());
        // an invalid remote fails the first step with the field named
        r.user = String::new();
        let steps = test_connection(&r, &store, Path::new("/nonexistent")).await;
        assert!(steps[0].detail.contains("user"), "{:?}", steps[0]);
    }
}
