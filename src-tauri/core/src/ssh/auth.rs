//! User authentication: keys held in memory (from the OS keychain) and
//! explicit identity files, else ssh-agent, else the default `~/.ssh/id_*`
//! keys, the order OpenSSH users expect. Keychain keys never touch a file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{AuthResult, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};
use zeroize::Zeroizing;

use super::error::SshError;
use super::handler::ClientHandler;

/// Where keys come from; decided once from the command line or config.
/// Its `Debug` output names the keys but shows no passphrase or key material.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// Keys already in memory, tried first, each with the label errors name
    /// it by (e.g. `keychain key "work"`; see [`crate::keys::load_for_auth`]).
    pub keys: Vec<(String, Arc<PrivateKey>)>,
    /// Explicit key files (`--identity`, or `IdentityFile` of an ssh_config Host).
    pub identities: Vec<PathBuf>,
    /// Passphrase for encrypted keys (`BERTH_KEY_PASSPHRASE`, or asked on the
    /// TTY), wiped from memory when the last copy is dropped; never logged.
    pub passphrase: Option<Zeroizing<String>>,
    /// Ask on the terminal when a key is encrypted and no passphrase was given.
    pub prompt: bool,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|(label, key)| {
                let fp = key.public_key().fingerprint(russh::keys::HashAlg::Sha256);
                format!("{label} ({fp}, private key redacted)")
            })
            .collect();
        f.debug_struct("AuthConfig")
            .field("keys", &keys)
            .field("identities", &self.identities)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("prompt", &self.prompt)
            .finish()
    }
}

/// Keys are loaded once and kept for reconnects, so a passphrase is asked only once.
pub struct Credentials {
    /// Each key with the label errors name it by (a path, or a keychain key).
    keys: Vec<(String, Arc<PrivateKey>)>,
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
    /// Takes the in-memory keys and loads the explicit identities (errors
    /// name the file); with neither, plans agent + default key files.
    pub fn load(cfg: &AuthConfig) -> Result<Self, SshError> {
        if !cfg.keys.is_empty() || !cfg.identities.is_empty() {
            let mut keys = cfg.keys.clone();
            for p in &cfg.identities {
                keys.push((p.display().to_string(), Arc::new(load_key(p, cfg)?)));
            }
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
                Ok(k) => keys.push((p.display().to_string(), Arc::new(k))),
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
        for (label, key) in &self.keys {
            let hash = rsa_hash(handle, key.algorithm()).await;
            let attempt = PrivateKeyWithHashAlg::new(key.clone(), hash);
            match handle.authenticate_publickey(user, attempt).await {
                Ok(AuthResult::Success) => return Ok(()),
                Ok(AuthResult::Failure { .. }) => tried.push(format!("publickey {label}")),
                Err(source) => {
                    return Err(SshError::Disconnected {
                        addr: host.to_string(),
                        source,
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
    let path_buf = || path.to_path_buf();
    match russh::keys::load_secret_key(path, None) {
        Ok(k) => Ok(k),
        Err(russh::keys::Error::KeyIsEncrypted) => {
            let pass = match (&cfg.passphrase, cfg.prompt) {
                (Some(p), _) => p.clone(),
                (None, true) => Zeroizing::new(
                    rpassword::prompt_password(format!("Passphrase for {}: ", path.display()))
                        .map_err(|source| SshError::KeyPrompt {
                            path: path_buf(),
                            source,
                        })?,
                ),
                (None, false) => return Err(SshError::KeyEncrypted { path: path_buf() }),
            };
            russh::keys::load_secret_key(path, Some(pass.as_str())).map_err(|source| {
                SshError::KeyPassphraseWrong {
                    path: path_buf(),
                    source,
                }
            })
        }
        Err(source) => Err(SshError::Key {
            path: path_buf(),
            source,
        }),
    }
}

/// Whether a key of the ssh-agent was accepted; an error is the agent's
/// (none running, or it failed), which the caller lists among the tries.
async fn try_agent(
    handle: &mut Handle<ClientHandler>,
    user: &str,
) -> Result<bool, russh::keys::Error> {
    let mut agent = russh::keys::agent::client::AgentClient::connect_env().await?;
    let identities = agent.request_identities().await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::LineEnding;

    fn key() -> Arc<PrivateKey> {
        let k = PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap();
        Arc::new(k)
    }

    #[test]
    fn debug_redacts_passphrase_and_keys() {
        let k = key();
        let pem = k.to_openssh(LineEnding::LF).unwrap();
        let cfg = AuthConfig {
            keys: vec![("keychain key \"work\"".into(), k.clone())],
            identities: vec![PathBuf::from("/k/id_ed25519")],
            passphrase: Some(Zeroizing::new("hunter2-passphrase".into())),
            prompt: false,
        };
        let d = format!("{cfg:?} {cfg:#?}");
        assert!(!d.contains("hunter2-passphrase"), "{d}");
        assert!(d.contains("<redacted>"), "{d}");
        assert!(d.contains("keychain key"), "{d}");
        assert!(d.contains("/k/id_ed25519"), "{d}");
        // Neither the PEM body nor the raw private bytes appear.
        let body: String = pem.lines().nth(1).unwrap().chars().take(40).collect();
        assert!(!d.contains(&body), "{d}");
        if let Some(kp) = k.key_data().ed25519() {
            let hex: String = kp
                .private
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert!(!d.to_lowercase().contains(&hex), "{d}");
            let dec = format!("{:?}", kp.private.as_ref());
            assert!(!d.contains(&dec[1..dec.len() - 1]), "{d}");
        }
    }

    #[test]
    fn in_memory_keys_are_used_without_files_or_agent() {
        let k = key();
        let cfg = AuthConfig {
            keys: vec![("keychain key \"a\"".into(), k.clone())],
            ..Default::default()
        };
        let c = Credentials::load(&cfg).unwrap();
        assert!(!c.use_agent);
        assert_eq!(c.keys.len(), 1);
        assert_eq!(c.keys[0].0, "keychain key \"a\"");
        assert_eq!(c.keys[0].1.public_key(), k.public_key());
    }

    #[test]
    fn in_memory_keys_come_before_files() {
        let cfg = AuthConfig {
            keys: vec![("mem".into(), key())],
            identities: vec![PathBuf::from("/nonexistent/berth-key")],
            ..Default::default()
        };
        // The file is still loaded (and its error names it).
        let e = Credentials::load(&cfg).err().unwrap();
        assert!(e.to_string().contains("/nonexistent/berth-key"), "{e}");
    }
}
