//! Bringing a dropped session back: capped exponential backoff between
//! attempts ([`Backoff`], pure), and a supervisor task that re-dials as soon
//! as the backoff allows, so everything riding on the session (the event
//! stream, forwards, sync) comes back without waiting for a request.
//!
//! While the backoff runs, channel requests fail at once with the last error
//! and the time of the next attempt instead of each trying to dial: during an
//! outage the Docker CLI gets a clear answer in milliseconds, never a hang.

use std::sync::Weak;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::session::SshSession;

/// Wait after the first failed attempt; it doubles with each failure.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest wait between two attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(10);

/// Failed attempts in a row and when the next one may start.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    failures: u32,
    next_at: Option<Instant>,
    last_error: Option<String>,
}

impl Backoff {
    /// The wait after `failures` failed attempts in a row (≥ 1).
    pub fn delay(failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        FIRST_RETRY.saturating_mul(1u32 << doublings).min(MAX_RETRY)
    }

    /// Records a failed attempt at `now`; returns the wait before the next.
    pub fn failed(&mut self, now: Instant, error: String) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let wait = Self::delay(self.failures);
        self.next_at = Some(now + wait);
        self.last_error = Some(error);
        wait
    }

    /// The session is up again.
    pub fn succeeded(&mut self) {
        *self = Self::default();
    }

    /// How long an attempt must still wait at `now` (`None`: go ahead).
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.next_at
            .and_then(|t| t.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    pub fn next_at(&self) -> Option<Instant> {
        self.next_at
    }
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
    fn waits_double_up_to_the_cap() {
        let table = [
            (1, 500),
            (2, 1000),
            (3, 2000),
            (4, 4000),
            (5, 8000),
            (6, 10_000),
            (50, 10_000),
        ];
        for (failures, ms) in table {
            assert_eq!(
                Backoff::delay(failures),
                Duration::from_millis(ms),
                "{failures}"
            );
        }
    }

    #[test]
    fn gate_opens_after_the_wait_and_resets_on_success() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        assert_eq!(b.remaining(t0), None);
        assert_eq!(b.failed(t0, "refused".into()), FIRST_RETRY);
        assert_eq!(b.remaining(t0), Some(FIRST_RETRY));
        assert_eq!(b.remaining(t0 + FIRST_RETRY), None);
        assert_eq!(b.failed(t0, "refused".into()), 2 * FIRST_RETRY);
        assert_eq!(b.failures(), 2);
        assert_eq!(b.last_error(), Some("refused"));
        b.succeeded();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.remaining(t0), None);
    }
}
