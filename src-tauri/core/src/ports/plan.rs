//! Planning a `POST /containers/create`: which container ports the user
//! publishes, which local port each one gets (through the caller's `pick`),
//! and the rewritten body in which every published port is bound once to a
//! random port on the REMOTE's loopback, with the local side recorded in the
//! `dev.berth.ports` label. The body is rewritten generically, so fields Berth
//! does not know pass through untouched.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::PortError;

/// The container label that records the local bindings of a container.
pub const PORTS_LABEL: &str = "dev.berth.ports";

/// The transport protocol of a container port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    /// The protocol as Docker spells it: `tcp`, `udp` or `sctp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }

    /// Parses Docker's spelling (case-insensitive; empty means tcp).
    pub fn parse(s: &str) -> Option<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "" | "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "sctp" => Some(Proto::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container port as Docker keys it: `80/tcp` (a key without protocol is tcp).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PortKey {
    pub port: u16,
    pub proto: Proto,
}

impl fmt::Display for PortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.proto)
    }
}

impl FromStr for PortKey {
    type Err = PortError;

    fn from_str(s: &str) -> Result<Self, PortError> {
        let bad = |reason: &str| PortError::InvalidSpec {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        let proto = Proto::parse(proto).ok_or_else(|| bad("use tcp, udp or sctp as protocol"))?;
        if port.contains('-') {
            return Err(bad("give one key per container port, not a range"));
        }
        let port =
            parse_port(port).ok_or_else(|| bad("the container port must be a number 1-65535"))?;
        Ok(PortKey { port, proto })
    }
}

impl TryFrom<String> for PortKey {
    type Error = PortError;

    fn try_from(s: String) -> Result<Self, PortError> {
        s.parse()
    }
}

impl From<PortKey> for String {
    fn from(key: PortKey) -> String {
        key.to_string()
    }
}

/// The host port a user asked for: `"8080"`, `"8000-8002"` or `""` (any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRange {
    Fixed(u16),
    Range(u16, u16),
    Any,
}

impl PortRange {
    /// Parses a `HostPort` string; port 0, reversed ranges and junk are refused.
    pub fn parse(host_port: &str) -> Result<PortRange, PortError> {
        let bad = || PortError::InvalidSpec {
            spec: host_port.to_string(),
            reason: "the host port must be empty, a number 1-65535 or a range like 8000-8010"
                .to_string(),
        };
        if host_port.is_empty() {
            return Ok(PortRange::Any);
        }
        match host_port.split_once('-') {
            None => parse_port(host_port).map(PortRange::Fixed).ok_or_else(bad),
            Some((a, b)) => match (parse_port(a), parse_port(b)) {
                (Some(a), Some(b)) if a == b => Ok(PortRange::Fixed(a)),
                (Some(a), Some(b)) if a < b => Ok(PortRange::Range(a, b)),
                _ => Err(bad()),
            },
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRange::Fixed(p) => write!(f, "{p}"),
            PortRange::Range(a, b) => write!(f, "{a}-{b}"),
            PortRange::Any => f.write_str("any"),
        }
    }
}

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
                    listen_ip: listen_ip("", opts)?,
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
        });
    }
    let bindings = resolve(&wants, pick)?;
    let label = PortsLabel {
        bindings: bindings.clone(),
        publish_all,
        port_bindings: original,
    };
    let body = rewrite_body(body, &label)?;
    Ok(CreatePlan { body, bindings })
}

/// Parses the ports label from a container's labels map (`Config.Labels` of
/// an inspect, `Labels` of a list entry); `None` if absent or unreadable.
pub fn read_label(labels: &Value) -> Option<PortsLabel> {
    let text = labels.get(PORTS_LABEL)?.as_str()?;
    serde_json::from_str(text).ok()
}

