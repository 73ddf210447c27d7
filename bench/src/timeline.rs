//! Where in a run the slow deliveries were: deliveries grouped by when their message was sent,
//! in windows of fixed length, with each window's count, slow count and worst latency. A tail
//! that comes in bursts at a fixed period points at a periodic task; one spread evenly does not.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One window's counters.
#[derive(Default)]
struct Window {
    deliveries: AtomicU64,
    slow: AtomicU64,
    worst_micros: AtomicU64,
}

/// Deliveries by send time, from [`Timeline::begin`] on.
pub struct Timeline {
    /// When sending started, in nanoseconds since the run's epoch (0: not yet).
    start_nanos: AtomicU64,
    /// The same moment in microseconds since the Unix epoch, to line the table up with logs.
    start_unix_micros: AtomicU64,
    window: Duration,
    slow_micros: u64,
    windows: Vec<Window>,
}

impl Timeline {
    /// Windows of `window` covering `span` from when sending begins; a delivery slower than
    /// `slow` counts as slow.
    pub fn new(span: Duration, window: Duration, slow: Duration) -> Self {
        let window = window.max(Duration::from_millis(1));
        let count = (span.as_nanos() / window.as_nanos()) as usize + 1;
        Self {
            start_nanos: AtomicU64::new(0),
            start_unix_micros: AtomicU64::new(0),
            window,
            slow_micros: slow.as_micros() as u64,
            windows: (0..count).map(|_| Window::default()).collect(),
        }
    }

    /// Sending starts now, `nanos` after the run's epoch.
    pub fn begin(&self, nanos: u64) {
        self.start_nanos.store(nanos.max(1), Ordering::Relaxed);
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        self.start_unix_micros.store(unix, Ordering::Relaxed);
    }

    /// Counts a delivery of a message sent at `sent_nanos` that took `micros`.
    pub fn record(&self, sent_nanos: u64, micros: u64) {
        let start = self.start_nanos.load(Ordering::Relaxed);
        if start == 0 {
            return;
        }
        let Some(since) = sent_nanos.checked_sub(start) else {
            return;
        };
        let index = (since / self.window.as_nanos() as u64) as usize;
        let Some(w) = self.windows.get(index) else {
            return;
        };
        w.deliveries.fetch_add(1, Ordering::Relaxed);
        if micros > self.slow_micros {
            w.slow.fetch_add(1, Ordering::Relaxed);
        }
        w.worst_micros.fetch_max(micros, Ordering::Relaxed);
    }

    /// A table of the windows that had deliveries.
    pub fn print(&self) {
        println!(
            "sending began at {:.3} (Unix seconds)",
            self.start_unix_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        println!(
            "| sent at ms | deliveries | over {} ms | worst ms |",
            self.slow_micros as f64 / 1000.0
        );
        println!("|---|---|---|---|");
        for (i, w) in self.windows.iter().enumerate() {
            let deliveries = w.deliveries.load(Ordering::Relaxed);
            if deliveries == 0 {
                continue;
            }
            println!(
                "| {} | {deliveries} | {} | {:.1} |",
                i as u128 * self.window.as_millis(),
                w.slow.load(Ordering::Relaxed),
                w.worst_micros.load(Ordering::Relaxed) as f64 / 1000.0
            );
        }
    }
}
