//! Which mounts of a Docker create body are synced, and the rewrite that
//! points them at their replica on the remote. `plan_binds` reads
//! `HostConfig.Binds` (`"src:dst[:opts]"` strings) and `HostConfig.Mounts`
//! (objects with `"Type": "bind"`); a source is synced when it is an
//! absolute local path (Unix `/…` or a Windows drive path such as `C:\src`),
//! it exists locally, and it is not remote-only (the Docker socket always is).
//! Only the source is rewritten; the target, `ro`/`rw`, propagation and every
//! other field, known or not, survive. Everything here is pure: whether a
//! path exists locally is asked through a callback.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::SyncError;

/// Remote-only prefixes that apply whatever the options say: the Docker
/// socket must always be the remote daemon's own.
const ALWAYS_REMOTE: [&str; 2] = ["/var/run/docker.sock", "/run/docker.sock"];

/// Longest name part of a replica id, before the hash.
const MAX_NAME_LEN: usize = 32;

/// One `HostConfig.Binds` entry split into its parts, verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindSpec {
    /// Host side: a path (`/src`, `C:\src`) or a named volume (`vol`).
    pub source: String,
    /// Container path; never empty.
    pub target: String,
    /// Everything after the second colon (`ro`, `rw,z`, …), or `None` when
    /// there is no third part. `Some("")` (a trailing colon) is kept as is.
    pub options: Option<String>,
}

/// What a synced local source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalKind {
    /// A directory: its whole tree is replicated.
    Dir,
    /// A single file: replicated inside a directory of its own, so that it
    /// can be replaced atomically by a rename next to it.
    File,
}

/// One local source to replicate on the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSource {
    /// The local path, lexically normalised (no trailing or doubled
    /// separators, no `.` components; `..` and symlinks are not resolved).
    pub local: PathBuf,
    /// Directory or single file.
    pub kind: LocalKind,
    /// Absolute remote directory holding the replica. For a [`LocalKind::File`]
    /// the mount source is `<replica>/<file name>`.
    pub replica: String,
}

/// Settings for [`plan_binds`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindOptions {
    /// Absolute remote directory under which replicas live, e.g.
    /// `/root/.cache/berth/mounts`.
    pub mounts_root: String,
    /// Path prefixes that always name the remote host's own files and are
    /// never synced; matched component by component (`/var/run` matches
    /// `/var/run/x` but not `/var/runner`). `/var/run/docker.sock` and
    /// `/run/docker.sock` are always remote-only.
    pub remote_only: Vec<String>,
}

/// The result of [`plan_binds`].
#[derive(Debug, Clone, PartialEq)]
pub struct BindsPlan {
    /// The create body with synced sources pointing at their replicas; equal
    /// to the input when nothing is synced.
    pub body: Value,
    /// Sources to replicate, one per local path, in order of first mention.
    pub syncs: Vec<SyncSource>,
}

/// Splits a `HostConfig.Binds` entry into source, target and options.
///
/// A Windows drive letter at the start of the source (`C:\src:/app:ro`,
/// `c:/src:/app`) belongs to the source when an absolute container path (or
/// nothing: `C:\src:` has an empty target) follows it; otherwise (`c:/app`)
/// the first part is a volume name, as on a Linux daemon. A spec without a target, with an empty source or target, or
/// with more than three parts is invalid.
pub fn parse_bind(spec: &str) -> Result<BindSpec, SyncError> {
    let invalid = |reason: &str| SyncError::InvalidBind {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let split = |skip: usize| -> Option<(&str, &str)> {
        let colon = skip + spec.get(skip..)?.find(':')?;
        Some((&spec[..colon], &spec[colon + 1..]))
    };
    let drive = if has_drive_prefix(spec) {
        split(2).filter(|(_, rest)| rest.is_empty() || rest.starts_with('/'))
    } else {
        None
    };
    let (source, rest) = match drive.or_else(|| split(0)) {
        Some(parts) => parts,
        None => return Err(invalid("expected source:target[:options]")),
    };
    let (target, options) = match rest.split_once(':') {
        Some((target, options)) => (target, Some(options)),
        None => (rest, None),
    };
    if source.is_empty() {
        return Err(invalid("the source is empty"));
    }
    if target.is_empty() {
        return Err(invalid("the target (container path) is empty"));
    }
    if options.is_some_and(|o| o.contains(':')) {
        return Err(invalid("too many colons; expected source:target[:options]"));
    }
    Ok(BindSpec {
        source: source.to_string(),
        target: target.to_string(),
        options: options.map(str::to_string),
    })
}

/// The remote directory holding the replica of `local`:
/// `<mounts_root>/<name>-<hash>`, where `name` is the last component of
/// `local` reduced to `[A-Za-z0-9._-]` (at most 32 characters) and `hash` the
/// first 16 hex digits of the SHA-256 of the path. The same local path always
/// gives the same replica; callers should pass a normalised path.
pub fn replica_path(mounts_root: &str, local: &Path) -> String {
    let text = local.to_string_lossy();
    let name: String = last_component(&text)
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .take(MAX_NAME_LEN)
        .collect();
    let name = if name.is_empty() {
        "root"
    } else {
        name.as_str()
    };
    let digest = Sha256::digest(local.as_os_str().as_encoded_bytes());
    let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{}/{name}-{hash}", mounts_root.trim_end_matches('/'))
}

/// Decides which bind mounts of a create body are synced and rewrites their
/// sources to the replicas.
///
/// `local_kind` says whether a local path exists and what it is; it is asked
/// once per distinct path, and only for absolute, non-remote-only sources.
/// Named volumes, relative or missing sources, remote-only paths, non-bind
/// `Mounts` and entries that are not strings/objects pass through untouched,
/// as does a `Binds` entry without any colon (an anonymous volume). A
/// malformed `Binds` entry is an [`SyncError::InvalidBind`].
pub fn plan_binds(
    body: &Value,
    local_kind: &mut dyn FnMut(&Path) -> Option<LocalKind>,
    opts: &BindOptions,
) -> Result<BindsPlan, SyncError> {
    let mut planner = Planner {
        opts,
        local_kind,
        seen: Vec::new(),
        syncs: Vec::new(),
    };
    let mut out = body.clone();
    if let Some(host) = out.get_mut("HostConfig").and_then(Value::as_object_mut) {
        if let Some(binds) = host.get_mut("Binds").and_then(Value::as_array_mut) {
            for bind in binds.iter_mut() {
                let Some(spec) = bind.as_str().filter(|s| s.contains(':')) else {
                    continue;
                };
                let parsed = parse_bind(spec)?;
                if let Some(source) = planner.mount_source(&parsed.source) {
                    let mut rewritten = format!("{source}:{}", parsed.target);
                    if let Some(options) = &parsed.options {
                        rewritten.push(':');
                        rewritten.push_str(options);
                    }
                    *bind = Value::String(rewritten);
                }
            }
        }
        if let Some(mounts) = host.get_mut("Mounts").and_then(Value::as_array_mut) {
            for mount in mounts.iter_mut().filter_map(Value::as_object_mut) {
                if mount.get("Type").and_then(Value::as_str) != Some("bind") {
                    continue;
                }
                let Some(source) = mount.get("Source").and_then(Value::as_str) else {
                    continue;
                };
                if let Some(source) = planner.mount_source(source) {
                    mount.insert("Source".to_string(), Value::String(source));
                }
            }
        }
    }
    if planner.syncs.is_empty() {
        out = body.clone();
    }
    Ok(BindsPlan {
        body: out,
        syncs: planner.syncs,
    })
}

/// Per-call state of [`plan_binds`]: the callback's answers, cached per
/// normalised path, and the sources collected so far.
struct Planner<'a> {
    opts: &'a BindOptions,
    local_kind: &'a mut dyn FnMut(&Path) -> Option<LocalKind>,
    seen: Vec<(PathBuf, Option<LocalKind>)>,
    syncs: Vec<SyncSource>,
}

