//! The operators of a run's dataflow (connector side): the datagen source, the transform stage,
//! the sink stage; plus the run's metrics, the dirty-data archive and the live status line.

pub mod ddl;
pub mod mysql;
pub mod sink;
pub mod source;
pub mod transform;

use crate::state::TaskState;
use ferry_operators::{json, Change};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// The dirty-data archive of one worker: rows that could not be transformed or written, as
/// JSON lines under `<task>/dirty/`: the stage that refused the row (`transform` or `sink`),
/// the source table, the operation, the row (as the stage saw it), its position, commit time
/// and the reason, and the whole change in a lossless form for `ferry dirty replay`.
#[derive(Clone)]
pub struct DirtyArchive {
    state: TaskState,
    worker: usize,
    run: u64,
    keep: bool,
    pending: Arc<Mutex<(Vec<u8>, u32)>>,
}

impl DirtyArchive {
    /// An archive for one worker of one run; `keep: false` drops dirty rows (after a log line).
    pub fn new(state: TaskState, worker: usize, run: u64, keep: bool) -> Self {
        DirtyArchive { state, worker, run, keep, pending: Arc::new(Mutex::new((Vec::new(), 0))) }
    }

    /// Records a bad change with its reason; `stage` is `transform` or `sink`.
    pub fn record(&self, stage: &str, table: &str, change: &Change, reason: &str) {
        if !self.keep {
            tracing::debug!(table, position = %change.pos, reason = %crate::secrets::redact(reason), "dirty row dropped");
            return;
        }
        let mut line = Vec::new();
        line.extend_from_slice(b"{\"stage\":");
        json::write_str(stage, &mut line);
        line.extend_from_slice(b",\"table\":");
        json::write_str(table, &mut line);
        line.extend_from_slice(b",\"op\":");
        json::write_str(change.op.as_str(), &mut line);
        line.extend_from_slice(b",\"row\":[");
        for (i, v) in change.image().iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            json::write_value(v, &mut line);
        }
        line.extend_from_slice(b"],\"position\":");
        json::write_str(&change.pos.to_string(), &mut line);
        line.extend_from_slice(b",\"commit_time\":");
        json::write_value(&ferry_operators::Value::Timestamp(change.commit_micros), &mut line);
        line.extend_from_slice(b",\"reason\":");
        json::write_str(&crate::secrets::redact(reason), &mut line);
        line.extend_from_slice(b",\"change\":");
        line.extend_from_slice(&serde_json::to_vec(change).expect("a change serializes"));
        line.extend_from_slice(b"}\n");
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.0.extend_from_slice(&line);
    }

    /// Writes what was recorded since the last flush as one object.
    pub fn flush(&self) -> Result<(), crate::store::StoreError> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.0.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut p.0);
        p.1 += 1;
        let path = self.state.path(&format!("dirty/{:013}-w{:03}-{:06}.jsonl", self.run, self.worker, p.1));
        self.state.store().put(&path, data)
    }
}

/// Stops the status line thread when dropped or stopped.
pub struct StatusLine {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl StatusLine {
    /// Stops the thread and ends the line.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn human(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// Prints a live line on stderr every second: epoch, rows in and out, rows/s, per-table counts.
pub fn spawn_status_line(metrics: Arc<Metrics>, tables: Vec<String>) -> StatusLine {
    use std::io::IsTerminal;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let tty = std::io::stderr().is_terminal();
        let start = Instant::now();
        let mut last = (Instant::now(), 0u64);
        let mut printed = false;
        while !flag.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if last.0.elapsed() < Duration::from_secs(1) {
                continue;
            }
            let out = metrics.rows_out.load(Ordering::Relaxed);
            let rate = (out - last.1) as f64 / last.0.elapsed().as_secs_f64();
            last = (Instant::now(), out);
            let mut per: Vec<(u64, &String)> =
                metrics.per_table.iter().map(|c| c.load(Ordering::Relaxed)).zip(tables.iter()).collect();
            per.sort_by_key(|p| std::cmp::Reverse(p.0));
            let top: Vec<String> = per.iter().take(4).map(|(n, t)| format!("{t} {}", human(*n as f64))).collect();
            let more = if per.len() > 4 { format!(" +{} tables", per.len() - 4) } else { String::new() };
            let line = format!(
                "[{:>4}s] epoch {} | in {} | out {} | {}/s | dirty {} | {}{}",
                start.elapsed().as_secs(),
                metrics.epoch.load(Ordering::Relaxed),
                human(metrics.rows_in.load(Ordering::Relaxed) as f64),
                human(out as f64),
                human(rate),
                metrics.dirty.load(Ordering::Relaxed),
                top.join(", "),
                more
            );
            if tty {
                eprint!("\r\x1b[2K{line}");
            } else {
                eprintln!("{line}");
            }
            printed = true;
        }
        if tty && printed {
            eprintln!();
        }
    });
    StatusLine { stop, handle: Some(handle) }
}
