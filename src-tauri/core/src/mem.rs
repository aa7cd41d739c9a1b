//! Giving freed heap back to the system. glibc keeps what a burst freed (500
//! connections at once, a sync of 100,000 files) in its arenas, so without
//! this the agent's RSS would stay at the peak of its busiest moment.
//! Connections note their end here; a trimmer releases memory once activity
//! has settled, never while it is still going on.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Connections that ended, process-wide (the allocator is process-wide too).
static ENDED: AtomicU64 = AtomicU64::new(0);

/// How long activity must have settled before memory is released.
const SETTLE: Duration = Duration::from_secs(2);

/// A client or forwarded connection ended.
pub fn note_connection_end() {
    ENDED.fetch_add(1, Relaxed);
}

/// Returns freed heap pages to the system now.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages of the allocator's own heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Releases freed memory once after each burst of connections, when no
/// connection has ended for [`SETTLE`]; runs until `stop`.
pub async fn trim_when_idle(stop: CancellationToken) {
    let mut seen = ENDED.load(Relaxed);
    let mut owed = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(SETTLE) => {}
        }
        let now = ENDED.load(Relaxed);
        if now != seen {
            seen = now;
            owed = true;
        } else if owed {
            owed = false;
            release_freed_memory();
        }
    }
}
