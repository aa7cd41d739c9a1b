//! known_hosts with markers and patterns, against the real agent and a real
//! sshd (issue 10, item 5). Every case also runs OpenSSH's own client on the
//! same file against the same sshd and asserts that Berth accepts exactly
//! when `ssh` does; the outcome a user is owed (refused, and why) is
//! asserted besides. See tests/security.rs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// A scratch directory with keys made for these tests.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// `ssh-keygen -t TYPE` into `name` (and `name.pub`); the public line.
    fn keygen(&self, name: &str, kind: &str) -> String {
        let path = self.0.join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-C", "", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        public_line(&path.with_extension("pub"))
    }

    /// A host certificate for the test bed's host key, signed by `ca`.
    fn host_cert(&self, ca: &str, extra: &[&str]) -> PathBuf {
        let tb = testbed();
        let pubkey = self.0.join("hostkey.pub");
        let src = Path::new(tb.get("BERTH_TESTBED_DIR")).join("ssh_host_ed25519_key.pub");
        std::fs::copy(src, &pubkey).unwrap();
        let out = Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(self.0.join(ca))
            .args(["-h", "-I", "berth-test"])
            .args(extra)
            .arg(&pubkey)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        self.0.join("hostkey-cert.pub")
    }

    /// Writes a known_hosts file of `lines`.
    fn known_hosts(&self, name: &str, lines: &[String]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `type base64` of a `.pub` file, without its comment.
fn public_line(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The test bed's host key, `type base64`.
fn host_key() -> String {
    let tb = testbed();
    public_line(&Path::new(tb.get("BERTH_TESTBED_DIR")).join("ssh_host_ed25519_key.pub"))
}

/// A private sshd with the test bed's ed25519 host key plus `extra` config lines.
fn sshd(tag: &str, extra: Vec<String>) -> PrivateSshd {
    PrivateSshd::start(tag, move |l| {
        if l.starts_with("HostKey ") {
            Some(
                std::iter::once(l.to_string())
                    .chain(extra.iter().cloned())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        } else {
            Some(l.to_string())
        }
    })
}

/// Whether the agent connects (`Err` carries its stderr).
fn berth(host: &str, port: u16, known_hosts: &Path, policy: &str) -> Result<(), String> {
    let tb = testbed();
    let args: Vec<String> = vec![
        "--remote".into(),
        format!("ssh://root@{host}:{port}"),
        "--identity".into(),
        tb.get("SSH_KEY").into(),
        "--known-hosts".into(),
        known_hosts.display().to_string(),
        "--host-key-policy".into(),
        policy.into(),
    ];
    try_start_agent(&args).map(drop).map_err(|(_, err)| err)
}

/// Whether OpenSSH's client, strict, logs in with the same file.
fn openssh(host: &str, port: u16, known_hosts: &Path) -> Result<(), String> {
    let tb = testbed();
    let out = Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
        ])
        .args([
            "-F",
            "/dev/null",
            "-i",
            tb.get("SSH_KEY"),
            "-p",
            &port.to_string(),
        ])
        .arg(format!("root@{host}"))
        .arg("true")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(stderr(&out))
    }
}

/// Runs Berth (strict) and ssh on `lines`; asserts they agree, that the
/// outcome is `accepted` and that a refusal names `why`; a refusal for any
/// reason but an unknown key must stand under accept-new too, the file
/// unchanged.
fn case(
    name: &str,
    host: &str,
    port: u16,
    s: &Scratch,
    lines: &[String],
    accepted: bool,
    why: &str,
) {
    let kh = s.known_hosts(&format!("kh-{}", unique("case")), lines);
    let before = std::fs::read(&kh).unwrap();
    let ours = berth(host, port, &kh, "strict");
    let theirs = openssh(host, port, &kh);
    assert_eq!(
        ours.is_ok(),
        theirs.is_ok(),
        "{name}: Berth {ours:?}, OpenSSH {theirs:?}\n{}",
        lines.join("\n")
    );
    assert_eq!(ours.is_ok(), accepted, "{name}: {ours:?}");
    if let Err(e) = &ours {
        assert!(
            e.contains(why),
            "{name}: the refusal should say {why:?}: {e}"
        );
        if why == "not known" {
            return; // an unknown key is what accept-new is for
        }
        let learned = berth(host, port, &kh, "accept-new");
        assert!(
            learned.is_err(),
            "{name}: accept-new accepted what strict refused"
        );
        assert_eq!(
            std::fs::read(&kh).unwrap(),
            before,
            "{name}: accept-new wrote known_hosts"
        );
    }
}

