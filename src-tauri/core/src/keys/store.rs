//! Where secrets live: the [`SecretStore`] trait, the OS keychain behind it
//! ([`KeyringStore`], on the `keyring` crate with the real backend of each OS)
//! and an in-memory store for unit tests ([`MemoryStore`]).
//!
//! The keychain is behind the crate feature `keychain`. Without it
//! [`KeyringStore`] still exists, but every call fails with
//! [`KeysError::NoKeychainBuilt`].
//!
//! A store holds UTF-8 secrets under an *account* name within one *service*
//! (Berth's is [`SERVICE`]). The methods are synchronous and may block:
//! the Secret Service is a D-Bus round trip and an OS keychain may wait for
//! the user to unlock it. From async code call them through [`blocking`]
//! (`tokio::task::spawn_blocking`), never directly on a runtime thread.

use std::collections::BTreeMap;
use std::sync::Mutex;

use zeroize::Zeroizing;

use super::KeysError;

/// The keychain service name every Berth secret is filed under.
pub const SERVICE: &str = "dev.berth";

/// A keychain: get, set and delete a secret by account name within the
/// store's service. Implementations are shared between threads.
pub trait SecretStore: Send + Sync {
    /// The service name the secrets are filed under.
    fn service(&self) -> &str;
    /// The secret stored for `account`, or `None` when there is none.
    fn get(&self, account: &str) -> Result<Option<Zeroizing<String>>, KeysError>;
    /// Stores `secret` for `account`, replacing what was there.
    fn set(&self, account: &str, secret: &str) -> Result<(), KeysError>;
    /// Removes the secret of `account`; `false` when there was none.
    fn delete(&self, account: &str) -> Result<bool, KeysError>;
}

/// Runs blocking key or keychain work off the async runtime's threads.
///
/// ```no_run
/// # async fn f(store: std::sync::Arc<dyn berth_core::keys::SecretStore>) {
/// let keys = berth_core::keys::blocking(move || berth_core::keys::list(&*store)).await;
/// # }
/// ```
pub async fn blocking<T, F>(work: F) -> Result<T, KeysError>
where
    F: FnOnce() -> Result<T, KeysError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| KeysError::Internal {
            reason: format!("the keychain task failed: {e}"),
        })?
}

/// The OS keychain: Secret Service (Linux), Keychain (macOS), Credential
/// Manager (Windows), through the `keyring` crate's real backends.
///
/// Only with the crate feature `keychain`; without it every call returns
/// [`KeysError::NoKeychainBuilt`].
#[derive(Debug, Clone)]
pub struct KeyringStore {
    service: String,
}

impl Default for KeyringStore {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyringStore {
    /// The store for Berth's own service, [`SERVICE`].
    pub fn new() -> Self {
        Self::with_service(SERVICE)
    }

    /// A store under another service name (tests keep theirs apart this way).
    pub fn with_service(service: &str) -> Self {
        Self {
            service: service.to_string(),
        }
    }

    #[cfg(feature = "keychain")]
    fn entry(&self, account: &str) -> Result<keyring::Entry, KeysError> {
        keyring::Entry::new(&self.service, account).map_err(|e| map_error(account, e))
    }

    /// Checks that the keychain answers (a lookup of an entry that need not
    /// exist), so the app can say "no keychain" before the user types a key.
    pub fn probe(&self) -> Result<(), KeysError> {
        self.get("probe").map(drop)
    }
}

#[cfg(feature = "keychain")]
impl SecretStore for KeyringStore {
    fn service(&self) -> &str {
        &self.service
    }

    fn get(&self, account: &str) -> Result<Option<Zeroizing<String>>, KeysError> {
        match self.entry(account)?.get_secret() {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(s) => Ok(Some(Zeroizing::new(s))),
                Err(e) => {
                    drop(Zeroizing::new(e.into_bytes()));
                    Err(map_error(account, keyring::Error::BadEncoding(Vec::new())))
                }
            },
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(map_error(account, e)),
        }
    }

    /// Stored as UTF-8 bytes (`set_secret`), not as a keyring "password":
    /// Windows would store a password as UTF-16 and so halve the room its
    /// Credential Manager gives one secret (2560 bytes).
    fn set(&self, account: &str, secret: &str) -> Result<(), KeysError> {
        self.entry(account)?
            .set_secret(secret.as_bytes())
            .map_err(|e| map_error(account, e))
    }

    fn delete(&self, account: &str) -> Result<bool, KeysError> {
        match self.entry(account)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(map_error(account, e)),
        }
    }
}

#[cfg(feature = "keychain")]
use crate::one_line::one_line;

#[cfg(feature = "keychain")]
fn map_error(account: &str, e: keyring::Error) -> KeysError {
    match e {
        keyring::Error::PlatformFailure(e) => KeysError::NoKeychain {
            reason: one_line(e),
        },
        keyring::Error::NoStorageAccess(e) => KeysError::KeychainLocked {
            reason: one_line(e),
        },
        keyring::Error::TooLong(attr, limit) => KeysError::TooLarge {
            key: account.to_string(),
            reason: format!("{attr} is limited to {limit} bytes"),
        },
        keyring::Error::BadEncoding(_) => KeysError::Corrupt {
            key: account.to_string(),
            reason: "the entry is not UTF-8 text".into(),
        },
        keyring::Error::Ambiguous(found) => KeysError::Keychain {
            reason: format!(
                "{} entries match {account:?}; remove the duplicates in the keychain app",
                found.len()
            ),
        },
        other => KeysError::Keychain {
            reason: one_line(other),
        },
    }
}

