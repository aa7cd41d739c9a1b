//! Planning a `POST /containers/create`: which container ports the user
//! publishes, which local port each one gets (through the caller's `pick`),
//! and the rewritten body in which every published port is bound once to a
//! random port on the REMOTE's loopback, with the local side recorded in the
//! `dev.berth.ports` label. The body is rewritten generically, so fields Berth
//! does not know pass through untouched.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::key::{PortKey, PortRange, Proto};
use super::PortError;

/// The container label that records the local bindings of a container.
pub const PORTS_LABEL: &str = "dev.berth.ports";

/// One local listener of a container: local `listen_ip:host_port` forwards
/// to `container` through the remote's loopback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalBinding {
    /// The container port this binding forwards to.
    pub container: PortKey,
    /// The host address exactly as the user asked: "", "0.0.0.0", "127.0.0.1", "::".
    pub requested_ip: String,
    /// Where Berth's local listener binds.
    pub listen_ip: IpAddr,
    /// The resolved local port.
    pub host_port: u16,
}

/// How local bind addresses are chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Honour "" / "0.0.0.0" / "::" literally (all interfaces) instead of
    /// narrowing them to the loopback.
    pub all_interfaces: bool,
}

/// What `dev.berth.ports` holds: the local side, and what the user gave, to
/// show back in inspect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortsLabel {
    /// The local bindings, in the order they were planned.
    pub bindings: Vec<LocalBinding>,
    /// The user's original `HostConfig.PublishAllPorts`.
    #[serde(default)]
    pub publish_all: bool,
    /// The user's original `HostConfig.PortBindings`, verbatim.
    #[serde(default)]
    pub port_bindings: Value,
}

/// The result of planning a create: the body to send and what to listen on.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatePlan {
    /// The rewritten create body.
    pub body: Value,
    /// The local listeners to open once the container runs.
    pub bindings: Vec<LocalBinding>,
    /// What the label records, for this machine's own record of the
    /// container (`crate::owned`); `None` when nothing is published.
    pub label: Option<PortsLabel>,
}

/// A published port before its local port is resolved.
struct Want {
    key: PortKey,
    requested_ip: String,
    listen_ip: IpAddr,
    range: PortRange,
}

/// Plans a create. `image_exposed` are the ports the image exposes (used with
/// `PublishAllPorts`). `pick(ip, range)` chooses the local port: for `Fixed`
/// it checks the port is free, for `Range`/`Any` it finds a free one. It must
/// hold what it returns until the plan is used or dropped, so it never returns
/// the same port twice. Fixed ports are picked first, then ranges, then any.
pub fn plan_create(
    body: &Value,
    image_exposed: &[PortKey],
    opts: &PlanOptions,
    pick: &mut dyn FnMut(IpAddr, PortRange) -> Result<u16, PortError>,
) -> Result<CreatePlan, PortError> {
    let host_config = body.get("HostConfig");
    let original = host_config
        .and_then(|h| h.get("PortBindings"))
        .cloned()
        .unwrap_or(Value::Null);
    let publish_all = match host_config.and_then(|h| h.get("PublishAllPorts")) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(invalid_body(
                "HostConfig.PublishAllPorts",
                "must be a boolean",
            ))
        }
    };
    let mut wants = parse_bindings(&original, opts)?;
    if publish_all {
        // Docker publishes every exposed port without a binding on a random
        // port; UDP/SCTP ones are skipped (not refused): the user did not name them.
        let bound: BTreeSet<PortKey> = wants.iter().map(|w| w.key).collect();
        let mut exposed = keys_of(body.get("ExposedPorts"), "ExposedPorts")?;
        exposed.extend(image_exposed.iter().copied());
        for key in exposed {
            if !bound.contains(&key) && key.proto == Proto::Tcp {
                wants.push(Want {
                    key,
                    requested_ip: String::new(),
                    listen_ip: listen_ip("", opts),
                    range: PortRange::Any,
                });
            }
        }
    }
    if wants.is_empty() && !publish_all {
        let mut body = body.clone();
        // A stale label (copied from another container's inspect) would lie.
        if let Some(labels) = body.get_mut("Labels").and_then(Value::as_object_mut) {
            labels.remove(PORTS_LABEL);
        }
        return Ok(CreatePlan {
            body,
            bindings: Vec::new(),
            label: None,
        });
    }
    let bindings = resolve(&wants, pick)?;
    let label = PortsLabel {
        bindings: bindings.clone(),
        publish_all,
        port_bindings: original,
    };
    let body = rewrite_body(body, &label)?;
    Ok(CreatePlan {
        body,
        bindings,
        label: Some(label),
    })
}

