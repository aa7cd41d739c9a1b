//! Generating, importing, listing, deleting and loading keys in a
//! [`SecretStore`].
//!
//! Layout in the store (service `dev.berth`): account `key/<name>` holds the
//! private key as unencrypted OpenSSH PEM text, `pub/<name>` its public
//! `authorized_keys` line (so keys are listed without reading a private key),
//! and `index` a JSON list of the key names. Each entry stays small: Windows
//! limits one secret to 2560 bytes, which an ed25519, ecdsa or RSA-2048 key
//! fits (an RSA-4096 key does not: [`KeysError::TooLarge`]).
//!
//! An imported key that was encrypted is decrypted once, with the passphrase
//! the user gave, and stored re-encoded without encryption: the keychain is
//! what protects it at rest (it encrypts its store and locks with the
//! session), the passphrase is never stored anywhere, and authentication needs
//! no prompt later. This is the same confinement as storing key and
//! passphrase side by side in the keychain, with one secret instead of two.

use std::sync::{Arc, Mutex};

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::store::SecretStore;
use super::{validate_id, KeysError};

const KEY_PREFIX: &str = "key/";
const PUB_PREFIX: &str = "pub/";
const INDEX: &str = "index";

/// Serialises the read-modify-write of the index within this process.
static INDEX_LOCK: Mutex<()> = Mutex::new(());

/// What the user sees of a key: everything public, nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PublicKeyInfo {
    /// The user-chosen key name.
    pub id: String,
    /// The SSH algorithm name, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// The public key alone, `ssh-ed25519 AAAA…` (no comment).
    pub public_key: String,
    /// The key's comment (for a generated key, the one given or `berth:<name>`).
    pub comment: String,
    /// `SHA256:…`, as `ssh-keygen -l` and sshd's log print it.
    pub fingerprint: String,
    /// The exact line to append to `~/.ssh/authorized_keys` on the remote
    /// (public key and comment, no trailing newline).
    pub authorized_keys_line: String,
}

impl PublicKeyInfo {
    fn new(id: &str, public: &PublicKey) -> Result<Self, KeysError> {
        let line = public.to_openssh().map_err(internal)?;
        let mut bare = public.clone();
        bare.set_comment("");
        Ok(Self {
            id: id.to_string(),
            algorithm: public.algorithm().as_str().to_string(),
            public_key: bare.to_openssh().map_err(internal)?,
            comment: public.comment().as_str_lossy().to_string(),
            fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
            authorized_keys_line: line,
        })
    }

    /// A shell command that authorizes the key when run on the remote as the
    /// target user (creates `~/.ssh` with the modes sshd requires).
    pub fn install_command(&self) -> String {
        let line = crate::ssh::sh_quote(&self.authorized_keys_line);
        format!("umask 077 && mkdir -p ~/.ssh && printf '%s\\n' {line} >> ~/.ssh/authorized_keys")
    }
}

/// Generates a new ed25519 key named `id`, stores its private key in `store`
/// and returns its public side. `comment` may be empty (then `berth:<id>`).
pub fn generate_ed25519<S: SecretStore + ?Sized>(
    store: &S,
    id: &str,
    comment: &str,
) -> Result<PublicKeyInfo, KeysError> {
    validate_id(id)?;
    let comment = comment_or_default(comment, id)?;
    let mut key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(internal)?;
    key.set_comment(comment);
    save(store, id, &key)
}

/// Imports a private key given as text (OpenSSH, PKCS#8, PEM RSA or PuTTY),
/// decrypting it with `passphrase` when it is encrypted, stores it as `id`
/// and returns its public side. The passphrase is not stored (see the module
/// documentation).
pub fn import_private_key<S: SecretStore + ?Sized>(
    store: &S,
    id: &str,
    text: &str,
    passphrase: Option<&str>,
) -> Result<PublicKeyInfo, KeysError> {
    validate_id(id)?;
    let mut key = decode(id, text, passphrase.filter(|p| !p.is_empty()))?;
    let comment = sanitize_comment(key.comment().as_str_lossy());
    key.set_comment(comment_or_default(&comment, id)?);
    save(store, id, &key)
}

/// The keys in `store`, sorted by name.
pub fn list<S: SecretStore + ?Sized>(store: &S) -> Result<Vec<PublicKeyInfo>, KeysError> {
    let mut keys = Vec::new();
    for id in read_index(store)? {
        let public = match store.get(&format!("{PUB_PREFIX}{id}"))? {
            Some(line) => PublicKey::from_openssh(&line).map_err(|e| KeysError::Corrupt {
                key: id.clone(),
                reason: format!("its public key does not parse: {e}"),
            })?,
            // Lost its public entry: the private key still knows it.
            None => load_private_key(store, &id)?.public_key().clone(),
        };
        keys.push(PublicKeyInfo::new(&id, &public)?);
    }
    keys.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(keys)
}

/// Deletes key `id` (its private key, public key and index entry).
pub fn delete<S: SecretStore + ?Sized>(store: &S, id: &str) -> Result<(), KeysError> {
    validate_id(id)?;
    let _guard = INDEX_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let mut index = read_index(store)?;
    let before = index.len();
    index.retain(|e| e != id);
    let listed = index.len() != before;
    if listed {
        write_index(store, &index)?;
    }
    let stored = store.delete(&account(id))?;
    store.delete(&format!("{PUB_PREFIX}{id}"))?;
    if listed || stored {
        Ok(())
    } else {
        Err(KeysError::NotFound {
            key: id.to_string(),
        })
    }
}

