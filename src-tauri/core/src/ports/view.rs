//! What clients read back shows the LOCAL side: inspect and list answers of
//! containers that carry the `dev.berth.ports` label are rewritten so that
//! `docker port`, `docker ps` and `docker inspect` show the user's own ports
//! (localhost:8080), not the random remote ports on the remote's loopback.
//! Also reads, from the daemon's original answer, where the forwarder dials.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::plan::{read_label, shown_ip, PortKey, Proto};

/// Rewrites a `GET /containers/{id}/json` answer in place. Without the ports
/// label it is left untouched. Otherwise `HostConfig` gets the user's
/// original `PortBindings`/`PublishAllPorts`, and each key of
/// `NetworkSettings.Ports` that the daemon reports with bindings (the
/// container runs) is replaced by its local bindings; `null` (exposed only)
/// and the empty map of a stopped container stay as they are.
pub fn rewrite_inspect(container: &mut Value) {
    let Some(label) = container.pointer("/Config/Labels").and_then(read_label) else {
        return;
    };
    if let Some(host_config) = container.get_mut("HostConfig").and_then(Value::as_object_mut) {
        host_config.insert("PortBindings".to_string(), label.port_bindings.clone());
        host_config.insert("PublishAllPorts".to_string(), Value::Bool(label.publish_all));
    }
    let Some(ports) = container
        .pointer_mut("/NetworkSettings/Ports")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (k, v) in ports.iter_mut() {
        let published = v.as_array().is_some_and(|list| !list.is_empty());
        let Ok(key) = k.parse::<PortKey>() else {
            continue;
        };
        let local: Vec<Value> = label
            .bindings
            .iter()
            .filter(|b| b.container == key)
            .map(|b| json!({ "HostIp": shown_ip(&b.requested_ip), "HostPort": b.host_port.to_string() }))
            .collect();
        if published && !local.is_empty() {
            *v = Value::Array(local);
        }
    }
}

/// Rewrites a `GET /containers/json` answer (the array of `docker ps`) in
/// place: for each entry with the ports label, the entries of `Ports` that
/// carry a `PublicPort` are replaced by one entry per local binding of that
/// container port; entries without `PublicPort` (unpublished) stay as they
/// are, and a stopped container (no public ports) is left alone.
pub fn rewrite_list(containers: &mut Value) {
    let Some(list) = containers.as_array_mut() else {
        return;
    };
    for entry in list {
        rewrite_list_entry(entry);
    }
}

fn rewrite_list_entry(entry: &mut Value) {
    let Some(label) = entry.get("Labels").and_then(read_label) else {
        return;
    };
    let Some(ports) = entry.get_mut("Ports").and_then(Value::as_array_mut) else {
        return;
    };
    let is_public = |p: &Value| p.get("PublicPort").is_some_and(|v| !v.is_null());
    let published: BTreeSet<PortKey> = ports
        .iter()
        .filter(|p| is_public(p))
        .filter_map(list_key)
        .collect();
    let local: BTreeSet<PortKey> = label
        .bindings
        .iter()
        .map(|b| b.container)
        .filter(|k| published.contains(k))
        .collect();
    if local.is_empty() {
        return;
    }
    let mut out: Vec<Value> = label
        .bindings
        .iter()
        .filter(|b| local.contains(&b.container))
        .map(|b| {
            json!({
                "IP": shown_ip(&b.requested_ip),
                "PrivatePort": b.container.port,
                "PublicPort": b.host_port,
                "Type": b.container.proto.as_str(),
            })
        })
        .collect();
    // Unpublished ports, and (should not happen) remote ports without a local side.
    out.extend(
        ports
            .iter()
            .filter(|p| !is_public(p) || !list_key(p).is_some_and(|k| local.contains(&k)))
            .cloned(),
    );
    *ports = out;
}

/// The container port of a `docker ps` port entry (`PrivatePort` + `Type`).
fn list_key(entry: &Value) -> Option<PortKey> {
    let port = u16::try_from(entry.get("PrivatePort")?.as_u64()?).ok()?;
    let proto = Proto::parse(entry.get("Type").and_then(Value::as_str).unwrap_or("tcp"))?;
    Some(PortKey { port, proto })
}

/// The REMOTE host ports the daemon picked for a running container: for each
/// key of `NetworkSettings.Ports`, the `HostPort` of the 127.0.0.1 entry (else
/// of the first usable entry), sorted by container port. Call it on the
/// daemon's ORIGINAL inspect answer, before `rewrite_inspect`.
pub fn remote_ports(inspect: &Value) -> Vec<(PortKey, u16)> {
    let Some(ports) = inspect
        .pointer("/NetworkSettings/Ports")
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    let host_port = |e: &Value| {
        e.get("HostPort")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|&p| p != 0)
    };
    let mut out: Vec<(PortKey, u16)> = ports
        .iter()
        .filter_map(|(k, v)| {
            let key = k.parse::<PortKey>().ok()?;
            let list = v.as_array()?;
            let loopback = list
                .iter()
                .filter(|e| e.get("HostIp").and_then(Value::as_str) == Some("127.0.0.1"))
                .find_map(host_port);
            Some((key, loopback.or_else(|| list.iter().find_map(host_port))?))
        })
        .collect();
    out.sort();
    out
}
