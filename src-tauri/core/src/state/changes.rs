//! [`Changes`]: one agent's change signal. Whatever changes something the
//! status shows (the session's state, a container's forwards, a connection
//! opening or closing, a mount's phase, round or pending count) bumps it;
//! the desktop controller waits on it instead of comparing snapshots on a
//! timer. A `watch` channel of a counter: a slow reader sees only that
//! something changed since it last looked, never a queue of old news.

use tokio::sync::watch;

/// A change counter that wakes its subscribers; cheap to clone and bump.
#[derive(Debug, Clone)]
pub struct Changes {
    tx: watch::Sender<u64>,
}

impl Default for Changes {
    fn default() -> Self {
        Self::new()
    }
}

impl Changes {
    /// A counter at 0 with no subscriber yet.
    pub fn new() -> Self {
        Self {
            tx: watch::channel(0).0,
        }
    }

    /// Something the status shows changed.
    pub fn bump(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that is marked changed at every [`Self::bump`] after now.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bump_wakes_every_subscriber_once_however_many_came_before() {
        let c = Changes::new();
        let mut a = c.subscribe();
        let mut b = c.clone().subscribe();
        assert!(!a.has_changed().unwrap(), "nothing happened yet");
        c.bump();
        c.bump();
        a.changed().await.unwrap();
        b.changed().await.unwrap();
        assert!(!a.has_changed().unwrap(), "two bumps, one wake-up");
        assert_eq!(*a.borrow(), 2);
    }
}
