//! known_hosts read as OpenSSH reads it (sshd(8), "SSH_KNOWN_HOSTS FILE
//! FORMAT"; OpenSSH's hostfile.c and match.c): `@revoked` and
//! `@cert-authority` markers, comma lists of `*`/`?` patterns with `!`
//! negation, case-insensitive names, `[host]:port` off port 22, hashed
//! `|1|salt|hash` names. Lines OpenSSH would skip (bad marker, unparsable
//! key) are skipped here too. Everything but [`HostKeys::load`] and
//! [`append`] is pure.

use std::path::{Path, PathBuf};

use russh::keys::ssh_encoding::base64::{Base64, Encoding};
use russh::keys::{Algorithm, PublicKey};

/// What a line says about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A host key of the host.
    Plain,
    /// `@cert-authority`: a CA whose host certificates the host may present.
    CertAuthority,
    /// `@revoked`: never accepted, whatever else the file says.
    Revoked,
}

/// One usable line of a known_hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    pub marker: Marker,
    /// The host field as written (patterns or a hashed name).
    pub hosts: String,
    pub key: PublicKey,
}

/// Why a known_hosts file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot append to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the host key: {0}")]
    Encode(#[source] russh::keys::ssh_key::Error),
}

/// Parses a whole file; lines OpenSSH would skip are skipped.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            parse_line(l).map(|(marker, hosts, key)| Entry {
                line: i + 1,
                marker,
                hosts: hosts.to_string(),
                key,
            })
        })
        .collect()
}

fn parse_line(line: &str) -> Option<(Marker, &str, PublicKey)> {
    let mut fields = line.split([' ', '\t']).filter(|f| !f.is_empty());
    let mut first = fields.next()?;
    if first.starts_with('#') {
        return None;
    }
    let marker = match first {
        "@cert-authority" => Marker::CertAuthority,
        "@revoked" => Marker::Revoked,
        m if m.starts_with('@') => return None,
        _ => Marker::Plain,
    };
    if marker != Marker::Plain {
        first = fields.next()?;
    }
    let (kind, blob) = (fields.next()?, fields.next()?);
    let key = russh::keys::parse_public_key_base64(blob).ok()?;
    // the type name must be the blob's own (OpenSSH's sshkey_read checks it too)
    (key.algorithm().as_str() == kind).then_some((marker, first, key))
}

/// The name a host is recorded under: lower case, `[host]:port` off port 22.
pub fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// Whether a line's host field applies to `name` (already lower case): a
/// hashed name must hash to it; otherwise one pattern of the comma list must
/// match and no negated one may.
pub fn host_field_matches(field: &str, name: &str) -> bool {
    if field.starts_with('|') {
        return hashed_matches(field, name);
    }
    let mut positive = false;
    for pattern in field.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        let pattern = pattern.to_ascii_lowercase();
        if glob(pattern.as_bytes(), name.as_bytes()) {
            if negated {
                return false;
            }
            positive = true;
        }
    }
    positive
}

/// `*` is any run of characters, `?` any one; everything else is literal.
fn glob(pattern: &[u8], s: &[u8]) -> bool {
    match pattern.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((&p, rest)) => match s.split_first() {
            Some((&c, tail)) if p == b'?' || p == c => glob(rest, tail),
            _ => false,
        },
    }
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, the whole field.
fn hashed_matches(field: &str, name: &str) -> bool {
    let Some(rest) = field.strip_prefix("|1|") else {
        return false;
    };
    let Some((salt, hash)) = rest.split_once('|') else {
        return false;
    };
    match (Base64::decode_vec(salt), Base64::decode_vec(hash)) {
        (Ok(salt), Ok(hash)) if salt.len() == 20 => {
            sha1::hmac(&salt, name.as_bytes()).as_slice() == hash.as_slice()
        }
        _ => false,
    }
}

/// Two keys are the same key whatever their comments.
pub fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

/// Whether a key of type `a` can serve algorithm `b` (one RSA key serves
/// every RSA signature algorithm).
pub fn same_type(a: &Algorithm, b: &Algorithm) -> bool {
    let rsa = |x: &Algorithm| matches!(x, Algorithm::Rsa { .. });
    a == b || (rsa(a) && rsa(b))
}

/// The lines that apply to one host as dialled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostKeys {
    /// Lines for [`lookup_name`] (`[host]:port`, or `host` on port 22).
    pub exact: Vec<Entry>,
    /// Off port 22, lines for the bare `host`: OpenSSH accepts a key recorded
    /// there when nothing is recorded for `[host]:port`.
    pub bare: Vec<Entry>,
}

impl HostKeys {
    /// Picks from `entries` the lines for `host` on `port`.
    pub fn select(entries: &[Entry], host: &str, port: u16) -> Self {
        let pick = |name: &str| -> Vec<Entry> {
            entries
                .iter()
                .filter(|e| host_field_matches(&e.hosts, name))
                .cloned()
                .collect()
        };
        Self {
            exact: pick(&lookup_name(host, port)),
            bare: if port == 22 {
                Vec::new()
            } else {
                pick(&lookup_name(host, 22))
            },
        }
    }

