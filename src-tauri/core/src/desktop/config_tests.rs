use super::*;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "berth-desktop-config-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn full() -> Config {
    let mut a = Remote::new("build-box", "10.0.0.5", "dev");
    a.port = 2222;
    a.auth = Auth::Keychain {
        key: "berth-key-1".into(),
    };
    a.docker = DockerEndpoint::Unix {
        path: "/run/user/1000/docker.sock".into(),
    };
    a.mounts_root = Some("/srv/berth".into());
    a.ignores = vec!["target/".into()];
    a.honour_gitignore = true;
    a.sync_mode = SyncMode::OneWay;
    a.remote_only = vec!["/data".into()];
    let mut b = Remote::new("win.pc", "win", "me");
    b.auth = Auth::KeyFile {
        path: "~/.ssh/id_ed25519".into(),
    };
    b.docker = DockerEndpoint::desktop_tcp();
    b.listen = "unix:///tmp/berth-win.sock".into();
    b.forward_ports = false;
    b.sync = false;
    Config {
        settings: Settings {
            start_at_login: true,
            default_context: Some("build-box".into()),
            previous_context: Some("desktop-linux".into()),
            connected: vec!["build-box".into(), "win.pc".into()],
        },
        remotes: vec![a, b],
    }
}

#[test]
fn round_trips_through_the_file() {
    let dir = tmp("roundtrip");
    let path = dir.join("berth/config.toml");
    let cfg = full();
    cfg.save_to(&path).unwrap();
    assert_eq!(Config::load_from(&path).unwrap(), cfg);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_file_is_the_defaults_and_minimal_remote_gets_defaults() {
    let dir = tmp("defaults");
    assert_eq!(
        Config::load_from(&dir.join("nope.toml")).unwrap(),
        Config::default()
    );
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("c.toml");
    std::fs::write(&p, "[[remote]]\nname = \"a\"\nhost = \"h\"\nuser = \"u\"\n").unwrap();
    let cfg = Config::load_from(&p).unwrap();
    assert_eq!(cfg.remotes, vec![Remote::new("a", "h", "u")]);
    // tcp without an address means Docker Desktop's
    std::fs::write(
            &p,
            "[[remote]]\nname = \"a\"\nhost = \"h\"\nuser = \"u\"\ndocker = { kind = \"tcp\" }\nunknown_future_field = 1\n",
        )
        .unwrap();
    let cfg = Config::load_from(&p).unwrap();
    assert_eq!(cfg.remotes[0].docker, DockerEndpoint::desktop_tcp());
    std::fs::write(&p, "[[remote]]\nname = 3\n").unwrap();
    let e = Config::load_from(&p).unwrap_err().to_string();
    assert!(
        e.contains("not a valid Berth config") && !e.contains('\n'),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Nothing is excluded from synced trees unless asked: a config written
/// before the setting existed loads with `.gitignore` not honoured, and the
/// setting reaches the engine.
#[test]
fn gitignore_is_honoured_only_when_asked() {
    let r: Remote = toml::from_str("name = \"a\"\nhost = \"h\"\nuser = \"u\"\n").unwrap();
    assert!(!r.honour_gitignore && r.ignores.is_empty());
    let r: Remote =
        toml::from_str("name = \"a\"\nhost = \"h\"\nuser = \"u\"\nhonour_gitignore = true\n")
            .unwrap();
    let sync = r.engine_plan().unwrap().sync.unwrap();
    assert!(sync.honour_gitignore);
}

/// Sync is two-way unless asked: a config written before the setting existed
/// loads as two-way, one-way survives a save and a load and reaches the
/// engine, and an unknown mode is refused with an error naming the remote and
/// the field, on one line.
#[test]
fn sync_mode_is_two_way_unless_asked() {
    let dir = tmp("sync-mode");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("c.toml");
    let old = "[[remote]]\nname = \"a\"\nhost = \"h\"\nuser = \"u\"\n";
    std::fs::write(&p, old).unwrap();
    let cfg = Config::load_from(&p).unwrap();
    assert_eq!(cfg.remotes[0].sync_mode, SyncMode::TwoWay);
    let sync = cfg.remotes[0].engine_plan().unwrap().sync.unwrap();
    assert_eq!(sync.mode, SyncMode::TwoWay);

    let mut cfg = Config::default();
    let mut r = Remote::new("a", "h", "u");
    r.sync_mode = SyncMode::OneWay;
    cfg.add_remote(r).unwrap();
    cfg.save_to(&p).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains("sync_mode = \"one-way\""), "{text}");
    let loaded = Config::load_from(&p).unwrap();
    assert_eq!(loaded, cfg);
    let sync = loaded.remotes[0].engine_plan().unwrap().sync.unwrap();
    assert_eq!(sync.mode, SyncMode::OneWay);
    let two: Remote =
        toml::from_str("name = \"a\"\nhost = \"h\"\nuser = \"u\"\nsync_mode = \"two-way\"\n")
            .unwrap();
    assert_eq!(two.sync_mode, SyncMode::TwoWay);

    // the second remote is the bad one, and an unquoted value is bad too
    let good = "[[remote]]\nname = \"a\"\nhost = \"h\"\nuser = \"u\"\nsync_mode = \"one-way\"\n";
    let bad = "[[remote]]\nname = \"b\"\nhost = \"h\"\nuser = \"u\"\nlisten = \"tcp://127.0.0.1:23751\"\n";
    for value in ["\"both\"", "\"One-Way\"", "2"] {
        std::fs::write(&p, format!("{good}{bad}sync_mode = {value}\n")).unwrap();
        let e = Config::load_from(&p).unwrap_err();
        match &e {
            DesktopError::InvalidRemote { remote, field, .. } => {
                assert_eq!((remote.as_str(), *field), ("b", "sync_mode"), "{e}")
            }
            other => panic!("{other}"),
        }
        assert_eq!(
            e.to_string(),
            format!("remote \"b\": sync_mode must be one-way or two-way, not {value}")
        );
    }
    // any other shape error keeps the parse error
    std::fs::write(&p, format!("{good}port = \"x\"\n")).unwrap();
    let e = Config::load_from(&p).unwrap_err();
    assert!(matches!(e, DesktopError::ConfigParse { .. }), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The types have no field for key material, passwords or tokens: a config
/// with every field set serializes to keys from a known, secret-free set.
#[test]
fn config_never_holds_secrets() {
    fn keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    out.push(k.clone());
                    keys(v, &format!("{prefix}{k}."), out);
                }
            }
            toml::Value::Array(a) => a.iter().for_each(|v| keys(v, prefix, out)),
            toml::Value::String(s) => assert!(!s.contains("-----BEGIN"), "{s}"),
            _ => {}
        }
    }
    let text = toml::to_string(&full()).unwrap();
    let mut found = Vec::new();
    keys(&toml::from_str(&text).unwrap(), "", &mut found);
    for k in &found {
        let k = k.to_lowercase();
        for bad in [
            "pass",
            "secret",
            "token",
            "private",
            "credential",
            "pem",
            "material",
        ] {
            assert!(!k.contains(bad), "secret-looking field {k:?} in:\n{text}");
        }
    }
    // the keychain auth carries an id only
    assert!(text.contains("key = \"berth-key-1\""), "{text}");
}

