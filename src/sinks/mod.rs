//! Sinks: where transformed changes are written. The engine's sink operator calls a
//! [`SinkWriter`] for every change and commits each epoch once the input frontier has passed
//! it; how a commit becomes durable is the sink's business (see each module).
//!
//! ```text
//!  exchange by (table, key) ─► SinkOperator ─┬─ write(epoch, change)   at-least-once: flush as batches fill
//!                                            └─ commit(epoch)          frontier passed epoch: make it durable,
//!                                                                      exactly-once: publish + record progress
//! ```

pub mod files;
pub mod null;

use ferry_operators::{Change, TableId};

/// Errors a sink reports.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The target failed in a way a retry or restart may fix (I/O, connection).
    #[error("{0}")]
    Transient(String),
    /// A change cannot be written as it is (bad name, rejected value): dirty data.
    #[error("{0}")]
    Definite(String),
}

/// One sink worker's writer.
pub trait SinkWriter {
    /// The sink's name in the state store (`files`, `null`, ...).
    fn name(&self) -> &'static str;
    /// Writes (or buffers) one change of `table` in `epoch`.
    fn write(&mut self, epoch: u64, table: TableId, change: &Change) -> Result<(), SinkError>;
    /// Everything of `epoch` has arrived: make it durable. Exactly-once sinks publish the epoch
    /// atomically with their progress here.
    fn commit(&mut self, epoch: u64) -> Result<(), SinkError>;
    /// The last epoch this worker committed before the run started (exactly-once sinks skip
    /// replayed epochs up to it); 0 if none.
    fn committed(&self) -> u64;
}
