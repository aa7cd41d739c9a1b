//! Docker contexts, stored the way the docker CLI stores them, so that plain
//! `docker` (and Compose, IDEs, …) reach a remote through Berth without any
//! `DOCKER_HOST`. The CLI's directory is `$DOCKER_CONFIG`, default `~/.docker`:
//! `config.json` names the current context in `currentContext` (absent means
//! `default`), and each context is `contexts/meta/<sha256 hex of its
//! name>/meta.json`, e.g. `{"Name":"berth-x","Metadata":{"Description":"…"},
//! "Endpoints":{"docker":{"Host":"tcp://127.0.0.1:23750","SkipTLSVerify":false}}}`
//! (checked against docker CLI 28). `config.json` also holds registry auths
//! and other settings: Berth changes `currentContext` only and keeps every
//! other field, known or not; a file that is not a JSON object is reported
//! and never overwritten. All writes are atomic.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::config::CONTEXT_PREFIX;
use super::{write_atomic, DesktopError};

/// The context the docker CLI uses when `currentContext` is absent.
pub const DEFAULT_CONTEXT: &str = "default";

/// The docker CLI's config directory and the contexts in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerContexts {
    dir: PathBuf,
}

/// The context Berth creates for a remote: `berth-<name>`.
pub fn context_name(remote: &str) -> String {
    format!("{CONTEXT_PREFIX}{remote}")
}

/// Whether `name` is a context Berth manages (so not one to restore to).
pub fn is_berth_context(name: &str) -> bool {
    name.starts_with(CONTEXT_PREFIX)
}

/// `DOCKER_HOST` when set: it overrides every context, so the UI warns.
pub fn docker_host_override() -> Option<String> {
    std::env::var("DOCKER_HOST").ok().filter(|v| !v.is_empty())
}

/// `DOCKER_CONTEXT` when set: it overrides `currentContext`, so the UI warns.
pub fn docker_context_override() -> Option<String> {
    std::env::var("DOCKER_CONTEXT")
        .ok()
        .filter(|v| !v.is_empty())
}

/// Creates or updates `berth-<remote>` pointing at `endpoint`; returns its name.
pub fn ensure_context(remote: &str, endpoint: &str) -> Result<String, DesktopError> {
    DockerContexts::from_env()?.ensure_context(remote, endpoint)
}

/// Makes `name` current; returns the context that was current before.
pub fn use_context(name: &str) -> Result<Option<String>, DesktopError> {
    DockerContexts::from_env()?.use_context(name)
}

/// Makes `previous` current again (`None` or `default`: the CLI's default).
pub fn restore(previous: Option<&str>) -> Result<(), DesktopError> {
    DockerContexts::from_env()?.restore(previous)
}

/// Removes `berth-<remote>`; if it was current, the default becomes current.
pub fn remove_context(remote: &str) -> Result<(), DesktopError> {
    DockerContexts::from_env()?.remove_context(remote)
}

/// Docker's rule for context names: `^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$`.
fn check_name(name: &str) -> Result<(), DesktopError> {
    let mut chars = name.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest: Vec<char> = chars.collect();
    let ok = first
        && !rest.is_empty()
        && rest
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(*c));
    if ok && name != DEFAULT_CONTEXT {
        Ok(())
    } else {
        Err(DesktopError::BadContextName(name.to_string()))
    }
}

