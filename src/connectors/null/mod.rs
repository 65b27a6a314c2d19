//! The `null` target: counts and discards (benchmarks measure the engine without a target).

use crate::connector::{PreparedSink, SinkConnector, SinkError, SinkWriter, WriterCtx};
use crate::plan::{Compiled, Section, TargetConfig};
use crate::runtime::TaskError;
use ferry_operators::{Change, TableId};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::sync::Arc;

/// The `null` target: discards rows (benchmarks).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NullTarget {}

impl TargetConfig for NullTarget {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn describe(&self) -> String {
        "null (discarded)".into()
    }
}

/// The `null` sink connector.
#[derive(Debug)]
pub struct Null;

impl SinkConnector for Null {
    fn types(&self) -> &'static [&'static str] {
        &["null"]
    }

    fn parse(&self, _kind: &str, section: &Json, at: &mut Section<'_, '_>) -> Option<Arc<dyn TargetConfig>> {
        at.parse::<NullTarget>(section).map(|c| Arc::new(c) as Arc<dyn TargetConfig>)
    }

    fn prepare(&self, _plan: &Compiled, _from_scratch: bool, _fresh: bool) -> Result<PreparedSink, TaskError> {
        Ok(PreparedSink::default())
    }

    fn writer(&self, _cx: &WriterCtx) -> Result<Box<dyn SinkWriter>, TaskError> {
        Ok(Box::new(NullWriter))
    }
}

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