#[test]
fn validation_names_the_remote_and_field() {
    let base = Remote::new("ok", "h", "u");
    type Edit = Box<dyn Fn(&mut Remote)>;
    let cases: Vec<(Edit, &str)> = vec![
        (Box::new(|r| r.name = "".into()), "name"),
        (Box::new(|r| r.name = "-x".into()), "name"),
        (Box::new(|r| r.name = "a b".into()), "name"),
        (Box::new(|r| r.name = "a/b".into()), "name"),
        (Box::new(|r| r.name = "x".repeat(65)), "name"),
        (Box::new(|r| r.host = "".into()), "host"),
        (Box::new(|r| r.host = "a b".into()), "host"),
        (Box::new(|r| r.port = 0), "port"),
        (Box::new(|r| r.user = "".into()), "user"),
        (
            Box::new(|r| r.auth = Auth::Keychain { key: " ".into() }),
            "auth.key",
        ),
        (
            Box::new(|r| r.auth = Auth::KeyFile { path: "".into() }),
            "auth.path",
        ),
        (
            Box::new(|r| r.docker = DockerEndpoint::Unix { path: "rel".into() }),
            "docker",
        ),
        (
            Box::new(|r| r.docker = DockerEndpoint::Tcp { addr: "h".into() }),
            "docker",
        ),
        (
            Box::new(|r| r.listen = "tcp://0.0.0.0:23750".into()),
            "listen",
        ),
        (Box::new(|r| r.listen = "tcp://10.1.1.1:1".into()), "listen"),
        (
            Box::new(|r| r.listen = "tcp://127.0.0.1:0".into()),
            "listen",
        ),
        (Box::new(|r| r.listen = "unix://rel".into()), "listen"),
        (Box::new(|r| r.listen = "23750".into()), "listen"),
        (Box::new(|r| r.mounts_root = Some("".into())), "mounts_root"),
        (Box::new(|r| r.jump = Some("b:0".into())), "jump"),
        (Box::new(|r| r.jump = Some("a,,b".into())), "jump"),
        (Box::new(|r| r.jump = Some("a b".into())), "jump"),
    ];
    for (edit, field) in cases {
        let mut r = base.clone();
        edit(&mut r);
        let e = r.validate().unwrap_err();
        match &e {
            DesktopError::InvalidRemote { field: f, .. } => assert_eq!(*f, field, "{e}"),
            other => panic!("{other}"),
        }
        let s = e.to_string();
        assert!(
            s.starts_with(&format!("remote {:?}: {field} ", r.name)),
            "{s}"
        );
        assert!(!s.contains('\n'), "{s}");
    }
    for good in ["a", "A1", "my.host_2-x", "9"] {
        let mut r = base.clone();
        r.name = good.into();
        r.validate().unwrap();
    }
}

