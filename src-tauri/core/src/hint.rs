//! What a user can do about an error, kept apart from what happened.
//!
//! An error's message says what went wrong (and its cause); its [`Hint`] is
//! data naming the fix. Each frontend says the fix in its own words: the
//! Docker-style `{"message": …}` and `berth-agent` speak of commands and
//! flags ([`Hint::cli`]), the window of its own buttons and fields
//! (`desktop::advice`). So the engine never names a flag the app lacks, and
//! the app never rewords an engine message by matching its text.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One fix a user can apply. Fields carry what the words need to be exact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Hint {
    /// A remote given in a form Berth does not read.
    RemoteForm,
    /// Nothing answers at the SSH address.
    CheckSshAddress,
    /// Something answers, but not SSH.
    CheckSshPort,
    /// The server's host key is not recorded.
    TrustHostKey {
        host: String,
        port: u16,
        known_hosts: PathBuf,
    },
    /// known_hosts records another key for this server.
    RemoveChangedHostKey {
        host_port: String,
        known_hosts: PathBuf,
    },
    /// The offered host key is marked `@revoked`.
    AskForNewHostKey,
    /// The host certificate does not pass the CA's rules.
    ReissueHostCertificate,
    /// A file Berth needs is unreadable or unwritable.
    CheckFilePermissions,
    /// The server took none of the keys offered.
    AuthorizeKey { user: String },
    /// A key file cannot be read as a private key.
    UseAnotherKey,
    /// An encrypted key and no way to ask for its passphrase.
    GivePassphrase,
    /// The remote daemon is not running at the endpoint.
    StartDocker,
    /// The SSH user may not open the remote socket.
    JoinDockerGroup { user: String },
    /// No Docker on the remote at all.
    InstallDocker,
    /// sshd refuses unix-socket forwarding: the TCP endpoint works.
    UseTcpDocker,
    /// Nothing that was tried answered like a Docker daemon.
    CheckDockerRuns,
    /// A local endpoint (socket or port) is taken or unusable.
    PickAnotherEndpoint,
    /// A UDP or SCTP port was published.
    PublishTcp,
    /// Every port of a host range is taken.
    FreeOrAnotherPort,
    /// A published host port cannot be bound.
    PublishAnotherPort,
    /// No Secret Service (or desktop keychain) is running.
    StartKeychain,
    /// Built without the `keychain` feature.
    RebuildWithKeychain,
    /// The keychain is locked.
    UnlockKeychain,
    /// The keychain failed for another reason.
    RetryKeychain,
    /// A key name is not usable.
    ValidKeyName,
    /// A key comment is not usable.
    ValidKeyComment,
    /// A key of that name exists.
    OtherKeyName,
    /// No key of that name exists.
    CreateKeyFirst,
    /// Imported text is not a whole private key.
    PasteWholeKey,
    /// An encrypted key was imported without its passphrase.
    EnterPassphrase,
    /// The passphrase given is not the key's.
    EnterSavedPassphrase,
    /// The keychain refuses entries this large.
    UseSmallerKey,
    /// A keychain entry is damaged.
    ReimportKey,
    /// A local file of a bind mount cannot be read.
    PermissionsOrIgnore,
    /// The remote sshd has no SFTP subsystem.
    EnableSftp,
    /// The SSH user cannot write under the mounts root.
    WritableMountsRoot,
    /// The remote disk looks full.
    FreeRemoteSpace,
    /// A container wrote files the SSH user cannot read.
    ReadableReplica,
    /// A replica holds what the local folder lacks.
    CopyOutReplica,
    /// Something ended before it ran; doing it again works.
    TryAgain,
    /// No folder for Berth's config.
    SetBerthConfig,
    /// No home directory.
    SetHome,
    /// A file Berth reads is malformed.
    FixOrMoveFile,
    /// The docker CLI's config is malformed (Berth never overwrites it).
    FixFileAndRetry,
    /// A docker context's files are malformed.
    RemoveContext,
    /// No docker context of that name.
    CreateContextFirst,
    /// A name docker refuses for a context.
    ValidContextName,
    /// `~/.ssh/config` cannot be parsed.
    FixSshConfig,
    /// The `ProxyCommand` that carries the connection failed.
    CheckProxyCommand,
    /// No remote of that name.
    AddRemoteFirst,
    /// A remote whose key is in the keychain.
    LoadFromKeychain,
    /// The server changed between showing and trusting.
    TestAgain,
    /// The remote is not connected.
    ConnectFirst,
    /// Berth's records folder is not writable.
    WritableDataDir,
    /// No folder for Berth's records.
    SetDataDir,
}

