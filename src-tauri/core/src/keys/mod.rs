//! SSH keys kept in the OS keychain. Berth generates ed25519 keys or imports
//! existing private keys, and keeps the private key only in a [`SecretStore`]:
//! the real OS keychain ([`KeyringStore`]: Secret Service on Linux, Keychain
//! on macOS, Credential Manager on Windows) or, in unit tests, memory
//! ([`MemoryStore`]). A private key or passphrase is never written to the
//! config file, to any other file, or to the log. The tray app shows the
//! [`PublicKeyInfo`] (public key, fingerprint, `authorized_keys` line) and
//! hands [`load_for_auth`]'s result to [`crate::ssh::AuthConfig::keys`], so
//! authentication uses the key straight from memory.
//!
//! Every function here is blocking (keychain calls are D-Bus or OS calls that
//! may wait for an unlock); async callers wrap them in [`blocking`].

mod manage;
mod store;

use crate::hint::{Advice, Hint};

pub use manage::{
    delete, generate_ed25519, import_private_key, list, load_for_auth, load_private_key,
    PublicKeyInfo,
};
pub use store::{blocking, KeyringStore, MemoryStore, SecretStore, SERVICE};

/// Why a key operation failed. Each message is one line that names the
/// cause; [`Advice::hint`] says what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// No keychain answered (no Secret Service on the session bus, no bus at all …).
    #[error("the OS keychain is not available ({reason})")]
    NoKeychain { reason: String },

    /// This build has no keychain at all (berth-core without its `keychain` feature).
    #[error("this build has no keychain support")]
    NoKeychainBuilt,

    /// The keychain exists but is locked, or refused access.
    #[error("the OS keychain is locked or refused access ({reason})")]
    KeychainLocked { reason: String },

    /// Any other keychain failure.
    #[error("the OS keychain failed: {reason}")]
    Keychain { reason: String },

    /// A key name the user typed is not usable.
    #[error("invalid key name {id:?}: {reason}")]
    InvalidId { id: String, reason: String },

    /// A key comment is not usable in an `authorized_keys` line.
    #[error("invalid key comment: {reason}")]
    InvalidComment { reason: String },

    /// Generating or importing would replace an existing key.
    #[error("a key named {key:?} already exists")]
    Exists { key: String },

    /// No key of that name is in the keychain.
    #[error("no key named {key:?} in the keychain")]
    NotFound { key: String },

    /// The imported text is not a private key Berth can read.
    #[error("the text imported as {key:?} is not a usable private key ({reason})")]
    NotAKey { key: String, reason: String },

    /// The imported key is encrypted and no passphrase was given.
    #[error("the key imported as {key:?} is encrypted")]
    PassphraseNeeded { key: String },

    /// The passphrase does not decrypt the imported key.
    #[error("wrong passphrase for the key imported as {key:?}")]
    WrongPassphrase { key: String },

    /// The keychain refused the entry's size (Windows limits a secret to 2560 bytes).
    #[error("the keychain refused key {key:?} as too large ({reason})")]
    TooLarge { key: String, reason: String },

    /// What the keychain holds under a key name is damaged.
    #[error("the keychain entry of key {key:?} is damaged ({reason})")]
    Corrupt { key: String, reason: String },

    /// Encoding a key failed, or a background task died.
    #[error("internal key handling error: {reason}")]
    Internal { reason: String },
}

impl Advice for KeysError {
    fn hint(&self) -> Option<Hint> {
        use KeysError::*;
        Some(match self {
            NoKeychain { .. } => Hint::StartKeychain,
            NoKeychainBuilt => Hint::RebuildWithKeychain,
            KeychainLocked { .. } => Hint::UnlockKeychain,
            Keychain { .. } => Hint::RetryKeychain,
            InvalidId { .. } => Hint::ValidKeyName,
            InvalidComment { .. } => Hint::ValidKeyComment,
            Exists { .. } => Hint::OtherKeyName,
            NotFound { .. } => Hint::CreateKeyFirst,
            NotAKey { .. } => Hint::PasteWholeKey,
            PassphraseNeeded { .. } => Hint::EnterPassphrase,
            WrongPassphrase { .. } => Hint::EnterSavedPassphrase,
            TooLarge { .. } => Hint::UseSmallerKey,
            Corrupt { .. } => Hint::ReimportKey,
            Internal { .. } => return None,
        })
    }
}

/// The longest key name accepted (keychain UIs show it; keep it short).
pub const MAX_ID_LEN: usize = 64;

/// Checks a user-chosen key name: 1 to [`MAX_ID_LEN`] characters, no control
/// characters, no leading or trailing white space.
pub fn validate_id(id: &str) -> Result<(), KeysError> {
    let bad = |reason: &str| {
        Err(KeysError::InvalidId {
            id: id.chars().take(80).collect(),
            reason: reason.to_string(),
        })
    };
    if id.is_empty() {
        return bad("it is empty");
    }
    if id.chars().count() > MAX_ID_LEN {
        return bad("it is longer than 64 characters");
    }
    if id.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    if id.trim() != id {
        return bad("it starts or ends with white space");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        for ok in ["work", "my laptop", "prod-1.example.com", "ключ"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", " lead", "trail ", "a\nb", "tab\there", "\u{7f}"] {
            let e = validate_id(bad).unwrap_err();
            assert!(matches!(e, KeysError::InvalidId { .. }), "{bad:?}: {e}");
        }
        assert!(validate_id(&"x".repeat(65)).is_err());
        assert!(validate_id(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn messages_are_one_line() {
        let errors = [
            KeysError::NoKeychain {
                reason: "no bus".into(),
            },
            KeysError::NoKeychainBuilt,
            KeysError::WrongPassphrase { key: "k".into() },
            KeysError::PassphraseNeeded { key: "k".into() },
            KeysError::NotFound { key: "k".into() },
            KeysError::NotAKey {
                key: "k".into(),
                reason: "r".into(),
            },
        ];
        for e in errors {
            let line = crate::hint::for_cli(&e);
            assert!(!line.contains('\n'), "{line}");
            assert!(e.hint().is_some() && line.contains("; "), "{line}");
        }
    }
}