/// The host address as Docker shows it: "0.0.0.0" for "", else as given.
pub fn shown_ip(requested_ip: &str) -> String {
    if requested_ip.is_empty() {
        "0.0.0.0".to_string()
    } else {
        requested_ip.to_string()
    }
}

/// Where the local listener binds for a requested host address.
fn listen_ip(requested: &str, opts: &PlanOptions) -> Result<IpAddr, PortError> {
    let ip: IpAddr = if requested.is_empty() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        requested.parse().map_err(|_| PortError::InvalidSpec {
            spec: requested.to_string(),
            reason: "the host IP must be an IPv4 or IPv6 address, like 127.0.0.1 or ::1"
                .to_string(),
        })?
    };
    Ok(match ip {
        IpAddr::V4(v4) if v4.is_unspecified() && !opts.all_interfaces => {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        IpAddr::V6(v6) if v6.is_unspecified() && !opts.all_interfaces => {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    })
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
                listen_ip: listen_ip(&requested_ip, opts)?,
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

/// A port number 1-65535 written in plain digits.
fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&p| p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake chooser: `busy` ports are taken on every address; ranges give
    /// their first free port; `Any` counts up from 49153. It holds what it
    /// hands out, per address.
    fn picker(busy: &[u16]) -> impl FnMut(IpAddr, PortRange) -> Result<u16, PortError> {
        let busy = busy.to_vec();
        let mut held: Vec<(IpAddr, u16)> = Vec::new();
        let mut next = 49153;
        move |ip, range| {
            let free = |p: &u16| !busy.contains(p) && !held.contains(&(ip, *p));
            let port = match range {
                PortRange::Fixed(p) if free(&p) => p,
                PortRange::Fixed(p) => {
                    return Err(PortError::PortAllocated {
                        ip: ip.to_string(),
                        port: p,
                    })
                }
                PortRange::Range(a, b) => (a..=b).find(free).ok_or(PortError::NoFreePort {
                    ip: ip.to_string(),
                    range: range.to_string(),
                })?,
                PortRange::Any => {
                    next += 1;
                    next - 1
                }
            };
            held.push((ip, port));
            Ok(port)
        }
    }

    fn plan(body: Value, image: &[&str], all: bool, busy: &[u16]) -> Result<CreatePlan, PortError> {
        let image: Vec<PortKey> = image.iter().filter_map(|k| k.parse().ok()).collect();
        let opts = PlanOptions {
            all_interfaces: all,
        };
        plan_create(&body, &image, &opts, &mut picker(busy))
    }

    fn create(bindings: Value) -> Value {
        json!({
            "Image": "nginx:alpine", "Env": ["A=1"], "Cmd": null, "X-Future": {"keep": true},
            "ExposedPorts": {"80/tcp": {}},
            "Labels": {"com.docker.compose.project": "web"},
            "HostConfig": {"Memory": 0, "NetworkMode": "default", "PortBindings": bindings,
                           "PublishAllPorts": false},
        })
    }

    fn b(key: &str, req: &str, listen: &str, port: u16) -> LocalBinding {
        LocalBinding {
            container: key.parse().expect("key"),
            requested_ip: req.to_string(),
            listen_ip: listen.parse().expect("ip"),
            host_port: port,
        }
    }

    #[test]
    fn port_keys_parse_and_print() {
        let table = [
            ("80/tcp", Ok("80/tcp")),
            ("80", Ok("80/tcp")),
            ("80/", Ok("80/tcp")),
            ("53/UDP", Ok("53/udp")),
            ("9/sctp", Ok("9/sctp")),
            ("0/tcp", Err(())),
            ("+80/tcp", Err(())),
            ("70000/tcp", Err(())),
            ("80/xyz", Err(())),
            ("8000-8002/tcp", Err(())),
            ("http", Err(())),
        ];
        for (input, want) in table {
            let got = input
                .parse::<PortKey>()
                .map(|k| k.to_string())
                .map_err(|_| ());
            assert_eq!(got, want.map(str::to_string), "{input}");
        }
    }

    #[test]
    fn host_ports_parse() {
        use PortRange::*;
        let table = [
            ("", Ok(Any)),
            ("8080", Ok(Fixed(8080))),
            ("8000-8002", Ok(Range(8000, 8002))),
            ("8000-8000", Ok(Fixed(8000))),
            ("0", Err(())),
            ("9000-8000", Err(())),
            ("0-10", Err(())),
            ("abc", Err(())),
            ("80-", Err(())),
            (" 80", Err(())),
            ("65536", Err(())),
        ];
        for (input, want) in table {
            assert_eq!(PortRange::parse(input).map_err(|_| ()), want, "{input:?}");
        }
    }

    /// Bindings as `listen:port key "requested"`, joined by ", ".
    fn show(bindings: &[LocalBinding]) -> String {
        let one = |b: &LocalBinding| {
            let addr = std::net::SocketAddr::new(b.listen_ip, b.host_port);
            format!("{addr} {} {:?}", b.container, b.requested_ip)
        };
        bindings.iter().map(one).collect::<Vec<_>>().join(", ")
    }

    #[test]
    fn plans_local_bindings() {
        let one = |ip: &str, port: &str| json!({"80/tcp": [{"HostIp": ip, "HostPort": port}]});
        let two = |k1: &str, p1: &str, k2: &str, p2: &str| json!({k1: [{"HostIp": "", "HostPort": p1}], k2: [{"HostIp": "", "HostPort": p2}]});
        let twice = |ip2: &str, p2: &str| json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": ip2, "HostPort": p2}]});
        let table = [
            (
                "-p 8080:80",
                one("", "8080"),
                false,
                r#"127.0.0.1:8080 80/tcp """#,
            ),
            (
                "-p 0.0.0.0:8080:80",
                one("0.0.0.0", "8080"),
                false,
                r#"127.0.0.1:8080 80/tcp "0.0.0.0""#,
            ),
            (
                "all interfaces",
                one("", "8080"),
                true,
                r#"0.0.0.0:8080 80/tcp """#,
            ),
            (
                "-p 127.0.0.1:8080:80",
                one("127.0.0.1", "8080"),
                true,
                r#"127.0.0.1:8080 80/tcp "127.0.0.1""#,
            ),
            (
                "-p [::]:8080:80",
                one("::", "8080"),
                false,
                r#"[::1]:8080 80/tcp "::""#,
            ),
            (
                "-p [::]:8080:80, all",
                one("::", "8080"),
                true,
                r#"[::]:8080 80/tcp "::""#,
            ),
            (
                "-p [::1]:8080:80",
                one("::1", "8080"),
                false,
                r#"[::1]:8080 80/tcp "::1""#,
            ),
            ("-p 80", one("", ""), false, r#"127.0.0.1:49153 80/tcp """#),
            (
                "-p 127.0.0.1::80",
                one("127.0.0.1", ""),
                false,
                r#"127.0.0.1:49153 80/tcp "127.0.0.1""#,
            ),
            (
                "-p 8000-8002:80 (8000 busy)",
                one("", "8000-8002"),
                false,
                r#"127.0.0.1:8001 80/tcp """#,
            ),
            (
                "no HostIp/HostPort, no proto",
                json!({"80": [{}]}),
                false,
                r#"127.0.0.1:49153 80/tcp """#,
            ),
            (
                "-p 9000-9001:9000-9001",
                two("9000/tcp", "9000", "9001/tcp", "9001"),
                false,
                r#"127.0.0.1:9000 9000/tcp "", 127.0.0.1:9001 9001/tcp """#,
            ),
            (
                "-p 8080:80 -p 9090:80",
                twice("", "9090"),
                false,
                r#"127.0.0.1:8080 80/tcp "", 127.0.0.1:9090 80/tcp """#,
            ),
            (
                "same port on v4 and v6 loopback",
                twice("::1", "8080"),
                false,
                r#"127.0.0.1:8080 80/tcp "", [::1]:8080 80/tcp "::1""#,
            ),
            (
                "fixed before ranges: -p 7000:80 -p 7000-7001:81",
                two("80/tcp", "7000", "81/tcp", "7000-7001"),
                false,
                r#"127.0.0.1:7000 80/tcp "", 127.0.0.1:7001 81/tcp """#,
            ),
            (
                "empty and null lists",
                json!({"80/tcp": [], "53/udp": null}),
                false,
                "",
            ),
            ("nothing published", Value::Null, false, ""),
        ];
        for (name, bindings, all, want) in table {
            let got = plan(create(bindings), &["443/tcp"], all, &[8000]);
            let got = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(show(&got.bindings), want, "{name}");
        }
    }

    #[test]
    fn rewrites_the_create_body() {
        let original = json!({"80": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "::1", "HostPort": "9090"}]});
        let got = plan(create(original.clone()), &[], false, &[]).expect("plan");
        let mut want = create(json!({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}));
        let label = PortsLabel {
            bindings: vec![
                b("80/tcp", "", "127.0.0.1", 8080),
                b("80/tcp", "::1", "::1", 9090),
            ],
            publish_all: false,
            port_bindings: original,
        };
        want["Labels"][PORTS_LABEL] = json!(serde_json::to_string(&label).expect("json"));
        assert_eq!(got.body, want);
        assert_eq!(read_label(&got.body["Labels"]), Some(label));
    }

    #[test]
    fn publish_all_publishes_every_exposed_tcp_port() {
        let mut body = create(json!({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}));
        body["HostConfig"]["PublishAllPorts"] = json!(true);
        body["ExposedPorts"] = json!({"80/tcp": {}, "443/tcp": {}, "53/udp": {}});
        body["Labels"] = Value::Null;
        let got = plan(body, &["9000/tcp", "443/tcp"], false, &[]).expect("plan");
        let want_bindings = vec![
            b("80/tcp", "127.0.0.1", "127.0.0.1", 8080),
            b("443/tcp", "", "127.0.0.1", 49153),
            b("9000/tcp", "", "127.0.0.1", 49154),
        ];
        assert_eq!(got.bindings, want_bindings);
        let remote = json!([{"HostIp": "127.0.0.1", "HostPort": ""}]);
        let hc = &got.body["HostConfig"];
        assert_eq!(hc["PublishAllPorts"], json!(false));
        assert_eq!(
            hc["PortBindings"],
            json!({"80/tcp": remote, "443/tcp": remote, "9000/tcp": remote})
        );
        assert_eq!(
            got.body["ExposedPorts"],
            json!({"80/tcp": {}, "443/tcp": {}, "53/udp": {}, "9000/tcp": {}})
        );
        let label = read_label(&got.body["Labels"]).expect("label");
        assert!(label.publish_all);
        assert_eq!(
            label.port_bindings,
            json!({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]})
        );
    }

    #[test]
    fn unpublished_bodies_pass_unchanged() {
        let stale = json!({PORTS_LABEL: "{}", "keep": "me"});
        let table = [
            (
                "no HostConfig",
                json!({"Image": "busybox"}),
                json!({"Image": "busybox"}),
            ),
            ("empty bindings", create(json!({})), create(json!({}))),
            (
                "stale label dropped",
                json!({"Image": "x", "Labels": stale}),
                json!({"Image": "x", "Labels": {"keep": "me"}}),
            ),
        ];
        for (name, body, want) in table {
            let got = plan(body, &["80/tcp"], false, &[]).expect(name);
            assert_eq!((got.body, got.bindings), (want, vec![]), "{name}");
        }
    }

    #[test]
    fn refuses_what_cannot_be_forwarded() {
        let one = |ip: &str, port: &str| json!({"80/tcp": [{"HostIp": ip, "HostPort": port}]});
        let table = [
            ("udp", json!({"5353/udp": [{"HostIp": "", "HostPort": "5353"}]}),
             "berth cannot forward 5353/udp yet: SSH carries TCP only; publish TCP ports, or run the client on the remote"),
            ("sctp", json!({"9/sctp": [{"HostPort": "9"}]}),
             "berth cannot forward 9/sctp yet: SSH carries TCP only; publish TCP ports, or run the client on the remote"),
            ("port 0", one("", "0"),
             "invalid port spec \"0\": the host port must be empty, a number 1-65535 or a range like 8000-8010"),
            ("junk port", one("", "http"),
             "invalid port spec \"http\": the host port must be empty, a number 1-65535 or a range like 8000-8010"),
            ("bad key", json!({"80/xyz": [{"HostPort": "80"}]}),
             "invalid port spec \"80/xyz\": use tcp, udp or sctp as protocol"),
            ("bad ip", one("localhost", "8080"),
             "invalid port spec \"localhost\": the host IP must be an IPv4 or IPv6 address, like 127.0.0.1 or ::1"),
            ("busy, as given", one("", "8000"), "Bind for 0.0.0.0:8000 failed: port is already allocated"),
            ("busy 0.0.0.0", one("0.0.0.0", "8000"), "Bind for 0.0.0.0:8000 failed: port is already allocated"),
            ("busy 127.0.0.1", one("127.0.0.1", "8000"), "Bind for 127.0.0.1:8000 failed: port is already allocated"),
            ("busy ::", one("::", "8000"), "Bind for :::8000 failed: port is already allocated"),
            ("busy ::1", one("::1", "8000"), "Bind for ::1:8000 failed: port is already allocated"),
            ("twice in one create", json!({"80/tcp": [{"HostPort": "8080"}], "81/tcp": [{"HostPort": "8080"}]}),
             "Bind for 0.0.0.0:8080 failed: port is already allocated"),
            ("loopback and wildcard", json!({"80/tcp": [{"HostPort": "8080"}], "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}),
             "Bind for 127.0.0.1:8080 failed: port is already allocated"),
            ("bindings not an object", json!(["80:80"]), "invalid container config: HostConfig.PortBindings must be an object"),
            ("binding not a string", json!({"80/tcp": [{"HostPort": 8080}]}),
             "invalid container config: HostConfig.PortBindings[\"80/tcp\"].HostPort must be a string"),
        ];
        for (name, bindings, want) in table {
            let got = plan(create(bindings), &[], false, &[8000]).map(|p| p.bindings);
            assert_eq!(
                got.map_err(|e| e.to_string()),
                Err(want.to_string()),
                "{name}"
            );
        }
    }

    #[test]
    fn wildcards_overlap_their_family() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let table = [
            ("same", "127.0.0.1", "127.0.0.1", true),
            ("v4 wildcard", "0.0.0.0", "127.0.0.1", true),
            ("v6 wildcard is dual-stack", "::", "127.0.0.1", true),
            ("v4 wildcard vs v6", "0.0.0.0", "::1", false),
            ("two addresses", "127.0.0.1", "192.168.1.5", false),
        ];
        for (name, a, b, want) in table {
            assert_eq!(
                (overlaps(ip(a), ip(b)), overlaps(ip(b), ip(a))),
                (want, want),
                "{name}"
            );
        }
    }

    #[test]
    fn labels_read_back() {
        let table = [
            ("absent", json!({"a": "b"}), false),
            ("not json", json!({PORTS_LABEL: "nope"}), false),
            (
                "not a string",
                json!({PORTS_LABEL: {"bindings": []}}),
                false,
            ),
            ("null labels", Value::Null, false),
            ("minimal", json!({PORTS_LABEL: "{\"bindings\":[]}"}), true),
        ];
        for (name, labels, want) in table {
            assert_eq!(read_label(&labels).is_some(), want, "{name}");
        }
    }
}