/// Parses the ports label from a container's labels map (`Config.Labels` of
/// an inspect, `Labels` of a list entry); `None` if absent or unreadable.
pub fn read_label(labels: &Value) -> Option<PortsLabel> {
    let text = labels.get(PORTS_LABEL)?.as_str()?;
    serde_json::from_str(text).ok()
}

/// The host address as Docker shows it: "0.0.0.0" for "" and for anything
/// that is not an address (the daemon binds those on every interface), else
/// as given.
pub fn shown_ip(requested_ip: &str) -> String {
    match requested_ip.parse::<IpAddr>() {
        Ok(_) => requested_ip.to_string(),
        Err(_) => "0.0.0.0".to_string(),
    }
}

/// Where the local listener binds for a requested host address. The daemon
/// takes a `HostIp` that is not an address ("localhost", "[::1]") as every
/// interface, so Berth does too (and narrows it to the loopback like "").
fn listen_ip(requested: &str, opts: &PlanOptions) -> IpAddr {
    let ip = requested
        .parse::<IpAddr>()
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() && !opts.all_interfaces => {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        IpAddr::V6(v6) if v6.is_unspecified() && !opts.all_interfaces => {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    }
}

/// The published ports of `HostConfig.PortBindings`, in key order; refuses
/// UDP/SCTP and malformed specs. Keys with an empty list publish nothing.
fn parse_bindings(original: &Value, opts: &PlanOptions) -> Result<Vec<Want>, PortError> {
    let map = match original {
        Value::Null => return Ok(Vec::new()),
        Value::Object(map) => map,
        _ => return Err(invalid_body("HostConfig.PortBindings", "must be an object")),
    };
    let mut wants = Vec::new();
    for (k, v) in map {
        let list = match v {
            Value::Null => continue,
            Value::Array(list) if list.is_empty() => continue,
            Value::Array(list) => list,
            _ => {
                return Err(invalid_body(
                    &format!("HostConfig.PortBindings[{k:?}]"),
                    "must be a list",
                ))
            }
        };
        let key: PortKey = k.parse()?;
        if key.proto != Proto::Tcp {
            return Err(PortError::UdpUnsupported { port: key });
        }
        for b in list {
            let field = |name: &str| match b.get(name) {
                None | Some(Value::Null) => Ok(""),
                Some(Value::String(s)) => Ok(s.as_str()),
                Some(_) => Err(invalid_body(
                    &format!("HostConfig.PortBindings[{k:?}].{name}"),
                    "must be a string",
                )),
            };
            if !b.is_object() {
                return Err(invalid_body(
                    &format!("HostConfig.PortBindings[{k:?}]"),
                    "must hold objects",
                ));
            }
            let requested_ip = field("HostIp")?.to_string();
            wants.push(Want {
                key,
                listen_ip: listen_ip(&requested_ip, opts),
                requested_ip,
                range: PortRange::parse(field("HostPort")?)?,
            });
        }
    }
    Ok(wants)
}

/// The parsed keys of a `"PORT/PROTO": {}` map such as `ExposedPorts`.
fn keys_of(map: Option<&Value>, field: &str) -> Result<BTreeSet<PortKey>, PortError> {
    match map {
        None | Some(Value::Null) => Ok(BTreeSet::new()),
        Some(Value::Object(m)) => m.keys().map(|k| k.parse()).collect(),
        Some(_) => Err(invalid_body(field, "must be an object")),
    }
}

/// Resolves every want to a local port: fixed first, then ranges, then any,
/// refusing two listeners on overlapping addresses with the same port.
fn resolve(
    wants: &[Want],
    pick: &mut dyn FnMut(IpAddr, PortRange) -> Result<u16, PortError>,
) -> Result<Vec<LocalBinding>, PortError> {
    let mut out: Vec<Option<LocalBinding>> = vec![None; wants.len()];
    let mut taken: Vec<(IpAddr, u16)> = Vec::new();
    let rank = |r: &PortRange| match r {
        PortRange::Fixed(_) => 0,
        PortRange::Range(..) => 1,
        PortRange::Any => 2,
    };
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by_key(|&i| rank(&wants[i].range));
    for i in order {
        let w = &wants[i];
        let allocated = |port| PortError::PortAllocated {
            ip: shown_ip(&w.requested_ip),
            port,
        };
        let clashes = |port| {
            taken
                .iter()
                .any(|&(ip, p)| p == port && overlaps(ip, w.listen_ip))
        };
        if let PortRange::Fixed(port) = w.range {
            if clashes(port) {
                return Err(allocated(port));
            }
        }
        let port = pick(w.listen_ip, w.range).map_err(|e| match e {
            PortError::PortAllocated { port, .. } => allocated(port),
            other => other,
        })?;
        if clashes(port) {
            return Err(allocated(port));
        }
        taken.push((w.listen_ip, port));
        out[i] = Some(LocalBinding {
            container: w.key,
            requested_ip: w.requested_ip.clone(),
            listen_ip: w.listen_ip,
            host_port: port,
        });
    }
    Ok(out.into_iter().flatten().collect())
}

/// Whether two listeners on the same port would collide (same address, or
/// one is a wildcard of the same family, or the dual-stack `::`).
fn overlaps(a: IpAddr, b: IpAddr) -> bool {
    let v6_any = |ip: IpAddr| matches!(ip, IpAddr::V6(v6) if v6.is_unspecified());
    a == b
        || v6_any(a)
        || v6_any(b)
        || (a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified()))
}

