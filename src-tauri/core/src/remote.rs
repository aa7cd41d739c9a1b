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

/// The most jump hosts a chain may have (OpenSSH has no limit, but a
/// `ProxyJump` that names itself would otherwise never end).
pub const MAX_JUMPS: usize = 8;

/// Parses a `ProxyJump` value or `--jump` option as `ssh -J` reads it:
/// `none`, or comma-separated hops, each `[user@]host[:port]` (an IPv6
/// address in brackets) or `ssh://[user@]host[:port]`.
pub fn parse_jumps(s: &str) -> Result<Vec<RemoteSpec>, RemoteError> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|hop| {
            let hop = hop.trim();
            let url = if hop.starts_with("ssh://") {
                hop.to_string()
            } else {
                format!("ssh://{hop}")
            };
            parse_remote(&url).map_err(|e| match e {
                RemoteError::Invalid { why, .. } => RemoteError::Invalid {
                    given: format!("jump host {hop}"),
                    why,
                },
                other => other,
            })
        })
        .collect()
}

/// Applies ssh_config (`config`, if it exists) to `spec`; explicit URL parts win.
pub fn resolve(spec: &RemoteSpec, config: Option<&Path>) -> Result<ResolvedRemote, RemoteError> {
    resolve_via(spec, None, config)
}

/// [`resolve`], with the jump hosts given (`--jump`) in place of the
/// config's `ProxyJump`. Each hop is resolved through the config as well
/// (its HostName, Port, User, and its own ProxyJump before it).
pub fn resolve_via(
    spec: &RemoteSpec,
    jumps: Option<&[RemoteSpec]>,
    config: Option<&Path>,
) -> Result<ResolvedRemote, RemoteError> {
    let cfg = match config.filter(|p| p.exists()) {
        Some(path) => Some(read_config(path)?),
        None => None,
    };
    resolve_in(spec, jumps, cfg.as_ref(), 0)
}

