//! The window's Tauri capability grants exactly what the UI calls (issue 10).
//!
//! Reads the files only (no GUI build): `src-tauri/capabilities/default.json`
//! must list one `allow-<command>` per command `ui/js` invokes and one core
//! permission per Tauri JS API it uses, and nothing else; every app command
//! the UI calls must be registered in `src-tauri/src/lib.rs` and declared in
//! `src-tauri/build.rs` (without that declaration Tauri would not check app
//! commands against the capability at all).

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// The text without whole-line `//` comments and `/* … */` blocks, so that
/// documentation naming a command does not count as calling it.
fn code_only(text: &str) -> String {
    let mut out = String::new();
    let mut in_block = false;
    for line in text.lines() {
        let t = line.trim_start();
        if in_block {
            if t.contains("*/") {
                in_block = false;
            }
            continue;
        }
        if t.starts_with("/*") {
            in_block = !t.contains("*/");
            continue;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The double-quoted string right after each occurrence of `needle`
/// (`needle` ends with the opening quote).
fn quoted_after(text: &str, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(needle) {
        rest = &rest[i + needle.len()..];
        let end = rest.find('"').expect("unterminated string");
        found.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    found
}

/// `a.b` for each `tauri().a.b(` in api.js.
fn tauri_api_uses(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("tauri().") {
        rest = &rest[i + "tauri().".len()..];
        let end = rest.find('(').expect("tauri(). not followed by a call");
        found.push(rest[..end].to_string());
    }
    found
}

fn ui_js_files() -> Vec<(String, String)> {
    let dir = root().join("ui/js");
    let mut files: Vec<(String, String)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "js"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = fs::read_to_string(&p).unwrap();
            (name, code_only(&text))
        })
        .collect();
    files.sort();
    assert!(
        files.iter().any(|(n, _)| n == "api.js"),
        "ui/js/api.js missing"
    );
    files
}

/// The app commands `ui/js` invokes (snake_case).
fn ui_commands() -> BTreeSet<String> {
    let mut commands = BTreeSet::new();
    for (name, code) in ui_js_files() {
        if name == "api.js" {
            commands.extend(quoted_after(&code, "call(\""));
        } else {
            // Only api.js talks to Tauri: anything else would escape this test.
            assert!(
                !code.contains("invoke(") && !code.contains("call(\""),
                "ui/js/{name} invokes a command itself: go through api.js"
            );
            // app.js may only check that the API is absent (to load the mock).
            let uses = code.matches("__TAURI__").count();
            let absent_checks = code.matches("!window.__TAURI__").count();
            assert_eq!(
                uses, absent_checks,
                "ui/js/{name} uses window.__TAURI__: go through api.js"
            );
        }
    }
    assert!(!commands.is_empty(), "no call(\"…\") found in ui/js/api.js");
    commands
}

/// Every permission the UI needs: its commands and its Tauri JS API uses.
fn ui_permissions() -> BTreeSet<String> {
    let mut perms: BTreeSet<String> = ui_commands()
        .iter()
        .map(|c| format!("allow-{}", c.replace('_', "-")))
        .collect();
    let files = ui_js_files();
    let api = &files.iter().find(|(n, _)| n == "api.js").unwrap().1;
    for api_use in tauri_api_uses(api) {
        let needs: &[&str] = match api_use.as_str() {
            // the body of call(): its commands are counted above
            "core.invoke" => &[],
            "event.listen" => &["core:event:allow-listen"],
            // once() unlistens itself after the first event
            "event.once" => &["core:event:allow-listen", "core:event:allow-unlisten"],
            "event.emit" => &["core:event:allow-emit"],
            "event.emitTo" => &["core:event:allow-emit-to"],
            other => panic!(
                "ui/js/api.js uses the Tauri API {other}: add the permission it needs to this \
                 map (tests/capabilities.rs) and to src-tauri/capabilities/default.json"
            ),
        };
        perms.extend(needs.iter().map(|s| s.to_string()));
    }
    // event.listen resolves to an unlisten function; calling it needs a permission
    if files
        .iter()
        .any(|(n, code)| n != "api.js" && code.contains("unlisten"))
    {
        perms.insert("core:event:allow-unlisten".to_string());
    }
    perms
}

/// The commands registered with `tauri::generate_handler![…]` in lib.rs.
fn registered_commands() -> BTreeSet<String> {
    let lib = read("src-tauri/src/lib.rs");
    let start = lib
        .find("generate_handler![")
        .expect("no generate_handler! in src-tauri/src/lib.rs");
    let body = &lib[start..];
    let body = &body[..body.find(']').expect("unterminated generate_handler!")];
    body.split(|c: char| c == ',' || c == '[' || c.is_whitespace())
        .filter_map(|t| t.strip_prefix("commands::"))
        .map(str::to_string)
        .collect()
}

/// The commands declared in build.rs's `COMMANDS` (the app's ACL manifest).
fn declared_commands() -> BTreeSet<String> {
    const MARK: &str = "const COMMANDS: &[&str] = &[";
    let build = read("src-tauri/build.rs");
    let start = build
        .find(MARK)
        .expect("no COMMANDS list in src-tauri/build.rs")
        + MARK.len();
    let body = &build[start..];
    let body = &body[..body.find("];").expect("unterminated COMMANDS")];
    body.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('"'))
        .map(|l| l.trim_end_matches(',').trim_matches('"').to_string())
        .collect()
}

#[test]
fn the_capability_grants_exactly_what_the_ui_uses() {
    let cap: serde_json::Value =
        serde_json::from_str(&read("src-tauri/capabilities/default.json")).unwrap();
    let granted: BTreeSet<String> = cap["permissions"]
        .as_array()
        .expect("permissions array")
        .iter()
        .map(|p| {
            p.as_str()
                .expect("permissions are plain identifiers (no scoped objects)")
                .to_string()
        })
        .collect();
    let needed = ui_permissions();
    let extra: Vec<_> = granted.difference(&needed).collect();
    let missing: Vec<_> = needed.difference(&granted).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "src-tauri/capabilities/default.json grants permissions ui/js does not use: {extra:?}; \
         and misses ones it uses: {missing:?}"
    );
    // the main window only, and no remote (web) origin ever gets it
    assert_eq!(cap["windows"], serde_json::json!(["main"]));
    assert!(
        cap.get("remote").is_none() && cap.get("webviews").is_none(),
        "the capability must not extend to remote URLs or other webviews: {cap}"
    );
}

