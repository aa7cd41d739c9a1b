//! Web pages must not reach the Docker API. The endpoint listens on
//! loopback, but a browser on this machine can still be made to talk to it:
//! a cross-origin `fetch`/form POST to `http://127.0.0.1:23750`, or DNS
//! rebinding (a page on `evil.example` whose name then resolves to
//! 127.0.0.1, so the browser treats Berth as that page's own origin). Either
//! would give the page the whole API, i.e. root on the remote.
//!
//! Docker clients (the CLI, Compose, docker-py, Testcontainers, the Go and
//! Java SDKs) never send `Origin` or `Sec-Fetch-*`, and always name this
//! machine in `Host`; browsers always send the page's name in `Host`, and
//! `Origin` (or `Sec-Fetch-*`) on the requests that matter. So [`check`]
//! refuses every request that looks like a browser's or names another host,
//! before any other work is done for it.

use http::{HeaderMap, StatusCode, Uri, Version};

/// Names Docker clients put in `Host` on a unix socket, where there is no
/// host: `api.moby.localhost` (docker CLI and Go SDK since 26), `docker`
/// (older ones). docker-py sends `localhost`, which is allowed anyway. None
/// of them is a name a web page can be served from: `*.localhost` resolves
/// to loopback in browsers themselves, and a single label has no owner.
const SOCKET_NAMES: [&str; 2] = ["api.moby.localhost", "docker"];

/// Headers only browsers send (Fetch Metadata); seeing one is proof enough.
const BROWSER_HEADERS: [&str; 4] = [
    "sec-fetch-site",
    "sec-fetch-mode",
    "sec-fetch-dest",
    "sec-fetch-user",
];

/// The longest part of a client's `Host` echoed back in a refusal.
const ECHO_MAX: usize = 64;

/// Why a request is refused: the status, the one-line message the client
/// gets (as `{"message": "berth: …"}`) and the short reason that is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
    pub reason: String,
}

const ONLY_LOCAL: &str = "Berth answers only local Docker clients (docker CLI, Compose, SDKs), \
     never web pages; point DOCKER_HOST at tcp://127.0.0.1:PORT or the unix socket";

fn forbidden(why: String) -> Refusal {
    Refusal {
        status: StatusCode::FORBIDDEN,
        message: format!("refused a request {why}; {ONLY_LOCAL}"),
        reason: format!("refused a request {why}"),
    }
}

fn bad_request(message: &str) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
        reason: message.into(),
    }
}

/// Decides whether a request may be served. The rule: no `Origin` header
/// (any value, `null` included), no `Sec-Fetch-*` header, exactly one `Host`
/// (none only on HTTP/1.0) naming a loopback address (127.0.0.0/8, `[::1]`,
/// optional port), `localhost` (optional port) or a unix-socket name Docker
/// clients send (`api.moby.localhost`, `docker`); an absolute-form target's
/// authority obeys the same rule. Refusals are 403, except the malformed
/// requests HTTP itself forbids (no or several `Host` on HTTP/1.1): 400.
pub fn check(version: Version, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
    if let Some(origin) = headers.get(http::header::ORIGIN) {
        return Err(forbidden(format!(
            "from a web page (Origin: {})",
            echo(origin.as_bytes())
        )));
    }
    if let Some(name) = BROWSER_HEADERS.iter().find(|h| headers.contains_key(**h)) {
        return Err(forbidden(format!("from a web browser (it sent {name})")));
    }
    let mut hosts = headers.get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(bad_request(
            "the request has several Host headers; send exactly one",
        ));
    }
    // `GET http://evil.example/ HTTP/1.1`: the target's authority wins over
    // Host (RFC 9112 §3.2.2), so it must be local as well
    if let Some(authority) = uri.authority() {
        if !is_local_host(authority.as_str().as_bytes()) {
            return Err(forbidden(format!(
                "for {} (not this machine)",
                echo(authority.as_str().as_bytes())
            )));
        }
    }
    match host {
        Some(h) if is_local_host(h.as_bytes()) => Ok(()),
        Some(h) => Err(forbidden(format!(
            "for Host {} (not this machine)",
            echo(h.as_bytes())
        ))),
        None if version <= Version::HTTP_10 => Ok(()),
        None => Err(bad_request(
            "an HTTP/1.1 request needs a Host header; send Host: localhost",
        )),
    }
}

/// A loopback address or a local name, with an optional port (none for the
/// unix-socket names). Case-insensitive, as host names are.
fn is_local_host(raw: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(raw) else {
        return false;
    };
    let host = text.to_ascii_lowercase();
    // `[v6]` or `[v6]:port`
    if let Some(rest) = host.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok
            && addr
                .parse::<std::net::Ipv6Addr>()
                .is_ok_and(|a| a.is_loopback());
    }
    let (name, port) = match host.split_once(':') {
        Some((name, port)) if is_port(port) => (name, Some(port)),
        Some(_) => return false,
        None => (host.as_str(), None),
    };
    if let Ok(v4) = name.parse::<std::net::Ipv4Addr>() {
        return v4.is_loopback();
    }
    name == "localhost" || (port.is_none() && SOCKET_NAMES.contains(&name))
}

