//! Bringing a dropped session back: capped exponential backoff between
//! attempts ([`Backoff`], pure), and a supervisor task that re-dials as soon
//! as the backoff allows, so everything riding on the session (the event
//! stream, forwards, sync) comes back without waiting for a request.
//!
//! While the backoff runs, channel requests fail at once with the last error
//! and the time of the next attempt instead of each trying to dial: during an
//! outage the Docker CLI gets a clear answer in milliseconds, never a hang.

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use crate::backoff::Backoff;

use super::session::SshSession;

/// Wait after the first failed attempt; it doubles with each failure.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest wait between two attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(10);

/// The session's re-dial policy: 500 ms, doubling, at most 10 s.
pub fn session_backoff() -> Backoff {
    Backoff::new(FIRST_RETRY, MAX_RETRY)
}

/// What the supervisor waits for before it looks at the session again.
pub(super) enum Look {
    /// The session is down: dial after this wait (the backoff's).
    Dial(Duration),
    /// The session is up: its end.
    Drop(super::session::SessionHandle),
    /// A dial is under way: the state it ends in.
    StateChange(watch::Receiver<super::session::ConnState>),
    /// Closed for good.
    Never,
}

/// Re-dials the session whenever it is down and the backoff allows, until
/// `stop`. Holds the session weakly (it ends when the session is dropped)
/// and never polls: while the session is up it waits for it to end.
pub(super) async fn supervise(session: Weak<SshSession>, stop: CancellationToken) {
    loop {
        let look = match session.upgrade() {
            Some(s) => s.next_look(),
            None => return,
        };
        let dial = match look {
            Look::Never => return,
            Look::Dial(wait) => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
                }
                true
            }
            Look::Drop(h) => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = h.closed() => {}
                }
                true
            }
            Look::StateChange(mut state) => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = state.changed() => {}
                }
                false
            }
        };
        let Some(s) = session.upgrade() else { return };
        if dial && s.needs_dial_now() {
            // errors are recorded in the backoff and the state
            let _ = s.handle().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_retries_from_half_a_second_up_to_ten() {
        let b = session_backoff();
        assert_eq!(b.delay(1), Duration::from_millis(500));
        assert_eq!(b.delay(5), Duration::from_secs(8));
        assert_eq!(b.delay(6), Duration::from_secs(10));
    }
}
