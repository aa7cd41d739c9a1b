//! Logging, and the window's "activity" view. Log events go to stderr
//! (filtered by `RUST_LOG`, default `info`) and, through
//! `berth_core::desktop::activity::layer`, into the engine's ring of recent
//! lines; the `activity` command returns those lines with the app's own CPU
//! use and resident memory (`Controller::activity`). The engine never logs
//! secrets, so neither place holds any.

use berth_core::desktop::activity;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

/// The default log filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// Installs the global subscriber: stderr plus the activity ring. A second
/// call (tests) leaves the first subscriber in place.
pub fn init_tracing() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(activity::layer())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_reach_the_activity_ring() {
        init_tracing();
        tracing::info!(remote = "box", "activity ring check");
        let lines = activity::recent();
        assert!(
            lines.iter().any(|l| l.contains("activity ring check")),
            "{lines:?}"
        );
    }
}
