//! The trust boundary, tested by attacking it (issue 10): the other user of
//! the remote daemon forging and copying labels, a container planting links
//! in its synced mount, a web page speaking to the endpoint, a known_hosts
//! file with markers, a hostile local tree. Each test plays the attacker
//! against the real agent on the test bed and asserts the outcome the user
//! is owed.

// Test code (helpers included, which clippy does not see as tests): a
// panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "security/labels.rs"]
mod labels;

#[path = "security/http.rs"]
mod http;

#[path = "security/replica.rs"]
mod replica;

#[path = "security/known_hosts.rs"]
mod known_hosts;

/// Every agent of this machine follows this machine's containers, so the
/// modules' tests that sync or forward take turns (as tests/sync.rs does).
pub static SYNC_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
