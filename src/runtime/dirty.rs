//! The dirty-data archive: rows a transform or a target refused, kept with the reason.

use crate::state::TaskState;
use ferry_operators::{json, Change};
use std::sync::{Arc, Mutex};

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
        let mut line = Self::head(stage, table);
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
        self.push(line);
    }

    /// Records source input that is no change at all (a Kafka message that is not JSON, names
    /// no known table, or has a value of the wrong type): `table` as far as known, `place`
    /// where it was read (`topic/partition@offset`), the raw input as text (lossy UTF-8) and
    /// the reason. `ferry dirty replay` skips these lines (they hold no change).
    pub fn record_raw(&self, stage: &str, table: &str, place: &str, raw: &[u8], reason: &str) {
        if !self.keep {
            tracing::debug!(table, place, reason = %crate::secrets::redact(reason), "dirty input dropped");
            return;
        }
        let mut line = Self::head(stage, table);
        line.extend_from_slice(b",\"position\":");
        json::write_str(place, &mut line);
        line.extend_from_slice(b",\"input\":");
        json::write_str(&String::from_utf8_lossy(raw), &mut line);
        line.extend_from_slice(b",\"reason\":");
        json::write_str(&crate::secrets::redact(reason), &mut line);
        self.push(line);
    }

    /// The start of an archive line: `{"stage":…,"table":…`.
    fn head(stage: &str, table: &str) -> Vec<u8> {
        let mut line = Vec::new();
        line.extend_from_slice(b"{\"stage\":");
        json::write_str(stage, &mut line);
        line.extend_from_slice(b",\"table\":");
        json::write_str(table, &mut line);
        line
    }

    /// Ends `line` and adds it to what the next flush writes.
    fn push(&self, mut line: Vec<u8>) {
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