    /// Reads `path` (a missing file records nothing) and selects.
    pub fn load(path: &Path, host: &str, port: u16) -> Result<Self, KnownHostsError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Self::select(
                &parse(&String::from_utf8_lossy(&bytes)),
                host,
                port,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(KnownHostsError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// A `@revoked` line for `key`, under either name (stricter than
    /// OpenSSH, which looks at the bare name's revocations only as a fallback).
    pub fn revoked(&self, key: &PublicKey) -> Option<&Entry> {
        self.exact
            .iter()
            .chain(&self.bare)
            .find(|e| e.marker == Marker::Revoked && same_key(&e.key, key))
    }

    /// The plain host keys recorded for the exact name.
    pub fn plain(&self) -> impl Iterator<Item = &Entry> {
        self.exact.iter().filter(|e| e.marker == Marker::Plain)
    }

    /// The plain host keys recorded for the bare name (empty on port 22).
    pub fn bare_plain(&self) -> impl Iterator<Item = &Entry> {
        self.bare.iter().filter(|e| e.marker == Marker::Plain)
    }

    /// `@cert-authority` lines, exact name first.
    pub fn authorities(&self) -> impl Iterator<Item = &Entry> {
        self.exact
            .iter()
            .chain(&self.bare)
            .filter(|e| e.marker == Marker::CertAuthority)
    }

    /// `default` reordered as OpenSSH orders HostKeyAlgorithms: algorithms
    /// of key types recorded for the host first, each group in its order.
    pub fn preferred_algorithms(&self, default: &[Algorithm]) -> Vec<Algorithm> {
        let known = |a: &Algorithm| self.plain().any(|e| same_type(&e.key.algorithm(), a));
        let (mut first, last): (Vec<_>, Vec<_>) = default.iter().cloned().partition(known);
        first.extend(last);
        first
    }
}

/// Appends `name key` (the name as [`lookup_name`] spells it, the key
/// without comment), creating the file and its directory; a file not ending
/// in a newline gets one first, so the new line stands alone.
pub fn append(path: &Path, host: &str, port: u16, key: &PublicKey) -> Result<(), KnownHostsError> {
    use std::io::Write;
    let write = |source| KnownHostsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut bare = key.clone();
    bare.set_comment("");
    let text = bare.to_openssh().map_err(KnownHostsError::Encode)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write)?;
    }
    let existing = std::fs::read(path).unwrap_or_default();
    let sep = if existing.is_empty() || existing.ends_with(b"\n") {
        ""
    } else {
        "\n"
    };
    let line = format!("{sep}{} {text}\n", lookup_name(host, port));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|()| f.sync_all()))
        .map_err(write)
}

