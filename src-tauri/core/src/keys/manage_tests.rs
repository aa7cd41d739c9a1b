//! Unit tests of key management against the in-memory store: generation,
//! import (plain, encrypted with right, wrong and missing passphrase, keys
//! made by `ssh-keygen`), listing, deletion, and that no secret leaks into
//! the index or past the store.

use super::*;
use crate::keys::MemoryStore;
use russh::keys::ssh_key::{Cipher, Kdf};

/// An OpenSSH key encrypted with one bcrypt round (the default 16 are slow
/// in a debug build; the format and the decryption path are the same).
fn encrypted_pem(pass: &str) -> (String, PublicKey) {
    let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
    let kdf = Kdf::Bcrypt {
        salt: vec![7; 16],
        rounds: 1,
    };
    let enc = key.encrypt_with(Cipher::Aes256Ctr, kdf, 42, pass).unwrap();
    assert!(enc.is_encrypted());
    let pem = enc.to_openssh(LineEnding::LF).unwrap().to_string();
    (pem, key.public_key().clone())
}

/// Every secret the store holds, concatenated (to search for leaks).
fn all_secrets(store: &MemoryStore) -> String {
    store
        .accounts()
        .iter()
        .map(|a| store.get(a).unwrap().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn generate_then_load_gives_the_same_key() {
    let store = MemoryStore::new();
    let info = generate_ed25519(&store, "work", "me@laptop").unwrap();
    assert_eq!(info.id, "work");
    assert_eq!(info.algorithm, "ssh-ed25519");
    assert!(info.public_key.starts_with("ssh-ed25519 AAAA"));
    assert!(!info.public_key.contains("me@laptop"));
    assert_eq!(
        info.authorized_keys_line,
        format!("{} me@laptop", info.public_key)
    );
    assert!(info.fingerprint.starts_with("SHA256:"));
    let key = load_private_key(&store, "work").unwrap();
    assert_eq!(
        key.public_key().to_openssh().unwrap(),
        info.authorized_keys_line
    );
    assert_eq!(
        key.public_key().fingerprint(HashAlg::Sha256).to_string(),
        info.fingerprint
    );
    assert_eq!(list(&store).unwrap(), vec![info.clone()]);
    // The private key, its public line and the index of names.
    assert_eq!(store.accounts(), vec!["index", "key/work", "pub/work"]);
    assert_eq!(store.get("index").unwrap().unwrap().as_str(), r#"["work"]"#);
    assert_eq!(
        store.get("pub/work").unwrap().unwrap().as_str(),
        info.authorized_keys_line
    );
    let (label, auth) = load_for_auth(&store, "work").unwrap();
    assert_eq!(label, "keychain key \"work\"");
    assert_eq!(auth.public_key(), key.public_key());
}

#[test]
fn generate_refuses_a_taken_name_and_bad_input() {
    let store = MemoryStore::new();
    let first = generate_ed25519(&store, "k", "").unwrap();
    assert_eq!(first.comment, "berth:k");
    let e = generate_ed25519(&store, "k", "").unwrap_err();
    assert!(matches!(e, KeysError::Exists { .. }), "{e}");
    assert_eq!(list(&store).unwrap(), vec![first]);
    let e = generate_ed25519(&store, "", "").unwrap_err();
    assert!(matches!(e, KeysError::InvalidId { .. }), "{e}");
    let e = generate_ed25519(&store, "x", "two\nlines").unwrap_err();
    assert!(matches!(e, KeysError::InvalidComment { .. }), "{e}");
    assert_eq!(
        generate_ed25519(&store, "my laptop", "").unwrap().comment,
        "berth:my-laptop"
    );
}

#[test]
fn import_plain_key() {
    let store = MemoryStore::new();
    let mut key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
    key.set_comment("old@box");
    let pem = key.to_openssh(LineEnding::CRLF).unwrap();
    // A passphrase given for an unencrypted key is ignored.
    let info = import_private_key(&store, "old", &pem, Some("unused")).unwrap();
    assert_eq!(info.comment, "old@box");
    assert_eq!(
        info.authorized_keys_line,
        key.public_key().to_openssh().unwrap()
    );
    assert_eq!(
        load_private_key(&store, "old").unwrap().public_key(),
        key.public_key()
    );
}

#[test]
fn import_encrypted_key_needs_the_right_passphrase() {
    let store = MemoryStore::new();
    let (pem, public) = encrypted_pem("s3cret-pass");

    let e = import_private_key(&store, "enc", &pem, None).unwrap_err();
    assert!(matches!(e, KeysError::PassphraseNeeded { .. }), "{e}");
    let e = import_private_key(&store, "enc", &pem, Some("")).unwrap_err();
    assert!(matches!(e, KeysError::PassphraseNeeded { .. }), "{e}");
    let e = import_private_key(&store, "enc", &pem, Some("wrong")).unwrap_err();
    assert!(matches!(e, KeysError::WrongPassphrase { .. }), "{e}");
    assert!(e.to_string().contains("wrong passphrase"), "{e}");
    assert!(
        store.accounts().is_empty(),
        "a failed import stored something"
    );

    let info = import_private_key(&store, "enc", &pem, Some("s3cret-pass")).unwrap();
    assert_eq!(info.public_key, {
        let mut p = public.clone();
        p.set_comment("");
        p.to_openssh().unwrap()
    });
    let loaded = load_private_key(&store, "enc").unwrap();
    assert!(!loaded.is_encrypted());
    assert_eq!(loaded.public_key().key_data(), public.key_data());
    // Stored decrypted, and the passphrase is stored nowhere.
    let secrets = all_secrets(&store);
    assert!(!secrets.contains("s3cret-pass"));
    assert!(secrets.contains("BEGIN OPENSSH PRIVATE KEY"));
}

#[test]
fn import_keys_made_by_ssh_keygen() {
    if std::process::Command::new("ssh-keygen")
        .arg("-?")
        .output()
        .is_err()
    {
        eprintln!("ssh-keygen not installed; the test bed installs it (openssh-client)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("berth-keys-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = MemoryStore::new();
    // (type, extra args, passphrase): OpenSSH ed25519 and ecdsa, PKCS#8 ecdsa.
    let cases: [(&str, &[&str], &str); 3] = [
        ("ed25519", &["-a", "1"], "pw-ed"),
        ("ecdsa", &["-a", "1"], "pw-ec"),
        ("ecdsa", &["-m", "PKCS8"], ""),
    ];
    for (i, (kind, extra, pass)) in cases.iter().enumerate() {
        let file = dir.join(format!("k{i}"));
        let _ = std::fs::remove_file(&file);
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", pass, "-C", "made@keygen", "-f"])
            .arg(&file)
            .args(*extra)
            .status()
            .unwrap();
        assert!(st.success());
        let pem = std::fs::read_to_string(&file).unwrap();
        let public = std::fs::read_to_string(file.with_extension("pub")).unwrap();
        let id = format!("k{i}");
        if !pass.is_empty() {
            let e = import_private_key(&store, &id, &pem, Some("nope")).unwrap_err();
            assert!(matches!(e, KeysError::WrongPassphrase { .. }), "{id}: {e}");
        }
        let info = import_private_key(&store, &id, &pem, Some(pass)).unwrap();
        let mut words = public.split_whitespace();
        let (alg, b64) = (words.next().unwrap(), words.next().unwrap());
        assert_eq!(info.public_key, format!("{alg} {b64}"), "{id}");
        load_private_key(&store, &id).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn import_refuses_what_is_not_a_private_key() {
    let store = MemoryStore::new();
    let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
    let public = key.public_key().to_openssh().unwrap();
    let e = import_private_key(&store, "p", &public, None).unwrap_err();
    assert!(
        matches!(&e, KeysError::NotAKey { reason, .. } if reason.contains("public key")),
        "{e}"
    );
    for junk in [
        "",
        "hello",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END",
    ] {
        let e = import_private_key(&store, "j", junk, None).unwrap_err();
        assert!(matches!(e, KeysError::NotAKey { .. }), "{junk:?}: {e}");
        assert!(!e.to_string().contains('\n'));
    }
    assert!(store.accounts().is_empty());
}

#[test]
fn delete_removes_key_and_listing() {
    let store = MemoryStore::new();
    generate_ed25519(&store, "a", "").unwrap();
    generate_ed25519(&store, "b", "").unwrap();
    delete(&store, "a").unwrap();
    let ids: Vec<_> = list(&store).unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(ids, vec!["b"]);
    let e = load_private_key(&store, "a").unwrap_err();
    assert!(matches!(e, KeysError::NotFound { .. }), "{e}");
    let e = delete(&store, "a").unwrap_err();
    assert!(matches!(e, KeysError::NotFound { .. }), "{e}");
    delete(&store, "b").unwrap();
    assert!(list(&store).unwrap().is_empty());
    assert_eq!(store.accounts(), vec!["index"]);
}

#[test]
fn damaged_entries_are_named() {
    let store = MemoryStore::new();
    store.set("key/bad", "not a key").unwrap();
    let e = load_private_key(&store, "bad").unwrap_err();
    assert!(matches!(e, KeysError::Corrupt { .. }), "{e}");
    // A key whose public entry is lost is listed from its private key.
    let info = generate_ed25519(&store, "good", "").unwrap();
    store.delete("pub/good").unwrap();
    assert_eq!(list(&store).unwrap(), vec![info]);
    store.set("index", "{").unwrap();
    assert!(matches!(
        list(&store).unwrap_err(),
        KeysError::Corrupt { .. }
    ));
}

#[test]
fn install_command_quotes_the_line() {
    let store = MemoryStore::new();
    let info = generate_ed25519(&store, "q", "it's me").unwrap();
    let cmd = info.install_command();
    assert!(cmd.contains("'\\''s me"), "{cmd}");
    assert!(cmd.ends_with(">> ~/.ssh/authorized_keys"), "{cmd}");
}

/// A store whose `set` of one account fails as a dead keychain would.
struct FailingSet {
    inner: MemoryStore,
    account: &'static str,
}

impl SecretStore for FailingSet {
    fn service(&self) -> &str {
        self.inner.service()
    }
    fn get(&self, account: &str) -> Result<Option<Zeroizing<String>>, KeysError> {
        self.inner.get(account)
    }
    fn set(&self, account: &str, secret: &str) -> Result<(), KeysError> {
        if account == self.account {
            return Err(KeysError::NoKeychain {
                reason: "gone".into(),
            });
        }
        self.inner.set(account, secret)
    }
    fn delete(&self, account: &str) -> Result<bool, KeysError> {
        self.inner.delete(account)
    }
}

#[test]
fn a_failed_save_leaves_nothing_behind() {
    for account in ["index", "pub/k", "key/k"] {
        let store = FailingSet {
            inner: MemoryStore::new(),
            account,
        };
        let e = generate_ed25519(&store, "k", "").unwrap_err();
        assert!(matches!(e, KeysError::NoKeychain { .. }), "{account}: {e}");
        assert!(store.inner.accounts().is_empty(), "{account}");
    }
}
