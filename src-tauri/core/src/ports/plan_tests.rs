//! Table tests of `plan`: bindings, body rewrites, refusals, labels.
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
            "HostPort \"0\" (Testcontainers)",
            one("", "0"),
            false,
            r#"127.0.0.1:49153 80/tcp """#,
        ),
        (
            "HostPort \"0-0\"",
            one("", "0-0"),
            false,
            r#"127.0.0.1:49153 80/tcp """#,
        ),
        (
            "HostPort with a protocol suffix",
            one("", "8080/tcp"),
            false,
            r#"127.0.0.1:8080 80/tcp """#,
        ),
        (
            "HostIp that is not an address: every interface, as the daemon",
            one("localhost", "8080"),
            false,
            r#"127.0.0.1:8080 80/tcp "localhost""#,
        ),
        (
            "HostIp that is not an address, all interfaces",
            one("[::1]", "8080"),
            true,
            r#"0.0.0.0:8080 80/tcp "[::1]""#,
        ),
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
    let original =
        json!({"80": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "::1", "HostPort": "9090"}]});
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
        ("junk port", one("", "http"),
         "invalid port specification: \"http\" (the host port must be empty, 0 (any), a number up to 65535 or a range like 8000-8010)"),
        ("reversed range", one("", "8010-8000"),
         "invalid port specification: \"8010-8000\" (the range ends before it starts)"),
        ("bad key", json!({"80/xyz": [{"HostPort": "80"}]}),
         "invalid port specification: \"80/xyz\" (use tcp, udp or sctp as protocol)"),
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
            got.map_err(|e| crate::hint::for_cli(&e)),
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
