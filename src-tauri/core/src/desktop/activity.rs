//! The window's "Activity" pane: recent log lines and what the app costs
//! (CPU and memory). The app installs [`layer`] in its tracing subscriber
//! next to whatever else it logs to; every event is then also kept, as one
//! line, in a bounded in-memory ring ([`recent`]), so the window can show
//! the last few hundred lines without a log file. [`Usage`] samples the
//! process's CPU time and resident memory between calls. Only what the
//! engine logs is kept, and the engine never logs secrets.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// How many lines the ring keeps.
pub const MAX_LINES: usize = 500;

/// What the window's `activity` command returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Activity {
    /// Recent log lines, newest last.
    pub logs: Vec<String>,
    /// CPU used by the process since the previous sample, in percent of one core.
    pub cpu_percent: f64,
    /// Resident memory of the process.
    pub rss_bytes: u64,
}

fn ring() -> &'static Mutex<VecDeque<String>> {
    static RING: OnceLock<Mutex<VecDeque<String>>> = OnceLock::new();
    RING.get_or_init(|| Mutex::new(VecDeque::with_capacity(MAX_LINES)))
}

/// Appends one line to the ring, dropping the oldest beyond [`MAX_LINES`].
pub fn push(line: String) {
    if let Ok(mut r) = ring().lock() {
        if r.len() >= MAX_LINES {
            r.pop_front();
        }
        r.push_back(line);
    }
}

/// The kept lines, newest last.
pub fn recent() -> Vec<String> {
    ring()
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default()
}

/// A tracing layer that keeps every event it sees in the ring.
pub fn layer() -> RingLayer {
    RingLayer
}

/// See [`layer`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RingLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RingLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut v = LineVisitor::default();
        event.record(&mut v);
        let meta = event.metadata();
        push(format_line(
            SystemTime::now(),
            meta.level().as_str(),
            meta.target(),
            &v.message,
            &v.fields,
        ));
    }
}

#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
}

impl Visit for LineVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

/// `HH:MM:SS LEVEL target: message k=v…` (UTC), on one line.
pub fn format_line(
    at: SystemTime,
    level: &str,
    target: &str,
    message: &str,
    fields: &str,
) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        % 86_400;
    let line = format!(
        "{:02}:{:02}:{:02} {level} {target}: {message}{fields}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    line.replace(['\n', '\r'], " ")
}

/// Samples the process's CPU use between calls, and its resident memory.
#[derive(Debug)]
pub struct Usage {
    last: Mutex<Option<(Instant, f64)>>,
}

impl Default for Usage {
    fn default() -> Self {
        Self::new()
    }
}

impl Usage {
    pub fn new() -> Self {
        Self {
            last: Mutex::new(None),
        }
    }

    /// CPU percent since the previous call (0 on the first) and RSS bytes.
    pub fn sample(&self) -> (f64, u64) {
        let now = (Instant::now(), cpu_seconds());
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let pct = match *last {
            Some((t, cpu)) => {
                let wall = now.0.duration_since(t).as_secs_f64();
                if wall > 0.0 {
                    ((now.1 - cpu) / wall * 100.0).max(0.0)
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        *last = Some(now);
        (pct, rss_bytes())
    }

    /// The whole [`Activity`]: recent lines plus a sample.
    pub fn activity(&self) -> Activity {
        let (cpu_percent, rss_bytes) = self.sample();
        Activity {
            logs: recent(),
            cpu_percent,
            rss_bytes,
        }
    }
}

/// User plus system CPU time of the process, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Resident memory now (Linux: /proc/self/statm); elsewhere the peak.
fn rss_bytes() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let pages = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok());
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if let (Some(p), true) = (pages, page > 0) {
            return p * page as u64;
        }
    }
    // SAFETY: as above.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    let max = ru.ru_maxrss.max(0) as u64;
    if cfg!(target_os = "macos") {
        max
    } else {
        max * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn lines_are_kept_formatted_and_bounded() {
        let at = UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 3661);
        assert_eq!(
            format_line(at, "WARN", "berth", "a\nb", " k=v"),
            "01:01:01 WARN berth: a b k=v"
        );
        let sub = tracing_subscriber::registry().with(layer());
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(remote = "box", "ring test {}", 42);
        });
        let lines = recent();
        let line = lines
            .iter()
            .rev()
            .find(|l| l.contains("ring test"))
            .unwrap();
        assert!(
            line.contains("WARN") && line.ends_with("ring test 42 remote=box"),
            "{line}"
        );
        for i in 0..MAX_LINES + 10 {
            push(format!("filler {i}"));
        }
        let lines = recent();
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(lines.last().unwrap(), &format!("filler {}", MAX_LINES + 9));
    }

    #[test]
    fn usage_is_sampled() {
        let u = Usage::new();
        let (first, rss) = u.sample();
        assert_eq!(first, 0.0);
        assert!(rss > 1024 * 1024, "{rss}");
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let (pct, _) = u.sample();
        assert!(pct >= 0.0);
        assert!(u.activity().logs.len() <= MAX_LINES);
    }
}
