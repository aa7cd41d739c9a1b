//! The window's words for a [`Hint`]: the app has buttons and form fields
//! where `berth-agent` has flags and environment variables, so the fixes
//! that name those are said again here; every other fix reads the same in
//! both.

use crate::hint::{self, Advice, Hint};

/// `h` as the window says it.
pub fn app_words(h: &Hint) -> String {
    match h {
        Hint::TrustHostKey { .. } => "use Test connection to check it and trust it".into(),
        Hint::AuthorizeKey { user } => format!(
            "add the key's authorized_keys line to ~{user}/.ssh/authorized_keys on the remote, \
             or pick another key"
        ),
        Hint::UseAnotherKey => {
            "pick another key file, or import it into the keychain (with its passphrase)".into()
        }
        Hint::GivePassphrase => "import the key into the keychain with its passphrase".into(),
        Hint::StartDocker => "start it there (`sudo systemctl start docker`) or choose the \
                              remote's socket under Docker on the remote"
            .into(),
        Hint::UseTcpDocker => "choose Automatic or TCP under Docker on the remote".into(),
        Hint::PickAnotherEndpoint => "pick another Local Docker endpoint".into(),
        Hint::RebuildWithKeychain => "install a Berth build with keychain support".into(),
        Hint::SetBerthConfig => "start Berth with BERTH_CONFIG set to a file path".into(),
        other => other.cli(),
    }
}

/// `e` in one line for the window: what happened, then the fix in its words.
pub fn explain(e: &(impl Advice + ?Sized)) -> String {
    hint::explain(e, app_words)
}

/// A failed check's fix for the window: the error's own when it has one,
/// else `fallback` (what the check itself suggests).
pub fn fix_for(e: &(impl Advice + ?Sized), fallback: &str) -> String {
    e.hint()
        .map(|h| app_words(&h))
        .unwrap_or_else(|| fallback.to_string())
}

/// A state's error (its message and hint, as the status carries them) in
/// one line for the window.
pub fn explain_state(message: &str, hint: Option<&Hint>) -> String {
    hint::with_fix(message.to_string(), hint, app_words)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags and variables of `berth-agent` that the window has no use for.
    const CLI_ONLY: [&str; 5] = [
        "--host-key-policy",
        "--identity",
        "--remote-docker",
        "--listen",
        "BERTH_KEY_PASSPHRASE",
    ];

    #[test]
    fn the_window_never_names_a_flag() {
        let every = [
            Hint::TrustHostKey {
                host: "h".into(),
                port: 22,
                known_hosts: "/k".into(),
            },
            Hint::AuthorizeKey { user: "u".into() },
            Hint::UseAnotherKey,
            Hint::GivePassphrase,
            Hint::StartDocker,
            Hint::UseTcpDocker,
            Hint::PickAnotherEndpoint,
            Hint::RebuildWithKeychain,
        ];
        for h in every {
            let cli = h.cli();
            let app = app_words(&h);
            assert!(
                CLI_ONLY.iter().any(|f| cli.contains(f)) || cli.contains("--features"),
                "{h:?}: {cli}"
            );
            assert!(!CLI_ONLY.iter().any(|f| app.contains(f)), "{h:?}: {app}");
            assert!(!app.contains("--"), "{h:?}: {app}");
        }
    }

    #[test]
    fn an_engine_error_reads_in_the_window_s_words() {
        use crate::agent::AgentError;
        use crate::ssh::SshError;
        let e = AgentError::Ssh(SshError::HostKeyUnknown {
            host: "h".into(),
            port: 2222,
            fingerprint: "SHA256:x".into(),
            known_hosts: "/k".into(),
        });
        let app = explain(&e);
        assert!(
            app.contains("SHA256:x") && app.contains("trust it"),
            "{app}"
        );
        assert!(!app.contains("--host-key-policy"), "{app}");
        assert!(hint::for_cli(&e).contains("--host-key-policy accept-new"));
        let e = AgentError::Ssh(SshError::AuthFailed {
            user: "u".into(),
            host: "h".into(),
            tried: "publickey k".into(),
        });
        assert!(!explain(&e).contains("--identity"));
        assert!(explain(&e).contains("~u/.ssh/authorized_keys"));
    }

    #[test]
    fn a_state_error_reads_with_its_fix() {
        let line = explain_state("cannot reach h:22: refused", Some(&Hint::CheckSshAddress));
        assert_eq!(
            line,
            "cannot reach h:22: refused; check the host and port, and that sshd runs there"
        );
        assert_eq!(explain_state("dropped", None), "dropped");
    }
}