impl DockerContexts {
    /// `$DOCKER_CONFIG`, else `~/.docker`.
    pub fn from_env() -> Result<Self, DesktopError> {
        if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return Ok(Self::at(PathBuf::from(d)));
        }
        let home = dirs::home_dir().ok_or(DesktopError::NoHome)?;
        Ok(Self::at(home.join(".docker")))
    }

    /// The docker CLI config directory `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory this works on.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn config_json(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    fn meta_dir(&self, name: &str) -> PathBuf {
        let digest = Sha256::digest(name.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join("contexts").join("meta").join(hex)
    }

    fn tls_dir(&self, name: &str) -> PathBuf {
        let meta = self.meta_dir(name);
        let hash = meta.file_name().map(PathBuf::from).unwrap_or_default();
        self.dir.join("contexts").join("tls").join(hash)
    }

    /// Whether a context called `name` exists (`default` always does).
    pub fn exists(&self, name: &str) -> bool {
        name == DEFAULT_CONTEXT || self.meta_dir(name).join("meta.json").is_file()
    }

    /// The endpoint (`Endpoints.docker.Host`) of context `name`, if it exists.
    pub fn endpoint(&self, name: &str) -> Result<Option<String>, DesktopError> {
        let path = self.meta_dir(name).join("meta.json");
        let Some(meta) = read_json(&path, false)? else {
            return Ok(None);
        };
        Ok(meta
            .pointer("/Endpoints/docker/Host")
            .and_then(Value::as_str)
            .map(String::from))
    }

    /// Creates or updates `berth-<remote>` pointing at `endpoint` (a listen
    /// address like `tcp://127.0.0.1:23750`); other fields of an existing
    /// `meta.json` are kept. Returns the context's name.
    pub fn ensure_context(&self, remote: &str, endpoint: &str) -> Result<String, DesktopError> {
        let name = context_name(remote);
        check_name(&name)?;
        let path = self.meta_dir(&name).join("meta.json");
        let mut meta = match read_json(&path, false)? {
            Some(Value::Object(m)) => m,
            Some(_) => return Err(malformed_meta(&path, "not a JSON object")),
            None => Map::new(),
        };
        meta.insert("Name".into(), Value::String(name.clone()));
        let metadata = object_at(&mut meta, "Metadata", &path)?;
        metadata.insert(
            "Description".into(),
            Value::String(format!("Berth: remote {remote:?} over SSH")),
        );
        let endpoints = object_at(&mut meta, "Endpoints", &path)?;
        let docker = object_at(endpoints, "docker", &path)?;
        docker.insert("Host".into(), Value::String(endpoint.to_string()));
        docker.entry("SkipTLSVerify").or_insert(Value::Bool(false));
        let data = serde_json::to_vec(&Value::Object(meta))
            .map_err(|e| DesktopError::ConfigEncode(e.into()))?;
        write_atomic(&path, &data, 0o644)?;
        Ok(name)
    }

    /// The current context (`None`: no `currentContext`, i.e. `default`).
    pub fn current(&self) -> Result<Option<String>, DesktopError> {
        let cfg = self.read_config()?;
        Ok(cfg
            .get("currentContext")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from))
    }

    /// Makes `name` current, keeping every other field of `config.json`, and
    /// returns the previously current context. The caller keeps the first
    /// non-Berth answer (see [`is_berth_context`]) as the one to restore.
    pub fn use_context(&self, name: &str) -> Result<Option<String>, DesktopError> {
        if !self.exists(name) {
            return Err(DesktopError::NoSuchContext(name.to_string()));
        }
        let mut cfg = self.read_config()?;
        let previous = cfg
            .get("currentContext")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from);
        if name == DEFAULT_CONTEXT {
            cfg.remove("currentContext");
        } else {
            cfg.insert("currentContext".into(), Value::String(name.to_string()));
        }
        self.write_config(cfg)?;
        Ok(previous)
    }

    /// Makes `previous` current again; `None`, `default` or a context that no
    /// longer exists removes `currentContext` (the CLI's default).
    pub fn restore(&self, previous: Option<&str>) -> Result<(), DesktopError> {
        match previous {
            Some(p) if p != DEFAULT_CONTEXT && self.exists(p) => self.use_context(p).map(|_| ()),
            _ => {
                let mut cfg = self.read_config()?;
                if cfg.remove("currentContext").is_some() {
                    self.write_config(cfg)?;
                }
                Ok(())
            }
        }
    }

    /// Removes `berth-<remote>` (its meta and TLS directories); if it was
    /// current, `currentContext` is removed too so the CLI keeps working.
    pub fn remove_context(&self, remote: &str) -> Result<(), DesktopError> {
        let name = context_name(remote);
        if self.current()?.as_deref() == Some(name.as_str()) {
            self.restore(None)?;
        }
        for dir in [self.meta_dir(&name), self.tls_dir(&name)] {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(DesktopError::io("remove", &dir, e)),
            }
        }
        Ok(())
    }

    /// `config.json` as an object (a missing or empty file is `{}`).
    fn read_config(&self) -> Result<Map<String, Value>, DesktopError> {
        let path = self.config_json();
        match read_json(&path, true)? {
            None => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m),
            Some(_) => Err(DesktopError::DockerConfigMalformed {
                path,
                reason: "not a JSON object".into(),
            }),
        }
    }

    /// Writes `config.json` the way the CLI does (tab-indented), keeping its mode (new: 0600).
    fn write_config(&self, cfg: Map<String, Value>) -> Result<(), DesktopError> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.config_json();
        let mode = std::fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0o600);
        let mut data = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut data, fmt);
        serde::Serialize::serialize(&Value::Object(cfg), &mut ser)
            .map_err(|e| DesktopError::ConfigEncode(e.into()))?;
        write_atomic(&path, &data, mode)
    }
}

/// Reads a JSON file; `None` when missing (or, for `config.json`, empty).
fn read_json(path: &Path, is_config: bool) -> Result<Option<Value>, DesktopError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DesktopError::io("read", path, e)),
    };
    if is_config && text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&text).map(Some).map_err(|e| {
        let reason = e.to_string();
        if is_config {
            DesktopError::DockerConfigMalformed {
                path: path.to_path_buf(),
                reason,
            }
        } else {
            malformed_meta(path, &reason)
        }
    })
}

fn malformed_meta(path: &Path, reason: &str) -> DesktopError {
    DesktopError::ContextMalformed {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The object under `key`, created when absent; another type is malformed.
fn object_at<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
    path: &Path,
) -> Result<&'a mut Map<String, Value>, DesktopError> {
    m.entry(key).or_insert_with(|| json!({}));
    match m.get_mut(key) {
        Some(Value::Object(o)) => Ok(o),
        _ => Err(malformed_meta(path, &format!("{key} is not an object"))),
    }
}

#[cfg(test)]
#[path = "context_tests.rs"]
mod tests;
