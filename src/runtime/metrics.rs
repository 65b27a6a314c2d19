//! The counters of one process's run, shared by its workers: rows in and out, dirty rows, the
//! newest open epoch, rows and snapshot chunks per table, how far the source is behind (the
//! commit time of the newest change read, or the time of a heartbeat that says the reader is
//! at the source's end), and how long epochs take from their close to their checkpoint. The
//! status line, the task handle and the metrics file ([`Published`], read by `ferry serve`)
//! read them.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

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
    /// Per selected table: its source and target names, snapshot chunks and last change.
    pub tables: Vec<TableCounters>,
    /// The source commit time of the newest change read, microseconds since the Unix epoch
    /// (0: none yet; snapshot rows carry the time they were read).
    pub source_time: AtomicI64,
    /// The run's timely workers in this process.
    pub workers: AtomicU64,
    /// Epochs checkpointed, and the sum and last of their close-to-checkpoint times (µs).
    pub commits: AtomicU64,
    /// See [`Metrics::commits`].
    pub commit_micros_sum: AtomicU64,
    /// See [`Metrics::commits`].
    pub commit_micros_last: AtomicU64,
    /// The source time (see `source_time`) the newest checkpoint covers: what the target
    /// holds is this old (0: no checkpoint yet).
    pub committed_source_time: AtomicI64,
    /// Epochs closed and not checkpointed yet, with the time each closed and the source time
    /// read by then.
    closed: Mutex<VecDeque<(u64, i64, i64)>>,
}

/// One table's counters.
#[derive(Debug, Default)]
pub struct TableCounters {
    /// The source table (`db.table`).
    pub source: String,
    /// The target table.
    pub target: String,
    /// Snapshot chunks planned for the table (0: none, or no snapshot).
    pub chunks_total: AtomicU64,
    /// Snapshot chunks read.
    pub chunks_done: AtomicU64,
    /// When a row of the table was last written, microseconds since the Unix epoch.
    pub last_change_micros: AtomicI64,
}

impl Metrics {
    /// Zeroed counters for `tables` tables without names.
    pub fn new(tables: usize) -> Self {
        Self::with_tables((0..tables).map(|i| (format!("table {i}"), format!("table {i}"))).collect())
    }

    /// Zeroed counters for these tables, `(source, target)` names in the plan's table order.
    pub fn with_tables(names: Vec<(String, String)>) -> Self {
        Metrics {
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            dirty: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            per_table: names.iter().map(|_| AtomicU64::new(0)).collect(),
            tables: names
                .into_iter()
                .map(|(source, target)| TableCounters { source, target, ..Default::default() })
                .collect(),
            source_time: AtomicI64::new(0),
            workers: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            commit_micros_sum: AtomicU64::new(0),
            commit_micros_last: AtomicU64::new(0),
            committed_source_time: AtomicI64::new(0),
            closed: Mutex::new(VecDeque::new()),
        }
    }

    /// Notes that changes committed at `micros` were read.
    pub fn note_source_time(&self, micros: i64) {
        self.source_time.fetch_max(micros, Ordering::Relaxed);
    }

    /// How far the reader is behind the source: now minus the commit time of the newest change
    /// read, in milliseconds (`None` before the first change).
    pub fn lag_ms(&self) -> Option<i64> {
        let t = self.source_time.load(Ordering::Relaxed);
        (t > 0).then(|| ((super::now_micros() - t) / 1000).max(0))
    }

    /// How far the target is behind the source: now minus the source time the newest
    /// checkpoint covers, in milliseconds (`None` before the first checkpoint of a change or
    /// heartbeat). Heartbeats move it, so an idle source read to its end is not behind.
    pub fn commit_lag_ms(&self) -> Option<i64> {
        let t = self.committed_source_time.load(Ordering::Relaxed);
        (t > 0).then(|| ((super::now_micros() - t) / 1000).max(0))
    }

    /// A source opened epoch `next` (the ones before it are closed at its worker).
    pub fn open_epoch(&self, next: u64) {
        let before = self.epoch.fetch_max(next, Ordering::Relaxed);
        if next > before && next > 0 {
            let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
            if closed.len() >= 4096 {
                closed.pop_front();
            }
            closed.push_back((next - 1, super::now_micros(), self.source_time.load(Ordering::Relaxed)));
        }
    }

    /// The checkpoint now covers `epoch`: the epochs closed up to it are committed.
    pub fn committed(&self, epoch: u64) {
        let now = super::now_micros();
        let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((e, at, source)) = closed.front().copied() {
            if e > epoch {
                break;
            }
            closed.pop_front();
            self.committed_source_time.fetch_max(source, Ordering::Relaxed);
            let took = (now - at).max(0) as u64;
            self.commits.fetch_add(1, Ordering::Relaxed);
            self.commit_micros_sum.fetch_add(took, Ordering::Relaxed);
            self.commit_micros_last.store(took, Ordering::Relaxed);
        }
    }

    /// Snapshot chunks planned for table `t`, and how many of them were read before.
    pub fn plan_chunks(&self, t: usize, total: u64, done: u64) {
        if let Some(c) = self.tables.get(t) {
            c.chunks_total.fetch_add(total, Ordering::Relaxed);
            c.chunks_done.fetch_add(done, Ordering::Relaxed);
        }
    }