/// 1 to 5 digits that fit a port number.
fn is_port(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 5
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.parse::<u16>().is_ok()
}

/// A client-supplied value as a quoted, escaped, bounded string.
fn echo(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let cut: String = text.chars().take(ECHO_MAX).collect();
    let more = if text.chars().count() > ECHO_MAX {
        "…"
    } else {
        ""
    };
    format!("{cut:?}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, target: &str, headers: &[(&str, &str)]) -> Result<(), Refusal> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        check(version, &target.parse().unwrap(), &map)
    }

    fn host(h: &str) -> Result<(), Refusal> {
        req(Version::HTTP_11, "/_ping", &[("Host", h)])
    }

    #[test]
    fn hosts_docker_clients_send_are_served() {
        for h in [
            "127.0.0.1:23750", // docker CLI, docker-py, compose over TCP
            "127.0.0.1",
            "127.1.2.3:80",
            "localhost:23750",
            "LOCALHOST:23750",
            "localhost",
            "[::1]:23750",
            "[::1]",
            "[0:0:0:0:0:0:0:1]:1",
            "api.moby.localhost", // docker CLI 26+ on a unix socket
            "API.Moby.Localhost",
            "docker", // older docker CLIs on a unix socket
        ] {
            assert_eq!(host(h), Ok(()), "{h}");
        }
        // HTTP/1.0 may leave Host out
        assert_eq!(req(Version::HTTP_10, "/_ping", &[]), Ok(()));
        assert_eq!(
            req(
                Version::HTTP_11,
                "http://localhost:23750/_ping",
                &[("Host", "localhost:23750")]
            ),
            Ok(())
        );
    }

    #[test]
    fn other_hosts_are_refused_with_403() {
        for h in [
            "evil.example:23750", // DNS rebinding
            "evil.example",
            "127.0.0.1.evil.example",
            "localhost.evil.example:23750",
            "localhost.",
            "evil.localhost:23750",
            "127.0.0.1:23750@evil.example",
            "127.0.0.1:",
            "127.0.0.1:99999",
            "127.0.0.1:23750:1",
            "10.0.0.1:23750",
            "0.0.0.0:23750",
            "192.168.1.2",
            "[::]:23750",
            "[::ffff:10.0.0.1]:1",
            "[::1]x",
            "[::1",
            "api.moby.localhost:23750",
            "docker:23750",
            "docker.evil.example",
            "",
            " localhost",
        ] {
            let r = host(h).expect_err(h);
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{h}");
            assert!(r.message.contains("not this machine"), "{h}: {}", r.message);
            assert!(r.message.contains("web pages"), "{h}: {}", r.message);
        }
        let r = req(
            Version::HTTP_11,
            "http://evil.example/_ping",
            &[("Host", "localhost")],
        );
        assert_eq!(r.unwrap_err().status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn browser_markers_are_refused_whatever_the_host() {
        for (k, v) in [
            ("Origin", "http://evil.example:23750"),
            ("Origin", "null"),
            ("Origin", "http://127.0.0.1:23750"),
            ("origin", ""),
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Site", "same-origin"),
            ("Sec-Fetch-Mode", "no-cors"),
            ("Sec-Fetch-Dest", "empty"),
            ("Sec-Fetch-User", "?1"),
        ] {
            let r = req(
                Version::HTTP_11,
                "/_ping",
                &[("Host", "127.0.0.1:23750"), (k, v)],
            )
            .expect_err(k);
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{k}");
            assert!(r.message.contains("web"), "{k}: {}", r.message);
            assert!(!r.message.contains('\n'), "{k}: one line");
        }
    }

    #[test]
    fn malformed_host_headers_are_400() {
        let r = req(Version::HTTP_11, "/_ping", &[]).unwrap_err();
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = req(
            Version::HTTP_11,
            "/_ping",
            &[("Host", "localhost"), ("Host", "evil.example")],
        )
        .unwrap_err();
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn echoed_values_are_bounded_and_escaped() {
        let long = format!("{}.example", "a".repeat(500));
        let r = host(&long).unwrap_err();
        assert!(r.message.len() < 400, "{}", r.message);
        let r = req(
            Version::HTTP_11,
            "/",
            &[("Host", "localhost"), ("Origin", "a\"b")],
        )
        .unwrap_err();
        assert!(r.message.contains(r#""a\"b""#), "{}", r.message);
        let mut map = HeaderMap::new();
        map.insert(
            http::header::HOST,
            http::HeaderValue::from_bytes(b"\xffevil").unwrap(),
        );
        assert!(check(Version::HTTP_11, &"/".parse().unwrap(), &map).is_err());
    }
}
