//! Live counters of one replica's sync, shared between the code moving the
//! files, the watcher and the status endpoint. Counters only: nothing here
//! decides anything, so relaxed atomics are enough.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::state::TransferProgress;

use super::tree::Op;

/// What the current (or last) sync of a replica has to move and has moved,
/// and how many local changes wait for the next one.
#[derive(Debug, Default)]
pub struct Progress {
    pub files_total: AtomicU64,
    pub bytes_total: AtomicU64,
    pub files_done: AtomicU64,
    pub bytes_done: AtomicU64,
    /// Paths the watcher reported since the current sync started its scan.
    pub pending: AtomicU64,
    /// When the current (or last) sync began, in ms since the Unix epoch.
    pub began_ms: AtomicU64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Progress {
    /// Starts counting a sync that will apply `ops`.
    pub fn begin(&self, ops: &[Op]) {
        let (files, bytes) = ops.iter().fold((0, 0), |(f, b), op| match op {
            Op::Put { size, .. } => (f + 1, b + size),
            _ => (f, b),
        });
        self.files_total.store(files, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
        self.files_done.store(0, Ordering::Relaxed);
        self.bytes_done.store(0, Ordering::Relaxed);
        self.began_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Counts one file that landed.
    pub fn file_done(&self, bytes: u64) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A scan is about to start: everything reported so far will be in it.
    pub fn take_pending(&self) -> u64 {
        self.pending.swap(0, Ordering::Relaxed)
    }

    pub fn add_pending(&self, paths: u64) {
        self.pending.fetch_add(paths, Ordering::Relaxed);
    }

    /// Files and bytes done of total; the rate is the average since the
    /// sync began (0 before any byte).
    pub fn view(&self) -> TransferProgress {
        let bytes_done = self.bytes_done.load(Ordering::Relaxed);
        let began = self.began_ms.load(Ordering::Relaxed);
        let ms = now_ms().saturating_sub(began).max(1);
        let rate = if began == 0 {
            0
        } else {
            bytes_done * 1000 / ms
        };
        TransferProgress {
            files_done: self.files_done.load(Ordering::Relaxed),
            files_total: self.files_total.load(Ordering::Relaxed),
            bytes_done,
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            bytes_per_sec: rate,
        }
    }
}

/// How long a sync runs before its progress is told in the log, and how
/// often after that.
const TELL_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// One progress line: files and bytes done of total, and the rate so far.
pub fn line(what: &str, files: (u64, u64), bytes: (u64, u64), secs: f64) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    let rate = if secs > 0.0 { mb(bytes.0) / secs } else { 0.0 };
    format!(
        "{what}: {}/{} files, {:.1}/{:.1} MB, {rate:.1} MB/s",
        files.0,
        files.1,
        mb(bytes.0),
        mb(bytes.1)
    )
}

impl Progress {
    /// Runs `work`; if it takes longer than a second, tells its progress in
    /// the log (target `berth_core::sync::progress`, shown by `berth-agent`)
    /// every second until it ends.
    pub async fn told<T>(&self, what: &str, work: impl std::future::Future<Output = T>) -> T {
        let started = std::time::Instant::now();
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + TELL_AFTER, TELL_AFTER);
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = tick.tick() => {
                    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
                    tracing::info!(
                        "{}",
                        line(
                            what,
                            (load(&self.files_done), load(&self.files_total)),
                            (load(&self.bytes_done), load(&self.bytes_total)),
                            started.elapsed().as_secs_f64(),
                        )
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_and_bytes_of_puts_only() {
        let p = Progress::default();
        p.begin(&[
            Op::Mkdir("d".into()),
            Op::Put {
                path: "d/a".into(),
                size: 10,
                exec: false,
            },
            Op::Put {
                path: "b".into(),
                size: 5,
                exec: true,
            },
            Op::Remove("c".into()),
        ]);
        p.file_done(10);
        let got = p.view();
        assert_eq!(
            (
                got.files_done,
                got.files_total,
                got.bytes_done,
                got.bytes_total
            ),
            (1, 2, 10, 15)
        );
        // 10 bytes in the milliseconds since begin()
        assert!(
            got.bytes_per_sec > 0 && got.bytes_per_sec <= 10_000,
            "{got:?}"
        );
        assert_eq!(Progress::default().view().bytes_per_sec, 0);
        assert_eq!(
            line("first sync of /src", (1, 2), (5_000_000, 10_000_000), 2.0),
            "first sync of /src: 1/2 files, 5.0/10.0 MB, 2.5 MB/s"
        );
        p.add_pending(3);
        assert_eq!(p.take_pending(), 3);
        assert_eq!(p.take_pending(), 0);
    }
}
