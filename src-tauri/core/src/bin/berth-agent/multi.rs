//! `berth-agent --config`: every remote of the tray app's config file, each
//! on its own local endpoint with its own SSH session, from one process. A
//! remote that cannot connect is reported and left out; the others serve.
//! Keys kept in the keychain are read from the OS keychain, as the app does.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use berth_core::desktop::config::Config;
use berth_core::desktop::controller::{Controller, ControllerOptions};
use berth_core::keys::KeyringStore;

/// Connects the remotes (all, or those in `only`), prints one line per
/// remote, serves until `stop` resolves, then disconnects them all.
pub async fn run(
    config_path: PathBuf,
    known_hosts: PathBuf,
    only: &[String],
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = Config::load_from(&config_path).map_err(super::said)?;
    let names: Vec<String> = config
        .remotes
        .iter()
        .map(|r| r.name.clone())
        .filter(|n| only.is_empty() || only.contains(n))
        .collect();
    if let Some(missing) = only.iter().find(|n| !names.contains(n)) {
        anyhow::bail!(
            "no remote named {missing:?} in {}; it has: {}",
            config_path.display(),
            config
                .remotes
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if names.is_empty() {
        anyhow::bail!(
            "{} has no remotes; add one in the app or under [[remote]]",
            config_path.display()
        );
    }
    let controller = Controller::new(ControllerOptions {
        config_path: config_path.clone(),
        store: Arc::new(KeyringStore::new()),
        known_hosts,
        docker_config: None,
    })
    .map_err(super::said)?;
    // all at once: a slow or dead remote does not delay the others
    let attempts = names.iter().map(|name| {
        let c = controller.clone();
        async move { (name.clone(), c.connect(name).await) }
    });
    let mut served = 0;
    for (name, result) in futures_util::future::join_all(attempts).await {
        match result {
            Ok(()) => {
                served += 1;
                let view = controller.view(&name);
                let listen = view
                    .as_ref()
                    .map(|v| v.remote.listen.clone())
                    .unwrap_or_default();
                let endpoint = view.and_then(|v| v.endpoint).unwrap_or_default();
                println!("berth-agent: ready: {name} on {listen} via {endpoint}");
            }
            Err(e) => println!("berth-agent: {name}: {}", berth_core::hint::for_cli(&e)),
        }
    }
    // (no `shutdown` here or below: it would record the connected remotes
    // in the app's settings, which are the tray app's, not this process's)
    if served == 0 {
        anyhow::bail!("no remote could be connected");
    }
    stop.await;
    for name in &names {
        controller.disconnect(name).await;
    }
    Ok(())
}
