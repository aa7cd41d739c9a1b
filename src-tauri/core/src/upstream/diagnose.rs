//! Explains why the remote daemon could not be reached.
//!
//! An SSH channel-open failure says little ("connect failed"), so after a
//! failure a short POSIX shell probe asks the remote what is there: the
//! socket, its permissions, the docker command. [`diagnose`] maps the answer
//! to the error the user can act on; it is pure and table-tested.

use super::error::UpstreamError;

/// The probe, run through an exec channel; `{SOCK}` is the socket path.
pub const PROBE_COMMAND: &str = "S={SOCK}; \
if command -v docker >/dev/null 2>&1; then echo docker=yes; else echo docker=no; fi; \
if [ -S \"$S\" ]; then echo sock=yes; if [ -r \"$S\" ] && [ -w \"$S\" ]; then echo access=yes; else echo access=no; fi; \
else echo sock=no; fi; echo user=$(id -un)";

/// The probe command for one socket path (single-quoted for the shell).
pub fn probe_command(socket: &str) -> String {
    PROBE_COMMAND.replace("{SOCK}", &crate::ssh::sh_quote(socket))
}

/// What the probe saw; `None` where the remote did not say (not a POSIX shell).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Probe {
    pub docker_cli: Option<bool>,
    pub socket_exists: Option<bool>,
    pub socket_access: Option<bool>,
    pub user: Option<String>,
}

impl Probe {
    /// Reads `key=value` lines; anything else is ignored.
    pub fn parse(out: &str) -> Self {
        let mut p = Probe::default();
        for line in out.lines() {
            let Some((k, v)) = line.trim().split_once('=') else {
                continue;
            };
            let yes = match v {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            };
            match k {
                "docker" => p.docker_cli = yes,
                "sock" => p.socket_exists = yes,
                "access" => p.socket_access = yes,
                "user" if !v.is_empty() => p.user = Some(v.to_string()),
                _ => {}
            }
        }
        p
    }
}

/// Picks the error a user can act on. `unix_refused`: sshd refused a
/// streamlocal channel to `socket`; `tried` lists what was attempted.
pub fn diagnose(
    probe: &Probe,
    socket: &str,
    ssh_user: &str,
    unix_refused: bool,
    tried: &str,
) -> UpstreamError {
    let user = probe.user.clone().unwrap_or_else(|| ssh_user.to_string());
    match (probe.socket_exists, probe.socket_access, probe.docker_cli) {
        // the socket is there and usable, yet sshd would not forward to it
        (Some(true), Some(true), _) if unix_refused => UpstreamError::StreamLocalForbidden {
            socket: socket.to_string(),
        },
        (Some(true), Some(false), _) => UpstreamError::SocketPermissionDenied {
            socket: socket.to_string(),
            user,
        },
        (Some(false), _, Some(false)) => UpstreamError::DockerNotInstalled {
            socket: socket.to_string(),
        },
        (Some(false), _, _) => UpstreamError::DaemonNotRunning {
            socket: socket.to_string(),
        },
        _ => UpstreamError::NoUpstream {
            tried: tried.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_probe() {
        let p = Probe::parse("docker=yes\nsock=yes\naccess=no\nuser=alice\n");
        assert_eq!(
            p,
            Probe {
                docker_cli: Some(true),
                socket_exists: Some(true),
                socket_access: Some(false),
                user: Some("alice".into())
            }
        );
        assert_eq!(
            Probe::parse("'S' is not recognized as an internal command"),
            Probe::default()
        );
    }

    #[test]
    fn diagnoses() {
        let table = [
            ("docker=yes\nsock=yes\naccess=no\nuser=bob", true, "permission denied on the remote socket /var/run/docker.sock for bob; add bob to the docker group"),
            ("docker=no\nsock=no\nuser=bob", true, "docker is not installed on the remote"),
            ("docker=yes\nsock=no\nuser=bob", true, "no Docker daemon answers at /var/run/docker.sock"),
            ("docker=yes\nsock=yes\naccess=yes\nuser=bob", true, "the remote sshd refuses unix-socket forwarding"),
            ("docker=yes\nsock=yes\naccess=yes\nuser=bob", false, "no way to the remote Docker daemon worked (x)"),
            ("garbage", true, "no way to the remote Docker daemon worked (x)"),
        ];
        for (out, refused, want) in table {
            let msg = diagnose(
                &Probe::parse(out),
                "/var/run/docker.sock",
                "root",
                refused,
                "x",
            );
            let msg = crate::hint::for_cli(&msg);
            assert!(msg.starts_with(want), "{out:?} gave {msg:?}");
            assert!(!msg.contains('\n'));
        }
    }

    #[test]
    fn quoting() {
        assert!(probe_command("/a b/it's.sock").starts_with(r"S='/a b/it'\''s.sock';"));
    }
}
