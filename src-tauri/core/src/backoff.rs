//! The one backoff every retry loop uses: the SSH session's re-dial, the
//! event stream's re-subscription, the sync worker's reconcile and a mount's
//! failed rounds. Pure (time is passed in) and table-tested; the loops only
//! sleep until [`Backoff::remaining`] says go, or until something better
//! than time (the session coming back) says so.

use std::time::{Duration, Instant};

/// Failed attempts in a row, when the next one may start, and why the last
/// one failed; the waits double from `first` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    failures: u32,
    next_at: Option<Instant>,
    last_error: Option<String>,
}

impl Backoff {
    /// No failure yet; waits will start at `first` and never exceed `max`.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            failures: 0,
            next_at: None,
            last_error: None,
        }
    }

    /// The wait after `failures` failed attempts in a row (≥ 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        self.first.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// Records a failed attempt at `now`; returns the wait before the next.
    pub fn failed(&mut self, now: Instant, error: impl Into<String>) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let wait = self.delay(self.failures);
        self.next_at = Some(now + wait);
        self.last_error = Some(error.into());
        wait
    }

    /// The attempt worked: the next failure waits `first` again.
    pub fn succeeded(&mut self) {
        *self = Self::new(self.first, self.max);
    }

    /// Whether the last attempt failed (a retry is owed).
    pub fn is_failing(&self) -> bool {
        self.failures > 0
    }

    /// How long an attempt must still wait at `now` (`None`: go ahead).
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.next_at
            .and_then(|t| t.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Failed attempts in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Why the last attempt failed, while failing.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// When the next attempt may start, while failing.
    pub fn next_at(&self) -> Option<Instant> {
        self.next_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn waits_double_up_to_the_cap() {
        let b = Backoff::new(MS(500), MS(10_000));
        let table = [
            (1, 500),
            (2, 1000),
            (3, 2000),
            (4, 4000),
            (5, 8000),
            (6, 10_000),
            (50, 10_000),
            (u32::MAX, 10_000),
        ];
        for (failures, ms) in table {
            assert_eq!(b.delay(failures), MS(ms), "{failures}");
        }
    }

    #[test]
    fn gate_opens_after_the_wait_and_resets_on_success() {
        let t0 = Instant::now();
        let mut b = Backoff::new(MS(200), MS(30_000));
        assert!(!b.is_failing());
        assert_eq!(b.remaining(t0), None);
        assert_eq!(b.failed(t0, "refused"), MS(200));
        assert!(b.is_failing());
        assert_eq!(b.remaining(t0), Some(MS(200)));
        assert_eq!(b.remaining(t0 + MS(50)), Some(MS(150)));
        assert_eq!(b.remaining(t0 + MS(200)), None);
        assert_eq!(b.failed(t0, "refused again"), MS(400));
        assert_eq!(b.failures(), 2);
        assert_eq!(b.last_error(), Some("refused again"));
        b.succeeded();
        assert!(!b.is_failing());
        assert_eq!(b.failures(), 0);
        assert_eq!(b.last_error(), None);
        assert_eq!(b.remaining(t0), None);
        // the policy survives a success
        assert_eq!(b.failed(t0, "x"), MS(200));
    }
}
