//! User authentication: explicit identity files, else ssh-agent, else the
//! default `~/.ssh/id_*` keys, the order OpenSSH users expect.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{AuthResult, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};

use super::error::SshError;
use super::handler::ClientHandler;

/// Where keys come from; decided once from the command line or config.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Explicit key files (`--identity`, or `IdentityFile` of an ssh_config Host).
    pub identities: Vec<PathBuf>,
    /// Passphrase for encrypted keys (`BERTH_KEY_PASSPHRASE`, or asked on the TTY).
    pub passphrase: Option<String>,
    /// Ask on the terminal when a key is encrypted and no passphrase was given.
    pub prompt: bool,
}

/// Keys are loaded once and kept for reconnects, so a passphrase is asked only once.
pub struct Credentials {
    keys: Vec<(PathBuf, Arc<PrivateKey>)>,
    use_agent: bool,
}

/// The default key files OpenSSH tries, in its order.
pub fn default_identities(home: &Path) -> Vec<PathBuf> {
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|n| home.join(".ssh").join(n))
        .filter(|p| p.exists())
        .collect()
}

impl Credentials {
    /// Loads explicit identities (errors name the file), else plans agent + defaults.
    pub fn load(cfg: &AuthConfig) -> Result<Self, SshError> {
        if !cfg.identities.is_empty() {
            let keys = cfg
                .identities
                .iter()
                .map(|p| load_key(p, cfg).map(|k| (p.clone(), Arc::new(k))))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Self {
                keys,
                use_agent: false,
            });
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let mut keys = Vec::new();
        for p in default_identities(&home) {
            match load_key(&p, cfg) {
                Ok(k) => keys.push((p, Arc::new(k))),
                Err(e) => tracing::warn!("skipping default key: {e}"),
            }
        }
        Ok(Self {
            keys,
            use_agent: std::env::var_os("SSH_AUTH_SOCK").is_some(),
        })
    }

    /// Tries the agent's keys, then the key files; names every attempt on failure.
    pub async fn authenticate(
        &self,
        handle: &mut Handle<ClientHandler>,
        user: &str,
        host: &str,
    ) -> Result<(), SshError> {
        let mut tried = Vec::new();
        if self.use_agent {
            match try_agent(handle, user).await {
                Ok(true) => return Ok(()),
                Ok(false) => tried.push("ssh-agent keys".to_string()),
                Err(e) => tried.push(format!("ssh-agent ({e})")),
            }
        }
        for (path, key) in &self.keys {
            let hash = rsa_hash(handle, key.algorithm()).await;
            let attempt = PrivateKeyWithHashAlg::new(key.clone(), hash);
            match handle.authenticate_publickey(user, attempt).await {
                Ok(AuthResult::Success) => return Ok(()),
                Ok(AuthResult::Failure { .. }) => {
                    tried.push(format!("publickey {}", path.display()))
                }
                Err(e) => {
                    return Err(SshError::Disconnected {
                        addr: host.to_string(),
                        reason: e.to_string(),
                    })
                }
            }
        }
        if tried.is_empty() {
            tried.push("no keys: no --identity, no ssh-agent, no ~/.ssh/id_*".to_string());
        }
        Err(SshError::AuthFailed {
            user: user.to_string(),
            host: host.to_string(),
            tried: tried.join(", "),
        })
    }
}

fn load_key(path: &Path, cfg: &AuthConfig) -> Result<PrivateKey, SshError> {
    let err = |reason: String| SshError::Key {
        path: path.to_path_buf(),
        reason,
    };
    match russh::keys::load_secret_key(path, None) {
        Ok(k) => Ok(k),
        Err(russh::keys::Error::KeyIsEncrypted) => {
            let pass = match (&cfg.passphrase, cfg.prompt) {
                (Some(p), _) => p.clone(),
                (None, true) => {
                    rpassword::prompt_password(format!("Passphrase for {}: ", path.display()))
                        .map_err(|e| err(format!("cannot read the passphrase: {e}")))?
                }
                (None, false) => {
                    return Err(err(
                        "the key is encrypted; set BERTH_KEY_PASSPHRASE or run on a terminal"
                            .into(),
                    ))
                }
            };
            russh::keys::load_secret_key(path, Some(&pass))
                .map_err(|e| err(format!("{e} (wrong passphrase?)")))
        }
        Err(e) => Err(err(format!(
            "{e}; expected an OpenSSH private key (ed25519, ecdsa or rsa)"
        ))),
    }
}

async fn try_agent(handle: &mut Handle<ClientHandler>, user: &str) -> Result<bool, String> {
    let mut agent = russh::keys::agent::client::AgentClient::connect_env()
        .await
        .map_err(|e| e.to_string())?;
    let identities = agent
        .request_identities()
        .await
        .map_err(|e| e.to_string())?;
    for id in identities {
        let russh::keys::agent::AgentIdentity::PublicKey { key, .. } = id else {
            continue;
        };
        let hash = rsa_hash(handle, key.algorithm()).await;
        if let Ok(AuthResult::Success) = handle
            .authenticate_publickey_with(user, key, hash, &mut agent)
            .await
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The signature hash the server prefers for an RSA key (`rsa-sha2-512` …);
/// `None` for other key types.
async fn rsa_hash(
    handle: &Handle<ClientHandler>,
    alg: russh::keys::Algorithm,
) -> Option<russh::keys::HashAlg> {
    if !alg.is_rsa() {
        return None;
    }
    handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten()
}