impl Hint {
    /// The fix in the words of `berth-agent` and the docker CLI.
    pub fn cli(&self) -> String {
        use Hint::*;
        match self {
            RemoteForm => "use ssh://USER@HOST[:PORT] or a Host alias from ~/.ssh/config".into(),
            CheckSshAddress => "check the host and port, and that sshd runs there".into(),
            CheckSshPort => "check the port".into(),
            TrustHostKey {
                host,
                port,
                known_hosts,
            } => format!(
                "verify it, then trust it with `ssh-keyscan -p {port} {host} >> {}` or run \
                 with --host-key-policy accept-new",
                known_hosts.display()
            ),
            RemoveChangedHostKey {
                host_port,
                known_hosts,
            } => format!(
                "if the change is expected, remove the old key with `ssh-keygen -R '{host_port}' \
                 -f {}`",
                known_hosts.display()
            ),
            AskForNewHostKey => "Berth never accepts it: get the server's new host key from its \
                                 owner (remove that line only if the revocation was a mistake)"
                .into(),
            ReissueHostCertificate => "ask the server's owner to re-issue it (`ssh-keygen -s CA \
                                       -h -n HOST`), or record the server's plain host key"
                .into(),
            CheckFilePermissions => "check the file and its permissions".into(),
            AuthorizeKey { user } => format!(
                "add your public key to ~{user}/.ssh/authorized_keys on the remote, or pass \
                 --identity FILE"
            ),
            UseAnotherKey => "pass another key with --identity FILE (OpenSSH ed25519, ecdsa or \
                              rsa), or load it into ssh-agent"
                .into(),
            GivePassphrase => "set BERTH_KEY_PASSPHRASE or run on a terminal".into(),
            StartDocker => "start it there (`sudo systemctl start docker`) or point \
                            --remote-docker at the right endpoint"
                .into(),
            JoinDockerGroup { user } => format!(
                "add {user} to the docker group on the remote (`sudo usermod -aG docker {user}`), \
                 then reconnect"
            ),
            InstallDocker => "install Docker there".into(),
            UseTcpDocker => "use --remote-docker auto or tcp://127.0.0.1:2375".into(),
            CheckDockerRuns => "check that Docker runs on the remote".into(),
            PickAnotherEndpoint => "pick another local endpoint (--listen)".into(),
            PublishTcp => "publish TCP ports, or run the client on the remote".into(),
            FreeOrAnotherPort => "free one, or publish another port or range".into(),
            PublishAnotherPort => "publish another host port or address".into(),
            StartKeychain => "on Linux start a Secret Service provider such as gnome-keyring or \
                              KeePassXC in your desktop session, on macOS and Windows log in to \
                              a desktop session"
                .into(),
            RebuildWithKeychain => "rebuild with --features keychain".into(),
            UnlockKeychain => "unlock it and try again".into(),
            RetryKeychain => "try again, or restart the keychain service".into(),
            ValidKeyName => format!("use 1 to {} printable characters", crate::keys::MAX_ID_LEN),
            ValidKeyComment => "use printable characters on one line".into(),
            OtherKeyName => "choose another name or delete that key first".into(),
            CreateKeyFirst => "generate or import it first".into(),
            PasteWholeKey => "paste the whole private key file (OpenSSH, PKCS#8 or PEM RSA), \
                              BEGIN and END lines included"
                .into(),
            EnterPassphrase => "enter its passphrase".into(),
            EnterSavedPassphrase => "enter the passphrase it was saved with".into(),
            UseSmallerKey => "use an ed25519 or ecdsa key".into(),
            ReimportKey => "delete the key and import it again".into(),
            PermissionsOrIgnore => "check its permissions, or add it to .berthignore".into(),
            EnableSftp => "enable `Subsystem sftp internal-sftp` in its sshd_config".into(),
            WritableMountsRoot => "make the mounts root writable by the SSH user, or choose \
                                   another mounts root"
                .into(),
            FreeRemoteSpace => "the remote disk may be full: free space there".into(),
            ReadableReplica => "a container wrote it with an owner or mode the SSH user cannot \
                                read: make it readable to that user, e.g. `chmod -R a+rX` from \
                                inside the container"
                .into(),
            CopyOutReplica => "copy them out, then remove the replica".into(),
            TryAgain => "try again".into(),
            SetBerthConfig => "set BERTH_CONFIG to a file path".into(),
            SetHome => "set HOME (or DOCKER_CONFIG)".into(),
            FixOrMoveFile => "fix it or move it away".into(),
            FixFileAndRetry => "fix it and retry".into(),
            RemoveContext => "remove it with `docker context rm`".into(),
            CreateContextFirst => "create it first (see `docker context ls`)".into(),
            ValidContextName => "use letters, digits, '_', '.', '+', '-'".into(),
            FixSshConfig => "fix the file or import hosts by hand".into(),
            CheckProxyCommand => {
                "run the ProxyCommand by hand to see why, then fix it in the ssh config".into()
            }
            AddRemoteFirst => "add it first".into(),
            LoadFromKeychain => "load it from the keychain first".into(),
            TestAgain => "test the connection again".into(),
            ConnectFirst => "connect it first".into(),
            WritableDataDir => "check that this folder is writable".into(),
            SetDataDir => "set BERTH_DATA_DIR or HOME".into(),
        }
    }
}