fn read_config(path: &Path) -> Result<ssh2_config::SshConfig, RemoteError> {
    let file = std::fs::File::open(path).map_err(|source| RemoteError::ReadConfig {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = std::io::BufReader::new(file);
    ssh2_config::SshConfig::default()
        .parse(
            &mut reader,
            ssh2_config::ParseRule::ALLOW_UNKNOWN_FIELDS
                | ssh2_config::ParseRule::ALLOW_UNSUPPORTED_FIELDS,
        )
        .map_err(|source| RemoteError::ParseConfig {
            path: path.to_path_buf(),
            source,
        })
}

/// The words of an option ssh2_config keeps only as text (one it does not
/// support or ignores), by name in any case.
fn raw_option<'a>(params: &'a ssh2_config::HostParams, name: &str) -> Option<&'a Vec<String>> {
    params
        .unsupported_fields
        .iter()
        .chain(params.ignored_fields.iter())
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The jump hosts `hops` as one flat chain, first hop first, each looked
/// up in the config (`config`, if it exists) with its own ProxyJump before
/// it, as `ssh -J` resolves them.
pub fn resolve_jumps(
    hops: &[RemoteSpec],
    config: Option<&Path>,
) -> Result<Vec<SshTarget>, RemoteError> {
    let cfg = match config.filter(|p| p.exists()) {
        Some(path) => Some(read_config(path)?),
        None => None,
    };
    let given = hops.first().map(|h| h.host.as_str()).unwrap_or_default();
    jump_chain(given, hops, cfg.as_ref(), 0)
}

fn jump_chain(
    given: &str,
    hops: &[RemoteSpec],
    cfg: Option<&ssh2_config::SshConfig>,
    depth: usize,
) -> Result<Vec<SshTarget>, RemoteError> {
    let mut chain: Vec<SshTarget> = Vec::new();
    for hop in hops {
        let r = resolve_in(hop, None, cfg, depth + 1 + chain.len())?;
        let mut hop_target = r.target;
        chain.append(&mut hop_target.jumps);
        chain.push(hop_target);
        if chain.len() > MAX_JUMPS {
            return Err(too_many(given));
        }
    }
    Ok(chain)
}

fn too_many(given: &str) -> RemoteError {
    RemoteError::Invalid {
        given: given.to_string(),
        why: format!("more than {MAX_JUMPS} jump hosts (does a ProxyJump name itself?)"),
    }
}

fn resolve_in(
    spec: &RemoteSpec,
    jumps: Option<&[RemoteSpec]>,
    cfg: Option<&ssh2_config::SshConfig>,
    depth: usize,
) -> Result<ResolvedRemote, RemoteError> {
    if depth > MAX_JUMPS {
        return Err(too_many(&spec.host));
    }
    let mut host = spec.host.clone();
    let mut port = spec.port;
    let mut user = spec.user.clone();
    let mut identities = Vec::new();
    let mut known_hosts = None;
    let mut proxy_jump = None;
    let mut proxy_command = None;
    if let Some(cfg) = cfg {
        let params = cfg.query(&spec.host);
        known_hosts = raw_option(&params, "UserKnownHostsFile")
            .and_then(|v| v.first())
            .map(|v| expand_home(v));
        proxy_command = raw_option(&params, "ProxyCommand")
            .map(|v| v.join(" "))
            .filter(|c| !c.trim().eq_ignore_ascii_case("none") && !c.trim().is_empty());
        if let Some(h) = params.host_name {
            host = h;
        }
        port = port.or(params.port);
        user = user.or(params.user);
        identities = params.identity_file.unwrap_or_default();
        proxy_jump = params.proxy_jump;
    }
    let hop_specs = match (jumps, proxy_jump) {
        (Some(given), _) => given.to_vec(),
        (None, Some(list)) => parse_jumps(&list.join(","))?,
        (None, None) => Vec::new(),
    };
    let chain = jump_chain(&spec.host, &hop_specs, cfg, depth)?;
    let mut target = SshTarget {
        user: user.unwrap_or_else(local_user),
        host,
        port: port.unwrap_or(22),
        jumps: Vec::new(),
        proxy_command: None,
    };
    // a jump chain replaces the command (OpenSSH takes whichever comes
    // first in the file; Berth cannot tell, and prefers the chain)
    if chain.is_empty() {
        if let Some(command) = proxy_command {
            target.proxy_command = Some(
                crate::ssh::proxy_command::expand(&command, &target, &spec.host).map_err(
                    |why| RemoteError::Invalid {
                        given: spec.host.clone(),
                        why,
                    },
                )?,
            );
        }
    }
    target.jumps = chain;
    Ok(ResolvedRemote {
        target,
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

    #[test]
    fn parses_jump_lists_as_ssh_j_does() {
        let table: &[(&str, &[RemoteSpec])] = &[
            ("none", &[]),
            (" None ", &[]),
            ("bastion", &[spec(None, "bastion", None)]),
            ("me@b:2222", &[spec(Some("me"), "b", Some(2222))]),
            (
                "a,me@b:2,[::1]:22",
                &[
                    spec(None, "a", None),
                    spec(Some("me"), "b", Some(2)),
                    spec(None, "::1", Some(22)),
                ],
            ),
            ("ssh://u@h:7", &[spec(Some("u"), "h", Some(7))]),
        ];
        for (s, want) in table {
            assert_eq!(parse_jumps(s).unwrap(), want.to_vec(), "{s}");
        }
        for bad in ["", "a,,b", "b:0", "b:x", "u@", "a b", "::1:22"] {
            let e = parse_jumps(bad).unwrap_err().to_string();
            assert!(e.contains("jump host"), "{bad}: {e}");
        }
    }

    #[test]
    fn resolves_proxy_jump_chains_through_the_config() {
        let dir = std::env::temp_dir().join(format!("berth-jump-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("config");
        std::fs::write(
            &cfg,
            "Host target\n  HostName 10.0.3.2\n  User dev\n  ProxyJump inner\n\n\
             Host inner\n  HostName 10.0.2.2\n  Port 2202\n  ProxyJump ops@outer:2201\n\n\
             Host outer\n  HostName 10.0.1.2\n\n\
             Host direct\n  HostName 10.0.9.9\n  ProxyJump none\n\n\
             Host loop\n  ProxyJump loop\n\n\
             Host *\n  User fallback\n",
        )
        .unwrap();
        let chain = |t: &SshTarget| -> Vec<String> {
            t.jumps
                .iter()
                .chain(std::iter::once(t))
                .map(SshTarget::user_addr)
                .collect()
        };
        // (given, --jump, the chain first hop to target)
        let table: &[(&str, Option<&str>, &[&str])] = &[
            (
                "target",
                None,
                &[
                    "ops@10.0.1.2:2201",
                    "fallback@10.0.2.2:2202",
                    "dev@10.0.3.2:22",
                ],
            ),
            ("target", Some("none"), &["dev@10.0.3.2:22"]),
            (
                "target",
                Some("me@elsewhere:9"),
                &["me@elsewhere:9", "dev@10.0.3.2:22"],
            ),
            ("direct", None, &["fallback@10.0.9.9:22"]),
            (
                "ssh://root@10.9.9.9:22",
                Some("outer,inner"),
                &[
                    "fallback@10.0.1.2:22",
                    "ops@10.0.1.2:2201",
                    "fallback@10.0.2.2:2202",
                    "root@10.9.9.9:22",
                ],
            ),
        ];
        for (given, jump, want) in table {
            let jumps = jump.map(|j| parse_jumps(j).unwrap());
            let r =
                resolve_via(&parse_remote(given).unwrap(), jumps.as_deref(), Some(&cfg)).unwrap();
            assert_eq!(chain(&r.target), *want, "{given} -J {jump:?}");
        }
        // ProxyCommand: tokens expanded; a jump chain replaces it
        std::fs::write(
            &cfg,
            "Host pc\n  HostName 10.0.0.7\n  Port 2222\n  User dev\n  ProxyCommand ssh -W %h:%p -l %r bastion %n 100%%\n\n\
             Host pcj\n  ProxyCommand nc %h %p\n  ProxyJump b\n\n\
             Host pcnone\n  ProxyCommand none\n\n\
             Host loop\n  ProxyJump loop\n",
        )
        .unwrap();
        let pc = |given: &str| {
            resolve(&parse_remote(given).unwrap(), Some(&cfg))
                .unwrap()
                .target
                .proxy_command
        };
        assert_eq!(
            pc("pc").as_deref(),
            Some("ssh -W 10.0.0.7:2222 -l dev bastion pc 100%")
        );
        assert_eq!(pc("pcj"), None);
        assert_eq!(pc("pcnone"), None);
        let e = resolve(&parse_remote("loop").unwrap(), Some(&cfg)).unwrap_err();
        assert!(e.to_string().contains("more than 8 jump hosts"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
