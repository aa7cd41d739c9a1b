//! How the [`Controller`] learns that something it shows changed, without
//! polling: each connected remote's agent pushes its changes ([`relay`]:
//! the session's state, forwards, connections, mounts), the docker CLI's
//! `config.json` is watched for another current context
//! ([`Controller::watch_docker_config`]), and the controller's own edits
//! bump at once. Every one of them ends in [`Controller::bump`], which wakes
//! [`Controller::subscribe`]'s receivers (the window's bridge, the tray).
//! An idle controller does nothing: no timer runs unless a transfer is
//! under way, and then only to show its progress.

use super::*;

/// How often the progress of a transfer under way is shown.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// A burst of changes (a hundred connections, a round's phases) is told as
/// one; short enough that a `docker run -p` shows well within 500 ms.
const COALESCE: Duration = Duration::from_millis(30);

impl Controller {
    /// Bumps the change counter.
    pub(super) fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Starts telling `running`'s changes (until it stops).
    pub(super) fn follow(&self, running: &Arc<Running>) {
        let agent = running.agent.clone();
        let stop = running.stopped();
        let me = self.me.clone();
        self.tasks.spawn(relay(agent, me, stop));
    }

    /// The current docker context as last read (see [`Self::watch_docker_config`]).
    pub(super) fn current_context(&self) -> Option<String> {
        self.context
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Reads the current docker context again; bumps if it changed.
    pub(super) fn reread_context(&self) {
        let now = self.contexts.current().ok().flatten();
        let changed = match self.context.lock() {
            Ok(mut c) if *c != now => {
                *c = now;
                true
            }
            _ => false,
        };
        if changed {
            self.bump();
        }
    }

    /// Watches the docker CLI's config directory (once): a `docker context
    /// use` elsewhere is shown as soon as `config.json` changes. The
    /// directory is made if missing (the CLI makes it on first use too).
    pub(super) fn watch_docker_config(&self) {
        use notify::{RecursiveMode, Watcher};
        let Ok(mut slot) = self.context_watch.lock() else {
            return;
        };
        if slot.is_some() {
            return;
        }
        let dir = self.contexts.dir().to_path_buf();
        let me = self.me.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let touches_config = res.as_ref().map_or(true, |e| {
                !matches!(e.kind, notify::EventKind::Access(_))
                    && e.paths.iter().any(|p| p.ends_with("config.json"))
            });
            if let (true, Some(ctl)) = (touches_config, me.upgrade()) {
                ctl.reread_context();
            }
        });
        let watched = std::fs::create_dir_all(&dir)
            .map_err(notify::Error::io)
            .and(watcher)
            .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
        match watched {
            Ok(w) => *slot = Some(w),
            Err(e) => tracing::warn!(
                "cannot watch {} ({e}); a docker context chosen elsewhere shows after Berth's next change",
                dir.display()
            ),
        }
        drop(slot);
        self.reread_context();
    }
}

/// Tells the controller of each change `agent` pushes, until `stop`: a
/// burst as one bump; while a mount's transfer is under way, its progress
/// every [`PROGRESS_EVERY`] too.
async fn relay(agent: Arc<crate::agent::Agent>, me: Weak<Controller>, stop: CancellationToken) {
    let mut changes = agent.changes();
    loop {
        let transferring = agent.status().transfer_under_way();
        tokio::select! {
            _ = stop.cancelled() => break,
            r = changes.changed() => {
                if r.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep(PROGRESS_EVERY), if transferring => {}
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(COALESCE) => {}
        }
        changes.borrow_and_update();
        let Some(ctl) = me.upgrade() else { break };
        ctl.bump();
    }
}
