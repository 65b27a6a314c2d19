//! The counters of one process's run, shared by its workers: rows in and out, dirty rows, the
//! newest open epoch, rows per table, and how far the source is behind (the commit time of the
//! newest change read). The status line and the task handle read them.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters shared by the workers of one process.
#[derive(Debug)]
pub struct Metrics {
    /// Changes read from sources.
    pub rows_in: AtomicU64,
    /// Changes written to sinks.
    pub rows_out: AtomicU64,
    /// Rows sent to the dirty archive.
    pub dirty: AtomicU64,
    /// The highest epoch a source has opened.
    pub epoch: AtomicU64,
    /// Rows written per selected table.
    pub per_table: Vec<AtomicU64>,
    /// The source commit time of the newest change read, microseconds since the Unix epoch
    /// (0: none yet; snapshot rows carry the time they were read).
    pub source_time: AtomicI64,
}

impl Metrics {
    /// Zeroed counters for `tables` tables.
    pub fn new(tables: usize) -> Self {
        Metrics {
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            dirty: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            per_table: (0..tables).map(|_| AtomicU64::new(0)).collect(),
            source_time: AtomicI64::new(0),
        }
    }

    /// Notes that changes committed at `micros` were read.
    pub fn note_source_time(&self, micros: i64) {
        self.source_time.fetch_max(micros, Ordering::Relaxed);
    }

    /// How far the source is behind: now minus the commit time of the newest change read, in
    /// milliseconds (`None` before the first change).
    pub fn lag_ms(&self) -> Option<i64> {
        let t = self.source_time.load(Ordering::Relaxed);
        (t > 0).then(|| ((super::now_micros() - t) / 1000).max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_age_of_the_newest_change_read() {
        let m = Metrics::new(0);
        assert_eq!(m.lag_ms(), None);
        let now = crate::runtime::now_micros();
        m.note_source_time(now - 5_000_000);
        m.note_source_time(now - 9_000_000);
        let lag = m.lag_ms().unwrap();
        assert!((5_000..6_000).contains(&lag), "{lag}");
    }
}
