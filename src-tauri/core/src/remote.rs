//! Which remote to connect to: an `ssh://USER@HOST[:PORT]` URL, or a Host
//! alias (or `user@host`) resolved through an OpenSSH client config the way
//! `ssh` resolves it (HostName, Port, User, IdentityFile).

use std::path::{Path, PathBuf};

use crate::hint::{Advice, Hint};
use crate::ssh::SshTarget;

/// Why the remote given cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("invalid remote {given:?}: {why}")]
    Invalid { given: String, why: String },
    #[error("cannot read {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {source}")]
    ParseConfig {
        path: PathBuf,
        #[source]
        source: ssh2_config::SshParserError,
    },
}

impl Advice for RemoteError {
    fn hint(&self) -> Option<Hint> {
        Some(match self {
            RemoteError::Invalid { .. } => Hint::RemoteForm,
            RemoteError::ReadConfig { .. } => Hint::CheckFilePermissions,
            RemoteError::ParseConfig { .. } => Hint::FixSshConfig,
        })
    }
}

/// The remote as given on the command line, before ssh_config is consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSpec {
    pub user: Option<String>,
    /// A host name, address, or ssh_config Host alias.
    pub host: String,
    pub port: Option<u16>,
}

/// A remote resolved to a target plus what ssh_config adds.
#[derive(Debug, Clone)]
pub struct ResolvedRemote {
    pub target: SshTarget,
    pub identities: Vec<PathBuf>,
    pub known_hosts: Option<PathBuf>,
}

/// Parses `ssh://[user@]host[:port]`, `[user@]host` or `[user@][v6]:port`-less aliases.
pub fn parse_remote(s: &str) -> Result<RemoteSpec, RemoteError> {
    let bad = |why: &str| RemoteError::Invalid {
        given: s.to_string(),
        why: why.to_string(),
    };
    let (is_url, rest) = match s.strip_prefix("ssh://") {
        Some(r) => (true, r.trim_end_matches('/')),
        None => (false, s),
    };
    if rest.is_empty() {
        return Err(bad("no host"));
    }
    if rest.contains('/') || rest.contains(char::is_whitespace) {
        return Err(bad("unexpected '/' or space"));
    }
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
        Some(_) => return Err(bad("empty user")),
        None => (None, rest),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(bad("junk after ']'")),
        }
    } else if is_url {
        match hostport.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err(bad("put an IPv6 address in brackets")),
            None => (hostport, None),
        }
    } else {
        (hostport, None)
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad(&format!("{p:?} is not a port")))?,
        ),
        None => None,
    };
    Ok(RemoteSpec {
        user,
        host: host.to_string(),
        port,
    })
}

/// The local user name, OpenSSH's default remote user.
pub fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".into())
}

/// Applies ssh_config (`config`, if it exists) to `spec`; explicit URL parts win.
pub fn resolve(spec: &RemoteSpec, config: Option<&Path>) -> Result<ResolvedRemote, RemoteError> {
    let mut host = spec.host.clone();
    let mut port = spec.port;
    let mut user = spec.user.clone();
    let mut identities = Vec::new();
    let mut known_hosts = None;
    if let Some(path) = config.filter(|p| p.exists()) {
        let file = std::fs::File::open(path).map_err(|source| RemoteError::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = std::io::BufReader::new(file);
        let cfg = ssh2_config::SshConfig::default()
            .parse(
                &mut reader,
                ssh2_config::ParseRule::ALLOW_UNKNOWN_FIELDS
                    | ssh2_config::ParseRule::ALLOW_UNSUPPORTED_FIELDS,
            )
            .map_err(|source| RemoteError::ParseConfig {
                path: path.to_path_buf(),
                source,
            })?;
        let params = cfg.query(&spec.host);
        if let Some(h) = params.host_name {
            host = h;
        }
        port = port.or(params.port);
        user = user.or(params.user);
        identities = params.identity_file.unwrap_or_default();
        known_hosts = params
            .unsupported_fields
            .iter()
            .chain(params.ignored_fields.iter())
            .find(|(k, _)| k.eq_ignore_ascii_case("userknownhostsfile"))
            .and_then(|(_, v)| v.first())
            .map(|v| expand_home(v));
    }
    Ok(ResolvedRemote {
        target: SshTarget {
            user: user.unwrap_or_else(local_user),
            host,
            port: port.unwrap_or(22),
        },
        identities: identities
            .iter()
            .map(|p| expand_home(&p.to_string_lossy()))
            .collect(),
        known_hosts,
    })
}

/// `~/x` → `$HOME/x`.
pub fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(user: Option<&str>, host: &str, port: Option<u16>) -> RemoteSpec {
        RemoteSpec {
            user: user.map(String::from),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses() {
        let table = [
            (
                "ssh://root@127.0.0.1:2222",
                spec(Some("root"), "127.0.0.1", Some(2222)),
            ),
            ("ssh://host", spec(None, "host", None)),
            ("ssh://me@host/", spec(Some("me"), "host", None)),
            ("ssh://me@[::1]:22", spec(Some("me"), "::1", Some(22))),
            ("builder", spec(None, "builder", None)),
            ("me@builder", spec(Some("me"), "builder", None)),
            ("ssh://a@b@host:1", spec(Some("a@b"), "host", Some(1))),
        ];
        for (s, want) in table {
            assert_eq!(parse_remote(s).unwrap(), want, "{s}");
        }
        for bad in [
            "",
            "ssh://",
            "ssh://@h",
            "ssh://h:0",
            "ssh://h:x",
            "ssh://::1:22",
            "ssh://h/path",
            "a b",
            "ssh://[::1",
        ] {
            let e = crate::hint::for_cli(&parse_remote(bad).unwrap_err());
            assert!(e.contains("ssh://USER@HOST"), "{bad}: {e}");
        }
    }

    #[test]
    fn resolves_alias_from_config() {
        let dir = std::env::temp_dir().join(format!("berth-remote-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("config");
        std::fs::write(
            &cfg,
            "Host builder\n  HostName 10.1.2.3\n  Port 2200\n  User dev\n  IdentityFile /k/id_ed25519\n  UserKnownHostsFile /k/known\n\nHost *\n  User fallback\n",
        )
        .unwrap();
        let r = resolve(&parse_remote("builder").unwrap(), Some(&cfg)).unwrap();
        assert_eq!(
            (
                r.target.user.as_str(),
                r.target.host.as_str(),
                r.target.port
            ),
            ("dev", "10.1.2.3", 2200)
        );
        assert_eq!(r.identities, vec![PathBuf::from("/k/id_ed25519")]);
        assert_eq!(r.known_hosts, Some(PathBuf::from("/k/known")));
        // explicit parts of a URL win over the config
        let r = resolve(&parse_remote("ssh://root@builder:22").unwrap(), Some(&cfg)).unwrap();
        assert_eq!(
            (
                r.target.user.as_str(),
                r.target.host.as_str(),
                r.target.port
            ),
            ("root", "10.1.2.3", 22)
        );
        // unknown hosts fall through to `Host *`
        let r = resolve(&parse_remote("other").unwrap(), Some(&cfg)).unwrap();
        assert_eq!(
            (
                r.target.user.as_str(),
                r.target.host.as_str(),
                r.target.port
            ),
            ("fallback", "other", 22)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
