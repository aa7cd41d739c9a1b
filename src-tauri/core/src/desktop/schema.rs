//! The window's contract as a JSON Schema, generated from the types the
//! engine serialises ([`RemoteView`], [`Containers`], [`SettingsView`],
//! [`Step`], [`PublicKeyInfo`], and the agent's [`AgentStatus`]). It is
//! checked in as `ui/schema.json`; a test here fails when the types and the
//! file differ (`BERTH_BLESS=1` rewrites it), and another runs the window's
//! dev mock (`ui/dev/mock-tauri.js`) under Node and validates every answer
//! against it (`ui/dev/check-mock.mjs`), so neither `ui/API.md`'s shapes nor
//! the mock can drift from what the app sends.

use schemars::generate::SchemaSettings;
use serde_json::{json, Value};

use super::probe::Step;
use super::view::{Containers, RemoteView, SettingsView};
use crate::keys::PublicKeyInfo;
use crate::state::AgentStatus;

/// The schema document: every shape under `$defs`, and under `shapes` the
/// name each command or event answers with.
pub fn window_schema() -> Value {
    let mut g = SchemaSettings::draft2020_12().into_generator();
    let shapes = json!({
        "RemoteView": g.subschema_for::<RemoteView>(),
        "Containers": g.subschema_for::<Containers>(),
        "SettingsView": g.subschema_for::<SettingsView>(),
        "Step": g.subschema_for::<Step>(),
        "KeyInfo": g.subschema_for::<PublicKeyInfo>(),
        "AgentStatus": g.subschema_for::<AgentStatus>(),
    });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Berth: what the app sends the window (generated from berth-core; see ui/API.md)",
        "shapes": shapes,
        "$defs": g.take_definitions(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn ui_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ui")
    }

    #[test]
    fn the_checked_in_schema_is_the_types_schema() {
        let path = ui_dir().join("schema.json");
        let want = serde_json::to_string_pretty(&window_schema()).unwrap() + "\n";
        if std::env::var_os("BERTH_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "ui/schema.json is not what the types generate; run \
             `BERTH_BLESS=1 cargo test -p berth-core schema` and update ui/API.md and ui/dev/mock-tauri.js to match"
        );
    }

    #[test]
    fn the_window_mock_answers_in_the_schema() {
        let script = ui_dir().join("dev/check-mock.mjs");
        let out = match std::process::Command::new("node").arg(&script).output() {
            Ok(out) => out,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipped: node is not installed ({e}); the mock is checked in CI");
                return;
            }
            Err(e) => panic!("node is needed to check the window's mock: {e}"),
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("checked"), "{text}");
    }
}