#[test]
fn revoked_keys_are_refused_even_when_also_listed() {
    let s = Scratch::new("kh-revoked");
    let d = sshd("kh-revoked", vec![]);
    let p = d.port;
    let hk = host_key();
    let name = format!("[127.0.0.1]:{p}");
    case(
        "listed",
        "127.0.0.1",
        p,
        &s,
        &[format!("{name} {hk}")],
        true,
        "",
    );
    let kh = vec![format!("{name} {hk}"), format!("@revoked * {hk}")];
    case(
        "revoked and listed",
        "127.0.0.1",
        p,
        &s,
        &kh,
        false,
        "@revoked",
    );
    let kh = vec![format!("@revoked {name} {hk}"), format!("{name} {hk}")];
    case("revoked first", "127.0.0.1", p, &s, &kh, false, "line 1");
    // the message names the file, the line and the key
    let file = s.known_hosts(
        "kh-msg",
        &[format!("{name} {hk}"), format!("@revoked * {hk}")],
    );
    let err = berth("127.0.0.1", p, &file, "accept-new").unwrap_err();
    let fp = testbed().get("HOST_KEY_FINGERPRINT");
    for want in [&file.display().to_string(), "line 2", "revoked", fp] {
        assert!(err.contains(want), "{want:?} missing from {err}");
    }
}

#[test]
fn a_key_of_another_type_is_a_changed_key_never_learned() {
    let s = Scratch::new("kh-type");
    let ecdsa = s.keygen("host_ecdsa", "ecdsa");
    let stranger = s.keygen("stranger_ecdsa", "ecdsa");
    let both = sshd(
        "kh-type2",
        vec![format!("HostKey {}", s.0.join("host_ecdsa").display())],
    );
    let only_ed = sshd("kh-type1", vec![]);
    let name = |p: u16| format!("[127.0.0.1]:{p}");
    // the server has no ecdsa key; known_hosts has only one
    let kh = vec![format!("{} {stranger}", name(only_ed.port))];
    case(
        "other type only",
        "127.0.0.1",
        only_ed.port,
        &s,
        &kh,
        false,
        "HOST KEY CHANGED",
    );
    // the server has both: the recorded type is asked for, and matches
    let kh = vec![format!("{} {ecdsa}", name(both.port))];
    case(
        "recorded type preferred",
        "127.0.0.1",
        both.port,
        &s,
        &kh,
        true,
        "",
    );
    let kh = vec![format!("{} {stranger}", name(both.port))];
    case(
        "recorded type differs",
        "127.0.0.1",
        both.port,
        &s,
        &kh,
        false,
        "HOST KEY CHANGED",
    );
}

/// A host-certificate case: name, extra `ssh-keygen -s` arguments,
/// known_hosts lines, accepted, why.
type CertCase<'a> = (&'a str, Vec<&'a str>, Vec<String>, bool, &'a str);