#[test]
fn helpers_keep_names_and_endpoints_unique_and_settings_consistent() {
    let mut cfg = Config::default();
    cfg.add_remote(Remote::new("a", "h", "u")).unwrap();
    // same name, then same endpoint (spelled differently)
    let e = cfg.add_remote(Remote::new("a", "h2", "u")).unwrap_err();
    assert!(e.to_string().contains("is used by another remote"), "{e}");
    let mut b = Remote::new("b", "h", "u");
    b.listen = "tcp://localhost:23750".into();
    let e = cfg.add_remote(b.clone()).unwrap_err();
    assert!(
        e.to_string().contains("already used by remote \"a\""),
        "{e}"
    );
    assert_eq!(cfg.remotes.len(), 1, "a refused add changes nothing");
    b.listen = cfg.suggest_listen();
    assert_eq!(b.listen, "tcp://127.0.0.1:23751");
    cfg.add_remote(b).unwrap();

    cfg.settings.default_context = Some("a".into());
    cfg.settings.connected = vec!["a".into(), "b".into()];
    let mut renamed = cfg.remote("a").unwrap().clone();
    renamed.name = "alpha".into();
    cfg.update_remote("a", renamed).unwrap();
    assert_eq!(cfg.settings.default_context.as_deref(), Some("alpha"));
    assert_eq!(cfg.settings.connected, ["alpha", "b"]);
    assert!(matches!(
        cfg.update_remote("zzz", Remote::new("zzz", "h", "u")),
        Err(DesktopError::NoSuchRemote(_))
    ));
    cfg.remove_remote("alpha").unwrap();
    assert_eq!(cfg.settings.default_context, None);
    assert_eq!(cfg.settings.connected, ["b"]);
    assert!(cfg.remove_remote("alpha").is_err());

    cfg.settings.default_context = Some("ghost".into());
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("\"ghost\": default_context"), "{e}");
}