/// An error that may know its fix.
pub trait Advice: std::error::Error {
    /// The fix, when there is one the user can apply.
    fn hint(&self) -> Option<Hint>;
}

/// `e` in one line for `berth-agent` and the docker CLI: what happened, then
/// the fix in the CLI's words.
pub fn for_cli(e: &(impl Advice + ?Sized)) -> String {
    explain(e, Hint::cli)
}

/// `e` in one line: its message, any cause the message does not already
/// quote, then the fix as `words` says it.
pub fn explain(e: &(impl Advice + ?Sized), words: impl Fn(&Hint) -> String) -> String {
    with_fix(what(e), e.hint().as_ref(), words)
}

/// `what` happened, then `hint` as `words` says it (the one way a line and
/// its fix are joined, for errors and for the status's message and hint).
pub fn with_fix(what: String, hint: Option<&Hint>, words: impl Fn(&Hint) -> String) -> String {
    match hint {
        Some(h) => format!("{what}; {}", words(h)),
        None => what,
    }
}

/// What happened, in one line: `e`'s message and any cause it does not
/// already quote, without the fix.
pub fn what(e: &(impl std::error::Error + ?Sized)) -> String {
    let mut line = crate::one_line::one_line(e);
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = crate::one_line::one_line(c);
        if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open {0}")]
    struct Open(&'static str, #[source] std::io::Error);

    impl Advice for Open {
        fn hint(&self) -> Option<Hint> {
            Some(Hint::CheckFilePermissions)
        }
    }

    #[test]
    fn the_cause_once_then_the_fix() {
        let e = Open("f", std::io::Error::other("denied"));
        assert_eq!(
            for_cli(&e),
            "cannot open f: denied; check the file and its permissions"
        );
        let app = explain(&e, |_| "open Settings".into());
        assert_eq!(app, "cannot open f: denied; open Settings");
    }

    #[test]
    fn hints_travel_as_tagged_json() {
        let h = Hint::AuthorizeKey { user: "dev".into() };
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "authorize_key", "user": "dev"})
        );
        assert_eq!(serde_json::from_value::<Hint>(v).unwrap(), h);
    }

    #[test]
    fn cli_words_name_the_flags() {
        let table = [
            (Hint::UseTcpDocker, "--remote-docker"),
            (Hint::AuthorizeKey { user: "u".into() }, "--identity"),
            (Hint::GivePassphrase, "BERTH_KEY_PASSPHRASE"),
            (Hint::ValidKeyName, "1 to 64"),
        ];
        for (h, want) in table {
            assert!(h.cli().contains(want), "{h:?}: {}", h.cli());
        }
    }
}
