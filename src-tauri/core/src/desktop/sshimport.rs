//! Importing hosts from an OpenSSH client config (`~/.ssh/config`) as draft
//! remotes the user reviews before saving. Every `Host` alias without
//! wildcards or negation becomes one draft, resolved the way `ssh` resolves
//! it (so `Host *` defaults apply): `HostName` (alias when absent; `%h` is the
//! alias), `Port`, `User` (the local user when absent) and the first
//! `IdentityFile` as a key file (else the ssh-agent). Drafts get names usable
//! as docker contexts, skip names the config already has, and get free local
//! endpoints.

use std::path::{Path, PathBuf};

use super::config::{Auth, Config, Remote};
use super::DesktopError;

/// `~/.ssh/config`, the file OpenSSH reads by default.
pub fn default_ssh_config() -> Result<PathBuf, DesktopError> {
    dirs::home_dir()
        .map(|h| h.join(".ssh").join("config"))
        .ok_or(DesktopError::NoHome)
}

/// Draft remotes for the hosts of the OpenSSH config at `path` (a missing
/// file has none), skipping names `existing` already uses.
pub fn import_file(path: &Path, existing: &Config) -> Result<Vec<Remote>, DesktopError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DesktopError::io("read", path, e)),
    };
    import_str(&text, path, None, existing)
}

/// As [`import_file`], from `text`; `origin` names it in errors and `home`
/// (default: the user's) expands `~` and relative `Include`s.
pub fn import_str(
    text: &str,
    origin: &Path,
    home: Option<&Path>,
    existing: &Config,
) -> Result<Vec<Remote>, DesktopError> {
    let mut parser = ssh2_config::SshConfig::default();
    if let Some(h) = home {
        parser = parser.home_dir(h);
    }
    let cfg = parser
        .parse(
            &mut text.as_bytes(),
            ssh2_config::ParseRule::ALLOW_UNKNOWN_FIELDS
                | ssh2_config::ParseRule::ALLOW_UNSUPPORTED_FIELDS,
        )
        .map_err(|source| DesktopError::SshConfig {
            path: origin.to_path_buf(),
            source,
        })?;
    let mut scratch = existing.clone();
    let mut drafts = Vec::new();
    for host in cfg.get_hosts() {
        for clause in &host.pattern {
            let alias = clause.pattern.as_str();
            if clause.negated || alias.is_empty() || alias.contains(['*', '?', '!']) {
                continue;
            }
            let Some(name) = remote_name(alias) else {
                continue;
            };
            if scratch.remote(&name).is_some() {
                continue;
            }
            let params = cfg.query(alias);
            let host_name = params
                .host_name
                .map(|h| h.replace("%h", alias).replace("%%", "%"))
                .unwrap_or_else(|| alias.to_string());
            let mut draft = Remote::new(
                &name,
                &host_name,
                &params.user.unwrap_or_else(crate::remote::local_user),
            );
            draft.port = params.port.unwrap_or(22);
            draft.jump = params
                .proxy_jump
                .map(|hops| hops.join(","))
                .filter(|j| !j.trim().eq_ignore_ascii_case("none"));
            if let Some(key) = params.identity_file.and_then(|v| v.into_iter().next()) {
                draft.auth = Auth::KeyFile {
                    path: key.to_string_lossy().into_owned(),
                };
            }
            draft.listen = scratch.suggest_listen();
            scratch.remotes.push(draft.clone());
            drafts.push(draft);
        }
    }
    Ok(drafts)
}