/// The body the remote daemon gets: one `127.0.0.1:random` binding per
/// published port, `PublishAllPorts` off, `ExposedPorts` complete, the label set.
fn rewrite_body(body: &Value, label: &PortsLabel) -> Result<Value, PortError> {
    let mut out = body.clone();
    let root = out
        .as_object_mut()
        .ok_or_else(|| invalid_body("the body", "must be a JSON object"))?;
    let published: BTreeSet<PortKey> = label.bindings.iter().map(|b| b.container).collect();

    let host_config = object_at(root, "HostConfig")?;
    let mut port_bindings = Map::new();
    if let Some(Value::Object(old)) = host_config.get("PortBindings") {
        // Drop every spelling of a published key ("80", "80/TCP"): none may
        // keep the user's host binding on the remote.
        for (k, v) in old {
            if !k.parse().is_ok_and(|key: PortKey| published.contains(&key)) {
                port_bindings.insert(k.clone(), v.clone());
            }
        }
    }
    for key in &published {
        port_bindings.insert(
            key.to_string(),
            json!([{ "HostIp": "127.0.0.1", "HostPort": "" }]),
        );
    }
    host_config.insert("PortBindings".to_string(), Value::Object(port_bindings));
    if label.publish_all {
        host_config.insert("PublishAllPorts".to_string(), Value::Bool(false));
    }

    let exposed = object_at(root, "ExposedPorts")?;
    let known: BTreeSet<PortKey> = exposed.keys().filter_map(|k| k.parse().ok()).collect();
    for key in published.difference(&known) {
        exposed.insert(key.to_string(), json!({}));
    }

    let text = serde_json::to_string(label).map_err(|e| PortError::Label {
        label: PORTS_LABEL,
        reason: e.to_string(),
    })?;
    object_at(root, "Labels")?.insert(PORTS_LABEL.to_string(), Value::String(text));
    Ok(out)
}

/// The object at `field`, created if missing or null.
fn object_at<'a>(
    map: &'a mut Map<String, Value>,
    field: &str,
) -> Result<&'a mut Map<String, Value>, PortError> {
    let slot = map.entry(field).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
        .ok_or_else(|| invalid_body(field, "must be an object"))
}

fn invalid_body(field: &str, reason: &str) -> PortError {
    PortError::InvalidBody {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
