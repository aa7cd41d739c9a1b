//! Giving freed heap back to the system. glibc keeps what a burst freed (500
//! connections at once, a sync of 100,000 files) in its arenas, so without
//! this the agent's RSS would stay at the peak of its busiest moment.
//! Connections note their end here; a trimmer releases memory once activity
//! has settled, never while it is still going on, and sleeps without a timer
//! while nothing ends (an idle agent wakes for nothing).

use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Told of every connection end, process-wide (the allocator is process-wide
/// too); a permit is kept when the trimmer is not waiting, so none is missed.
static ENDED: Notify = Notify::const_new();

/// How long activity must have settled before memory is released.
const SETTLE: Duration = Duration::from_secs(2);

/// A client or forwarded connection ended.
pub fn note_connection_end() {
    ENDED.notify_one();
}

/// Returns freed heap pages to the system now.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages of the allocator's own heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Blocks this large or larger are mapped on their own (see [`tune_allocator`]).
pub const MMAP_THRESHOLD: usize = 128 * 1024;

/// Sets the allocator up for a long-lived process; call it first in `main`,
/// before any thread starts. Two malloc arenas instead of eight per core:
/// the threads are mostly idle, and every arena keeps its own freed pages.
/// A fixed mmap threshold: glibc's moving one rises to the largest block
/// freed, after which a scan's listing and the vectors a manifest is built
/// from come from the heap, among the small entries of the manifest that
/// stays, and those pin the freed pages in RSS (measured on a watched
/// 100,000-file tree: 227-380 bytes per file with the default, 113-116 with
/// this). Blocks above the threshold are mapped and returned whole.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
    }
}

/// Releases freed memory once after each burst of connections, when no
/// connection has ended for `SETTLE` (2 s); runs until `stop`.
pub async fn trim_when_idle(stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ENDED.notified() => {}
        }
        // a burst: wait until it has been quiet for SETTLE
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ENDED.notified() => continue,
                _ = tokio::time::sleep(SETTLE) => break,
            }
        }
        release_freed_memory();
    }
}
