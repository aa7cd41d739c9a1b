//! What clients read back shows the LOCAL side: inspect and list answers of
//! containers that carry the `dev.berth.ports` label are rewritten so that
//! `docker port`, `docker ps` and `docker inspect` show the user's own ports
//! (localhost:8080), not the random remote ports on the remote's loopback.
//! Also reads, from the daemon's original answer, where the forwarder dials.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::key::{PortKey, Proto};
use super::plan::{read_label, shown_ip};
use crate::upstream::docker::{PortBinding, PortMap};

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
    if let Some(host_config) = container
        .get_mut("HostConfig")
        .and_then(Value::as_object_mut)
    {
        host_config.insert("PortBindings".to_string(), label.port_bindings.clone());
        host_config.insert(
            "PublishAllPorts".to_string(),
            Value::Bool(label.publish_all),
        );
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
/// key of its inspect's `NetworkSettings.Ports`, the `HostPort` of the
/// 127.0.0.1 entry (else of the first usable entry), sorted by container
/// port. Read from the daemon's own answer (Berth's typed call), never from
/// one `rewrite_inspect` changed.
pub fn remote_ports(published: &PortMap) -> Vec<(PortKey, u16)> {
    let host_port = |e: &PortBinding| {
        e.host_port
            .as_deref()
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|&p| p != 0)
    };
    let mut out: Vec<(PortKey, u16)> = published
        .iter()
        .filter_map(|(k, v)| {
            let key = k.parse::<PortKey>().ok()?;
            let list = v.as_ref()?;
            let loopback = list
                .iter()
                .filter(|e| e.host_ip.as_deref() == Some("127.0.0.1"))
                .find_map(host_port);
            Some((key, loopback.or_else(|| list.iter().find_map(host_port))?))
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::PORTS_LABEL;

    /// A real Docker 20.10.24 inspect (trimmed HostConfig) of a container
    /// created through `plan_create` from `-p 8080:80 -p 127.0.0.1:9090:80
    /// --expose 443`, running: the daemon picked 127.0.0.1:32769 on the remote.
    const INSPECT: &str = r#"{"Id": "2df5e3f73e0580c919e0e388898b7ec2502fe2e8057943c6b62b9f4ba58e58a3", "Created": "2026-11-26T10:29:42.626089223Z", "Path": "httpd", "Args": ["-f", "-p", "80"], "State": {"Status": "running", "Running": true, "Paused": false, "Restarting": false, "OOMKilled": false, "Dead": false, "Pid": 21402, "ExitCode": 0, "Error": "", "StartedAt": "2026-11-26T10:29:45.119611877Z", "FinishedAt": "0001-01-01T00:00:00Z"}, "Image": "sha256:c5e25f64555f26663134d46bbd0a47aac86bdfdfb38eccd302222d1eea76091c", "Name": "/berth-ports-fx2-18653", "RestartCount": 0, "Driver": "overlay2", "Platform": "linux", "HostConfig": {"Binds": null, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}}, "NetworkMode": "default", "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}, "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}, "AutoRemove": false, "PublishAllPorts": false, "Memory": 0, "NanoCpus": 0, "MaskedPaths": ["/proc/asound", "/proc/acpi"]}, "Mounts": [], "Config": {"Hostname": "2df5e3f73e05", "Domainname": "", "User": "", "AttachStdin": false, "AttachStdout": false, "AttachStderr": false, "ExposedPorts": {"443/tcp": {}, "80/tcp": {}}, "Tty": false, "OpenStdin": false, "StdinOnce": false, "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["httpd", "-f", "-p", "80"], "Image": "berth-test/busybox:latest", "Volumes": null, "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": {"com.example": "x", "dev.berth.ports": "{\"bindings\":[{\"container\":\"80/tcp\",\"requested_ip\":\"\",\"listen_ip\":\"127.0.0.1\",\"host_port\":8080},{\"container\":\"80/tcp\",\"requested_ip\":\"127.0.0.1\",\"listen_ip\":\"127.0.0.1\",\"host_port\":9090}],\"publish_all\":false,\"port_bindings\":{\"80/tcp\":[{\"HostIp\":\"\",\"HostPort\":\"8080\"},{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"9090\"}]}}"}}, "NetworkSettings": {"Bridge": "", "SandboxID": "c0a9d1e53be46b13f2ea345475117414cf5b4df50804605e95c1ec4a62588616", "HairpinMode": false, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": {"443/tcp": null, "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32769"}]}, "SandboxKey": "/var/run/docker/netns/c0a9d1e53be4", "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null, "EndpointID": "14d127da990aa6bf59f91ed50d35a162b0567d78d9bd27f0d72a91e7d40ccef7", "Gateway": "172.17.0.1", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "172.17.0.2", "IPPrefixLen": 16, "IPv6Gateway": "", "MacAddress": "02:42:ac:11:00:02", "Networks": {"bridge": {"NetworkID": "a6e138221329472ec78080ccdfcd6b45bc5b51204db235bd4949f3922e2e1a1a", "EndpointID": "14d127da990aa6bf59f91ed50d35a162b0567d78d9bd27f0d72a91e7d40ccef7", "Gateway": "172.17.0.1", "IPAddress": "172.17.0.2", "IPPrefixLen": 16, "MacAddress": "02:42:ac:11:00:02"}}}}"#;

    /// The same container in `GET /containers/json`.
    const LIST_ENTRY: &str = r#"{"Id": "2df5e3f73e0580c919e0e388898b7ec2502fe2e8057943c6b62b9f4ba58e58a3", "Names": ["/berth-ports-fx2-18653"], "Image": "berth-test/busybox:latest", "ImageID": "sha256:c5e25f64555f26663134d46bbd0a47aac86bdfdfb38eccd302222d1eea76091c", "Command": "httpd -f -p 80", "Created": 1795688982, "Ports": [{"PrivatePort": 443, "Type": "tcp"}, {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 32769, "Type": "tcp"}], "Labels": {"com.example": "x", "dev.berth.ports": "{\"bindings\":[{\"container\":\"80/tcp\",\"requested_ip\":\"\",\"listen_ip\":\"127.0.0.1\",\"host_port\":8080},{\"container\":\"80/tcp\",\"requested_ip\":\"127.0.0.1\",\"listen_ip\":\"127.0.0.1\",\"host_port\":9090}],\"publish_all\":false,\"port_bindings\":{\"80/tcp\":[{\"HostIp\":\"\",\"HostPort\":\"8080\"},{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"9090\"}]}}"}, "State": "running", "Status": "Up Less than a second", "HostConfig": {"NetworkMode": "default"}, "NetworkSettings": {"Networks": {"bridge": {"NetworkID": "a6e138221329472ec78080ccdfcd6b45bc5b51204db235bd4949f3922e2e1a1a", "IPAddress": "172.17.0.2"}}}, "Mounts": []}"#;

    fn fixture(text: &str) -> Value {
        serde_json::from_str(text).expect("fixture")
    }

    /// The fixture with the values at the given JSON pointers replaced.
    fn with(text: &str, edits: &[(&str, Value)]) -> Value {
        let mut v = fixture(text);
        for (pointer, value) in edits {
            *v.pointer_mut(pointer).expect(pointer) = value.clone();
        }
        v
    }

    fn ports(entries: &[(&str, &str)]) -> Value {
        let list: Vec<Value> = entries
            .iter()
            .map(|(ip, port)| json!({"HostIp": ip, "HostPort": port}))
            .collect();
        Value::Array(list)
    }

    #[test]
    fn inspect_shows_the_local_side() {
        let user = json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": "9090"}]});
        let local = ports(&[("0.0.0.0", "8080"), ("127.0.0.1", "9090")]);
        let no_label = json!({"com.example": "x"});
        let dual = ports(&[
            ("0.0.0.0", "32770"),
            ("::", "32770"),
            ("127.0.0.1", "32769"),
        ]);
        let publish_all = json!({PORTS_LABEL: r#"{"bindings":[{"container":"80/tcp","requested_ip":"","listen_ip":"127.0.0.1","host_port":49153}],"publish_all":true,"port_bindings":{}}"#});
        let table = [
            (
                "running",
                fixture(INSPECT),
                with(
                    INSPECT,
                    &[
                        ("/HostConfig/PortBindings", user.clone()),
                        ("/NetworkSettings/Ports/80~1tcp", local.clone()),
                    ],
                ),
            ),
            (
                "created or stopped: no ports shown",
                with(INSPECT, &[("/NetworkSettings/Ports", json!({}))]),
                with(
                    INSPECT,
                    &[
                        ("/HostConfig/PortBindings", user.clone()),
                        ("/NetworkSettings/Ports", json!({})),
                    ],
                ),
            ),
            (
                "every remote entry is replaced",
                with(INSPECT, &[("/NetworkSettings/Ports/80~1tcp", dual)]),
                with(
                    INSPECT,
                    &[
                        ("/HostConfig/PortBindings", user),
                        ("/NetworkSettings/Ports/80~1tcp", local),
                    ],
                ),
            ),
            (
                "publish all",
                with(INSPECT, &[("/Config/Labels", publish_all.clone())]),
                with(
                    INSPECT,
                    &[
                        ("/Config/Labels", publish_all),
                        ("/HostConfig/PortBindings", json!({})),
                        ("/HostConfig/PublishAllPorts", json!(true)),
                        (
                            "/NetworkSettings/Ports/80~1tcp",
                            ports(&[("0.0.0.0", "49153")]),
                        ),
                    ],
                ),
            ),
            (
                "no label",
                with(INSPECT, &[("/Config/Labels", no_label.clone())]),
                with(INSPECT, &[("/Config/Labels", no_label)]),
            ),
            (
                "unreadable label",
                with(INSPECT, &[("/Config/Labels/dev.berth.ports", json!("{"))]),
                with(INSPECT, &[("/Config/Labels/dev.berth.ports", json!("{"))]),
            ),
            (
                "not a container",
                json!({"message": "No such container: x"}),
                json!({"message": "No such container: x"}),
            ),
        ];
        for (name, mut input, want) in table {
            rewrite_inspect(&mut input);
            assert_eq!(input, want, "{name}");
        }
    }

    #[test]
    fn list_shows_the_local_side() {
        let unpublished = json!({"PrivatePort": 443, "Type": "tcp"});
        let local = json!([
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 9090, "Type": "tcp"},
            unpublished,
        ]);
        let dual = json!([
            unpublished,
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 32770, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 80, "PublicPort": 32770, "Type": "tcp"},
        ]);
        let other = json!({"Id": "b", "Labels": {}, "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 80, "Type": "tcp"}]});
        let table = [
            (
                "running",
                json!([fixture(LIST_ENTRY)]),
                json!([with(LIST_ENTRY, &[("/Ports", local.clone())])]),
            ),
            (
                "dual entries",
                json!([with(LIST_ENTRY, &[("/Ports", dual)])]),
                json!([with(LIST_ENTRY, &[("/Ports", local.clone())])]),
            ),
            (
                "stopped",
                json!([with(LIST_ENTRY, &[("/Ports", json!([]))])]),
                json!([with(LIST_ENTRY, &[("/Ports", json!([]))])]),
            ),
            (
                "others untouched",
                json!([other, fixture(LIST_ENTRY)]),
                json!([other, with(LIST_ENTRY, &[("/Ports", local)])]),
            ),
            (
                "no label",
                json!([with(LIST_ENTRY, &[("/Labels", json!({}))])]),
                json!([with(LIST_ENTRY, &[("/Labels", json!({}))])]),
            ),
            (
                "not a list",
                json!({"message": "boom"}),
                json!({"message": "boom"}),
            ),
        ];
        for (name, mut input, want) in table {
            rewrite_list(&mut input);
            assert_eq!(input, want, "{name}");
        }
    }

    #[test]
    fn finds_the_remote_ports() {
        let key = |s: &str| s.parse::<PortKey>().expect("key");
        let table = [
            ("running", fixture(INSPECT), vec![(key("80/tcp"), 32769)]),
            (
                "stopped",
                with(INSPECT, &[("/NetworkSettings/Ports", json!({}))]),
                vec![],
            ),
            (
                "loopback preferred, else first usable, sorted",
                with(
                    INSPECT,
                    &[(
                        "/NetworkSettings/Ports",
                        json!({
                            "8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32771"}, {"HostIp": "::", "HostPort": "32771"}],
                            "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32770"}, {"HostIp": "127.0.0.1", "HostPort": "32769"}],
                            "443/tcp": null,
                            "9/tcp": [{"HostIp": "127.0.0.1", "HostPort": "x"}, {"HostIp": "::", "HostPort": "32772"}],
                            "bad": [{"HostIp": "127.0.0.1", "HostPort": "1"}],
                        }),
                    )],
                ),
                vec![
                    (key("9/tcp"), 32772),
                    (key("80/tcp"), 32769),
                    (key("8080/tcp"), 32771),
                ],
            ),
            ("no NetworkSettings", json!({"Id": "x"}), vec![]),
        ];
        for (name, input, want) in table {
            let typed: crate::upstream::docker::ContainerInspectResponse =
                serde_json::from_value(input).expect("an inspect answer");
            let published = typed.network_settings.and_then(|n| n.ports);
            let got = published.as_ref().map(remote_ports).unwrap_or_default();
            assert_eq!(got, want, "{name}");
        }
    }
}
