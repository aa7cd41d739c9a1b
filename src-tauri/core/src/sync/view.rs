//! What clients read back shows the LOCAL side of a synced mount, as the
//! port view does for ports: a container this machine created with a synced
//! bind mount is inspected and listed with the source the user gave
//! (`/home/me/src`), not the replica it runs on
//! (`~/.cache/berth/mounts/…/src-…` on the remote), so tools that check "is
//! my folder mounted" see their own folder. Only the source changes; every
//! other field stays as the daemon reports it, and mounts that are not
//! synced are untouched. The daemon sends no event that names a bind
//! mount's source (only named volumes have `mount` events), so events need
//! no view. Pure: the caller finds the container's record and the mounts
//! root.

use std::path::PathBuf;

use serde_json::Value;

use super::binds::{last_component, replica_path};

/// The remote mount sources of one container's synced mounts, each with the
/// local path it stands for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountSources {
    pairs: Vec<(String, String)>,
}

impl MountSources {
    /// The sources a create planned for `locals` under `mounts_root` (this
    /// machine's folder of replicas). A record does not say whether a local
    /// path was a folder or a file, so both mount sources are known: the
    /// replica itself (a folder) and the file inside it (a file). No other
    /// mount can name either: each is a folder Berth made for that path.
    pub fn new(mounts_root: &str, locals: &[PathBuf]) -> Self {
        let mut pairs = Vec::new();
        for local in locals {
            let shown = local.to_string_lossy().into_owned();
            let replica = replica_path(mounts_root, local);
            let file = format!("{replica}/{}", last_component(&shown));
            pairs.push((replica, shown.clone()));
            pairs.push((file, shown));
        }
        Self { pairs }
    }