/// SHA-1 and HMAC-SHA1, only to recognise hashed host names (OpenSSH's
/// `|1|` format fixes the hash; no crate here exports SHA-1).
mod sha1 {
    fn digest(data: &[u8]) -> [u8; 20] {
        let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
        let mut msg = data.to_vec();
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
        for block in msg.chunks_exact(64) {
            let mut w = [0u32; 80];
            for (i, word) in block.chunks_exact(4).enumerate() {
                w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            }
            for i in 16..80 {
                w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
            }
            let [mut a, mut b, mut c, mut d, mut e] = h;
            for (i, wi) in w.iter().enumerate() {
                let (f, k) = match i {
                    0..=19 => ((b & c) | (!b & d), 0x5A827999),
                    20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                    40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                    _ => (b ^ c ^ d, 0xCA62C1D6),
                };
                let t = a
                    .rotate_left(5)
                    .wrapping_add(f)
                    .wrapping_add(e)
                    .wrapping_add(k);
                (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t.wrapping_add(*wi));
            }
            for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
                *x = x.wrapping_add(y);
            }
        }
        let mut out = [0u8; 20];
        for (o, x) in out.chunks_exact_mut(4).zip(h) {
            o.copy_from_slice(&x.to_be_bytes());
        }
        out
    }

    /// RFC 2104 HMAC over SHA-1.
    pub fn hmac(key: &[u8], msg: &[u8]) -> [u8; 20] {
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..20].copy_from_slice(&digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let inner: Vec<u8> = k
            .iter()
            .map(|b| b ^ 0x36)
            .chain(msg.iter().copied())
            .collect();
        let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(digest(&inner)).collect();
        digest(&outer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIFMmft8ttWvC9Ll+t8MvTvJtDwGWbAmi6Ii3Cp5OSUHX";
    const ED_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIDCD8RdZc+ef8bV6YqJvQmua8JUWPGxVc+zFwvewUm1r";
    const ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBCdXnQUzRX0SWcSjuDSFRuRIUHY+oaZiLp2nWNmnv+t4gvDnY6NcPEb7TCgiBPnlCQxQFrnkCUHL5YkpuRp5P6s=";
    // made by `ssh-keygen -H` for "127.0.0.1" and "[127.0.0.1]:2222"
    const HASHED_22: &str = "|1|2jzdsjKvLT1MPRIvNFd1uVF4H1I=|J2jrpCCfORR8+NmwVG/oe7wd0As=";
    const HASHED_2222: &str = "|1|J5kRkjFVXqVbEtgixaT3B7ZTdhk=|73D5c8qZqYOLiiDx8mWSZv9R/Sw=";

    #[test]
    fn hmac_sha1_known_answers() {
        let hex = |b: [u8; 20]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        // RFC 2202 test cases 2 and 6 (a key longer than a block)
        assert_eq!(
            hex(sha1::hmac(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex(sha1::hmac(
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
    }

    #[test]
    fn host_fields() {
        let table: &[(&str, &str, bool)] = &[
            ("example.org", "example.org", true),
            ("Example.ORG", "example.org", true),
            ("example.org", "www.example.org", false),
            ("*.example.org", "www.example.org", true),
            ("*.example.org", "example.org", false),
            ("host?", "host1", true),
            ("host?", "host12", false),
            ("a,b,example.org", "example.org", true),
            ("*.example.org,!bad.example.org", "bad.example.org", false),
            ("!bad.example.org,*.example.org", "bad.example.org", false),
            ("*.example.org,!bad.example.org", "good.example.org", true),
            ("!bad.example.org", "good.example.org", false),
            ("[127.0.0.1]:2222", "[127.0.0.1]:2222", true),
            ("[127.0.0.1]:2222", "127.0.0.1", false),
            ("127.0.0.1", "[127.0.0.1]:2222", false),
            ("[127.0.0.?]:22*", "[127.0.0.1]:2222", true),
            ("*", "[127.0.0.1]:2222", true),
            (HASHED_22, "127.0.0.1", true),
            (HASHED_22, "127.0.0.2", false),
            (HASHED_2222, "[127.0.0.1]:2222", true),
            (HASHED_2222, "127.0.0.1", false),
            ("|1|bad|hash", "127.0.0.1", false),
        ];
        for (field, name, want) in table {
            assert_eq!(
                host_field_matches(field, name),
                *want,
                "{field:?} vs {name:?}"
            );
        }
        assert_eq!(lookup_name("Host.Example", 22), "host.example");
        assert_eq!(lookup_name("H", 2222), "[h]:2222");
    }

    #[test]
    fn lines_and_markers() {
        let text = format!(
            "# comment\n\n  example.org ssh-ed25519 {ED_A} me@there\n\
             @revoked * ssh-ed25519 {ED_B}\n\
             @cert-authority\t*.example.org ssh-ed25519 {ED_A}\n\
             @bogus example.org ssh-ed25519 {ED_A}\n\
             example.org ecdsa-sha2-nistp256 {ED_A}\n\
             example.org ssh-ed25519 not-base64\n\
             @revoked example.org\n\
             example.org ecdsa-sha2-nistp256 {ECDSA}\n"
        );
        let got: Vec<(usize, Marker, bool)> = parse(&text)
            .iter()
            .map(|e| (e.line, e.marker, e.key.algorithm() == Algorithm::Ed25519))
            .collect();
        assert_eq!(
            got,
            vec![
                (3, Marker::Plain, true),
                (4, Marker::Revoked, true),
                (5, Marker::CertAuthority, true),
                (10, Marker::Plain, false),
            ]
        );
    }

    #[test]
    fn selection_ordering_and_revocation() {
        let text = format!(
            "[h]:2222 ecdsa-sha2-nistp256 {ECDSA}\n\
             h ssh-ed25519 {ED_A}\n\
             @revoked h ssh-ed25519 {ED_B}\n\
             @cert-authority [h]:* ssh-ed25519 {ED_B}\n\
             [other]:2222 ssh-ed25519 {ED_A}\n"
        );
        let entries = parse(&text);
        let keys = HostKeys::select(&entries, "H", 2222);
        let lines = |v: &[Entry]| v.iter().map(|e| e.line).collect::<Vec<_>>();
        assert_eq!(lines(&keys.exact), vec![1, 4]);
        assert_eq!(lines(&keys.bare), vec![2, 3]);
        let key = |b| russh::keys::parse_public_key_base64(b).unwrap();
        assert_eq!(keys.revoked(&key(ED_B)).map(|e| e.line), Some(3));
        assert!(keys.revoked(&key(ED_A)).is_none());
        assert_eq!(
            keys.authorities().map(|e| e.line).collect::<Vec<_>>(),
            vec![4]
        );
        let default = russh::Preferred::DEFAULT.key;
        let order = keys.preferred_algorithms(&default);
        assert_eq!(order[0].as_str(), "ecdsa-sha2-nistp256");
        assert_eq!(order[1], Algorithm::Ed25519);
        assert_eq!(order.len(), default.len());
        // nothing recorded: OpenSSH's order as is
        let port22 = HostKeys::select(&entries, "h", 22);
        assert_eq!(lines(&port22.exact), vec![2, 3]);
        assert!(port22.bare.is_empty());
        assert_eq!(port22.preferred_algorithms(&default), default.to_vec());
    }
}
