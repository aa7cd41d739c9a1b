use super::*;
use serde_json::json;

const ROOT: &str = "/root/.cache/berth/mounts";

fn rp(local: &str) -> String {
    replica_path(ROOT, Path::new(local))
}

#[test]
fn parse_bind_table() {
    let ok = |s: &str, t: &str, o: Option<&str>| {
        Some((s.to_string(), t.to_string(), o.map(str::to_string)))
    };
    type Parts = Option<(String, String, Option<String>)>;
    let cases: &[(&str, Parts)] = &[
        ("/src:/app", ok("/src", "/app", None)),
        ("/src:/app:ro", ok("/src", "/app", Some("ro"))),
        ("/src:/app:rw,z", ok("/src", "/app", Some("rw,z"))),
        ("/src:/app:", ok("/src", "/app", Some(""))),
        ("vol:/data", ok("vol", "/data", None)),
        ("C:\\src:/app", ok("C:\\src", "/app", None)),
        ("C:\\src:/app:ro", ok("C:\\src", "/app", Some("ro"))),
        ("c:/src:/app", ok("c:/src", "/app", None)),
        (
            "d:\\my dir\\x:/app:rw,Z",
            ok("d:\\my dir\\x", "/app", Some("rw,Z")),
        ),
        // A drive letter without an absolute target after it is a volume name.
        ("c:/app", ok("c", "/app", None)),
        ("c:/app:ro", ok("c", "/app", Some("ro"))),
        (
            "/var/run/docker.sock:/var/run/docker.sock",
            ok("/var/run/docker.sock", "/var/run/docker.sock", None),
        ),
        ("/src", None),
        ("", None),
        (":/app", None),
        ("/src:", None),
        ("/src::ro", None),
        ("C:\\src:", None),
        ("/a:/b:ro:extra", None),
    ];
    for (spec, want) in cases {
        let got = parse_bind(spec)
            .ok()
            .map(|b| (b.source, b.target, b.options));
        assert_eq!(&got, want, "spec {spec:?}");
    }
}

#[test]
fn parse_bind_error_names_the_spec() {
    let msg = parse_bind("/src:").map(|_| ()).unwrap_err().to_string();
    assert_eq!(
        msg,
        "invalid bind mount \"/src:\": the target (container path) is empty"
    );
}