impl Planner<'_> {
    /// The remote mount source replacing `source`, or `None` to keep it.
    fn mount_source(&mut self, source: &str) -> Option<String> {
        if !is_absolute_local(source) || self.is_remote_only(source) {
            return None;
        }
        let local = normalize(source);
        let kind = match self.seen.iter().find(|(p, _)| *p == local) {
            Some((_, kind)) => *kind,
            None => {
                let kind = (self.local_kind)(&local);
                self.seen.push((local.clone(), kind));
                kind
            }
        }?;
        let replica = replica_path(&self.opts.mounts_root, &local);
        let mount = match kind {
            LocalKind::Dir => replica.clone(),
            LocalKind::File => {
                format!("{replica}/{}", last_component(&local.to_string_lossy()))
            }
        };
        if !self.syncs.iter().any(|s| s.local == local) {
            self.syncs.push(SyncSource {
                local,
                kind,
                replica,
            });
        }
        Some(mount)
    }

    /// Whether `source` lies under a remote-only prefix, component-wise,
    /// either as written or with `..` resolved lexically (so that
    /// `/tmp/../var/run/docker.sock` stays remote too).
    fn is_remote_only(&self, source: &str) -> bool {
        let raw: Vec<&str> = unix_components(source).collect();
        let mut resolved: Vec<&str> = Vec::new();
        for part in &raw {
            if *part == ".." {
                resolved.pop();
            } else {
                resolved.push(part);
            }
        }
        ALWAYS_REMOTE
            .iter()
            .copied()
            .chain(self.opts.remote_only.iter().map(String::as_str))
            .any(|prefix| {
                let prefix: Vec<&str> = unix_components(prefix).collect();
                raw.starts_with(&prefix) || resolved.starts_with(&prefix)
            })
    }
}

/// `C:` followed by a separator, in either case.
fn has_drive_prefix(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'/' | b'\\')
}

/// An absolute Unix path or a Windows drive path, whatever the host.
fn is_absolute_local(source: &str) -> bool {
    source.starts_with('/') || has_drive_prefix(source)
}

/// The `/`-separated components of a path, without empty or `.` ones.
fn unix_components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// The last component of a path; a Windows drive path also splits on `\`.
pub(crate) fn last_component(path: &str) -> &str {
    let trimmed = if has_drive_prefix(path) {
        path.trim_end_matches(['/', '\\'])
    } else {
        path.trim_end_matches('/')
    };
    let cut = if has_drive_prefix(path) {
        trimmed.rfind(['/', '\\'])
    } else {
        trimmed.rfind('/')
    };
    match cut {
        Some(i) => &trimmed[i + 1..],
        None if has_drive_prefix(path) => "",
        None => trimmed,
    }
}

/// Lexical normalisation: doubled and trailing separators and `.` components
/// go; `..` stays (resolving it would need the file system). A Windows drive
/// path keeps its separators and loses trailing ones.
fn normalize(source: &str) -> PathBuf {
    if has_drive_prefix(source) {
        let trimmed = source.trim_end_matches(['/', '\\']);
        let keep = if trimmed.len() < 3 {
            &source[..3]
        } else {
            trimmed
        };
        return PathBuf::from(keep);
    }
    let parts: Vec<&str> = unix_components(source).collect();
    PathBuf::from(format!("/{}", parts.join("/")))
}

#[cfg(test)]
#[path = "binds_tests.rs"]
mod tests;