/// A build without the `keychain` feature: no keychain to call.
#[cfg(not(feature = "keychain"))]
impl SecretStore for KeyringStore {
    fn service(&self) -> &str {
        &self.service
    }

    fn get(&self, _account: &str) -> Result<Option<Zeroizing<String>>, KeysError> {
        Err(KeysError::NoKeychainBuilt)
    }

    fn set(&self, _account: &str, _secret: &str) -> Result<(), KeysError> {
        Err(KeysError::NoKeychainBuilt)
    }

    fn delete(&self, _account: &str) -> Result<bool, KeysError> {
        Err(KeysError::NoKeychainBuilt)
    }
}

/// Secrets in process memory only; for unit tests and previews, never for a
/// user's keys (they would be gone at exit).
#[derive(Default)]
pub struct MemoryStore {
    service: String,
    entries: Mutex<BTreeMap<String, Zeroizing<String>>>,
}

impl MemoryStore {
    /// An empty store under [`SERVICE`].
    pub fn new() -> Self {
        Self {
            service: SERVICE.to_string(),
            entries: Mutex::default(),
        }
    }

    /// The account names held, sorted (never the secrets).
    pub fn accounts(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Zeroizing<String>>> {
        // A panic while holding the lock leaves the map intact: keep using it.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("service", &self.service)
            .field("accounts", &self.accounts())
            .finish()
    }
}

impl SecretStore for MemoryStore {
    fn service(&self) -> &str {
        &self.service
    }

    fn get(&self, account: &str) -> Result<Option<Zeroizing<String>>, KeysError> {
        Ok(self.lock().get(account).cloned())
    }

    fn set(&self, account: &str, secret: &str) -> Result<(), KeysError> {
        self.lock()
            .insert(account.to_string(), Zeroizing::new(secret.to_string()));
        Ok(())
    }

    fn delete(&self, account: &str) -> Result<bool, KeysError> {
        Ok(self.lock().remove(account).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_gets_sets_and_deletes() {
        let s = MemoryStore::new();
        assert_eq!(s.service(), SERVICE);
        assert!(s.get("a").unwrap().is_none());
        s.set("a", "one").unwrap();
        s.set("a", "two").unwrap();
        assert_eq!(s.get("a").unwrap().unwrap().as_str(), "two");
        assert!(s.delete("a").unwrap());
        assert!(!s.delete("a").unwrap());
        assert!(s.get("a").unwrap().is_none());
    }

    #[test]
    fn memory_store_debug_shows_no_secret() {
        let s = MemoryStore::new();
        s.set("key/x", "SECRET-MATERIAL").unwrap();
        let d = format!("{s:?}");
        assert!(d.contains("key/x") && !d.contains("SECRET-MATERIAL"), "{d}");
    }

    #[test]
    fn keyring_store_uses_berths_service() {
        assert_eq!(KeyringStore::new().service(), "dev.berth");
        assert_eq!(KeyringStore::with_service("t").service(), "t");
    }

    #[cfg(not(feature = "keychain"))]
    #[test]
    fn without_the_feature_every_call_says_so() {
        let s = KeyringStore::with_service("t");
        assert!(matches!(s.get("a"), Err(KeysError::NoKeychainBuilt)));
        assert!(matches!(s.set("a", "x"), Err(KeysError::NoKeychainBuilt)));
        assert!(matches!(s.delete("a"), Err(KeysError::NoKeychainBuilt)));
        assert!(matches!(s.probe(), Err(KeysError::NoKeychainBuilt)));
        let msg = crate::hint::for_cli(&KeysError::NoKeychainBuilt);
        assert!(msg.contains("--features keychain"), "{msg}");
    }

    #[cfg(feature = "keychain")]
    #[test]
    fn platform_errors_become_named_variants() {
        let e = map_error("a", keyring::Error::PlatformFailure("no\nbus".into()));
        assert!(matches!(&e, KeysError::NoKeychain { reason } if reason == "no bus"));
        assert!(crate::hint::for_cli(&e).contains("gnome-keyring"));
        let e = map_error("a", keyring::Error::NoStorageAccess("locked".into()));
        assert!(matches!(e, KeysError::KeychainLocked { .. }));
        let e = map_error("key/a", keyring::Error::TooLong("secret".into(), 2560));
        assert!(matches!(e, KeysError::TooLarge { .. }));
    }

    #[tokio::test]
    async fn blocking_hands_back_results_and_errors() {
        let store: std::sync::Arc<dyn SecretStore> = std::sync::Arc::new(MemoryStore::new());
        let s = store.clone();
        blocking(move || s.set("a", "x")).await.unwrap();
        let s = store.clone();
        let got = blocking(move || s.get("a")).await.unwrap();
        assert_eq!(got.unwrap().as_str(), "x");
        let e = blocking(|| Err::<(), _>(KeysError::NotFound { key: "k".into() })).await;
        assert!(matches!(e, Err(KeysError::NotFound { .. })));
    }
}