#[test]
fn host_certificates_from_a_listed_ca() {
    let s = Scratch::new("kh-cert");
    let ca = s.keygen("ca", "ed25519");
    let other_ca = s.keygen("other_ca", "ed25519");
    let hk = host_key();
    let cases: Vec<CertCase> = vec![
        (
            "valid",
            vec!["-n", "127.0.0.1"],
            vec![format!("@cert-authority [127.0.0.1]:* {ca}")],
            true,
            "",
        ),
        (
            "any principal",
            vec![],
            vec![format!("@cert-authority * {ca}")],
            true,
            "",
        ),
        (
            "CA under the bare name",
            vec!["-n", "127.0.0.1"],
            vec![format!("@cert-authority 127.0.0.1 {ca}")],
            true,
            "",
        ),
        (
            "wrong principal",
            vec!["-n", "other.example"],
            vec![format!("@cert-authority * {ca}")],
            false,
            "other.example",
        ),
        (
            "expired",
            vec!["-n", "127.0.0.1", "-V", "20200101:20200102"],
            vec![format!("@cert-authority * {ca}")],
            false,
            "expired",
        ),
        (
            "CA revoked",
            vec!["-n", "127.0.0.1"],
            vec![
                format!("@cert-authority * {ca}"),
                format!("@revoked * {ca}"),
            ],
            false,
            "@revoked",
        ),
        (
            "host key revoked",
            vec!["-n", "127.0.0.1"],
            vec![
                format!("@cert-authority * {ca}"),
                format!("@revoked * {hk}"),
            ],
            false,
            "@revoked",
        ),
        (
            "CA for other hosts",
            vec!["-n", "127.0.0.1"],
            vec![format!("@cert-authority *.example {ca}")],
            false,
            "not known",
        ),
        (
            "unlisted CA, plain key known",
            vec!["-n", "127.0.0.1"],
            vec![
                format!("@cert-authority * {other_ca}"),
                format!("127.0.0.1 {hk}"),
            ],
            true,
            "",
        ),
    ];
    for (name, extra, lines, accepted, why) in cases {
        let cert = s.host_cert("ca", &extra);
        let d = sshd(
            "kh-cert",
            vec![format!("HostCertificate {}", cert.display())],
        );
        case(name, "127.0.0.1", d.port, &s, &lines, accepted, why);
    }
}

#[test]
fn patterns_negation_case_ports_and_hashes() {
    let s = Scratch::new("kh-pat");
    let d = sshd("kh-pat", vec![]);
    let p = d.port;
    let hk = host_key();
    let hashed = {
        let kh = s.known_hosts("kh-hash", &[format!("[127.0.0.1]:{p} {hk}")]);
        let out = Command::new("ssh-keygen")
            .arg("-H")
            .arg("-f")
            .arg(&kh)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::read_to_string(&kh).unwrap().trim().to_string()
    };
    assert!(hashed.starts_with("|1|"), "{hashed}");
    let cases: Vec<(&str, &str, String, bool, &str)> = vec![
        (
            "wildcard",
            "127.0.0.1",
            format!("[127.0.0.*]:{p} {hk}"),
            true,
            "",
        ),
        (
            "question mark",
            "127.0.0.1",
            format!("[127.0.0.?]:* {hk}"),
            true,
            "",
        ),
        (
            "star matches any port",
            "127.0.0.1",
            format!("* {hk}"),
            true,
            "",
        ),
        (
            "comma list",
            "127.0.0.1",
            format!("a.example,[127.0.0.1]:{p} {hk}"),
            true,
            "",
        ),
        (
            "negation wins",
            "127.0.0.1",
            format!("*,!127.0.0.1,![127.0.0.1]:* {hk}"),
            false,
            "not known",
        ),
        (
            "negation first",
            "127.0.0.1",
            format!("!127.0.0.1,![127.0.0.1]:*,* {hk}"),
            false,
            "not known",
        ),
        // OpenSSH then looks the bare name up, which the negation does not exclude
        (
            "negated port only",
            "127.0.0.1",
            format!("*,![127.0.0.1]:{p} {hk}"),
            true,
            "",
        ),
        (
            "negation of another host",
            "127.0.0.1",
            format!("*,!a.example {hk}"),
            true,
            "",
        ),
        (
            "pattern case",
            "localhost",
            format!("[LocalHost]:{p} {hk}"),
            true,
            "",
        ),
        (
            "host name case",
            "LOCALHOST",
            format!("[localhost]:{p} {hk}"),
            true,
            "",
        ),
        (
            "other port",
            "127.0.0.1",
            format!("[127.0.0.1]:{} {hk}", p + 1),
            false,
            "not known",
        ),
        (
            "bare name",
            "127.0.0.1",
            format!("127.0.0.1 {hk}"),
            true,
            "",
        ),
        ("hashed", "127.0.0.1", hashed.clone(), true, ""),
        (
            "hashed, other host",
            "localhost",
            hashed.clone(),
            false,
            "not known",
        ),
    ];
    for (name, host, line, accepted, why) in cases {
        case(name, host, p, &s, &[line], accepted, why);
    }
}
