use super::*;

fn tmp(name: &str) -> DockerContexts {
    let d = std::env::temp_dir().join(format!(
        "berth-desktop-context-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    DockerContexts::at(d)
}

fn config(c: &DockerContexts) -> Value {
    serde_json::from_str(&std::fs::read_to_string(c.dir().join("config.json")).unwrap()).unwrap()
}

#[test]
fn meta_is_where_and_what_the_docker_cli_expects() {
    let c = tmp("meta");
    assert_eq!(
        c.ensure_context("x", "tcp://127.0.0.1:1").unwrap(),
        "berth-x"
    );
    // sha256("berth-x"), as the docker CLI 28 names the directory
    let path = c.dir().join(
        "contexts/meta/d572554fa15f245d5e6d5d57895b4841116de864d6b9c9944afc4a2f532e5ed4/meta.json",
    );
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(meta["Name"], "berth-x");
    assert_eq!(
        meta["Endpoints"]["docker"],
        json!({"Host": "tcp://127.0.0.1:1", "SkipTLSVerify": false})
    );
    assert!(meta["Metadata"]["Description"]
        .as_str()
        .unwrap()
        .contains("Berth"));
    // an update keeps fields Berth does not know
    let mut m = meta.clone();
    m["Endpoints"]["kube"] = json!({"x": 1});
    m["Extra"] = json!(true);
    std::fs::write(&path, m.to_string()).unwrap();
    c.ensure_context("x", "unix:///tmp/b.sock").unwrap();
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(meta["Endpoints"]["docker"]["Host"], "unix:///tmp/b.sock");
    assert_eq!(meta["Endpoints"]["kube"], json!({"x": 1}));
    assert_eq!(meta["Extra"], true);
    assert_eq!(
        c.endpoint("berth-x").unwrap().as_deref(),
        Some("unix:///tmp/b.sock")
    );
    c.remove_context("x").unwrap();
    assert!(!c.exists("berth-x") && !path.exists());
    std::fs::remove_dir_all(c.dir()).unwrap();
}

#[test]
fn use_and_restore_keep_every_other_field() {
    let c = tmp("use");
    let original = json!({
        "auths": {"registry.example": {"auth": "dXNlcjpwYXNz"}},
        "credsStore": "desktop",
        "someFutureField": [1, {"a": null}],
        "currentContext": "mine",
    });
    std::fs::write(c.dir().join("config.json"), original.to_string()).unwrap();
    // switching to a context that does not exist changes nothing
    assert!(matches!(
        c.use_context("berth-x"),
        Err(DesktopError::NoSuchContext(_))
    ));
    c.ensure_context("x", "tcp://127.0.0.1:1").unwrap();
    assert_eq!(c.use_context("berth-x").unwrap().as_deref(), Some("mine"));
    let mut want = original.clone();
    want["currentContext"] = json!("berth-x");
    assert_eq!(config(&c), want);
    assert_eq!(c.current().unwrap().as_deref(), Some("berth-x"));
    // "mine" does not exist as a context here: restoring falls back to default
    c.restore(Some("mine")).unwrap();
    let mut want = original.clone();
    want.as_object_mut().unwrap().remove("currentContext");
    assert_eq!(config(&c), want);
    // an existing previous context is restored as such
    c.ensure_context("y", "tcp://127.0.0.1:2").unwrap();
    c.use_context("berth-y").unwrap();
    c.use_context("berth-x").unwrap();
    c.restore(Some("berth-y")).unwrap();
    assert_eq!(c.current().unwrap().as_deref(), Some("berth-y"));
    for prev in [None, Some("default")] {
        c.use_context("berth-x").unwrap();
        c.restore(prev).unwrap();
        assert_eq!(c.current().unwrap(), None);
    }
    // removing the current context leaves the CLI on default
    c.use_context("berth-x").unwrap();
    c.remove_context("x").unwrap();
    assert_eq!(c.current().unwrap(), None);
    assert_eq!(config(&c)["auths"], original["auths"]);
    std::fs::remove_dir_all(c.dir()).unwrap();
}

#[test]
fn missing_or_empty_config_is_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let c = tmp("fresh");
    c.ensure_context("x", "tcp://127.0.0.1:1").unwrap();
    assert_eq!(c.use_context("berth-x").unwrap(), None);
    let mode = std::fs::metadata(c.dir().join("config.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::write(c.dir().join("config.json"), "  \n").unwrap();
    assert_eq!(c.use_context("berth-x").unwrap(), None);
    assert_eq!(config(&c), json!({"currentContext": "berth-x"}));
    std::fs::remove_dir_all(c.dir()).unwrap();
}

#[test]
fn malformed_files_are_named_and_never_overwritten() {
    let c = tmp("bad");
    c.ensure_context("x", "tcp://127.0.0.1:1").unwrap();
    for bad in ["{\"auths\": ", "[1,2]", "\"x\""] {
        let p = c.dir().join("config.json");
        std::fs::write(&p, bad).unwrap();
        for e in [
            c.use_context("berth-x").unwrap_err(),
            c.restore(None).unwrap_err(),
            c.remove_context("x").unwrap_err(),
        ] {
            assert!(
                matches!(e, DesktopError::DockerConfigMalformed { .. }),
                "{e}"
            );
            let s = e.to_string();
            assert!(s.contains("config.json") && !s.contains('\n'), "{s}");
        }
        assert_eq!(std::fs::read_to_string(&p).unwrap(), bad);
    }
    let meta = c.meta_dir("berth-x").join("meta.json");
    std::fs::write(&meta, "{not json").unwrap();
    let e = c.ensure_context("x", "tcp://127.0.0.1:2").unwrap_err();
    assert!(matches!(e, DesktopError::ContextMalformed { .. }), "{e}");
    assert_eq!(std::fs::read_to_string(&meta).unwrap(), "{not json");
    std::fs::write(&meta, "{\"Endpoints\": 3}").unwrap();
    assert!(c.ensure_context("x", "tcp://127.0.0.1:2").is_err());
    std::fs::remove_dir_all(c.dir()).unwrap();
}

#[test]
fn names_follow_docker_rules() {
    assert_eq!(context_name("a"), "berth-a");
    assert!(is_berth_context("berth-a") && !is_berth_context("desktop-linux"));
    for ok in ["berth-a", "a1", "x.y+z_w-v"] {
        check_name(ok).unwrap();
    }
    for bad in ["", "a", "-ab", "a b", "a/b", "default", "ä1"] {
        assert!(check_name(bad).is_err(), "{bad}");
    }
}