/// The private key `id`, read from `store`, ready for authentication.
pub fn load_private_key<S: SecretStore + ?Sized>(
    store: &S,
    id: &str,
) -> Result<Arc<PrivateKey>, KeysError> {
    validate_id(id)?;
    let pem = store
        .get(&account(id))?
        .ok_or_else(|| KeysError::NotFound {
            key: id.to_string(),
        })?;
    let key = PrivateKey::from_openssh(pem.as_bytes()).map_err(|e| KeysError::Corrupt {
        key: id.to_string(),
        reason: format!("not an OpenSSH private key: {e}"),
    })?;
    if key.is_encrypted() {
        return Err(KeysError::Corrupt {
            key: id.to_string(),
            reason: "the stored key is encrypted".into(),
        });
    }
    Ok(Arc::new(key))
}

/// Key `id` with the label authentication errors name it by, as
/// [`crate::ssh::AuthConfig::keys`] takes it.
pub fn load_for_auth<S: SecretStore + ?Sized>(
    store: &S,
    id: &str,
) -> Result<(String, Arc<PrivateKey>), KeysError> {
    Ok((format!("keychain key {id:?}"), load_private_key(store, id)?))
}

fn account(id: &str) -> String {
    format!("{KEY_PREFIX}{id}")
}

fn internal(e: impl std::fmt::Display) -> KeysError {
    KeysError::Internal {
        reason: e.to_string(),
    }
}

fn comment_or_default(comment: &str, id: &str) -> Result<String, KeysError> {
    if comment.chars().any(char::is_control) {
        return Err(KeysError::InvalidComment {
            reason: "it contains a control character".into(),
        });
    }
    let comment = comment.trim();
    Ok(if comment.is_empty() {
        format!("berth:{}", id.replace(char::is_whitespace, "-"))
    } else {
        comment.to_string()
    })
}

/// An imported key's comment, made fit for one `authorized_keys` line.
fn sanitize_comment(c: &str) -> String {
    c.chars()
        .map(|ch| if ch.is_control() { ' ' } else { ch })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Decodes an imported private key; the errors say what the user must do.
fn decode(id: &str, text: &str, passphrase: Option<&str>) -> Result<PrivateKey, KeysError> {
    let text = Zeroizing::new(text.replace("\r\n", "\n"));
    let not_a_key = |reason: String| KeysError::NotAKey {
        key: id.to_string(),
        reason,
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with("ssh-") || trimmed.starts_with("ecdsa-sha2-") {
        return Err(not_a_key(
            "this is a public key; import the private key file (the one without .pub)".into(),
        ));
    }
    let encrypted_hint = text.contains("BEGIN ENCRYPTED PRIVATE KEY")
        || text.contains("Proc-Type: 4,ENCRYPTED")
        || (trimmed.starts_with("PuTTY-User-Key-File-") && !text.contains("Encryption: none"));
    match russh::keys::decode_secret_key(&text, None) {
        Ok(key) => Ok(key),
        Err(e) => {
            let encrypted = encrypted_hint || matches!(e, russh::keys::Error::KeyIsEncrypted);
            match (encrypted, passphrase) {
                (true, None) => Err(KeysError::PassphraseNeeded {
                    key: id.to_string(),
                }),
                (true, Some(p)) => russh::keys::decode_secret_key(&text, Some(p)).map_err(|_| {
                    KeysError::WrongPassphrase {
                        key: id.to_string(),
                    }
                }),
                (false, _) => Err(not_a_key(e.to_string())),
            }
        }
    }
}

/// Stores a new key under `id` and lists it; refuses to replace a key.
fn save<S: SecretStore + ?Sized>(
    store: &S,
    id: &str,
    key: &PrivateKey,
) -> Result<PublicKeyInfo, KeysError> {
    let info = PublicKeyInfo::new(id, key.public_key())?;
    let pem = key.to_openssh(LineEnding::LF).map_err(internal)?;
    let _guard = INDEX_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let mut index = read_index(store)?;
    if index.iter().any(|e| e == id) || store.get(&account(id))?.is_some() {
        return Err(KeysError::Exists {
            key: id.to_string(),
        });
    }
    let public = format!("{PUB_PREFIX}{id}");
    index.push(id.to_string());
    let stored = store
        .set(&account(id), &pem)
        .and_then(|()| store.set(&public, &info.authorized_keys_line))
        .and_then(|()| write_index(store, &index));
    if let Err(e) = stored {
        // Leave no unlisted private key behind.
        let _ = store.delete(&account(id));
        let _ = store.delete(&public);
        return Err(e);
    }
    Ok(info)
}

fn read_index<S: SecretStore + ?Sized>(store: &S) -> Result<Vec<String>, KeysError> {
    match store.get(INDEX)? {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text).map_err(|e| KeysError::Corrupt {
            key: "(the key list)".into(),
            reason: e.to_string(),
        }),
    }
}

fn write_index<S: SecretStore + ?Sized>(store: &S, index: &[String]) -> Result<(), KeysError> {
    store.set(INDEX, &serde_json::to_string(index).map_err(internal)?)
}

#[cfg(test)]
#[path = "manage_tests.rs"]
mod tests;