#[test]
fn replica_path_table() {
    let hash = |p: &str| {
        let d = Sha256::digest(p.as_bytes());
        d.iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let cases: &[(&str, &str, String)] = &[
        (
            ROOT,
            "/home/me/src",
            format!("{ROOT}/src-{}", hash("/home/me/src")),
        ),
        (
            "/m/",
            "/home/me/src",
            format!("/m/src-{}", hash("/home/me/src")),
        ),
        (
            "/m",
            "/home/me/my app (2)",
            format!("/m/my_app__2_-{}", hash("/home/me/my app (2)")),
        ),
        (
            "/m",
            "/home/me/.gitconfig",
            format!("/m/.gitconfig-{}", hash("/home/me/.gitconfig")),
        ),
        ("/m", "/", format!("/m/root-{}", hash("/"))),
        (
            "/m",
            "C:\\Users\\me\\src",
            format!("/m/src-{}", hash("C:\\Users\\me\\src")),
        ),
        ("/m", "C:\\", format!("/m/root-{}", hash("C:\\"))),
        ("/m", "/x/été", format!("/m/_t_-{}", hash("/x/été"))),
        (
            "/m",
            &format!("/x/{}", "a".repeat(40)),
            format!(
                "/m/{}-{}",
                "a".repeat(32),
                hash(&format!("/x/{}", "a".repeat(40)))
            ),
        ),
    ];
    for (root, local, want) in cases {
        assert_eq!(
            &replica_path(root, Path::new(local)),
            want,
            "{root} {local}"
        );
    }
    assert_ne!(rp("/a/src"), rp("/b/src"), "same name, different paths");
}

/// A `local_kind` answering from a table and counting calls per path.
struct Fs {
    present: Vec<(&'static str, LocalKind)>,
    calls: Vec<PathBuf>,
}

impl Fs {
    fn new(present: &[(&'static str, LocalKind)]) -> Self {
        Fs {
            present: present.to_vec(),
            calls: Vec::new(),
        }
    }
    fn kind(&mut self, p: &Path) -> Option<LocalKind> {
        self.calls.push(p.to_path_buf());
        self.present
            .iter()
            .find(|(q, _)| Path::new(q) == p)
            .map(|(_, k)| *k)
    }
}

fn plan(body: &Value, fs: &mut Fs, remote_only: &[&str]) -> Result<BindsPlan, SyncError> {
    let opts = BindOptions {
        mounts_root: ROOT.to_string(),
        remote_only: remote_only.iter().map(|s| s.to_string()).collect(),
    };
    plan_binds(body, &mut |p| fs.kind(p), &opts)
}

fn binds(list: &[&str]) -> Value {
    json!({ "Image": "alpine", "HostConfig": { "Binds": list, "NetworkMode": "bridge" } })
}

#[test]
fn plan_binds_table() {
    use LocalKind::{Dir, File};
    let src = "/home/me/src";
    let sync = |local: &str, kind| SyncSource {
        local: PathBuf::from(local),
        kind,
        replica: rp(local),
    };
    struct Case {
        name: &'static str,
        body: Value,
        present: Vec<(&'static str, LocalKind)>,
        remote_only: Vec<&'static str>,
        want_body: Value,
        want_syncs: Vec<SyncSource>,
    }
    let cases = vec![
        Case {
            name: "dir bind with and without options",
            body: binds(&[
                "/home/me/src:/app",
                "/home/me/src:/ro:ro",
                "/home/me/src:/z:rw,z",
            ]),
            present: vec![(src, Dir)],
            remote_only: vec![],
            want_body: binds(&[
                &format!("{}:/app", rp(src)),
                &format!("{}:/ro:ro", rp(src)),
                &format!("{}:/z:rw,z", rp(src)),
            ]),
            want_syncs: vec![sync(src, Dir)],
        },
        Case {
            name: "windows drive paths",
            body: binds(&["C:\\src:/app:ro", "c:/work/x:/x", "c:/app"]),
            present: vec![("C:\\src", Dir), ("c:/work/x", Dir), ("c", Dir)],
            remote_only: vec![],
            want_body: binds(&[
                &format!("{}:/app:ro", rp("C:\\src")),
                &format!("{}:/x", rp("c:/work/x")),
                "c:/app",
            ]),
            want_syncs: vec![sync("C:\\src", Dir), sync("c:/work/x", Dir)],
        },
        Case {
            name: "volumes, relative, missing and anonymous pass through",
            body: binds(&[
                "vol:/data",
                "./rel:/r",
                "/missing:/m",
                "/data",
                "/var/run/docker.sock:/var/run/docker.sock",
            ]),
            present: vec![("/var/run/docker.sock", File)],
            remote_only: vec![],
            want_body: binds(&[
                "vol:/data",
                "./rel:/r",
                "/missing:/m",
                "/data",
                "/var/run/docker.sock:/var/run/docker.sock",
            ]),
            want_syncs: vec![],
        },
        Case {
            name: "remote-only prefixes match whole components",
            body: binds(&[
                "/var/run/x:/x",
                "/var/runner:/r",
                "/run/docker.sock:/s",
                "/tmp/../var/run/docker.sock:/t",
                "/srv//data/:/d",
            ]),
            present: vec![
                ("/var/run/x", Dir),
                ("/var/runner", Dir),
                ("/run/docker.sock", File),
                ("/tmp/../var/run/docker.sock", File),
                ("/srv/data", Dir),
            ],
            remote_only: vec!["/var/run/", "/srv/data"],
            want_body: binds(&[
                "/var/run/x:/x",
                &format!("{}:/r", rp("/var/runner")),
                "/run/docker.sock:/s",
                "/tmp/../var/run/docker.sock:/t",
                "/srv//data/:/d",
            ]),
            want_syncs: vec![sync("/var/runner", Dir)],
        },
        Case {
            name: "single-file bind mounts the file inside its replica dir",
            body: binds(&["/home/me/.gitconfig:/root/.gitconfig:ro"]),
            present: vec![("/home/me/.gitconfig", File)],
            remote_only: vec![],
            want_body: binds(&[&format!(
                "{}/.gitconfig:/root/.gitconfig:ro",
                rp("/home/me/.gitconfig")
            )]),
            want_syncs: vec![sync("/home/me/.gitconfig", File)],
        },
        Case {
            name: "Mounts: bind rewritten with every field kept, others untouched",
            body: json!({ "HostConfig": { "Mounts": [
                { "Type": "bind", "Source": "/home/me/src", "Target": "/app", "ReadOnly": true,
                  "BindOptions": { "Propagation": "rprivate", "NonRecursive": true }, "Consistency": "cached", "X-Future": [1] },
                { "Type": "volume", "Source": "/home/me/src", "Target": "/v", "VolumeOptions": { "NoCopy": true } },
                { "Type": "tmpfs", "Target": "/t", "TmpfsOptions": { "SizeBytes": 1024 } },
                { "Type": "bind", "Source": "/run/docker.sock", "Target": "/run/docker.sock" },
                { "Type": "bind", "Target": "/nosource" },
                "not an object"
            ] } }),
            present: vec![(src, Dir), ("/run/docker.sock", File)],
            remote_only: vec![],
            want_body: json!({ "HostConfig": { "Mounts": [
                { "Type": "bind", "Source": rp(src), "Target": "/app", "ReadOnly": true,
                  "BindOptions": { "Propagation": "rprivate", "NonRecursive": true }, "Consistency": "cached", "X-Future": [1] },
                { "Type": "volume", "Source": "/home/me/src", "Target": "/v", "VolumeOptions": { "NoCopy": true } },
                { "Type": "tmpfs", "Target": "/t", "TmpfsOptions": { "SizeBytes": 1024 } },
                { "Type": "bind", "Source": "/run/docker.sock", "Target": "/run/docker.sock" },
                { "Type": "bind", "Target": "/nosource" },
                "not an object"
            ] } }),
            want_syncs: vec![sync(src, Dir)],
        },
        Case {
            name: "same source twice (Binds and Mounts, trailing slash) is one sync",
            body: json!({ "HostConfig": {
                "Binds": ["/home/me/src:/a", "/home/me//src/:/b:ro"],
                "Mounts": [{ "Type": "bind", "Source": "/home/me/./src", "Target": "/c" }] } }),
            present: vec![(src, Dir)],
            remote_only: vec![],
            want_body: json!({ "HostConfig": {
                "Binds": [format!("{}:/a", rp(src)), format!("{}:/b:ro", rp(src))],
                "Mounts": [{ "Type": "bind", "Source": rp(src), "Target": "/c" }] } }),
            want_syncs: vec![sync(src, Dir)],
        },
        Case {
            name: "no HostConfig",
            body: json!({ "Image": "alpine", "Cmd": ["true"] }),
            present: vec![(src, Dir)],
            remote_only: vec![],
            want_body: json!({ "Image": "alpine", "Cmd": ["true"] }),
            want_syncs: vec![],
        },
        Case {
            name: "null Binds and Mounts",
            body: json!({ "HostConfig": { "Binds": null, "Mounts": null } }),
            present: vec![],
            remote_only: vec![],
            want_body: json!({ "HostConfig": { "Binds": null, "Mounts": null } }),
            want_syncs: vec![],
        },
    ];
    for case in cases {
        let mut fs = Fs::new(&case.present);
        let got = plan(&case.body, &mut fs, &case.remote_only)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(got.body, case.want_body, "{}", case.name);
        assert_eq!(got.syncs, case.want_syncs, "{}", case.name);
        let mut distinct = fs.calls.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), fs.calls.len(), "{}: asked twice", case.name);
    }
}

#[test]
fn local_kind_is_not_asked_about_volumes_or_remote_only_paths() {
    let mut fs = Fs::new(&[]);
    let body = binds(&[
        "vol:/v",
        "c:/app",
        "/var/run/docker.sock:/s",
        "./rel:/r",
        "/here:/h",
    ]);
    plan(&body, &mut fs, &[])
        .map(|_| ())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fs.calls, vec![PathBuf::from("/here")]);
}

#[test]
fn malformed_binds_are_errors() {
    for spec in ["/src:", "/a:/b:ro:x", ":/app"] {
        let mut fs = Fs::new(&[("/src", LocalKind::Dir)]);
        let got = plan(&binds(&[spec]), &mut fs, &[]);
        assert!(
            matches!(&got, Err(SyncError::InvalidBind { spec: s, .. }) if s == spec),
            "{spec}: {got:?}"
        );
    }
}
