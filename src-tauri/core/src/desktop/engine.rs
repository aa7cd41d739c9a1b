//! From a configured [`Remote`] to the engine's [`AgentConfig`]. Everything
//! but the credentials comes from the config ([`Remote::engine_plan`]). Key
//! files and the ssh-agent need no secret, so [`Remote::file_auth`] builds
//! their [`AuthConfig`]; a key kept in the OS keychain is the keychain
//! module's to load, and the caller passes the resulting [`AuthConfig`] to
//! [`EnginePlan::into_agent_config`] along with host-key checking.

use std::path::PathBuf;

use super::config::{Auth, Remote};
use super::DesktopError;
use crate::agent::AgentConfig;
use crate::listen::ListenAddr;
use crate::ports::PlanOptions;
use crate::ssh::{AuthConfig, HostKeyPolicy, SshTarget};
use crate::sync::manager::SyncOptions;
use crate::upstream::UpstreamSpec;

/// What the engine needs to serve one remote, minus credentials.
#[derive(Debug, Clone)]
pub struct EnginePlan {
    /// The SSH server and user.
    pub target: SshTarget,
    /// Where the daemon listens on the remote.
    pub upstream: UpstreamSpec,
    /// The local endpoint to bind (see [`crate::agent::bind_all`]).
    pub listen: ListenAddr,
    /// Port forwarding options; `None` switches it off.
    pub ports: Option<PlanOptions>,
    /// Bind-mount sync options; `None` switches it off.
    pub sync: Option<SyncOptions>,
}

impl Remote {
    /// Everything the engine needs for this remote except credentials.
    pub fn engine_plan(&self) -> Result<EnginePlan, DesktopError> {
        self.validate()?;
        Ok(EnginePlan {
            target: SshTarget {
                user: self.user.clone(),
                host: self.host.clone(),
                port: self.port,
                jumps: self.jump_chain()?,
                proxy_command: None,
            },
            upstream: self.upstream()?,
            listen: self.listen_addr()?,
            ports: self.forward_ports.then_some(PlanOptions::default()),
            sync: self.sync.then(|| SyncOptions {
                mounts_root: self.mounts_root.clone(),
                remote_only: self.remote_only.clone(),
                ignores: self.ignores.clone(),
                honour_gitignore: self.honour_gitignore,
                mode: self.sync_mode,
                ..SyncOptions::default()
            }),
        })
    }

    /// The jump hosts, each looked up in `~/.ssh/config` (its HostName,
    /// Port, User and own ProxyJump) as `ssh -J` does.
    fn jump_chain(&self) -> Result<Vec<SshTarget>, DesktopError> {
        let specs = self.jump_specs()?;
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        let config = std::env::var_os("HOME")
            .map(|h| std::path::PathBuf::from(h).join(".ssh").join("config"));
        let mut chain = crate::remote::resolve_jumps(&specs, config.as_deref())
            .map_err(|e| super::config::invalid(&self.name, "jump", &e.to_string()))?;
        // (the window has no ProxyCommand: a hop's own is not used here)
        for hop in &mut chain {
            hop.proxy_command = None;
        }
        Ok(chain)
    }

    /// The auth for a key file or the ssh-agent, which need no secret from here.
    /// A keychain key is the keychain module's to load: this answers
    /// [`DesktopError::NeedsKeychain`] and the caller supplies an [`AuthConfig`].
    pub fn file_auth(&self) -> Result<AuthConfig, DesktopError> {
        match &self.auth {
            Auth::Keychain { .. } => Err(DesktopError::NeedsKeychain(self.name.clone())),
            Auth::KeyFile { path } => Ok(AuthConfig {
                identities: vec![crate::remote::expand_home(path)],
                ..AuthConfig::default()
            }),
            Auth::Agent => Ok(AuthConfig::default()),
        }
    }
}

impl EnginePlan {
    /// The engine's config, once the credentials and host-key checking are known.
    pub fn into_agent_config(
        self,
        auth: AuthConfig,
        known_hosts: PathBuf,
        policy: HostKeyPolicy,
    ) -> AgentConfig {
        AgentConfig {
            target: self.target,
            auth,
            known_hosts,
            policy,
            upstream: self.upstream,
            ports: self.ports,
            sync: self.sync,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desktop::config::DockerEndpoint;
    use crate::sync::reconcile::SyncMode;

    #[test]
    fn converts_to_the_engine_config_without_secrets() {
        let mut a = Remote::new("build-box", "10.0.0.5", "dev");
        a.port = 2222;
        a.auth = Auth::Keychain {
            key: "berth-key-1".into(),
        };
        a.docker = DockerEndpoint::Unix {
            path: "/run/user/1000/docker.sock".into(),
        };
        a.mounts_root = Some("/srv/berth".into());
        a.ignores = vec!["target/".into()];
        a.remote_only = vec!["/data".into()];
        let plan = a.engine_plan().unwrap();
        assert_eq!(plan.target.url(), "ssh://dev@10.0.0.5:2222");
        let want: UpstreamSpec = "unix:///run/user/1000/docker.sock".parse().unwrap();
        assert_eq!(plan.upstream, want);
        assert_eq!(plan.listen.to_string(), "tcp://127.0.0.1:23750");
        assert_eq!(plan.ports, Some(PlanOptions::default()));
        let sync = plan.sync.clone().unwrap();
        assert_eq!(sync.mounts_root.as_deref(), Some("/srv/berth"));
        assert_eq!(sync.ignores, ["target/"]);
        assert_eq!(sync.remote_only, ["/data"]);
        assert!(!sync.honour_gitignore && !sync.keep_replicas);
        assert_eq!(sync.mode, SyncMode::TwoWay);
        // the keychain key is not this module's to load
        assert!(matches!(a.file_auth(), Err(DesktopError::NeedsKeychain(_))));
        let agent = plan.into_agent_config(
            AuthConfig::default(),
            "/k/known_hosts".into(),
            HostKeyPolicy::Strict,
        );
        assert_eq!(agent.known_hosts, PathBuf::from("/k/known_hosts"));
        assert_eq!(agent.upstream, want);

        let mut b = Remote::new("win", "win", "me");
        b.auth = Auth::KeyFile {
            path: "~/.ssh/id_ed25519".into(),
        };
        b.docker = DockerEndpoint::desktop_tcp();
        b.listen = "unix:///tmp/berth-win.sock".into();
        b.forward_ports = false;
        b.sync = false;
        let plan = b.engine_plan().unwrap();
        let tcp: UpstreamSpec = "tcp://127.0.0.1:2375".parse().unwrap();
        assert_eq!(plan.upstream, tcp);
        assert_eq!(plan.listen.to_string(), "unix:///tmp/berth-win.sock");
        assert!(plan.ports.is_none() && plan.sync.is_none());
        let auth = b.file_auth().unwrap();
        assert_eq!(auth.identities.len(), 1);
        assert!(auth.identities[0].ends_with(".ssh/id_ed25519"));
        // the agent: no explicit identities, so ssh-agent then ~/.ssh/id_*
        let c = Remote::new("c", "h", "u");
        assert!(c.file_auth().unwrap().identities.is_empty());
        // an invalid remote gives no plan
        b.port = 0;
        assert!(b.engine_plan().is_err());
    }
}
