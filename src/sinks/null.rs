//! The `null` target: counts and discards (benchmarks measure the engine without a target).

use super::{SinkError, SinkWriter};
use ferry_operators::{Change, TableId};

/// A writer that discards everything.
#[derive(Debug, Default)]
pub struct NullWriter;

impl SinkWriter for NullWriter {
    fn name(&self) -> &'static str {
        "null"
    }
    fn write(&mut self, _epoch: u64, _table: TableId, change: &Change) -> Result<(), SinkError> {
        std::hint::black_box(change);
        Ok(())
    }
    fn commit(&mut self, _epoch: u64) -> Result<(), SinkError> {
        Ok(())
    }
    fn committed(&self) -> u64 {
        0
    }
}
