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

pub use manage::{
    delete, generate_ed25519, import_private_key, list, load_for_auth, load_private_key,
    PublicKeyInfo,
};
pub use store::{blocking, KeyringStore, MemoryStore, SecretStore, SERVICE};

/// Why a key operation failed. Each message is one line that names the cause
/// and what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// No keychain answered (no Secret Service on the session bus, no bus at all …).
    #[error(
        "the OS keychain is not available ({reason}); on Linux start a Secret Service \
         provider such as gnome-keyring or KeePassXC in your desktop session, on macOS and \
         Windows log in to a desktop session"
    )]
    NoKeychain { reason: String },

    /// This build has no keychain at all (berth-core without its `keychain` feature).
    #[error("this build has no keychain support; rebuild with --features keychain")]
    NoKeychainBuilt,

    /// The keychain exists but is locked, or refused access.
    #[error("the OS keychain is locked or refused access ({reason}); unlock it and try again")]
    KeychainLocked { reason: String },

    /// Any other keychain failure.
    #[error("the OS keychain failed: {reason}; try again, or restart the keychain service")]
    Keychain { reason: String },

    /// A key name the user typed is not usable.
    #[error("invalid key name {id:?}: {reason}; use 1 to 64 printable characters")]
    InvalidId { id: String, reason: String },

    /// A key comment is not usable in an `authorized_keys` line.
    #[error("invalid key comment: {reason}; use printable characters on one line")]
    InvalidComment { reason: String },

    /// Generating or importing would replace an existing key.
    #[error("a key named {key:?} already exists; choose another name or delete that key first")]
    Exists { key: String },

    /// No key of that name is in the keychain.
    #[error("no key named {key:?} in the keychain; generate or import it first")]
    NotFound { key: String },

    /// The imported text is not a private key Berth can read.
    #[error(
        "the text imported as {key:?} is not a usable private key ({reason}); paste the whole \
         private key file (OpenSSH, PKCS#8 or PEM RSA), BEGIN and END lines included"
    )]
    NotAKey { key: String, reason: String },

    /// The imported key is encrypted and no passphrase was given.
    #[error("the key imported as {key:?} is encrypted; enter its passphrase")]
    PassphraseNeeded { key: String },

    /// The passphrase does not decrypt the imported key.
    #[error(
        "wrong passphrase for the key imported as {key:?}; enter the passphrase it was saved with"
    )]
    WrongPassphrase { key: String },

    /// The keychain refused the entry's size (Windows limits a secret to 2560 bytes).
    #[error(
        "the keychain refused key {key:?} as too large ({reason}); use an ed25519 or ecdsa key"
    )]
    TooLarge { key: String, reason: String },

    /// What the keychain holds under a key name is damaged.
    #[error("the keychain entry of key {key:?} is damaged ({reason}); delete the key and import it again")]
    Corrupt { key: String, reason: String },

    /// Encoding a key failed, or a background task died.
    #[error("internal key handling error: {reason}")]
    Internal { reason: String },
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
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}