    /// A snapshot chunk of table `t` was read.
    pub fn chunk_done(&self, t: usize) {
        if let Some(c) = self.tables.get(t) {
            c.chunks_done.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `n` rows of table `t` were written.
    pub fn wrote(&self, t: usize, n: u64) {
        if let Some(c) = self.per_table.get(t) {
            c.fetch_add(n, Ordering::Relaxed);
        }
        if let Some(c) = self.tables.get(t) {
            c.last_change_micros.store(super::now_micros(), Ordering::Relaxed);
        }
    }

    /// The counters as of now, for the metrics file; `prev`: the last one published (for the
    /// rates).
    pub fn publish(&self, prev: Option<&Published>) -> Published {
        let now = super::now_micros();
        let rows_out = self.rows_out.load(Ordering::Relaxed);
        let rows_per_second = match prev {
            Some(p) if now > p.updated_micros && rows_out >= p.rows_out => {
                (rows_out - p.rows_out) as f64 * 1e6 / (now - p.updated_micros) as f64
            }
            _ => 0.0,
        };
        let tables: Vec<TableProgress> = self
            .tables
            .iter()
            .zip(&self.per_table)
            .map(|(c, rows)| TableProgress {
                source: c.source.clone(),
                target: c.target.clone(),
                rows: rows.load(Ordering::Relaxed),
                chunks_total: c.chunks_total.load(Ordering::Relaxed),
                chunks_done: c.chunks_done.load(Ordering::Relaxed),
                last_change_micros: c.last_change_micros.load(Ordering::Relaxed),
            })
            .collect();
        let snapshot = tables.iter().any(|t| t.chunks_done < t.chunks_total);
        Published {
            updated_micros: now,
            phase: if snapshot { "snapshot" } else { "streaming" }.into(),
            workers: self.workers.load(Ordering::Relaxed),
            rows_in: self.rows_in.load(Ordering::Relaxed),
            rows_out,
            rows_per_second,
            dirty: self.dirty.load(Ordering::Relaxed),
            lag_seconds: self.commit_lag_ms().map(|ms| ms as f64 / 1000.0),
            read_lag_seconds: self.lag_ms().map(|ms| ms as f64 / 1000.0),
            epoch: self.epoch.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            commit_seconds_sum: self.commit_micros_sum.load(Ordering::Relaxed) as f64 / 1e6,
            commit_seconds_last: self.commit_micros_last.load(Ordering::Relaxed) as f64 / 1e6,
            tables,
        }
    }
}

/// A run's counters as published in its metrics file (`ferry run --metrics-file`, written
/// every second): what `ferry serve` shows and exports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// When it was written, microseconds since the Unix epoch.
    pub updated_micros: i64,
    /// `snapshot` while a snapshot chunk is left, else `streaming`.
    pub phase: String,
    /// Timely workers of the run.
    pub workers: u64,
    /// Changes read from the source by this run.
    pub rows_in: u64,
    /// Changes written to the target by this run.
    pub rows_out: u64,
    /// Rows written per second since the last file.
    pub rows_per_second: f64,
    /// Rows sent to the dirty archive by this run.
    pub dirty: u64,
    /// Seconds the target is behind the source: now minus the source time of the newest
    /// change (or heartbeat) the last checkpoint covers; an idle source read to its end and
    /// committed is not behind.
    pub lag_seconds: Option<f64>,
    /// Seconds the newest change read is behind now (the reader's own lag).
    #[serde(default)]
    pub read_lag_seconds: Option<f64>,
    /// The newest epoch opened.
    pub epoch: u64,
    /// Epochs checkpointed by this run.
    pub commits: u64,
    /// The sum of their close-to-checkpoint times, seconds.
    pub commit_seconds_sum: f64,
    /// The last one's, seconds.
    pub commit_seconds_last: f64,
    /// Per selected table.
    pub tables: Vec<TableProgress>,
}

/// One table's progress in [`Published`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableProgress {
    /// The source table.
    pub source: String,
    /// The target table.
    pub target: String,
    /// Rows written by this run.
    pub rows: u64,
    /// Snapshot chunks planned.
    pub chunks_total: u64,
    /// Snapshot chunks read.
    pub chunks_done: u64,
    /// When a row was last written (µs since the Unix epoch; 0: none).
    pub last_change_micros: i64,
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

    #[test]
    fn an_epoch_is_committed_once_from_its_close_and_chunks_decide_the_phase() {
        let m = Metrics::with_tables(vec![("s.a".into(), "a".into())]);
        m.open_epoch(1);
        m.open_epoch(2);
        m.open_epoch(2);
        m.committed(1);
        assert_eq!(m.commits.load(Ordering::Relaxed), 2, "epochs 0 and 1 closed, both covered");
        assert_eq!(m.commit_lag_ms(), None, "nothing read yet");
        let now = crate::runtime::now_micros();
        m.note_source_time(now - 7_000_000);
        m.open_epoch(3);
        m.note_source_time(now);
        m.committed(2);
        let lag = m.commit_lag_ms().unwrap();
        assert!((7_000..8_000).contains(&lag), "the checkpoint covers what was read by epoch 2's close: {lag}");
        m.committed(1);
        assert_eq!(m.commits.load(Ordering::Relaxed), 3, "once per epoch");
        m.plan_chunks(0, 3, 1);
        assert_eq!(m.publish(None).phase, "snapshot");
        m.chunk_done(0);
        m.chunk_done(0);
        m.wrote(0, 5);
        let p = m.publish(None);
        assert_eq!((p.phase.as_str(), p.tables[0].rows, p.tables[0].chunks_done), ("streaming", 5, 3));
        assert!(p.tables[0].last_change_micros > 0);
    }
}
