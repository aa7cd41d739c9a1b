//! Port specs as Docker writes them: a container port with its protocol
//! (`80/tcp`) and a host port, range or "any" (`8080`, `8000-8002`, ``).
//! Parsing and printing only; planning lives in `plan`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::PortError;

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

/// The host port a user asked for: `"8080"`, `"8000-8002"` or any free one
/// (`""`, `"0"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRange {
    Fixed(u16),
    Range(u16, u16),
    Any,
}

impl PortRange {
    /// Parses a `HostPort` string the way the daemon does (go-connections'
    /// `nat.NewPort(nat.SplitProtoPort(..))`): a `/proto` suffix is ignored,
    /// `""`, `"0"` and `"0-0"` mean any free port, digits may have leading
    /// zeros. What the daemon refuses is refused in its words; `0-N`, which
    /// the daemon accepts and then fails to start, is refused at once.
    pub fn parse(host_port: &str) -> Result<PortRange, PortError> {
        let bad = |reason: &str| PortError::InvalidSpec {
            spec: host_port.to_string(),
            reason: reason.to_string(),
        };
        let number = "the host port must be empty, 0 (any), a number up to 65535 \
                      or a range like 8000-8010";
        let port = host_port.split('/').next().unwrap_or_default();
        if port.is_empty() {
            return Ok(PortRange::Any);
        }
        let (a, b) = match port.split_once('-') {
            None => (port, port),
            Some((_, b)) if b.contains('-') => return Err(bad(number)),
            Some(pair) => pair,
        };
        let (Some(a), Some(b)) = (parse_number(a), parse_number(b)) else {
            return Err(bad(number));
        };
        match (a, b) {
            (0, 0) => Ok(PortRange::Any),
            (0, _) => Err(bad("a range of host ports cannot start at 0")),
            (a, b) if a == b => Ok(PortRange::Fixed(a)),
            (a, b) if a < b => Ok(PortRange::Range(a, b)),
            _ => Err(bad("the range ends before it starts")),
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

/// A port number 1-65535 written in plain digits.
fn parse_port(s: &str) -> Option<u16> {
    parse_number(s).filter(|&p| p != 0)
}

/// A number 0-65535 in plain digits, as Go's `strconv.ParseUint(s, 10, 16)`
/// reads it (leading zeros allowed, no sign, no spaces).
fn parse_number(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // every row checked against dockerd 20.10 (HostConfig.PortBindings
        // of a create, then start): Err rows are refused by the daemon too,
        // but "0-10", which it accepts and then cannot start, and "1-2-3",
        // which it reads as 1-2 (newer daemons refuse it)
        let table = [
            ("", Ok(Any)),
            ("0", Ok(Any)),
            ("00", Ok(Any)),
            ("0-0", Ok(Any)),
            ("/tcp", Ok(Any)),
            ("8080", Ok(Fixed(8080))),
            ("080", Ok(Fixed(80))),
            ("81/tcp", Ok(Fixed(81))),
            ("81/udp", Ok(Fixed(81))),
            ("65535", Ok(Fixed(65535))),
            ("8000-8002", Ok(Range(8000, 8002))),
            ("8000-8000", Ok(Fixed(8000))),
            ("9000-8000", Err(())),
            ("0-10", Err(())),
            ("1-2-3", Err(())),
            ("abc", Err(())),
            ("80-", Err(())),
            (" 80", Err(())),
            ("+81", Err(())),
            ("-1", Err(())),
            ("65536", Err(())),
        ];
        for (input, want) in table {
            assert_eq!(PortRange::parse(input).map_err(|_| ()), want, "{input:?}");
        }
    }
}