/// A remote name for `alias`: other characters become '-', leading ones that
/// cannot start a name are dropped, at most 64 characters.
fn remote_name(alias: &str) -> Option<String> {
    let mapped: String = alias
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(64)
        .collect();
    (!mapped.is_empty()).then_some(mapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(text: &str, existing: &Config) -> Vec<Remote> {
        import_str(text, Path::new("cfg"), Some(Path::new("/home/t")), existing).unwrap()
    }

    /// (name, host, port, user, auth)
    type Facts = (String, String, u16, String, Auth);

    fn facts(r: &Remote) -> Facts {
        (
            r.name.clone(),
            r.host.clone(),
            r.port,
            r.user.clone(),
            r.auth.clone(),
        )
    }

    fn key(p: &str) -> Auth {
        Auth::KeyFile { path: p.into() }
    }

    #[test]
    fn table() {
        let me = crate::remote::local_user();
        let f = |n: &str, h: &str, p: u16, u: &str, a: Auth| {
            (n.to_string(), h.to_string(), p, u.to_string(), a)
        };
        let table: Vec<(&str, Vec<Facts>)> = vec![
            ("", vec![]),
            (
                "Host build\n  HostName 10.0.0.5\n  Port 2222\n  User dev\n  IdentityFile ~/.ssh/id_build\n",
                vec![f("build", "10.0.0.5", 2222, "dev", key("/home/t/.ssh/id_build"))],
            ),
            // no HostName: the alias is the host; no User: the local user; no key: the agent
            ("Host plain\n", vec![f("plain", "plain", 22, &me, Auth::Agent)]),
            // wildcards and negations are patterns, not hosts; `Host *` defaults apply
            (
                "Host *.corp !x.corp\n  User corp\nHost a b\n  HostName %h.example\nHost *\n  User everyone\n  IdentityFile /k/default\n",
                vec![
                    f("a", "a.example", 22, "everyone", key("/k/default")),
                    f("b", "b.example", 22, "everyone", key("/k/default")),
                ],
            ),
            // the first IdentityFile wins; a second block for the same alias adds nothing new
            (
                "Host k\n  IdentityFile /k/one\n  IdentityFile /k/two\nHost k\n  Port 2\n",
                vec![f("k", "k", 2, &me, key("/k/one"))],
            ),
            // aliases are made into valid names
            (
                "Host my@host _under\n",
                vec![
                    f("my-host", "my@host", 22, &me, Auth::Agent),
                    f("under", "_under", 22, &me, Auth::Agent),
                ],
            ),
            // unknown and unsupported options do not stop the import
            (
                "Host z\n  ForwardAgent yes\n  SomethingNew 1\n  UserKnownHostsFile /k/kh\n",
                vec![f("z", "z", 22, &me, Auth::Agent)],
            ),
        ];
        for (text, want) in table {
            let got: Vec<_> = import(text, &Config::default()).iter().map(facts).collect();
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn proxy_jump_is_kept_as_the_jump_host() {
        let got = import(
            "Host t\n  ProxyJump me@b1:2201,b2\nHost d\n  ProxyJump none\nHost plain\n",
            &Config::default(),
        );
        let jumps: Vec<_> = got
            .iter()
            .map(|r| (r.name.as_str(), r.jump.as_deref()))
            .collect();
        assert_eq!(
            jumps,
            [("t", Some("me@b1:2201,b2")), ("d", None), ("plain", None)]
        );
        for r in &got {
            r.validate().unwrap();
        }
    }

    #[test]
    fn drafts_are_valid_unique_and_get_free_endpoints() {
        let mut existing = Config::default();
        existing.add_remote(Remote::new("a", "h", "u")).unwrap();
        let drafts = import("Host a b c\nHost c\n", &existing);
        let names: Vec<_> = drafts.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        let listens: Vec<_> = drafts.iter().map(|r| r.listen.as_str()).collect();
        assert_eq!(listens, ["tcp://127.0.0.1:23751", "tcp://127.0.0.1:23752"]);
        let mut all = existing.clone();
        for d in drafts {
            all.add_remote(d).unwrap();
        }
    }

    #[test]
    fn errors_and_missing_files() {
        let e = import_str(
            "Host x\n  Port notaport\n",
            Path::new("/p/cfg"),
            None,
            &Config::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("cannot parse /p/cfg:") && !e.contains('\n'),
            "{e}"
        );
        let missing = std::env::temp_dir().join("berth-no-such-ssh-config");
        assert!(import_file(&missing, &Config::default())
            .unwrap()
            .is_empty());
        assert_eq!(remote_name("--"), None);
        assert_eq!(remote_name("a b").as_deref(), Some("a-b"));
    }
}