#[test]
fn no_other_capability_file_grants_more() {
    // Tauri loads every file of capabilities/ (and tauri.conf.json's list).
    let dir = root().join("src-tauri/capabilities");
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["default.json"], "files in {}", dir.display());
    let conf: serde_json::Value = serde_json::from_str(&read("src-tauri/tauri.conf.json")).unwrap();
    assert!(
        conf["app"]["security"].get("capabilities").is_none(),
        "tauri.conf.json adds capabilities of its own"
    );
}

#[test]
fn app_commands_are_under_access_control() {
    let registered = registered_commands();
    let declared = declared_commands();
    assert!(!registered.is_empty(), "no commands parsed from lib.rs");
    assert_eq!(
        registered, declared,
        "src-tauri/build.rs COMMANDS must list exactly the commands lib.rs registers \
         (a registered but undeclared command has no permission: the window cannot call it)"
    );
    let ui = ui_commands();
    let unknown: Vec<_> = ui.difference(&registered).collect();
    assert!(
        unknown.is_empty(),
        "ui/js calls commands the app does not register: {unknown:?}"
    );
}

#[test]
fn the_parsers_here_see_what_they_should() {
    // guards against this test passing by reading nothing
    assert!(ui_commands().contains("trust_host_key"));
    assert!(ui_permissions().contains("core:event:allow-listen"));
    assert_eq!(
        quoted_after(r#"call("a", x); call("b_c")"#, "call(\""),
        ["a", "b_c"]
    );
    assert_eq!(code_only("// call(\"x\")\nkeep\n/*\n gone\n*/\n"), "keep\n");
    assert!(Path::new(&root()).join("ui/js/api.js").exists());
}
