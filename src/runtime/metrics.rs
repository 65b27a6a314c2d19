//! The counters of one process's run, shared by its workers: rows in and out, dirty rows, the
//! newest open epoch, rows per table. The status line and the task handle read them.

use std::sync::atomic::AtomicU64;

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
        }
    }
}
