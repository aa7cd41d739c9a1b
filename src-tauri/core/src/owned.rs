//! What this machine's Berth created on each remote: one record per
//! container, written on this machine when the daemon answers a create that
//! Berth planned (local ports, synced mounts), removed when the container is
//! destroyed. Forwards and syncs act only on containers recorded here, and
//! only with what the record says.
//!
//! Why a local record and not the labels alone: anything on the remote
//! (another user of the daemon, a container with the socket) can write any
//! label, or copy a real container's labels onto a new one. A container id
//! is chosen by the daemon, never by a client, so a record keyed by id and
//! kept where the remote cannot write cannot be forged, edited or copied.
//! A MAC over the label would stop forgery and edits, but not a copy (the id
//! is unknown when the label is written), and it would need a secret. The
//! labels stay, for people reading `docker inspect`, and as a filter.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::events::{ContainerEvent, EventSink};
use crate::ports::PortsLabel;
use crate::upstream::{DockerApi, UpstreamError};
use std::sync::Arc;

/// A record younger than this survives a reconcile that does not list its
/// container: the list may have been read just before the create answered.
pub const FRESH: Duration = Duration::from_secs(120);

/// What Berth planned for one container it created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnedContainer {
    /// The id the daemon gave it (64 hex digits).
    pub id: String,
    /// The local listeners planned for it; `None`: it publishes nothing.
    #[serde(default)]
    pub ports: Option<PortsLabel>,
    /// The local sources of its synced bind mounts.
    #[serde(default)]
    pub mounts: Vec<PathBuf>,
    /// When the daemon answered the create (seconds since the epoch).
    pub created_unix: u64,
}

/// Why a record could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum OwnedError {
    #[error("cannot record container {id} in {dir}: {source}")]
    Write {
        id: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no data folder for Berth's records")]
    NoDataDir,
}

impl crate::hint::Advice for OwnedError {
    fn hint(&self) -> Option<crate::hint::Hint> {
        Some(match self {
            OwnedError::Write { .. } => crate::hint::Hint::WritableDataDir,
            OwnedError::NoDataDir => crate::hint::Hint::SetDataDir,
        })
    }
}

/// The records of one remote daemon, in `<data>/owned/<daemon>/<id>.json`
/// (mode 0700 folders, 0600 files). Each record is its own file, written
/// whole and renamed into place, so two Berth processes of this machine
/// (the app and an agent) share it without locks.
#[derive(Debug, Clone)]
pub struct Owned {
    dir: PathBuf,
}