    /// Whether no mount of the container is synced.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The local path a remote mount source stands for.
    fn local_of(&self, remote: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(r, _)| r == remote)
            .map(|(_, l)| l.as_str())
    }

    /// Rewrites a `GET /containers/{id}/json` answer in place:
    /// `Mounts[].Source`, `HostConfig.Binds` and `HostConfig.Mounts[].Source`.
    pub fn rewrite_inspect(&self, container: &mut Value) {
        if self.is_empty() {
            return;
        }
        self.rewrite_mounts(container.get_mut("Mounts"));
        let Some(host) = container.get_mut("HostConfig") else {
            return;
        };
        if let Some(binds) = host.get_mut("Binds").and_then(Value::as_array_mut) {
            for bind in binds.iter_mut() {
                if let Some(local) = bind.as_str().and_then(|b| self.bind_view(b)) {
                    *bind = Value::String(local);
                }
            }
        }
        self.rewrite_mounts(host.get_mut("Mounts"));
    }

    /// Rewrites one entry of a `GET /containers/json` answer in place
    /// (`Mounts[].Source`).
    pub fn rewrite_list_entry(&self, entry: &mut Value) {
        if !self.is_empty() {
            self.rewrite_mounts(entry.get_mut("Mounts"));
        }
    }

    /// The `Source` of every bind in a list of mount objects.
    fn rewrite_mounts(&self, mounts: Option<&mut Value>) {
        let Some(list) = mounts.and_then(Value::as_array_mut) else {
            return;
        };
        for mount in list.iter_mut().filter_map(Value::as_object_mut) {
            if mount.get("Type").and_then(Value::as_str) != Some("bind") {
                continue;
            }
            let local = mount
                .get("Source")
                .and_then(Value::as_str)
                .and_then(|s| self.local_of(s))
                .map(str::to_string);
            if let Some(local) = local {
                mount.insert("Source".to_string(), Value::String(local));
            }
        }
    }

    /// A `Binds` entry (`src:dst[:opts]`) with its source shown locally; the
    /// remote source is an absolute Unix path, so it ends at the first `:`.
    fn bind_view(&self, bind: &str) -> Option<String> {
        let (source, rest) = bind.split_once(':')?;
        self.local_of(source).map(|local| format!("{local}:{rest}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ROOT: &str = "/root/.cache/berth/mounts/m-1";

    fn sources() -> MountSources {
        MountSources::new(
            ROOT,
            &[
                PathBuf::from("/home/me/src"),
                PathBuf::from("/home/me/app.toml"),
            ],
        )
    }

    fn replica(local: &str) -> String {
        replica_path(ROOT, std::path::Path::new(local))
    }

    #[test]
    fn inspect_shows_the_local_sources() {
        let src = replica("/home/me/src");
        let file = format!("{}/app.toml", replica("/home/me/app.toml"));
        let bind = |s: &str, d: &str| json!({"Type": "bind", "Source": s, "Destination": d, "Mode": "", "RW": true, "Propagation": "rprivate"});
        let volume = json!({"Type": "volume", "Name": "data", "Source": "/var/lib/docker/volumes/data/_data", "Destination": "/data", "Driver": "local"});
        let table = [
            (
                "binds, a file, a volume and a remote path",
                json!({
                    "Id": "x",
                    "Mounts": [bind(&src, "/app"), bind(&file, "/etc/app.toml"), volume.clone(), bind("/srv/remote", "/srv")],
                    "HostConfig": {"Binds": [format!("{src}:/app:ro"), format!("{file}:/etc/app.toml"), "data:/data", "/srv/remote:/srv"], "Memory": 0},
                }),
                json!({
                    "Id": "x",
                    "Mounts": [bind("/home/me/src", "/app"), bind("/home/me/app.toml", "/etc/app.toml"), volume, bind("/srv/remote", "/srv")],
                    "HostConfig": {"Binds": ["/home/me/src:/app:ro", "/home/me/app.toml:/etc/app.toml", "data:/data", "/srv/remote:/srv"], "Memory": 0},
                }),
            ),
            (
                "--mount type=bind",
                json!({"Mounts": [bind(&src, "/app")], "HostConfig": {"Binds": null, "Mounts": [{"Type": "bind", "Source": src, "Target": "/app", "ReadOnly": true}]}}),
                json!({"Mounts": [bind("/home/me/src", "/app")], "HostConfig": {"Binds": null, "Mounts": [{"Type": "bind", "Source": "/home/me/src", "Target": "/app", "ReadOnly": true}]}}),
            ),
            (
                "a folder inside a replica is not the replica",
                json!({"Mounts": [bind(&format!("{src}/sub"), "/app")]}),
                json!({"Mounts": [bind(&format!("{src}/sub"), "/app")]}),
            ),
            (
                "a volume named like a replica keeps its source",
                json!({"Mounts": [{"Type": "volume", "Source": src, "Destination": "/v"}]}),
                json!({"Mounts": [{"Type": "volume", "Source": src, "Destination": "/v"}]}),
            ),
            (
                "no mounts at all",
                json!({"Mounts": [], "HostConfig": {}}),
                json!({"Mounts": [], "HostConfig": {}}),
            ),
        ];
        for (name, mut got, want) in table {
            sources().rewrite_inspect(&mut got);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn list_entries_show_the_local_sources() {
        let src = replica("/home/me/src");
        let mut entry = json!({"Id": "x", "Mounts": [{"Type": "bind", "Source": src, "Destination": "/app", "Mode": "", "RW": true, "Propagation": "rprivate"}]});
        sources().rewrite_list_entry(&mut entry);
        assert_eq!(entry["Mounts"][0]["Source"], "/home/me/src");
        assert_eq!(entry["Mounts"][0]["Destination"], "/app");
    }

    #[test]
    fn a_container_without_synced_mounts_is_untouched() {
        let src = replica("/home/me/src");
        let before = json!({"Mounts": [{"Type": "bind", "Source": src, "Destination": "/app"}], "HostConfig": {"Binds": [format!("{src}:/app")]}});
        let mut got = before.clone();
        MountSources::new(ROOT, &[]).rewrite_inspect(&mut got);
        assert_eq!(got, before);
    }
}