/// Berth's data folder: `BERTH_DATA_DIR`, else the OS's local data folder.
pub fn data_dir() -> Result<PathBuf, OwnedError> {
    if let Some(d) = std::env::var_os("BERTH_DATA_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    dirs::data_local_dir()
        .map(|d| d.join("berth"))
        .ok_or(OwnedError::NoDataDir)
}

/// A container id as the daemon writes it; anything else never names a file.
pub fn valid_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The folder name of a daemon: a digest of its identity, filename-safe.
fn daemon_dir_name(daemon: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("berth-daemon:{daemon}").as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The ids of `records` whose container is gone: not in `alive`, and not
/// recorded within [`FRESH`] of `now` (pure).
pub fn stale(records: &[(String, u64)], alive: &HashSet<String>, now: u64) -> Vec<String> {
    records
        .iter()
        .filter(|(id, _)| !alive.contains(id))
        .filter(|(_, at)| now.saturating_sub(*at) > FRESH.as_secs())
        .map(|(id, _)| id.clone())
        .collect()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Owned {
    /// The records of the daemon identified by `daemon` (its `/info` ID),
    /// under Berth's data folder.
    pub fn for_daemon(daemon: &str) -> Result<Self, OwnedError> {
        Ok(Self::at(
            data_dir()?.join("owned").join(daemon_dir_name(daemon)),
        ))
    }

    /// Records kept in `dir` (created on first write).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Where the records live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// A new record with `created_unix` set to now.
    pub fn new_record(id: &str, ports: Option<PortsLabel>, mounts: Vec<PathBuf>) -> OwnedContainer {
        OwnedContainer {
            id: id.to_string(),
            ports,
            mounts,
            created_unix: now_unix(),
        }
    }

    /// Keeps `record`; it replaces any earlier one of the same id.
    pub fn record(&self, record: &OwnedContainer) -> Result<(), OwnedError> {
        let fail = |source| OwnedError::Write {
            id: record.id.clone(),
            dir: self.dir.clone(),
            source,
        };
        if !valid_id(&record.id) {
            return Err(fail(std::io::Error::other("not a container id")));
        }
        create_private_dir(&self.dir).map_err(fail)?;
        let text = serde_json::to_vec(record).map_err(|e| fail(std::io::Error::other(e)))?;
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", record.id, std::process::id()));
        let mut f = private_file(&tmp).map_err(fail)?;
        f.write_all(&text)
            .and_then(|_| f.sync_all())
            .map_err(fail)?;
        std::fs::rename(&tmp, self.file(&record.id)).map_err(fail)
    }

    /// The record of container `id`, if this machine created it.
    pub fn get(&self, id: &str) -> Option<OwnedContainer> {
        if !valid_id(id) {
            return None;
        }
        let text = std::fs::read(self.file(id)).ok()?;
        serde_json::from_slice::<OwnedContainer>(&text)
            .ok()
            .filter(|r| r.id == id)
    }

    /// Forgets container `id` (it was destroyed).
    pub fn forget(&self, id: &str) {
        if valid_id(id) {
            let _ = std::fs::remove_file(self.file(id));
        }
    }

    /// Every record, in no particular order.
    pub fn all(&self) -> Vec<OwnedContainer> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                self.get(name.strip_suffix(".json")?)
            })
            .collect()
    }

    /// Forgets the records of containers the daemon no longer has.
    pub fn prune(&self, alive: &HashSet<String>) {
        let records: Vec<(String, u64)> = self
            .all()
            .into_iter()
            .map(|r| (r.id, r.created_unix))
            .collect();
        for id in stale(&records, alive, now_unix()) {
            self.forget(&id);
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Keeps the records in step with the daemon: a destroyed container's
/// record goes, and every reconcile forgets containers that went meanwhile.
pub struct OwnedEvents {
    pub owned: Arc<Owned>,
    pub docker: DockerApi,
}

impl EventSink for OwnedEvents {
    fn reconcile(&self) -> BoxFuture<'_, Result<(), UpstreamError>> {
        Box::pin(async move {
            // an unreadable answer is an error: it proves nothing gone
            let alive: HashSet<String> = self
                .docker
                .container_ids(true, None)
                .await?
                .into_iter()
                .collect();
            self.owned.prune(&alive);
            Ok(())
        })
    }

    fn on_event<'a>(&'a self, event: &'a ContainerEvent) -> BoxFuture<'a, ()> {
        if event.action == "destroy" {
            self.owned.forget(&event.id);
        }
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    #[test]
    fn ids_are_the_daemons_only() {
        let table = [
            (id('a'), true),
            (id('0'), true),
            ("abc".to_string(), false),
            (format!("../{}", &id('a')[3..]), false),
            (id('g'), false),
            (String::new(), false),
        ];
        for (input, want) in table {
            assert_eq!(valid_id(&input), want, "{input}");
        }
    }

    #[test]
    fn stale_records_are_gone_and_old() {
        let now = 10_000;
        let old = now - FRESH.as_secs() - 1;
        let young = now - 5;
        let records = vec![
            (id('a'), old),
            (id('b'), old),
            (id('c'), young),
            (id('d'), now + 50),
        ];
        let alive = HashSet::from([id('a')]);
        assert_eq!(stale(&records, &alive, now), vec![id('b')]);
    }

    #[test]
    fn records_round_trip_and_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("berth-owned-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let owned = Owned::at(dir.join("d"));
        assert!(owned.get(&id('a')).is_none());
        let rec = Owned::new_record(&id('a'), None, vec!["/src".into()]);
        owned.record(&rec).unwrap();
        assert_eq!(owned.get(&id('a')), Some(rec.clone()));
        assert!(owned.get("../d").is_none());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(owned.dir()), 0o700);
        assert_eq!(mode(&owned.file(&id('a'))), 0o600);
        // a record under another name is not taken for this one
        std::fs::copy(owned.file(&id('a')), owned.file(&id('b'))).unwrap();
        assert!(owned.get(&id('b')).is_none());
        assert_eq!(owned.all(), vec![rec]);
        owned.forget(&id('a'));
        assert!(owned.get(&id('a')).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
